"""Wire structures of the packed virtqueue and where each field lives in guest memory.

Rules:
- `PackedDescriptor` (`struct pvirtq_desc`) and `EventSuppress`
  (`struct pvirtq_event_suppress`) are frozen, slotted dataclasses with `SIZE`,
  `pack()` and `unpack()`, as `layout.py` does for the split ring.
- `PackedLayout` turns (queue size, three area addresses) into field addresses and is
  the only place that knows the packed offsets. Sizes need not be powers of two
  (1..32768); the descriptor ring is 16-aligned, each event structure 4-aligned.
- The descriptor ring is read-write for both sides (a used descriptor overwrites an
  available one); the Driver Event Suppression area is written by the driver only and
  the Device Event Suppression area by the device only.

Spec: §2.8 (three parts), §2.8.10.1 (size and alignment table), §2.8.11 (PACKED-DRV-001),
§2.8.13 `struct pvirtq_desc`, §2.8.14 `struct pvirtq_event_suppress`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from itertools import pairwise
from typing import ClassVar

from .errors import InvalidPackedLayout
from .layout import align_up
from .spec import (
    DESC_SIZE,
    EVENT_SUPPRESS_ALIGN,
    EVENT_SUPPRESS_SIZE,
    MAX_QUEUE_SIZE,
    PACKED_DESC_ALIGN,
)

DESC_LEN_OFFSET = 8
"""Byte offset of `len` (le32) inside `struct pvirtq_desc`."""
DESC_ID_OFFSET = 12
"""Byte offset of `id` (le16) inside `struct pvirtq_desc`."""
DESC_FLAGS_OFFSET = 14
"""Byte offset of `flags` (le16) inside `struct pvirtq_desc`: the word that exposes it."""
EVENT_FLAGS_OFFSET = 2
"""Byte offset of `flags` inside `struct pvirtq_event_suppress`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PackedDescriptor:
    """`struct pvirtq_desc` (§2.8.13): le64 addr, le32 len, le16 id, le16 flags."""

    addr: int
    len: int
    id: int = 0
    flags: int = 0

    SIZE: ClassVar[int] = DESC_SIZE
    _STRUCT: ClassVar[struct.Struct] = struct.Struct("<QIHH")  # PACKED_DESC_STRUCT

    def pack(self) -> bytes:
        """The 16 little-endian bytes of this descriptor."""
        return self._STRUCT.pack(self.addr, self.len, self.id, self.flags)

    @classmethod
    def unpack(cls, raw: bytes) -> PackedDescriptor:
        """Decode 16 bytes; any bit pattern is a valid (if hostile) descriptor."""
        addr, length, ident, flags = cls._STRUCT.unpack(raw)
        return cls(addr=addr, len=length, id=ident, flags=flags)


@dataclass(frozen=True, slots=True, kw_only=True)
class EventSuppress:
    """`struct pvirtq_event_suppress` (§2.8.14): le16 desc (off:15, wrap:1), le16 flags."""

    off_wrap: int = 0
    flags: int = 0

    SIZE: ClassVar[int] = EVENT_SUPPRESS_SIZE
    _STRUCT: ClassVar[struct.Struct] = struct.Struct("<HH")

    def pack(self) -> bytes:
        """The 4 little-endian bytes of this structure."""
        return self._STRUCT.pack(self.off_wrap, self.flags)

    @classmethod
    def unpack(cls, raw: bytes) -> EventSuppress:
        """Decode 4 bytes."""
        off_wrap, flags = cls._STRUCT.unpack(raw)
        return cls(off_wrap=off_wrap, flags=flags)


PACKED_DESC_STRUCT = struct.Struct("<QIHH")
"""The format of a `pvirtq_desc`, for `GuestMemory.read_struct`/`write_struct` and the
ring's accessors: `(addr, len, id, flags)`."""

DESC_BODY_STRUCT = struct.Struct("<QIH")
"""The first 14 bytes of a `pvirtq_desc`, all but `flags` (the word that exposes it):
`(addr, len, id)`."""

LE32_STRUCT = struct.Struct("<I")
"""One le32 field (a descriptor's `len`), for the ring's accessors: `(value,)`."""


def pack_descriptor(addr: int, length: int, ident: int, flags: int) -> bytes:
    """The 16 bytes of a `pvirtq_desc`, without building a `PackedDescriptor`."""
    return PACKED_DESC_STRUCT.pack(addr, length, ident, flags)


def pack_descriptor_body(addr: int, length: int, ident: int) -> bytes:
    """The first 14 bytes of a `pvirtq_desc` (all but `flags`, which exposes it)."""
    return DESC_BODY_STRUCT.pack(addr, length, ident)


def is_valid_packed_size(size: int) -> bool:
    """A packed queue size is any value from 1 to 32768, power of two or not (§2.8)."""
    return 1 <= size <= MAX_QUEUE_SIZE


def desc_ring_bytes(size: int) -> int:
    """Descriptor Ring size: 16 * size (§2.8.10.1)."""
    return DESC_SIZE * size


