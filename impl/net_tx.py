"""What a transmit chain means: a checked header and frame, and the checksum the device owes.

Rules:
- A transmit chain is device-readable only: the negotiated header (10 or 12 bytes),
  then the frame, split over descriptors however the driver likes (ANY_LAYOUT is the
  only layout of VIRTIO 1.x).
- The header must be one the features allow: gso_type NONE (this device offers no
  segmentation, NET-DRV-034), NEEDS_CSUM only with VIRTIO_NET_F_CSUM (NET-DRV-016),
  num_buffers 0 (NET-DRV-015). Flag bits the device does not know are ignored
  (NET-DEV-015); DATA_VALID and RSC_INFO, which only a device may set, are refused
  (NET-DRV-046), and so is UDP_TUNNEL_CSUM (no tunnel feature is offered, NET-DRV-044).
  Any gso_type other than NONE, tunnel bits included, is refused: the device never
  accepts a segmentation request (NET-DEV-022, NET-DEV-024). hdr_len is never relied
  on (NET-DEV-021).
- NEEDS_CSUM: the device computes the ones' complement sum from csum_start to the end
  and stores it at csum_start + csum_offset (§5.1.9.2); without the flag it never
  looks at those fields (NET-DEV-016).
- The frame is not read unless its length is acceptable (Ethernet header to the
  maximum frame), so the work is bounded by the maximum frame.

Spec: §5.1.9.2 (packet transmission), §5.1.9.2.1 and §5.1.9.2.2 (its rules).
"""

from __future__ import annotations

from dataclasses import dataclass

from .chain import Chain
from .errors import (
    NetTxBadChecksumOffsets,
    NetTxBadHeader,
    NetTxHeaderTooShort,
    NetTxRunt,
    NetTxTooLong,
    NetTxWritable,
)
from .memory import GuestMemory
from .net_csum import complete_checksum
from .net_header import NetHdr, net_hdr_size
from .spec import ETH_HEADER_LEN, NetFeature, NetGso, NetHdrFlag, has_feature


@dataclass(frozen=True, slots=True)
class TxFrame:
    """A transmit request after its checks: the header and the finished frame."""

    hdr: NetHdr
    data: bytes


def parse_tx(chain: Chain, mem: GuestMemory, features: int, max_frame: int) -> TxFrame:
    """Check and decode a transmit chain; raise a NetDriverError subclass if it is bad."""
    hdr_size = net_hdr_size(features)
    if chain.writable:
        raise NetTxWritable(f"transmit chain {chain.head} has device-writable descriptors")
    if chain.readable_len < hdr_size:
        raise NetTxHeaderTooShort(
            f"transmit chain {chain.head} has {chain.readable_len} bytes, header is {hdr_size}"
        )
    length = chain.readable_len - hdr_size
    if length < ETH_HEADER_LEN:
        raise NetTxRunt(f"transmitted frame of {length} bytes is shorter than an Ethernet header")
    if length > max_frame:
        raise NetTxTooLong(f"transmitted frame of {length} bytes exceeds {max_frame}")
    raw = chain.read_payload(mem)
    hdr = NetHdr.unpack(raw[:hdr_size])
    _check_header(hdr, features)
    frame = raw[hdr_size:]
    if hdr.flags & NetHdrFlag.NEEDS_CSUM:
        done = complete_checksum(frame, hdr.csum_start, hdr.csum_offset)
        if done is None:
            raise NetTxBadChecksumOffsets(
                f"checksum at {hdr.csum_start}+{hdr.csum_offset} lies outside a frame of "
                f"{len(frame)} bytes"
            )
        frame = done
    return TxFrame(hdr, frame)


def _check_header(hdr: NetHdr, features: int) -> None:
    if hdr.gso_type != NetGso.NONE:
        raise NetTxBadHeader(f"gso_type {hdr.gso_type} without a segmentation feature")
    if hdr.flags & NetHdrFlag.NEEDS_CSUM and not has_feature(features, NetFeature.CSUM):
        raise NetTxBadHeader("NEEDS_CSUM without VIRTIO_NET_F_CSUM")
    if hdr.flags & (NetHdrFlag.DATA_VALID | NetHdrFlag.RSC_INFO):
        raise NetTxBadHeader(f"receive-only flags {hdr.flags:#x} on transmit")
    if hdr.flags & NetHdrFlag.UDP_TUNNEL_CSUM:
        raise NetTxBadHeader("UDP_TUNNEL_CSUM without VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO_CSUM")
    if hdr.num_buffers:
        raise NetTxBadHeader(f"transmit num_buffers is {hdr.num_buffers}, not 0")
