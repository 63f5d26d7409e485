"""What a driver makes of used receive buffers: packets, checked, or a typed complaint.

Rules (the driver trusts nothing the device wrote):
- The first buffer of a packet holds the header; its used length must cover it.
- num_buffers: exactly 1 without MRG_RXBUF (NET-DEV-028; the legacy header has no
  such field), otherwise between 1 and the buffers the driver has outstanding
  (NET-DEV-027). All of them must already be used (the device uses them together).
- Every buffer but the last of a merged packet is full (§5.1.9.4); the last holds at
  least one byte.
- gso_type is NONE (the driver negotiates no receive offload); flags are 0 without
  GUEST_CSUM; with it DATA_VALID may be set (counted in the packet's `csum_valid`),
  and NEEDS_CSUM asks the driver to finish the checksum, with offsets inside the
  frame (§5.1.9.4).
- The frame is at least an Ethernet header long and, after VIRTIO_NET_F_MTU, at most
  mtu plus that header (NET-DEV-005).
A violation drops the packet (every buffer it took is given back to the pool) and
raises one `NetDeviceError`; the next packet is read normally.

Spec: §5.1.9.3 (receive buffers), §5.1.9.4 (processing of incoming packets).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .errors import (
    NetRxBadHeader,
    NetRxBufferNotFilled,
    NetRxFrameTooLong,
    NetRxNumBuffersInvalid,
    NetRxRunt,
    NetRxUsedTooShort,
)
from .memory import GuestMemory
from .net_csum import complete_checksum
from .net_header import NetHdr
from .spec import ETH_HEADER_LEN, NET_HDR_SIZE, NetGso, NetHdrFlag

UsedBuffer = tuple[int, int]
"""(guest address of a receive buffer, bytes the device wrote into it)."""


@dataclass(frozen=True)
class RxFormat:
    """What the negotiated features say a received packet looks like."""

    hdr_size: int
    mrg: bool
    buf_size: int
    max_frame: int | None
    """mtu + Ethernet header after VIRTIO_NET_F_MTU, else None (no limit is checked)."""
    guest_csum: bool = False
    """VIRTIO_NET_F_GUEST_CSUM negotiated: DATA_VALID and NEEDS_CSUM may arrive."""


@dataclass(frozen=True)
class RxPacket:
    """A received frame and whether the device vouched for its checksums (DATA_VALID)."""

    frame: bytes
    csum_valid: bool


def assemble(
    mem: GuestMemory,
    fmt: RxFormat,
    first: UsedBuffer,
    outstanding: int,
    next_used: Callable[[], UsedBuffer | None],
    release: Callable[[int], None],
) -> RxPacket:
    """Read one packet starting at used buffer `first` and return it.

    `outstanding` counts receive buffers the device held, `first` included;
    `next_used` fetches the packet's further buffers; `release` gives each buffer
    taken back to the driver's pool (always, whether the packet is good or not).
    """
    addr, written = first
    release(addr)
    if written < fmt.hdr_size:
        raise NetRxUsedTooShort(f"used length {written} is below the {fmt.hdr_size}-byte header")
    hdr = NetHdr.unpack(mem.read(addr, fmt.hdr_size))
    count = _buffer_count(hdr, fmt, outstanding)
    pieces = [mem.read(addr + fmt.hdr_size, written - fmt.hdr_size)]
    lengths = [written]
    for _ in range(count - 1):
        more = next_used()
        if more is None:
            raise NetRxNumBuffersInvalid(f"num_buffers {count} but only {len(lengths)} are used")
        release(more[0])
        pieces.append(mem.read(*more))
        lengths.append(more[1])
    _check_lengths(lengths, fmt)
    _check_header(hdr, fmt)
    frame = _check_frame(b"".join(pieces), fmt)
    if hdr.flags & NetHdrFlag.NEEDS_CSUM:
        done = complete_checksum(frame, hdr.csum_start, hdr.csum_offset)
        if done is None:
            raise NetRxBadHeader(f"NEEDS_CSUM at {hdr.csum_start}+{hdr.csum_offset} is outside")
        frame = done
    return RxPacket(frame, bool(hdr.flags & NetHdrFlag.DATA_VALID))


def _buffer_count(hdr: NetHdr, fmt: RxFormat, outstanding: int) -> int:
    if fmt.hdr_size != NET_HDR_SIZE:
        return 1
    count = hdr.num_buffers
    if not fmt.mrg and count != 1:
        raise NetRxNumBuffersInvalid(f"num_buffers {count} without MRG_RXBUF (must be 1)")
    if not 1 <= count <= outstanding:
        raise NetRxNumBuffersInvalid(f"num_buffers {count} outside 1..{outstanding} posted")
    return count


def _check_lengths(lengths: list[int], fmt: RxFormat) -> None:
    for length in lengths[:-1]:
        if length != fmt.buf_size:
            raise NetRxBufferNotFilled(f"a merged buffer holds {length} of {fmt.buf_size} bytes")
    if len(lengths) > 1 and lengths[-1] == 0:
        raise NetRxUsedTooShort("the last buffer of a merged packet is empty")


def _check_header(hdr: NetHdr, fmt: RxFormat) -> None:
    if hdr.gso_type != NetGso.NONE:
        raise NetRxBadHeader(f"gso_type {hdr.gso_type} without a receive offload feature")
    allowed = NetHdrFlag.DATA_VALID | NetHdrFlag.NEEDS_CSUM if fmt.guest_csum else 0
    if hdr.flags & ~allowed:
        raise NetRxBadHeader(f"header flags {hdr.flags:#x} beyond {allowed:#x}")


def _check_frame(frame: bytes, fmt: RxFormat) -> bytes:
    if len(frame) < ETH_HEADER_LEN:
        raise NetRxRunt(f"received frame of {len(frame)} bytes")
    if fmt.max_frame is not None and len(frame) > fmt.max_frame:
        raise NetRxFrameTooLong(f"received frame of {len(frame)} bytes over {fmt.max_frame}")
    return frame
