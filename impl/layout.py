"""Wire structures and where each split-ring field lives in guest memory.

Rules:
- One frozen, slotted dataclass per C structure, with `SIZE`, `pack()` and `unpack()`;
  this is the only module that encodes structures with `struct`.
- `SplitLayout` turns (queue size, three area addresses) into field addresses and is
  the only place that knows the offsets. It validates what the spec requires of a
  layout (power-of-two size up to 32768, per-part alignment, parts inside memory)
  and builds the two layouts in use: modern (three separate areas, §2.7) and legacy
  (one contiguous block, used ring aligned to Queue Align, §2.7.2).

Spec: §2.7 (part sizes and alignment table), §2.7.1 (SPLIT-DRV-001), §2.7.2 (legacy),
§2.7.5 `struct virtq_desc`, §2.7.6 `struct virtq_avail`, §2.7.8 `struct virtq_used`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import ClassVar

from .errors import InvalidLayout
from .spec import (
    AVAIL_ALIGN,
    AVAIL_ELEM_SIZE,
    DESC_ALIGN,
    DESC_SIZE,
    EVENT_FIELD_SIZE,
    LEGACY_QUEUE_ALIGN,
    MAX_QUEUE_SIZE,
    RING_HEADER_SIZE,
    USED_ALIGN,
    USED_ELEM_SIZE,
)

DESC_STRUCT = struct.Struct("<QIHH")
"""The format of a `virtq_desc`, for `GuestMemory.read_struct`/`write_struct`:
`(addr, len, flags, next)`."""

LE16_STRUCT = struct.Struct("<H")
"""One le16 field (a ring entry, an index, flags, an event word), for the accessors of
`GuestMemory.reader`/`writer`: `(value,)`."""

USED_ELEM_STRUCT = struct.Struct("<II")
"""The format of a `virtq_used_elem`, for `GuestMemory.read_struct`/`write_struct`:
`(id, len)`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Descriptor:
    """`struct virtq_desc` (§2.7.5): le64 addr, le32 len, le16 flags, le16 next."""

    addr: int
    len: int
    flags: int = 0
    next: int = 0

    SIZE: ClassVar[int] = DESC_SIZE
    _STRUCT: ClassVar[struct.Struct] = DESC_STRUCT

    def pack(self) -> bytes:
        """The 16 little-endian bytes of this descriptor."""
        return self._STRUCT.pack(self.addr, self.len, self.flags, self.next)

    @classmethod
    def unpack(cls, raw: bytes) -> Descriptor:
        """Decode 16 bytes; any bit pattern is a valid (if hostile) descriptor."""
        addr, length, flags, nxt = cls._STRUCT.unpack(raw)
        return cls(addr=addr, len=length, flags=flags, next=nxt)


@dataclass(frozen=True, slots=True, kw_only=True)
class UsedElem:
    """`struct virtq_used_elem` (§2.7.8): le32 id (the chain head), le32 len (bytes written)."""

    id: int
    len: int

    SIZE: ClassVar[int] = USED_ELEM_SIZE
    _STRUCT: ClassVar[struct.Struct] = USED_ELEM_STRUCT

    def pack(self) -> bytes:
        """The 8 little-endian bytes of this element."""
        return self._STRUCT.pack(self.id, self.len)

    @classmethod
    def unpack(cls, raw: bytes) -> UsedElem:
        """Decode 8 bytes."""
        ident, length = cls._STRUCT.unpack(raw)
        return cls(id=ident, len=length)


pack_descriptor: Callable[[int, int, int, int], bytes] = DESC_STRUCT.pack
"""`(addr, len, flags, next)` to the 16 bytes of a `virtq_desc`, without building an object
(the ring's hot path; `Descriptor.pack` is the same encoding)."""

unpack_descriptor: Callable[[bytes], tuple[int, int, int, int]] = DESC_STRUCT.unpack
"""16 bytes of a `virtq_desc` to `(addr, len, flags, next)`, without building an object."""


pack_used_elem: Callable[[int, int], bytes] = USED_ELEM_STRUCT.pack
"""`(id, len)` to the 8 bytes of a `virtq_used_elem`, without building an object."""

unpack_used_elem: Callable[[bytes], tuple[int, int]] = USED_ELEM_STRUCT.unpack
"""8 bytes of a `virtq_used_elem` to `(id, len)`, without building an object."""


def is_valid_queue_size(size: int) -> bool:
    """A split queue size is a power of two from 1 to 32768 (§2.7)."""
    return 1 <= size <= MAX_QUEUE_SIZE and size & (size - 1) == 0


def desc_table_bytes(size: int) -> int:
    """Descriptor Area size: 16 * size (§2.7 table)."""
    return DESC_SIZE * size


def avail_ring_bytes(size: int) -> int:
    """Driver Area size: flags + idx + ring[size] + used_event = 6 + 2 * size (§2.7 table)."""
    return RING_HEADER_SIZE + AVAIL_ELEM_SIZE * size + EVENT_FIELD_SIZE


def used_ring_bytes(size: int) -> int:
    """Device Area size: flags + idx + ring[size] of 8 + avail_event = 6 + 8 * size (§2.7 table)."""
    return RING_HEADER_SIZE + USED_ELEM_SIZE * size + EVENT_FIELD_SIZE


