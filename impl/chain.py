"""Descriptor chains: what a buffer is, and the device's bounded, checked walk over one.

Rules:
- The walk trusts nothing it reads: every descriptor field comes from the driver's
  memory and is checked before use; the first violation raises a `ChainError`
  subclass naming the rule, and nothing is returned in part.
- The work is bounded: no index is visited twice (a revisit is `DescriptorLoop`), so a
  direct walk reads at most `size` descriptors, and an indirect table at most its
  `len / 16` entries; the total number of buffer descriptors is capped at the queue
  size (`ChainTooLong`). A walk therefore reads at most `size + 1` descriptors.
- This module never writes guest memory (SPLIT-DEV-004: the device never writes the
  descriptor table) and never sees the driver's private state.

Spec: §2.7.4 (message framing), §2.7.5 (descriptor table), §2.7.5.3 (indirect).
"""

from __future__ import annotations

from typing import NamedTuple

from .errors import (
    BadIndirectTable,
    BufferOutOfBounds,
    ChainLengthOverflow,
    ChainTooLong,
    DescriptorLoop,
    IndirectNotNegotiated,
    IndirectWithNext,
    NestedIndirect,
    NextOutOfRange,
    PayloadTooLarge,
    ReadableAfterWritable,
)
from .layout import Descriptor, unpack_descriptor
from .memory import GuestMemory
from .spec import DESC_SIZE, MAX_CHAIN_BYTES, DescFlag


class Segment(NamedTuple):
    """One contiguous piece of a buffer in guest memory: `len` bytes at `addr`.

    Immutable like a frozen dataclass, but a NamedTuple: the walk builds one per
    descriptor, and a tuple is built three times faster.
    """

    addr: int
    len: int


class Chain(NamedTuple):
    """A buffer as the device sees it after a successful walk (immutable, like `Segment`).

    `readable` are the device-readable segments in order, then `writable` the
    device-writable ones (§2.7.4.2 puts every readable part first). `indirect` says
    whether the buffer's descriptors came (at least partly) from an indirect table.
    """

    head: int
    readable: tuple[Segment, ...]
    writable: tuple[Segment, ...]
    indirect: bool = False

    @property
    def readable_len(self) -> int:
        """Total device-readable bytes."""
        return sum(seg.len for seg in self.readable)

    @property
    def writable_len(self) -> int:
        """Total device-writable bytes: the most `len` in the used element can be."""
        return sum(seg.len for seg in self.writable)

    def read_payload(self, mem: GuestMemory) -> bytes:
        """The device-readable bytes, concatenated in chain order."""
        return b"".join(mem.read(seg.addr, seg.len) for seg in self.readable)

    def write_payload(self, mem: GuestMemory, data: bytes) -> int:
        """Write `data` from the first writable byte on (SPLIT-DEV-014); return its length.

        Writing more than the writable segments hold is refused before any byte is
        written (SPLIT-DEV-003: the device never writes a device-readable buffer).
        """
        if len(data) > self.writable_len:
            raise PayloadTooLarge(
                f"{len(data)} bytes do not fit the {self.writable_len} writable bytes of "
                f"chain {self.head}"
            )
        offset = 0
        for seg in self.writable:
            if offset >= len(data):
                break
            piece = data[offset : offset + seg.len]
            mem.write(seg.addr, piece)
            offset += len(piece)
        return len(data)


def read_descriptor(mem: GuestMemory, table: int, index: int) -> Descriptor:
    """Read descriptor `index` of the table at `table` (one 16-byte access)."""
    return Descriptor.unpack(mem.read(table + DESC_SIZE * index, DESC_SIZE))


_NEXT = int(DescFlag.NEXT)
_WRITE = int(DescFlag.WRITE)
_INDIRECT = int(DescFlag.INDIRECT)
"""Plain-int flag bits: `int & IntFlag` goes through enum code, too slow for the walk."""


