"""The header the virtio-net driver puts in front of each transmitted frame (§5.1.9.2.1).

The device here records the header bytes of every transmit chain before it checks them,
so each test sees exactly what the driver wrote. A greedy variant also offers every host
segmentation and UDP-tunnel bit, so the driver's choices are tested against an offer that
would allow more than it may use.
"""

from __future__ import annotations

from typing import Any

import pytest
from net_rig import MAC_A, MAC_B, TRANSPORTS, frame, net_side

from impl.chain import Chain
from impl.net_device import NetDevice
from impl.net_header import NetHdr
from impl.spec import NetFeature, NetHdrFlag, NetUnimplementedFeature, feature_mask, has_feature

GSO_NONE = 0
"""VIRTIO_NET_HDR_GSO_NONE, as §5.1.9 defines it."""
TUNNEL_GSO_BITS = 0x20 | 0x40
"""VIRTIO_NET_HDR_GSO_UDP_TUNNEL_IPV4 and _IPV6 in gso_type (§5.1.9)."""
UDP_TUNNEL_CSUM_FLAG = 8
"""VIRTIO_NET_HDR_F_UDP_TUNNEL_CSUM in flags (§5.1.9)."""
TUNNEL_FEATURES = (
    NetUnimplementedFeature.HOST_UDP_TUNNEL_GSO,
    NetUnimplementedFeature.HOST_UDP_TUNNEL_GSO_CSUM,
)
HOST_OFFLOADS = feature_mask(
    NetFeature.HOST_TSO4, NetFeature.HOST_TSO6, NetFeature.HOST_ECN, NetFeature.HOST_UFO,
    NetFeature.HOST_USO, *TUNNEL_FEATURES,
)  # fmt: skip


class HeaderTap(NetDevice):
    """A NetDevice that keeps the raw header of each transmit chain before it checks it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.headers: list[NetHdr] = []

    def _transmit(self, chain: Chain) -> None:
        assert self.context is not None
        raw = chain.read_payload(self.context.mem)
        self.headers.append(NetHdr.unpack(raw[: self.hdr_size]))
        super()._transmit(chain)


class GreedyHeaderTap(HeaderTap):
    """Also offers every host segmentation and UDP-tunnel offload bit."""

    extra = HOST_OFFLOADS

    def offered_features(self) -> int:
        return super().offered_features() | self.extra


class Greedy64HeaderTap(GreedyHeaderTap):
    """The greedy offer cut to 64 bits: the descriptor page has one 64-bit feature word,
    so the UDP-tunnel bits (67, 68) cannot be offered there."""

    extra = HOST_OFFLOADS & ((1 << 64) - 1)


ICMP_FRAME = MAC_B + MAC_A + bytes.fromhex(
    "0800 4500 0024 0001 0000 4001 0000 0a000001 0a000002 0800 0000 1234 0001"
) + bytes(8)
"""An IPv4 ICMP echo whose ICMP checksum the device is asked to fill (start 34, offset 2)."""


def send_everything(side: Any, csum: bool) -> int:
    """Send frames of several sizes, with checksum offload asked for when negotiated."""
    sizes = (14, 60, 1514, 9000)
    for n, size in enumerate(sizes):
        side.driver.send(frame(MAC_B, MAC_A, size, seed=n))
    if not csum:
        return len(sizes)
    side.driver.send(ICMP_FRAME, csum=(34, 2))
    side.driver.send(frame(MAC_B, MAC_A, 200), csum=(14, 100))
    return len(sizes) + 2


@pytest.mark.spec("NET-DRV-023", "NET-DRV-025", "NET-DRV-029")
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("device_class", [HeaderTap, GreedyHeaderTap])
@pytest.mark.parametrize("csum", [True, False])
def test_the_driver_never_asks_for_udp_tunnel_offload(
    transport: str, device_class: type[HeaderTap], csum: bool
) -> None:
    if transport == "page" and device_class is GreedyHeaderTap:
        device_class = Greedy64HeaderTap
    side = net_side(MAC_A, None, transport=transport, device_class=device_class, csum=csum)
    for bit in TUNNEL_FEATURES:
        assert not has_feature(side.handle.features, bit), bit.name
    sent = send_everything(side, csum)
    assert isinstance(side.device, HeaderTap)
    headers = side.device.headers
    assert len(headers) == sent
    for hdr in headers:
        assert hdr.gso_type & TUNNEL_GSO_BITS == 0
        assert hdr.gso_type == GSO_NONE  # so no tunnel GSO packet, with or without outer csum
        assert not hdr.flags & UDP_TUNNEL_CSUM_FLAG
    asked = [hdr for hdr in headers if hdr.flags & NetHdrFlag.NEEDS_CSUM]
    assert len(asked) == (2 if csum else 0)
    assert not side.device.errors
