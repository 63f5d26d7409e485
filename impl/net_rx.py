"""What a driver makes of used receive buffers: packets, checked, or a typed complaint.

Rules (the driver trusts nothing the device wrote):
- The first buffer of a packet holds the header; its used length must cover it.
- num_buffers: exactly 1 without MRG_RXBUF (NET-DEV-028; the legacy header has no
  such field), otherwise between 1 and the buffers the driver has outstanding
  (NET-DEV-027). All of them must already be used (the device uses them together).
- Every buffer but the last of a merged packet is full (§5.1.9.4); the last holds at
  least one byte.
- Header flags are 0 and gso_type NONE, since this driver negotiates neither
  GUEST_CSUM nor a receive offload (§5.1.9.4).
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
from .net_header import NetHdr
from .spec import ETH_HEADER_LEN, NET_HDR_SIZE, NetGso

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


def assemble(
    mem: GuestMemory,
    fmt: RxFormat,
    first: UsedBuffer,
    outstanding: int,
    next_used: Callable[[], UsedBuffer | None],
    release: Callable[[int], None],
) -> bytes:
    """Read one packet starting at used buffer `first` and return its frame.

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
    _check_header(hdr)
    return _check_frame(b"".join(pieces), fmt)


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


def _check_header(hdr: NetHdr) -> None:
    if hdr.flags or hdr.gso_type != NetGso.NONE:
        raise NetRxBadHeader(
            f"flags {hdr.flags:#x} gso_type {hdr.gso_type} without a receive offload feature"
        )


def _check_frame(frame: bytes, fmt: RxFormat) -> bytes:
    if len(frame) < ETH_HEADER_LEN:
        raise NetRxRunt(f"received frame of {len(frame)} bytes")
    if fmt.max_frame is not None and len(frame) > fmt.max_frame:
        raise NetRxFrameTooLong(f"received frame of {len(frame)} bytes over {fmt.max_frame}")
    return frame
