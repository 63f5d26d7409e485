"""Decoding and checking one virtio-blk request as the device receives it.

Rules:
- A request is a descriptor chain seen as two byte streams, with no assumption about
  how the driver cut them into descriptors (SPLIT-DEV-001): the device-readable stream
  is the 16-byte header then the data the device reads; the device-writable stream is
  the data the device writes, then the status byte, which is its last byte.
- `decode_request` trusts nothing: it reads the header, classifies the type and checks
  every rule before the device touches its disk, raising the `BlkRequestRejected`
  subclass that names the broken rule (its `status` is the byte to answer with).
  It reads at most the header and, for DISCARD/WRITE_ZEROES, at most
  `max_seg` segments, so its work does not grow with what a hostile driver claims.
- All arithmetic is on Python integers, so `sector * 512 + length` cannot wrap; the
  range check also refuses offsets at or beyond 2^64, which the wire could not carry.

Spec: §5.2.6 (request layout and types), §5.2.6.1 (driver requirements the device
checks), §5.2.6.2 (RO, discard and write-zeroes flags).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .blk_layout import BlkReqHeader, DwzSegment
from .chain import Chain, Segment
from .errors import (
    BlkBadDataLength,
    BlkBadIdLength,
    BlkBadSegmentsLength,
    BlkBeyondCapacity,
    BlkFlushNotEmpty,
    BlkHeaderTooShort,
    BlkNoStatusByte,
    BlkSegmentTooLarge,
    BlkTooManySegments,
    BlkUnknownSegmentFlags,
    BlkUnmapOnDiscard,
    BlkUnsupportedType,
    BlkWriteToReadOnly,
    BlkWrongDirection,
)
from .memory import GuestMemory
from .spec import (
    BLK_DWZ_F_UNMAP,
    BLK_DWZ_SEGMENT_SIZE,
    BLK_ID_BYTES,
    BLK_MAX_ADDRESS,
    BLK_REQ_HEADER_SIZE,
    BLK_SECTOR_SIZE,
    BLK_STATUS_SIZE,
    BlkReqType,
)

WRITE_TYPES = frozenset({BlkReqType.OUT, BlkReqType.DISCARD, BlkReqType.WRITE_ZEROES})
"""Request types that change the disk (refused on a read-only device, BLK-DEV-020)."""


@dataclass(frozen=True, slots=True)
class DeviceLimits:
    """What the device advertises and enforces: capacity, RO, and the request types it serves.

    `flush`, `discard`, `write_zeroes` say whether those features were negotiated;
    a type whose feature was not negotiated is answered UNSUPP.
    """

    capacity: int
    read_only: bool = False
    flush: bool = True
    discard: bool = False
    write_zeroes: bool = False
    max_discard_sectors: int = 0
    max_discard_seg: int = 0
    max_write_zeroes_sectors: int = 0
    max_write_zeroes_seg: int = 0


@dataclass(frozen=True, slots=True)
class BlkRequest:
    """A request that passed every check: what to do, where, and how many bytes move.

    `out_len` is the data the device reads after the header (OUT); `in_len` the data
    it writes before the status byte (IN, GET_ID); `segments` the DISCARD or
    WRITE_ZEROES ranges.
    """

    type: BlkReqType
    sector: int
    out_len: int = 0
    in_len: int = 0
    segments: tuple[DwzSegment, ...] = ()


def gather(mem: GuestMemory, segments: Sequence[Segment], offset: int, length: int) -> bytes:
    """`length` bytes from byte `offset` of the stream the segments form (caller bounds it)."""
    parts: list[bytes] = []
    for seg in segments:
        if length <= 0:
            break
        if offset >= seg.len:
            offset -= seg.len
            continue
        take = min(seg.len - offset, length)
        parts.append(mem.read(seg.addr + offset, take))
        offset, length = 0, length - take
    return b"".join(parts)


def scatter(mem: GuestMemory, segments: Sequence[Segment], offset: int, data: bytes) -> None:
    """Write `data` from byte `offset` of the stream the segments form (caller bounds it)."""
    view = memoryview(data)
    for seg in segments:
        if not view:
            break
        if offset >= seg.len:
            offset -= seg.len
            continue
        take = min(seg.len - offset, len(view))
        mem.write(seg.addr + offset, view[:take])
        offset, view = 0, view[take:]


def decode_request(mem: GuestMemory, chain: Chain, limits: DeviceLimits) -> BlkRequest:
    """Decode and check the request in `chain`; raise a `BlkRequestRejected` if it breaks a rule.

    `BlkNoStatusByte` comes first (nothing can be answered without a status byte),
    then the header, then the type's own rules.
    """
    if chain.writable_len < BLK_STATUS_SIZE:
        raise BlkNoStatusByte(f"chain {chain.head} has no device-writable status byte")
    if chain.readable_len < BLK_REQ_HEADER_SIZE:
        raise BlkHeaderTooShort(f"{chain.readable_len} readable bytes, a header needs 16")
    header = BlkReqHeader.unpack(gather(mem, chain.readable, 0, BLK_REQ_HEADER_SIZE))
    out_len = chain.readable_len - BLK_REQ_HEADER_SIZE
    in_len = chain.writable_len - BLK_STATUS_SIZE
    kind = _request_type(header.type, limits)
    if kind in WRITE_TYPES and limits.read_only:
        raise BlkWriteToReadOnly(f"type {kind.name} on a read-only device")
    if kind is BlkReqType.IN:
        _no_data("IN", out_len, 0)
        _check_range(header.sector, _sectors(in_len), limits.capacity)
    elif kind is BlkReqType.OUT:
        _no_data("OUT", 0, in_len)
        _check_range(header.sector, _sectors(out_len), limits.capacity)
    elif kind is BlkReqType.FLUSH:
        if header.sector or out_len or in_len:
            raise BlkFlushNotEmpty(f"FLUSH with sector {header.sector}, {out_len + in_len} data")
    elif kind is BlkReqType.GET_ID:
        _no_data("GET_ID", out_len, 0)
        if in_len != BLK_ID_BYTES:
            raise BlkBadIdLength(f"GET_ID buffer of {in_len} bytes, not {BLK_ID_BYTES}")
    else:
        _no_data(kind.name, 0, in_len)
        segments = _segments(mem, chain, kind, out_len, limits)
        return BlkRequest(kind, header.sector, out_len, 0, segments)
    return BlkRequest(kind, header.sector, out_len, in_len)


def _request_type(value: int, limits: DeviceLimits) -> BlkReqType:
    """The type if the device serves it; UNSUPP for unknown, legacy or not negotiated types."""
    served = {
        BlkReqType.IN: True,
        BlkReqType.OUT: True,
        BlkReqType.GET_ID: True,
        BlkReqType.FLUSH: limits.flush,
        BlkReqType.DISCARD: limits.discard,
        BlkReqType.WRITE_ZEROES: limits.write_zeroes,
    }
    for kind, ok in served.items():
        if value == kind and ok:
            return kind
    raise BlkUnsupportedType(f"request type {value:#x} is not served")


def _no_data(name: str, out_len: int, in_len: int) -> None:
    """Refuse data in a direction the type does not use."""
    if out_len or in_len:
        raise BlkWrongDirection(
            f"{name} with {out_len} readable and {in_len} writable data bytes where it has none"
        )


def _sectors(length: int) -> int:
    """The sector count of an IN/OUT data length, which must be whole sectors (BLK-DRV-016)."""
    if length % BLK_SECTOR_SIZE:
        raise BlkBadDataLength(f"data of {length} bytes is not a multiple of 512")
    return length // BLK_SECTOR_SIZE


def _check_range(sector: int, count: int, capacity: int) -> None:
    """Refuse a range reaching past capacity or past 2^64 bytes (BLK-DRV-012)."""
    if (sector + count) * BLK_SECTOR_SIZE > BLK_MAX_ADDRESS or sector + count > capacity:
        raise BlkBeyondCapacity(f"sectors {sector}+{count} beyond capacity {capacity}")


def _segments(
    mem: GuestMemory, chain: Chain, kind: BlkReqType, out_len: int, limits: DeviceLimits
) -> tuple[DwzSegment, ...]:
    """Decode and check DISCARD/WRITE_ZEROES segments before any is acted on."""
    discard = kind is BlkReqType.DISCARD
    max_seg = limits.max_discard_seg if discard else limits.max_write_zeroes_seg
    max_sectors = limits.max_discard_sectors if discard else limits.max_write_zeroes_sectors
    if out_len == 0 or out_len % BLK_DWZ_SEGMENT_SIZE:
        raise BlkBadSegmentsLength(f"{out_len} bytes of segments, not a positive multiple of 16")
    count = out_len // BLK_DWZ_SEGMENT_SIZE
    if count > max_seg:
        raise BlkTooManySegments(f"{count} segments, at most {max_seg}")
    raw = gather(mem, chain.readable, BLK_REQ_HEADER_SIZE, out_len)
    segments = tuple(
        DwzSegment.unpack(raw[i : i + BLK_DWZ_SEGMENT_SIZE])
        for i in range(0, out_len, BLK_DWZ_SEGMENT_SIZE)
    )
    for seg in segments:
        if seg.flags & ~BLK_DWZ_F_UNMAP:
            raise BlkUnknownSegmentFlags(f"segment flags {seg.flags:#x} set reserved bits")
        if discard and seg.flags & BLK_DWZ_F_UNMAP:
            raise BlkUnmapOnDiscard("the unmap bit is set in a DISCARD segment")
        if seg.num_sectors > max_sectors:
            raise BlkSegmentTooLarge(f"segment of {seg.num_sectors} sectors, at most {max_sectors}")
        _check_range(seg.sector, seg.num_sectors, limits.capacity)
    return segments
