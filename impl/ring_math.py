"""All free-running index arithmetic of the rings, as pure functions.

Rules:
- Every modular operation on a ring index lives here; no other module masks an index
  by hand. Ring code calls these functions, and the proofs call the same functions on
  Z3 bit-vectors, so what is proved is what runs.
- The functions use only `+`, `-`, `&`, `<`, `<=` and conditional expressions written
  through `select`, so they accept Python `int` and `z3.BitVecRef` alike. The index
  width is a parameter (16 for split rings; packed rings use 15 plus a wrap counter).
- For Python ints, results are always in `0 .. 2**bits - 1`. For bit-vectors of width
  `bits` the masking is a no-op and the solver's own modular arithmetic applies.

Spec: §2.7.6 and §2.7.8 (free-running idx), §2.7.7 and §2.7.10 (event index rule),
Linux `vring_need_event` for the formula the spec describes in words.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from .spec import INDEX_BITS

_Self = TypeVar("_Self", bound="Modular")


class Modular(Protocol):
    """What index arithmetic needs of a value: `int` has it, and so has a Z3 bit-vector."""

    def __add__(self: _Self, other: _Self | int, /) -> _Self: ...
    def __sub__(self: _Self, other: _Self | int, /) -> _Self: ...
    def __and__(self: _Self, other: int, /) -> _Self: ...


Index = TypeVar("Index", bound=Modular)
"""An index value: a Python int or a Z3 bit-vector term of the ring's index width."""


def mask(bits: int = INDEX_BITS) -> int:
    """The all-ones value of an index of `bits` bits."""
    return (1 << bits) - 1


def wrap(value: Index, bits: int = INDEX_BITS) -> Index:
    """Reduce `value` modulo 2**bits (a no-op on a bit-vector of that width)."""
    return value & ((1 << bits) - 1)


def advance(idx: Index, by: int = 1, bits: int = INDEX_BITS) -> Index:
    """The index `by` entries after `idx`, wrapping at 2**bits."""
    return (idx + by) & ((1 << bits) - 1)


def distance(newer: Index, older: Index, bits: int = INDEX_BITS) -> Index:
    """How many entries `newer` is ahead of `older`, modulo 2**bits.

    Exact whenever the true distance is below 2**bits, which the queue size bound
    guarantees for entries in flight (§2.7: at most queue-size buffers outstanding).
    """
    return (newer - older) & ((1 << bits) - 1)


def slot(idx: Index, size: int, bits: int = INDEX_BITS) -> Index:
    """The ring slot an index refers to: idx mod size, for a power-of-two size (§2.7)."""
    return idx & (size - 1) & ((1 << bits) - 1)


def ult(a: Index, b: Index) -> Any:
    """Unsigned a < b: Python's `<` on ints, `z3.ULT` on bit-vectors (whose `<` is signed)."""
    if isinstance(a, int) and isinstance(b, int):
        return a < b
    import z3  # only the proofs pass bit-vectors; the runtime path never imports z3 here

    return z3.ULT(a, b)


def need_event(event: Index, new: Index, old: Index, bits: int = INDEX_BITS) -> Any:
    """Whether moving an index from `old` to `new` crosses the other side's `event`.

    True exactly when some index `i` with `old <= i < new` (walking forward, wrapping)
    equals `event`: the entry the other side asked to hear about was among those just
    published. This is the rule of §2.7.7.2 (used_event, SPLIT-DEV-011) and §2.7.10.1
    (avail_event, SPLIT-DRV-022), in the closed form Linux's `vring_need_event` uses:
    `new - event - 1 < new - old`, both sides taken modulo 2**bits.
    """
    return ult(wrap(new - event - 1, bits), distance(new, old, bits))


def in_flight(avail_idx: Index, used_idx: Index, bits: int = INDEX_BITS) -> Index:
    """Buffers published but not yet consumed: (avail_idx - used_idx) mod 2**bits."""
    return distance(avail_idx, used_idx, bits)