class _Walk:
    """The mutable state of one walk; discarded if the walk raises."""

    __slots__ = ("indirect", "readable", "total", "writable")

    def __init__(self) -> None:
        self.readable: list[Segment] = []
        self.writable: list[Segment] = []
        self.total = 0
        self.indirect = False

    @property
    def count(self) -> int:
        """Buffer descriptors accepted so far."""
        return len(self.readable) + len(self.writable)

    def add(self, mem: GuestMemory, addr: int, length: int, flags: int, limit: int) -> None:
        """Account one buffer descriptor, enforcing order, bounds and length rules."""
        if not mem.contains(addr, length):
            raise BufferOutOfBounds(f"buffer [{addr:#x}, +{length}) outside guest memory")
        if flags & _WRITE:
            self.writable.append(Segment(addr, length))
        elif self.writable:
            raise ReadableAfterWritable("a device-readable descriptor follows a writable one")
        else:
            self.readable.append(Segment(addr, length))
        if len(self.readable) + len(self.writable) > limit:
            raise ChainTooLong(f"chain holds more than {limit} buffer descriptors")
        self.total += length
        if self.total >= MAX_CHAIN_BYTES:
            raise ChainLengthOverflow("chain length reaches 2^32 bytes")


def _enter_indirect(
    mem: GuestMemory, addr: int, length: int, flags: int, size: int, taken: int
) -> int:
    """Check an INDIRECT descriptor (§2.7.5.3) and return its table's entry count.

    `taken` buffer descriptors came before it in the direct table; a table that
    could only end the chain beyond the queue size is refused before it is read,
    which keeps a walk at `size + 1` descriptor reads.
    """
    if flags & _NEXT:
        raise IndirectWithNext("INDIRECT and NEXT on the same descriptor")
    if length == 0 or length % DESC_SIZE:
        raise BadIndirectTable(f"indirect table length {length} is not a positive multiple of 16")
    entries = length // DESC_SIZE
    if taken + entries > size:
        raise ChainTooLong(
            f"{taken} descriptors and an indirect table of {entries} exceed queue size {size}"
        )
    if not mem.contains(addr, length):
        raise BufferOutOfBounds(f"indirect table [{addr:#x}, +{length}) outside memory")
    return entries


def walk_chain(
    mem: GuestMemory, table: int, size: int, head: int, *, indirect_ok: bool
) -> Chain:
    """Walk the chain starting at descriptor `head` of the `size`-entry table at `table`.

    `head` must already be known to be below `size` (the caller checks the avail ring
    entry, §2.7.6). Handles direct chains, an indirect table, and direct descriptors
    followed by one indirect descriptor (SPLIT-DEV-006); the WRITE flag of an
    indirect descriptor is ignored (SPLIT-DEV-005). Raises a `ChainError` subclass on
    the first rule broken.
    """
    walk = _Walk()
    cur_table, cur_size, in_table = table, size, False
    index = head
    visited = {head}
    read = mem.read
    while True:
        addr, length, flags, nxt = unpack_descriptor(read(cur_table + DESC_SIZE * index, DESC_SIZE))
        if flags & _INDIRECT:
            if in_table:
                raise NestedIndirect("INDIRECT flag inside an indirect table")
            if not indirect_ok:
                raise IndirectNotNegotiated("INDIRECT flag without VIRTIO_F_INDIRECT_DESC")
            cur_size = _enter_indirect(mem, addr, length, flags, size, walk.count)
            cur_table, in_table, walk.indirect = addr, True, True
            index = 0
            visited = {0}
            continue
        walk.add(mem, addr, length, flags, size)
        if not flags & _NEXT:
            break
        index = nxt
        if index >= cur_size:
            raise NextOutOfRange(f"next {index} is outside a table of {cur_size} entries")
        if index in visited:
            raise DescriptorLoop(f"descriptor {index} is visited twice")
        visited.add(index)
    return Chain(head, tuple(walk.readable), tuple(walk.writable), walk.indirect)
