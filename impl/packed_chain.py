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

from collections.abc import Container, Iterable, Sequence
from typing import NamedTuple

from .chain import Chain, Segment, new_tuple
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
from .memory import GuestMemory, Reader
from .packed_layout import PACKED_DESC_STRUCT
from .spec import DESC_SIZE, MAX_CHAIN_BYTES, PackedDescFlag
from .wrap_math import advance, is_available, offset_of, wrap_of

_NEXT = int(PackedDescFlag.NEXT)
_WRITE = int(PackedDescFlag.WRITE)
_INDIRECT = int(PackedDescFlag.INDIRECT)
"""Plain-int flag bits: `int & IntFlag` goes through enum code, too slow per descriptor."""

RawDescriptor = tuple[int, int, int, int]
"""A `pvirtq_desc` as `PACKED_DESC_STRUCT` reads it: `(addr, len, id, flags)`."""


class RingList(NamedTuple):
    """One available list as it stands in the ring: its Buffer ID and its descriptors."""

    id: int
    descs: tuple[RawDescriptor, ...]



def read_list(
    read: Reader, addrs: Sequence[int], size: int, head: RawDescriptor, pos: int,
    held: Container[int],
) -> RingList:
    """Collect the list whose (already available) head `head` sits at position `pos`.

    `read` reads one descriptor of the ring at an address of `addrs`, the descriptor
    addresses by ring offset (a `GuestMemory.reader` over the ring). Each following
    descriptor must be available for its own lap (the counter flips where the list
    passes the ring's end). Raises `RingCorruption` subclasses.
    """
    descs = [head]
    desc = head
    while desc[3] & _NEXT:
        if len(descs) == size:
            raise ChainLongerThanRing(f"a list at position {pos} has no end within {size}")
        pos = advance(pos, 1, size)
        offset = offset_of(pos, size)
        desc = read(addrs[offset])
        if not is_available(desc[3], wrap_of(pos, size)):
            raise DescriptorNotAvailable(
                f"descriptor {offset} of a list is not available for its lap"
            )
        descs.append(desc)
    ident = desc[2]
    if ident >= size:
        raise BufferIdOutOfRange(f"buffer id {ident} >= queue size {size}")
    if ident in held:
        raise BufferIdInFlight(f"buffer id {ident} is already held by the device")
    return new_tuple(RingList, (ident, tuple(descs)))


def _table_entries(mem: GuestMemory, addr: int, length: int, size: int) -> int:
    """Check an indirect descriptor's table (§2.8.7) and return its entry count."""
    if length == 0 or length % DESC_SIZE:
        raise BadIndirectTable(f"indirect table length {length} is not a positive multiple of 16")
    entries = length // DESC_SIZE
    if entries > size:
        raise ChainTooLong(f"indirect table of {entries} entries exceeds queue size {size}")
    if not mem.contains(addr, length):
        raise BufferOutOfBounds(f"indirect table [{addr:#x}, +{length}) outside memory")
    return entries


def _table(mem: GuestMemory, addr: int, entries: int) -> Iterable[RawDescriptor]:
    """The entries of a checked indirect table, each read only when its turn comes."""
    read = mem.read_struct
    for i in range(entries):
        yield read(PACKED_DESC_STRUCT, addr + DESC_SIZE * i)


def to_chain(mem: GuestMemory, ring_list: RingList, size: int, *, indirect_ok: bool) -> Chain:
    """Turn a list into the buffer it describes, or raise the `ChainError` it breaks.

    Each element is checked as it comes: inside memory, readable before writable, at
    most `size` elements, under 2^32 bytes in total (an indirect entry is read only
    once the ones before it passed).
    """
    descs = ring_list.descs
    indirect = False
    for desc in descs:
        if desc[3] & _INDIRECT:
            indirect = True
            break
    elements: Iterable[RawDescriptor] = descs
    if indirect:
        if len(descs) > 1:
            raise IndirectInList("an INDIRECT descriptor inside a NEXT-linked list")
        if not indirect_ok:
            raise PackedIndirectNotNegotiated("INDIRECT without VIRTIO_F_INDIRECT_DESC")
        addr, length, _, _ = descs[0]
        elements = _table(mem, addr, _table_entries(mem, addr, length, size))
    readable: list[Segment] = []
    writable: list[Segment] = []
    total = 0
    contains = mem.contains
    for taken, (addr, length, _, flags) in enumerate(elements, 1):
        if not contains(addr, length):
            raise BufferOutOfBounds(f"element [{addr:#x}, +{length}) outside guest memory")
        if flags & _WRITE:
            writable.append(new_tuple(Segment, (addr, length)))
        elif writable:
            raise PackedReadableAfterWritable("a device-readable element follows a writable one")
        else:
            readable.append(new_tuple(Segment, (addr, length)))
        if taken > size:
            raise ChainTooLong(f"a buffer holds more than {size} elements")
        total += length
        if total >= MAX_CHAIN_BYTES:
            raise ChainLengthOverflow("a buffer's length reaches 2^32 bytes")
    return new_tuple(Chain, (ring_list.id, tuple(readable), tuple(writable), indirect))
