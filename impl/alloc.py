"""A first-fit allocator of guest-physical ranges, the driver's stand-in for kmalloc.

Rules: it hands out disjoint, aligned ranges of one window of guest memory and takes
them back; it never touches the memory's bytes. The driver allocates indirect tables
from it (Linux kmallocs them, §2.7.5.3), and the transports and tests allocate rings
and data buffers from it. Running out is `None`, as a failed kmalloc is NULL: the
caller decides (the driver falls back to direct descriptors, as Linux does).

Spec: none directly; §2.7.1 alignments are the caller's `align` argument.
"""

from __future__ import annotations

import bisect

from .layout import align_up


class GuestAllocator:
    """Hands out ranges of `[start, end)`; freed ranges coalesce with their neighbours."""

    __slots__ = ("_free", "_used")

    def __init__(self, start: int, end: int) -> None:
        self._free: list[tuple[int, int]] = [(start, end)] if end > start else []
        self._used: dict[int, int] = {}

    def alloc(self, length: int, align: int = 1) -> int | None:
        """Return the address of `length` free bytes aligned to `align`, or None."""
        length = max(length, 1)
        for i, (lo, hi) in enumerate(self._free):
            addr = align_up(lo, align)
            if addr + length <= hi:
                pieces = [(a, b) for a, b in ((lo, addr), (addr + length, hi)) if b > a]
                self._free[i : i + 1] = pieces
                self._used[addr] = length
                return addr
        return None

    def free(self, addr: int) -> None:
        """Give back a range returned by `alloc`; a double free raises KeyError."""
        length = self._used.pop(addr)
        i = bisect.bisect(self._free, (addr, addr + length))
        self._free.insert(i, (addr, addr + length))
        merged: list[tuple[int, int]] = []
        for lo, hi in self._free:
            if merged and merged[-1][1] == lo:
                merged[-1] = (merged[-1][0], hi)
            else:
                merged.append((lo, hi))
        self._free = merged

    @property
    def allocated(self) -> dict[int, int]:
        """The live ranges, address to length (a copy)."""
        return dict(self._used)
