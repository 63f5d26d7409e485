"""End to end: two virtio-net guests resolve each other with ARP and ping, captured in pcap.

Guest A (10.0.0.1) asks for 10.0.0.2 by ARP broadcast; B's responder answers; A
sends an ICMP echo request whose checksum the device computes (VIRTIO_NET_F_CSUM,
NEEDS_CSUM); B answers with an echo reply. Both guests sit on the same transport, each
of: the direct test bus, virtio-mmio version 2, virtio-mmio version 1 (legacy), the
descriptor page. Every frame crosses the wire through the
drivers and devices, and a pcap tap records the wire; the capture is then read back
by dpkt, a standard reader, and by this project's reader, and shows the four packets.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from arp_icmp import (
    ARP_REPLY,
    ARP_REQUEST,
    BROADCAST,
    ETH_LEN,
    ETH_P_IP,
    ICMP_CSUM_OFFSET,
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    IP_LEN,
    IPPROTO_ICMP,
    Responder,
    arp,
    checksum,
    ethernet,
    icmp_echo,
    ipv4,
)
from net_rig import MAC_A, MAC_B, PACKED_TRANSPORTS, TRANSPORTS, NetSide, net_pair, net_side

from impl.pcap import CapturePort, PcapWriter, read_pcap

IP_A = bytes((10, 0, 0, 1))
IP_B = bytes((10, 0, 0, 2))
PING_DATA = bytes(range(48))


def deliver(receiver: NetSide, responder: Responder) -> bytes:
    """The one frame `receiver` got, after its responder handled (and answered) it."""
    got = receiver.driver.receive()
    assert got is not None
    answer = responder.handle(got)
    if answer is not None:
        receiver.driver.send(answer)
    return got


def ping_exchange(capture: PcapWriter, transport: str = "direct") -> tuple[NetSide, NetSide]:
    """Run the ARP + ping exchange over a wire tapped by `capture`, guests on `transport`."""
    a, b, _ = net_pair(taps=(capture,), transport=transport)
    host_a, host_b = Responder(MAC_A, IP_A), Responder(MAC_B, IP_B)
    a.driver.send(arp(ARP_REQUEST, MAC_A, IP_A, bytes(6), IP_B))
    deliver(b, host_b)
    reply = deliver(a, host_a)
    assert reply == arp(ARP_REPLY, MAC_B, IP_B, MAC_A, IP_A)
    assert host_a.neighbours[IP_B] == MAC_B
    echo = icmp_echo(ICMP_ECHO_REQUEST, 0x1234, 1, PING_DATA, fill_checksum=False)
    request = ethernet(MAC_B, MAC_A, ETH_P_IP, ipv4(IP_A, IP_B, IPPROTO_ICMP, echo))
    a.driver.send(request, csum=(ETH_LEN + IP_LEN, ICMP_CSUM_OFFSET))
    got = deliver(b, host_b)
    assert checksum(got[ETH_LEN + IP_LEN :]) == 0, "the device completed the ICMP checksum"
    pong = deliver(a, host_a)
    assert pong[ETH_LEN + IP_LEN] == ICMP_ECHO_REPLY
    assert pong[-len(PING_DATA) :] == PING_DATA
    return a, b


@pytest.mark.spec("NET-DRV-003", "NET-DRV-030", "NET-DRV-033")
@pytest.mark.parametrize("transport", TRANSPORTS + PACKED_TRANSPORTS)
def test_arp_and_ping_between_two_drivers(tmp_path: Path, transport: str) -> None:
    path = tmp_path / "ping.pcap"
    with path.open("wb") as stream:
        a, b = ping_exchange(PcapWriter(stream), transport)
    assert a.driver.mac == MAC_A and b.driver.mac == MAC_B
    assert a.device.stats.tx_frames == 2 and b.device.stats.tx_frames == 2
    assert b.driver.rx_csum_valid == 1 and a.driver.rx_csum_valid == 1, "echo and reply"
    with path.open("rb") as stream:
        frames = [data for _, data in read_pcap(stream)]
    assert len(frames) == 4
    assert frames[0][:6] == BROADCAST


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_capture_parses_with_dpkt(tmp_path: Path, transport: str) -> None:
    dpkt = pytest.importorskip("dpkt", reason="dpkt is the standard reader this test uses")
    path = tmp_path / "ping.pcap"
    with path.open("wb") as stream:
        ping_exchange(PcapWriter(stream), transport)
    with path.open("rb") as stream:
        packets = [dpkt.ethernet.Ethernet(buf) for _, buf in dpkt.pcap.Reader(stream)]
    assert [type(p.data).__name__ for p in packets] == ["ARP", "ARP", "IP", "IP"]
    request, reply = packets[0].data, packets[1].data
    assert (request.op, request.tpa, reply.op, reply.sha) == (ARP_REQUEST, IP_B, ARP_REPLY, MAC_B)
    echo, pong = packets[2].data, packets[3].data
    assert (echo.src, echo.dst, pong.src, pong.dst) == (IP_A, IP_B, IP_B, IP_A)
    assert echo.data.type == ICMP_ECHO_REQUEST and pong.data.type == ICMP_ECHO_REPLY
    assert bytes(pong.data.data.data) == PING_DATA


def test_capture_replays_into_a_device() -> None:
    """A capture fed back through a pcap port reaches a driver unchanged and in order."""
    stream = io.BytesIO()
    ping_exchange(PcapWriter(stream))
    port = CapturePort(PcapWriter(io.BytesIO()))
    side = net_side(MAC_A, port)
    stream.seek(0)
    assert port.replay(stream) == 4
    stream.seek(0)
    expected = [data for _, data in read_pcap(stream)]
    got = []
    while (frame := side.driver.receive()) is not None:
        got.append(frame)
    assert got == expected
