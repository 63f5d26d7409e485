"""virtio-blk wire structures: the request header, discard/write-zeroes segments, config space.

Rules:
- One frozen, slotted dataclass per C structure, with `SIZE`, `pack()` and `unpack()`,
  as `impl/layout.py` does for the ring; this is the only module that encodes virtio-blk
  structures with `struct`. Every field is little-endian (§5.2.4, §5.2.6; the legacy
  native-endian variant is out of scope).
- `unpack` accepts any bit pattern: deciding whether a value is acceptable is the
  device's job (`impl/blk_device.py`), not the decoder's.

Spec: §5.2.4 `struct virtio_blk_config`, §5.2.6 `struct virtio_blk_req` and
`struct virtio_blk_discard_write_zeroes`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from .spec import (
    BLK_CONFIG_SIZE,
    BLK_DWZ_SEGMENT_SIZE,
    BLK_REQ_HEADER_SIZE,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class BlkReqHeader:
    """The head of `struct virtio_blk_req` (§5.2.6): le32 type, le32 reserved, le64 sector."""

    type: int
    sector: int = 0
    reserved: int = 0

    SIZE: ClassVar[int] = BLK_REQ_HEADER_SIZE
    _STRUCT: ClassVar[struct.Struct] = struct.Struct("<IIQ")

    def pack(self) -> bytes:
        """The 16 little-endian bytes of this header."""
        return self._STRUCT.pack(self.type, self.reserved, self.sector)

    @classmethod
    def unpack(cls, raw: bytes) -> BlkReqHeader:
        """Decode 16 bytes."""
        kind, reserved, sector = cls._STRUCT.unpack(raw)
        return cls(type=kind, sector=sector, reserved=reserved)


@dataclass(frozen=True, slots=True, kw_only=True)
class DwzSegment:
    """`struct virtio_blk_discard_write_zeroes` (§5.2.6): le64 sector, le32 num_sectors, le32 flags.

    Bit 0 of `flags` is `unmap`; the other 31 bits are reserved.
    """

    sector: int
    num_sectors: int
    flags: int = 0

    SIZE: ClassVar[int] = BLK_DWZ_SEGMENT_SIZE
    _STRUCT: ClassVar[struct.Struct] = struct.Struct("<QII")

    def pack(self) -> bytes:
        """The 16 little-endian bytes of this segment."""
        return self._STRUCT.pack(self.sector, self.num_sectors, self.flags)

    @classmethod
    def unpack(cls, raw: bytes) -> DwzSegment:
        """Decode 16 bytes."""
        sector, count, flags = cls._STRUCT.unpack(raw)
        return cls(sector=sector, num_sectors=count, flags=flags)


@dataclass(frozen=True, slots=True, kw_only=True)
class BlkConfig:
    """`struct virtio_blk_config` (§5.2.4) through `write_zeroes_may_unmap`, then zeros.

    The secure-erase and zoned fields are not offered by this project and always read
    as 0; so do the padding bytes `unused0`, `unused1` and `unused2` (BLK-DEV-003,
    BLK-DEV-017).
    """

    capacity: int
    size_max: int = 0
    seg_max: int = 0
    cylinders: int = 0
    heads: int = 0
    sectors: int = 0
    blk_size: int = 0
    physical_block_exp: int = 0
    alignment_offset: int = 0
    min_io_size: int = 0
    opt_io_size: int = 0
    writeback: int = 0
    num_queues: int = 0
    max_discard_sectors: int = 0
    max_discard_seg: int = 0
    discard_sector_alignment: int = 0
    max_write_zeroes_sectors: int = 0
    max_write_zeroes_seg: int = 0
    write_zeroes_may_unmap: int = 0

    SIZE: ClassVar[int] = BLK_CONFIG_SIZE
    # capacity size_max seg_max | cyl heads sectors | blk_size | exp align min_io opt_io |
    # writeback unused0 num_queues | 5 x le32 discard/write-zeroes | may_unmap unused1[3]
    _STRUCT: ClassVar[struct.Struct] = struct.Struct("<QII HBB I BBHI BBH IIIII B3x")

    def pack(self) -> bytes:
        """The full config space: the fields above, zero padding, zero tail to 96 bytes."""
        head = self._STRUCT.pack(
            self.capacity, self.size_max, self.seg_max,
            self.cylinders, self.heads, self.sectors, self.blk_size,
            self.physical_block_exp, self.alignment_offset, self.min_io_size, self.opt_io_size,
            self.writeback, 0, self.num_queues,
            self.max_discard_sectors, self.max_discard_seg, self.discard_sector_alignment,
            self.max_write_zeroes_sectors, self.max_write_zeroes_seg,
            self.write_zeroes_may_unmap,
        )  # fmt: skip
        return head + bytes(self.SIZE - len(head))

    @classmethod
    def unpack(cls, raw: bytes) -> BlkConfig:
        """Decode the leading fields of a config space image of at least 60 bytes."""
        (
            capacity, size_max, seg_max, cylinders, heads, sectors, blk_size,
            exp, align, min_io, opt_io, writeback, _unused0, num_queues,
            max_dsec, max_dseg, dalign, max_wzsec, max_wzseg, may_unmap,
        ) = cls._STRUCT.unpack_from(raw)  # fmt: skip
        return cls(
            capacity=capacity, size_max=size_max, seg_max=seg_max, cylinders=cylinders,
            heads=heads, sectors=sectors, blk_size=blk_size, physical_block_exp=exp,
            alignment_offset=align, min_io_size=min_io, opt_io_size=opt_io,
            writeback=writeback, num_queues=num_queues, max_discard_sectors=max_dsec,
            max_discard_seg=max_dseg, discard_sector_alignment=dalign,
            max_write_zeroes_sectors=max_wzsec, max_write_zeroes_seg=max_wzseg,
            write_zeroes_may_unmap=may_unmap,
        )  # fmt: skip
