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

from operator import itemgetter
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
from .layout import DESC_STRUCT, Descriptor
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
        return sum(map(segment_len, self.writable))

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


segment_len = itemgetter(1)
"""`seg.len` as a C-level function, for sums over segments."""

new_tuple = tuple.__new__
"""Builds a NamedTuple (a `Segment`, `Chain`, ring list or driver record) from a tuple
of its fields, `new_tuple(Cls, (fields...))`, without the Python-level `__new__` a
NamedTuple generates: the rings build one per descriptor or buffer."""


def read_descriptor(mem: GuestMemory, table: int, index: int) -> Descriptor:
    """Read descriptor `index` of the table at `table` (one 16-byte access)."""
    return Descriptor.unpack(mem.read(table + DESC_SIZE * index, DESC_SIZE))


_NEXT = int(DescFlag.NEXT)
_WRITE = int(DescFlag.WRITE)
_INDIRECT = int(DescFlag.INDIRECT)
"""Plain-int flag bits: `int & IntFlag` goes through enum code, too slow for the walk."""


def _enter_indirect(
    mem: GuestMemory, desc: tuple[int, int, int, int], size: int, taken: int, *,
    in_table: bool, indirect_ok: bool,
) -> int:
    """Check an INDIRECT descriptor (§2.7.5.3) and return its table's entry count.

    `taken` buffer descriptors came before it in the direct table; a table that
    could only end the chain beyond the queue size is refused before it is read,
    which keeps a walk at `size + 1` descriptor reads.
    """
    addr, length, flags, _ = desc
    if in_table:
        raise NestedIndirect("INDIRECT flag inside an indirect table")
    if not indirect_ok:
        raise IndirectNotNegotiated("INDIRECT flag without VIRTIO_F_INDIRECT_DESC")
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
    the first rule broken; the lists it builds are dropped then, nothing escapes.
    """
    readable: list[Segment] = []
    writable: list[Segment] = []
    total = taken = 0
    cur_table, cur_size, indirect = table, size, False
    index, visited = head, {head}
    read, contains = mem.read_struct, mem.contains
    while True:
        desc = read(DESC_STRUCT, cur_table + DESC_SIZE * index)
        addr, length, flags, nxt = desc
        if flags & _INDIRECT:
            cur_size = _enter_indirect(
                mem, desc, size, taken, in_table=indirect, indirect_ok=indirect_ok
            )
            cur_table, indirect, index, visited = addr, True, 0, {0}
            continue
        if not contains(addr, length):
            raise BufferOutOfBounds(f"buffer [{addr:#x}, +{length}) outside guest memory")
        if flags & _WRITE:
            writable.append(new_tuple(Segment, (addr, length)))
        elif writable:
            raise ReadableAfterWritable("a device-readable descriptor follows a writable one")
        else:
            readable.append(new_tuple(Segment, (addr, length)))
        taken += 1
        if taken > size:
            raise ChainTooLong(f"chain holds more than {size} buffer descriptors")
        total += length
        if total >= MAX_CHAIN_BYTES:
            raise ChainLengthOverflow("chain length reaches 2^32 bytes")
        if not flags & _NEXT:
            return new_tuple(Chain, (head, tuple(readable), tuple(writable), indirect))
        index = nxt
        if index >= cur_size:
            raise NextOutOfRange(f"next {index} is outside a table of {cur_size} entries")
        if index in visited:
            raise DescriptorLoop(f"descriptor {index} is visited twice")
        visited.add(index)