def align_up(value: int, alignment: int) -> int:
    """The least multiple of `alignment` (a power of two) that is >= value."""
    return (value + alignment - 1) & ~(alignment - 1)


@dataclass(frozen=True, slots=True)
class SplitLayout:
    """Where a split virtqueue of `size` entries lives: three guest-physical addresses."""

    size: int
    desc: int
    avail: int
    used: int

    @classmethod
    def modern(cls, size: int, base: int = 0) -> SplitLayout:
        """Pack the three parts one after another from `base`, each at its own alignment."""
        desc = align_up(base, DESC_ALIGN)
        avail = align_up(desc + desc_table_bytes(size), AVAIL_ALIGN)
        used = align_up(avail + avail_ring_bytes(size), USED_ALIGN)
        return cls(size, desc, avail, used)

    @classmethod
    def legacy(cls, size: int, base: int = 0, queue_align: int = LEGACY_QUEUE_ALIGN) -> SplitLayout:
        """The legacy contiguous layout: desc, avail, padding to `queue_align`, used (§2.7.2)."""
        desc = align_up(base, queue_align)
        avail = desc + desc_table_bytes(size)
        used = align_up(avail + avail_ring_bytes(size), queue_align)
        return cls(size, desc, avail, used)

    @property
    def end(self) -> int:
        """One past the highest byte any part occupies."""
        return max(
            self.desc + desc_table_bytes(self.size),
            self.avail + avail_ring_bytes(self.size),
            self.used + used_ring_bytes(self.size),
        )

    def validate(self, memory_size: int) -> None:
        """Raise `InvalidLayout` unless this layout is one a device may accept (§2.7, §2.7.1)."""
        if not is_valid_queue_size(self.size):
            raise InvalidLayout(f"queue size {self.size} is not a power of two in 1..32768")
        parts = (
            ("descriptor table", self.desc, desc_table_bytes(self.size), DESC_ALIGN),
            ("available ring", self.avail, avail_ring_bytes(self.size), AVAIL_ALIGN),
            ("used ring", self.used, used_ring_bytes(self.size), USED_ALIGN),
        )
        for name, addr, length, alignment in parts:
            if addr % alignment:
                raise InvalidLayout(f"{name} at {addr:#x} is not {alignment}-byte aligned")
            if not (0 <= addr and addr + length <= memory_size):
                raise InvalidLayout(f"{name} [{addr:#x}, +{length}) lies outside guest memory")
        spans = sorted((addr, addr + length) for _, addr, length, _ in parts)
        for (_, end_a), (start_b, _) in pairwise(spans):
            if start_b < end_a:
                raise InvalidLayout("virtqueue parts overlap")

    # --- field addresses (§2.7.5, §2.7.6, §2.7.8) -------------------------------------
    def desc_addr(self, index: int) -> int:
        """Address of descriptor `index` in the table."""
        return self.desc + DESC_SIZE * index

    @property
    def avail_flags(self) -> int:
        """Address of virtq_avail.flags."""
        return self.avail

    @property
    def avail_idx(self) -> int:
        """Address of virtq_avail.idx."""
        return self.avail + 2

    def avail_ring(self, ring_slot: int) -> int:
        """Address of virtq_avail.ring[ring_slot]."""
        return self.avail + RING_HEADER_SIZE + AVAIL_ELEM_SIZE * ring_slot

    @property
    def avail_area(self) -> tuple[int, int]:
        """`[start, end)` of the Driver Area (flags, idx, ring, used_event)."""
        return self.avail, self.avail + avail_ring_bytes(self.size)

    @property
    def used_area(self) -> tuple[int, int]:
        """`[start, end)` of the Device Area (flags, idx, ring, avail_event)."""
        return self.used, self.used + used_ring_bytes(self.size)

    @property
    def desc_area(self) -> tuple[int, int]:
        """`[start, end)` of the Descriptor Area."""
        return self.desc, self.desc + desc_table_bytes(self.size)

    @property
    def avail_ring_addrs(self) -> range:
        """`avail_ring(slot)` for every slot, as a range indexed by slot (nothing is built)."""
        return range(self.avail_ring(0), self.avail_ring(self.size), AVAIL_ELEM_SIZE)

    @property
    def used_event(self) -> int:
        """Address of used_event, the word after the available ring (§2.7.7)."""
        return self.avail + RING_HEADER_SIZE + AVAIL_ELEM_SIZE * self.size

    @property
    def used_flags(self) -> int:
        """Address of virtq_used.flags."""
        return self.used

    @property
    def used_idx(self) -> int:
        """Address of virtq_used.idx."""
        return self.used + 2

    def used_ring(self, ring_slot: int) -> int:
        """Address of virtq_used.ring[ring_slot] (its id; len follows 4 bytes later)."""
        return self.used + RING_HEADER_SIZE + USED_ELEM_SIZE * ring_slot

    @property
    def used_ring_addrs(self) -> range:
        """`used_ring(slot)` for every slot, as a range indexed by slot (nothing is built)."""
        return range(self.used_ring(0), self.used_ring(self.size), USED_ELEM_SIZE)

    @property
    def avail_event(self) -> int:
        """Address of avail_event, the word after the used ring (§2.7.10)."""
        return self.used + RING_HEADER_SIZE + USED_ELEM_SIZE * self.size
