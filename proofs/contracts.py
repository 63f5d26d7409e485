"""CrossHair contracts on `impl`'s pure functions, checked with Python's own integers.

Rules:
- Each function here calls one `impl` function and states its contract in PEP 316
  docstring form (`pre:`, `post:`, `raises:`); `crosshair check --analysis_kind=PEP316`
  searches for inputs that meet the preconditions and break a postcondition or raise
  something not listed. The bodies add no logic of their own.
- This complements the Z3 obligations: CrossHair executes the real Python (unbounded
  ints, negative intermediates, `struct`, `sorted`, exceptions, `SplitLayout.validate`,
  the real `walk_chain` over real bytes), but its search is bounded by time and proves
  nothing for paths it did not reach; the Z3 obligations cover every input, but of
  formulas or encodings. `python -m proofs` runs CrossHair over this module with a time
  limit per condition (see `proofs.crosshair_run`).

Spec: §2.7 (sizes, layout), §2.7.6 and §2.7.8 (indices), §2.7.7.2 and §2.7.10.1
(need_event), §2.7.5 (the walk).
"""

from __future__ import annotations

from impl import ring_math
from impl.chain import Chain, walk_chain
from impl.errors import ChainError  # noqa: F401  (named by the `raises:` contract)
from impl.layout import Descriptor, SplitLayout
from impl.memory import GuestMemory


def advance(idx: int, by: int) -> int:
    """
    pre: 0 <= idx < 65536
    pre: 0 <= by < 65536
    post: 0 <= __return__ < 65536
    post: __return__ == (idx + by) % 65536
    """
    return ring_math.advance(idx, by)


def slot(idx: int, size_log2: int) -> int:
    """
    pre: 0 <= idx < 65536
    pre: 0 <= size_log2 <= 15
    post: __return__ == idx % (1 << size_log2)
    """
    return ring_math.slot(idx, 1 << size_log2)


def in_flight(used_idx: int, count: int, size_log2: int) -> int:
    """
    pre: 0 <= used_idx < 65536
    pre: 0 <= size_log2 <= 15
    pre: 0 <= count <= (1 << size_log2)
    post: __return__ == count
    """
    return ring_math.in_flight((used_idx + count) % 65536, used_idx)


def need_event(event: int, new: int, old: int) -> bool:
    """
    pre: 0 <= event < 65536 and 0 <= new < 65536 and 0 <= old < 65536
    post: __return__ == ((event - old) % 65536 < (new - old) % 65536)
    """
    return bool(ring_math.need_event(event, new, old))


def modern_layout(size_log2: int, base: int) -> SplitLayout:
    """
    pre: 0 <= size_log2 <= 15
    pre: 0 <= base < 2**64 - 2**20
    post: __return__.desc % 16 == 0 and __return__.avail % 2 == 0 and __return__.used % 4 == 0
    post: __return__.validate(__return__.end) is None
    """
    return SplitLayout.modern(1 << size_log2, base)


def legacy_layout(size_log2: int, base: int) -> SplitLayout:
    """
    pre: 0 <= size_log2 <= 15
    pre: 0 <= base < 2**64 - 2**21
    post: __return__.desc % 4096 == 0 and __return__.used % 4096 == 0
    post: __return__.validate(__return__.end) is None
    """
    return SplitLayout.legacy(1 << size_log2, base)


def walk_two(addr0: int, len0: int, flags0: int, next0: int,
             addr1: int, len1: int, flags1: int, next1: int,
             head: int, indirect_ok: bool) -> Chain:
    """The real walk over a real two-entry table in 256 bytes of guest memory.

    pre: 0 <= addr0 < 2**64 and 0 <= len0 < 2**32 and 0 <= flags0 < 8 and 0 <= next0 < 4
    pre: 0 <= addr1 < 2**64 and 0 <= len1 < 2**32 and 0 <= flags1 < 8 and 0 <= next1 < 4
    pre: 0 <= head < 2
    raises: ChainError
    post: len(__return__.readable) + len(__return__.writable) <= 2
    post: all(s.addr + s.len <= 256 for s in __return__.readable + __return__.writable)
    post: __return__.readable_len + __return__.writable_len < 2**32
    """
    mem = GuestMemory(256)
    mem.write(0, Descriptor(addr=addr0, len=len0, flags=flags0, next=next0).pack())
    mem.write(16, Descriptor(addr=addr1, len=len1, flags=flags1, next=next1).pack())
    return walk_chain(mem, 0, 2, head, indirect_ok=indirect_ok)