@dataclass(frozen=True, slots=True)
class PackedLayout:
    """Where a packed virtqueue of `size` entries lives: ring, driver area, device area."""

    size: int
    desc: int
    driver: int
    device: int

    @classmethod
    def modern(cls, size: int, base: int = 0) -> PackedLayout:
        """Place the ring, then the driver and device event structures, each aligned."""
        desc = align_up(base, PACKED_DESC_ALIGN)
        driver = align_up(desc + desc_ring_bytes(size), EVENT_SUPPRESS_ALIGN)
        device = align_up(driver + EVENT_SUPPRESS_SIZE, EVENT_SUPPRESS_ALIGN)
        return cls(size, desc, driver, device)

    @property
    def end(self) -> int:
        """One past the highest byte any part occupies."""
        return max(
            self.desc + desc_ring_bytes(self.size),
            self.driver + EVENT_SUPPRESS_SIZE,
            self.device + EVENT_SUPPRESS_SIZE,
        )

    def parts(self) -> tuple[tuple[str, int, int, int], ...]:
        """(name, address, length, alignment) of each of the three parts."""
        return (
            ("descriptor ring", self.desc, desc_ring_bytes(self.size), PACKED_DESC_ALIGN),
            ("driver event suppression", self.driver, EVENT_SUPPRESS_SIZE, EVENT_SUPPRESS_ALIGN),
            ("device event suppression", self.device, EVENT_SUPPRESS_SIZE, EVENT_SUPPRESS_ALIGN),
        )

    def validate(self, memory_size: int) -> None:
        """Raise `InvalidPackedLayout` unless a device may accept this layout (§2.8.11)."""
        if not is_valid_packed_size(self.size):
            raise InvalidPackedLayout(f"packed queue size {self.size} is not in 1..32768")
        for name, addr, length, alignment in self.parts():
            if addr % alignment:
                raise InvalidPackedLayout(f"{name} at {addr:#x} is not {alignment}-byte aligned")
            if not (0 <= addr and addr + length <= memory_size):
                raise InvalidPackedLayout(f"{name} [{addr:#x}, +{length}) lies outside memory")
        spans = sorted((addr, addr + length) for _, addr, length, _ in self.parts())
        for (_, end_a), (start_b, _) in pairwise(spans):
            if start_b < end_a:
                raise InvalidPackedLayout("virtqueue parts overlap")

    # --- field addresses (§2.8.13, §2.8.14) -------------------------------------------
    def desc_addr(self, offset: int) -> int:
        """Address of ring descriptor `offset`."""
        return self.desc + DESC_SIZE * offset

    def desc_len(self, offset: int) -> int:
        """Address of the `len` field of ring descriptor `offset`."""
        return self.desc_addr(offset) + DESC_LEN_OFFSET

    def desc_id(self, offset: int) -> int:
        """Address of the `id` field of ring descriptor `offset`."""
        return self.desc_addr(offset) + DESC_ID_OFFSET

    def desc_flags(self, offset: int) -> int:
        """Address of the `flags` field of ring descriptor `offset`."""
        return self.desc_addr(offset) + DESC_FLAGS_OFFSET

    # --- the hot addresses, as ranges indexed by offset (nothing is built) -------------
    @property
    def desc_addrs(self) -> range:
        """`desc_addr(offset)` for every offset."""
        return range(self.desc, self.desc + desc_ring_bytes(self.size), DESC_SIZE)

    @property
    def desc_len_addrs(self) -> range:
        """`desc_len(offset)` for every offset."""
        return _shifted(self.desc_addrs, DESC_LEN_OFFSET)

    @property
    def desc_id_addrs(self) -> range:
        """`desc_id(offset)` for every offset."""
        return _shifted(self.desc_addrs, DESC_ID_OFFSET)

    @property
    def desc_flags_addrs(self) -> range:
        """`desc_flags(offset)` for every offset."""
        return _shifted(self.desc_addrs, DESC_FLAGS_OFFSET)

    # --- the three areas, for `GuestMemory.reader`/`writer` ---------------------------
    @property
    def desc_area(self) -> tuple[int, int]:
        """`[start, end)` of the Descriptor Ring."""
        return self.desc, self.desc + desc_ring_bytes(self.size)

    @property
    def driver_area(self) -> tuple[int, int]:
        """`[start, end)` of the Driver Event Suppression structure."""
        return self.driver, self.driver + EVENT_SUPPRESS_SIZE

    @property
    def device_area(self) -> tuple[int, int]:
        """`[start, end)` of the Device Event Suppression structure."""
        return self.device, self.device + EVENT_SUPPRESS_SIZE

    @property
    def driver_off_wrap(self) -> int:
        """Driver Event Suppression `desc` word (the driver's used-event position)."""
        return self.driver

    @property
    def driver_flags(self) -> int:
        """Driver Event Suppression `flags` word."""
        return self.driver + EVENT_FLAGS_OFFSET

    @property
    def device_off_wrap(self) -> int:
        """Device Event Suppression `desc` word (the device's avail-event position)."""
        return self.device

    @property
    def device_flags(self) -> int:
        """Device Event Suppression `flags` word."""
        return self.device + EVENT_FLAGS_OFFSET


def _shifted(addrs: range, by: int) -> range:
    """`addrs` with every address moved `by` bytes on."""
    return range(addrs.start + by, addrs.stop + by, addrs.step)
