"""Symbolic values the obligations share: ring indices and queue sizes as Z3 terms.

Rules:
- Indices are carried in bit-vectors wider than 16 bits (`CARRIER_BITS`), constrained
  to 0..2^16-1. `impl.ring_math` is then evaluated exactly as Python evaluates it on
  ints (whose intermediate results may exceed 16 bits or go negative): the solver's own
  wrap at the carrier width is never reached by a masked result, so a function that
  forgets its `& 0xffff` shows up as a value of 2^16 or more instead of being hidden by
  a 16-bit solver type.
- A queue size is any power of two from 1 to 32768 (`MAX_QUEUE_SIZE`), symbolic.

Spec: §2.7 (queue sizes), §2.7.6 and §2.7.8 (16-bit free-running indices).
"""

from __future__ import annotations

from typing import Any

import z3

from impl.spec import INDEX_BITS, INDEX_MODULUS, MAX_QUEUE_SIZE

CARRIER_BITS = 32
"""Width of the bit-vectors that carry 16-bit indices and the sizes built from them."""


def bv(name: str, bits: int = CARRIER_BITS) -> Any:
    """A fresh bit-vector variable."""
    return z3.BitVec(name, bits)


def const(value: int, bits: int = CARRIER_BITS) -> Any:
    """A bit-vector constant."""
    return z3.BitVecVal(value, bits)


def is_index(term: Any) -> Any:
    """`term` holds a 16-bit index value (0..65535)."""
    return z3.ULT(term, INDEX_MODULUS)


def is_queue_size(size: Any) -> Any:
    """`size` is a power of two from 1 to 32768 (§2.7)."""
    return z3.And(size != 0, size & (size - 1) == 0, z3.ULE(size, MAX_QUEUE_SIZE))


def low16(term: Any) -> Any:
    """The 16-bit index a wider counter shows in the ring: counter mod 2^16."""
    return term & ((1 << INDEX_BITS) - 1)
