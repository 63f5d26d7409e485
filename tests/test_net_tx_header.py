"""The header the virtio-net driver puts in front of each transmitted frame (§5.1.9.2.1).

The device here records the header bytes of every transmit chain before it checks them,
so each test sees exactly what the driver wrote. A greedy variant also offers every host
segmentation and UDP-tunnel bit, so the driver's choices are tested against an offer that
would allow more than it may use.

Checksum offload: the TCP/UDP packets are built here, their pseudo-header sums computed
with the tests' own RFC 1071 checksum (`arp_icmp.checksum`), not with `impl`.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from arp_icmp import checksum, ipv4
from net_rig import MAC_A, MAC_B, PACKED_TRANSPORTS, TRANSPORTS, frame, net_side

from impl.chain import Chain
from impl.errors import NetChecksumRequest
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
    "0800 4500 0024 0001 0000 4001 66d6 0a000001 0a000002 0800 0000 1234 0001"
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
@pytest.mark.parametrize("transport", TRANSPORTS + PACKED_TRANSPORTS)
@pytest.mark.parametrize("device_class", [HeaderTap, GreedyHeaderTap])
@pytest.mark.parametrize("csum", [True, False])
def test_the_driver_never_asks_for_udp_tunnel_offload(
    transport: str, device_class: type[HeaderTap], csum: bool
) -> None:
    if transport.startswith("page") and device_class is GreedyHeaderTap:
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


# --- checksum offload requests (NET-DRV-031/032/033) ---------------------------------------
IP_A, IP_B = bytes((10, 0, 0, 1)), bytes((10, 0, 0, 2))
IP6_A, IP6_B = bytes.fromhex("fd00" + "00" * 13 + "01"), bytes.fromhex("fd00" + "00" * 13 + "02")
TCP, UDP = 6, 17
CSUM_AT = {TCP: 16, UDP: 6}
"""Where the checksum sits in each transport header (RFC 793, RFC 768)."""
PAYLOAD = bytes(range(37))


class Sent:
    """A port keeping every frame the device hands it."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def attach(self, sink: Any) -> None:
        self.sink = sink

    def transmit(self, data: bytes) -> None:
        self.frames.append(data)


def pseudo_sum(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """The folded (not complemented) pseudo-header sum: IPv4 for 4-byte addresses."""
    if len(src) == 4:
        return ~checksum(src + dst + bytes((0, proto)) + length.to_bytes(2, "big")) & 0xFFFF
    return ~checksum(src + dst + length.to_bytes(4, "big") + bytes((0, 0, 0, proto))) & 0xFFFF


def transport_segment(proto: int, field: int) -> bytes:
    """A TCP or UDP header with `field` as its checksum, then PAYLOAD."""
    if proto == UDP:
        return struct.pack("!HHHH", 1000, 2000, 8 + len(PAYLOAD), field) + PAYLOAD
    return struct.pack("!HHIIBBHHH", 1000, 2000, 1, 0, 0x50, 0x18, 1024, field, 0) + PAYLOAD


def packet(version: int, proto: int, field: int | None = None) -> tuple[bytes, int]:
    """An Ethernet frame carrying a TCP/UDP segment whose checksum field holds the
    pseudo-header sum (or `field`), and where the transport header starts."""
    length = len(transport_segment(proto, 0))
    if version == 4:
        field = pseudo_sum(IP_A, IP_B, proto, length) if field is None else field
        ip = ipv4(IP_A, IP_B, proto, transport_segment(proto, field))
        return MAC_B + MAC_A + b"\x08\x00" + ip, 34
    field = pseudo_sum(IP6_A, IP6_B, proto, length) if field is None else field
    head = struct.pack("!IHBB", 6 << 28, length, proto, 64) + IP6_A + IP6_B
    return MAC_B + MAC_A + b"\x86\xdd" + head + transport_segment(proto, field), 54


def segment_checks(sent: bytes, version: int, proto: int, start: int) -> bool:
    """Whether the transport checksum of `sent` verifies over its pseudo-header."""
    src, dst = (IP_A, IP_B) if version == 4 else (IP6_A, IP6_B)
    segment = sent[start:]
    pseudo = pseudo_sum(src, dst, proto, len(segment)).to_bytes(2, "big")
    return checksum(pseudo + segment) == 0


def offload_side() -> Any:
    return net_side(MAC_A, Sent())


@pytest.mark.spec("NET-DRV-032", "NET-DRV-033")
@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("proto", [TCP, UDP])
def test_a_tcp_or_udp_packet_with_the_pseudo_header_sum_leaves_complete(
    version: int, proto: int
) -> None:
    side = offload_side()
    data, start = packet(version, proto)
    side.driver.send(data, csum=(start, CSUM_AT[proto]))
    [sent] = side.device.port.frames
    assert segment_checks(sent, version, proto, start)
    assert sent[:start] == data[:start] and not side.device.errors


@pytest.mark.spec("NET-DRV-032")
@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("proto", [TCP, UDP])
def test_a_field_not_holding_the_pseudo_header_sum_is_refused(version: int, proto: int) -> None:
    side = offload_side()
    good, start = packet(version, proto)
    pseudo = int.from_bytes(good[start + CSUM_AT[proto] : start + CSUM_AT[proto] + 2], "big")
    for field in (0, pseudo ^ 0x0100, ~pseudo & 0xFFFF):
        data, _ = packet(version, proto, field)
        with pytest.raises(NetChecksumRequest):
            side.driver.send(data, csum=(start, CSUM_AT[proto]))
    assert side.device.port.frames == []
    side.driver.send(good, csum=(start, CSUM_AT[proto]))
    assert len(side.device.port.frames) == 1


@pytest.mark.spec("NET-DRV-031")
@pytest.mark.parametrize("proto", [TCP, UDP])
def test_a_wrong_checksum_before_csum_start_is_refused(proto: int) -> None:
    side = offload_side()
    good, start = packet(4, proto)
    bad_ip = good[:24] + bytes((good[24] ^ 0xFF,)) + good[25:]  # IPv4 header checksum
    with pytest.raises(NetChecksumRequest):
        side.driver.send(bad_ip, csum=(start, CSUM_AT[proto]))
    bad_icmp = ICMP_FRAME[:24] + b"\0\0" + ICMP_FRAME[26:]
    with pytest.raises(NetChecksumRequest):
        side.driver.send(bad_icmp, csum=(34, 2))
    assert side.device.port.frames == []
    side.driver.send(ICMP_FRAME, csum=(34, 2))
    side.driver.send(bad_ip)  # without offload the frame is the caller's business
    assert len(side.device.port.frames) == 2


@pytest.mark.spec("NET-DRV-033")
@pytest.mark.parametrize("csum", [(0, 199), (198, 1), (-1, 4), (14, -2)])
def test_a_checksum_field_outside_the_frame_is_refused(csum: tuple[int, int]) -> None:
    side = offload_side()
    with pytest.raises(NetChecksumRequest):
        side.driver.send(frame(MAC_B, MAC_A, 200), csum=csum)
    side.driver.send(frame(MAC_B, MAC_A, 200), csum=(0, 198))
    assert len(side.device.port.frames) == 1
