"""The packed device's bounded, checked reading of one available list.

Rules:
- Two stages, split by what a violation costs. `read_list` finds the list's extent and
  its Buffer ID in the ring; if the ring itself is inconsistent (a later descriptor not
  available for its lap, no end within the queue size, an id out of range or already
  held) the device cannot know where the next list starts, so it raises a
  `RingCorruption`. `to_chain` then checks the contents (indirect rules, bounds, order,
  total length) and raises a `ChainError`: the extent is known, so the device can hand
  the id back used and go on.
- Work is bounded: a list reads at most `size` ring descriptors, an indirect table at
  most `size` entries. Nothing here writes guest memory.
- Inside an indirect table only VIRTQ_DESC_F_WRITE means anything; the other flags and
  the ids are reserved and ignored (§2.8.7), and the entries are read in order.

Spec: §2.8.6 (NEXT, id in the last descriptor), §2.8.7 (indirect tables), §2.8.17 and
§2.8.19 (driver rules the device checks), §2.8.1 (AVAIL/USED bits per lap).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

from .chain import Chain, Segment
from .errors import (
    BadIndirectTable,
    BufferIdInFlight,
    BufferIdOutOfRange,
    BufferOutOfBounds,
    ChainLengthOverflow,
    ChainLongerThanRing,
    ChainTooLong,
    DescriptorNotAvailable,
    IndirectInList,
    PackedIndirectNotNegotiated,
    PackedReadableAfterWritable,
)
from .memory import GuestMemory
from .packed_layout import PackedDescriptor, PackedLayout
from .spec import DESC_SIZE, MAX_CHAIN_BYTES, PackedDescFlag
from .wrap_math import advance, is_available, offset_of, wrap_of

_NEXT = int(PackedDescFlag.NEXT)
_WRITE = int(PackedDescFlag.WRITE)
_INDIRECT = int(PackedDescFlag.INDIRECT)


@dataclass(frozen=True, slots=True)
class RingList:
    """One available list as it stands in the ring: its Buffer ID and its descriptors."""

    id: int
    descs: tuple[PackedDescriptor, ...]


def read_ring_descriptor(mem: GuestMemory, layout: PackedLayout, pos: int) -> PackedDescriptor:
    """Read the ring descriptor at position `pos` (one 16-byte access)."""
    offset = offset_of(pos, layout.size)
    return PackedDescriptor.unpack(mem.read(layout.desc_addr(offset), DESC_SIZE))


def read_list(
    mem: GuestMemory, layout: PackedLayout, head: PackedDescriptor, pos: int,
    held: Container[int],
) -> RingList:
    """Collect the list whose (already available) head `head` sits at position `pos`.

    Each following descriptor must be available for its own lap (the counter flips
    where the list passes the ring's end). Raises `RingCorruption` subclasses.
    """
    size = layout.size
    descs = [head]
    while descs[-1].flags & _NEXT:
        if len(descs) == size:
            raise ChainLongerThanRing(f"a list at position {pos} has no end within {size}")
        pos = advance(pos, 1, size)
        desc = read_ring_descriptor(mem, layout, pos)
        if not is_available(desc.flags, wrap_of(pos, size)):
            raise DescriptorNotAvailable(
                f"descriptor {offset_of(pos, size)} of a list is not available for its lap"
            )
        descs.append(desc)
    ident = descs[-1].id
    if ident >= size:
        raise BufferIdOutOfRange(f"buffer id {ident} >= queue size {size}")
    if ident in held:
        raise BufferIdInFlight(f"buffer id {ident} is already held by the device")
    return RingList(ident, tuple(descs))


class _Segments:
    """Readable and writable segments of one buffer, checked as they are added."""

    __slots__ = ("limit", "readable", "total", "writable")

    def __init__(self, limit: int) -> None:
        self.readable: list[Segment] = []
        self.writable: list[Segment] = []
        self.total = 0
        self.limit = limit

    def add(self, mem: GuestMemory, addr: int, length: int, writable: bool) -> None:
        if not mem.contains(addr, length):
            raise BufferOutOfBounds(f"element [{addr:#x}, +{length}) outside guest memory")
        if writable:
            self.writable.append(Segment(addr, length))
        elif self.writable:
            raise PackedReadableAfterWritable("a device-readable element follows a writable one")
        else:
            self.readable.append(Segment(addr, length))
        if len(self.readable) + len(self.writable) > self.limit:
            raise ChainTooLong(f"a buffer holds more than {self.limit} elements")
        self.total += length
        if self.total >= MAX_CHAIN_BYTES:
            raise ChainLengthOverflow("a buffer's length reaches 2^32 bytes")


def _table_entries(mem: GuestMemory, desc: PackedDescriptor, size: int) -> int:
    """Check an indirect descriptor's table (§2.8.7) and return its entry count."""
    if desc.len == 0 or desc.len % DESC_SIZE:
        raise BadIndirectTable(f"indirect table length {desc.len} is not a positive multiple of 16")
    entries = desc.len // DESC_SIZE
    if entries > size:
        raise ChainTooLong(f"indirect table of {entries} entries exceeds queue size {size}")
    if not mem.contains(desc.addr, desc.len):
        raise BufferOutOfBounds(f"indirect table [{desc.addr:#x}, +{desc.len}) outside memory")
    return entries


def to_chain(mem: GuestMemory, ring_list: RingList, size: int, *, indirect_ok: bool) -> Chain:
    """Turn a list into the buffer it describes, or raise the `ChainError` it breaks."""
    segments = _Segments(size)
    descs = ring_list.descs
    indirect = any(d.flags & _INDIRECT for d in descs)
    if indirect and len(descs) > 1:
        raise IndirectInList("an INDIRECT descriptor inside a NEXT-linked list")
    if indirect:
        if not indirect_ok:
            raise PackedIndirectNotNegotiated("INDIRECT without VIRTIO_F_INDIRECT_DESC")
        table = descs[0]
        for i in range(_table_entries(mem, table, size)):
            raw = mem.read(table.addr + DESC_SIZE * i, DESC_SIZE)
            entry = PackedDescriptor.unpack(raw)
            segments.add(mem, entry.addr, entry.len, bool(entry.flags & _WRITE))
    else:
        for desc in descs:
            segments.add(mem, desc.addr, desc.len, bool(desc.flags & _WRITE))
    return Chain(ring_list.id, tuple(segments.readable), tuple(segments.writable), indirect)
