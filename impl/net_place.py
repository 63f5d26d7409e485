"""How a device places a received frame into the driver's receive buffers.

Rules:
- A receive buffer is device-writable only (§2.7.4.2 puts readable parts first, and a
  receive buffer has none). With MRG_RXBUF it holds at least the header (NET-DRV-052);
  without it, after VIRTIO_NET_F_MTU, the header and an mtu + 14 frame (NET-DRV-007);
  without either, the 1526 bytes of NET-DRV-051 are only a SHOULD, so a smaller buffer
  is used for the frames that fit (larger ones are dropped as oversize) and only one
  that cannot hold an Ethernet header is refused. Anything refused is the driver's
  fault (`rx_buffer_fault`).
- The header goes in front of the frame with num_buffers = the number of buffers the
  packet takes (NET-DEV-027): 1 without MRG_RXBUF (NET-DEV-028); with it, every buffer
  but the last is filled completely (§5.1.9.4). The legacy 10-byte header has no
  num_buffers. `flags` is DATA_VALID when the device validated the checksums
  (GUEST_CSUM negotiated), else 0 (§5.1.9.4).

Spec: §5.1.9.3 (setting up receive buffers), §5.1.9.4 (processing of incoming packets).
"""

from __future__ import annotations

from collections.abc import Sequence

from .chain import Chain
from .errors import NetDriverError, NetRxBufferNotWritable, NetRxBufferTooSmall
from .net_header import NetHdr
from .spec import ETH_HEADER_LEN, NET_HDR_SIZE


def rx_buffer_fault(
    chain: Chain, hdr_size: int, mrg: bool, mtu_frame: int | None
) -> NetDriverError | None:
    """The error a receive buffer is guilty of, or None if the device may use it.

    `mtu_frame` is mtu + the Ethernet header when VIRTIO_NET_F_MTU was negotiated.
    """
    if chain.readable:
        return NetRxBufferNotWritable(f"receive buffer {chain.head} has readable parts")
    least = hdr_size
    if not mrg:
        least += ETH_HEADER_LEN if mtu_frame is None else mtu_frame
    if chain.writable_len < least:
        return NetRxBufferTooSmall(
            f"receive buffer {chain.head} holds {chain.writable_len} bytes, under {least}"
        )
    return None


def spread(
    frame: bytes, hdr_size: int, buffers: Sequence[Chain], flags: int = 0
) -> list[bytes]:
    """The pieces header + `frame` occupies in `buffers`, in order, num_buffers set.

    The caller guarantees the buffers have room; only as many pieces as needed are
    returned, each filling its buffer except the last.
    """
    data = NetHdr(flags=flags, num_buffers=1).pack(hdr_size) + frame
    pieces: list[bytes] = []
    offset = 0
    for chain in buffers:
        if offset >= len(data):
            break
        pieces.append(data[offset : offset + chain.writable_len])
        offset += len(pieces[-1])
    if hdr_size == NET_HDR_SIZE:
        count = NetHdr(flags=flags, num_buffers=len(pieces)).pack(hdr_size)
        pieces[0] = count + pieces[0][hdr_size:]
    return pieces
