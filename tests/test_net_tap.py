"""A virtio-net guest on a TAP interface resolves and pings the host kernel.

The TAP backend's far end is the Linux kernel: the test gives the interface an
address, brings it up, and lets the guest (driver + device + `TapPort`) send an ARP
request and an ICMP echo request to that address; the kernel's ARP reply and echo
reply must come back through the device and driver. Skips, saying why, when
/dev/net/tun cannot be used or the interface cannot be configured (no CAP_NET_ADMIN).
"""

from __future__ import annotations

import fcntl
import select
import socket
import struct
from collections.abc import Callable, Iterator

import pytest
from arp_icmp import (
    ARP_REPLY,
    ARP_REQUEST,
    ETH_LEN,
    ETH_P_ARP,
    ETH_P_IP,
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    IP_LEN,
    IPPROTO_ICMP,
    Responder,
    arp,
    ethernet,
    icmp_echo,
    ipv4,
)
from net_rig import MAC_A, NetSide, net_side

from backends.tap import IFNAMSIZ, TapPort
from impl.errors import TapUnavailable

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCSIFADDR = 0x8916
SIOCSIFNETMASK = 0x891C
IFF_UP = 0x1
HOST_IP = bytes((10, 213, 0, 1))
GUEST_IP = bytes((10, 213, 0, 2))
NETMASK = bytes((255, 255, 255, 0))
WAIT_ROUNDS = 50
ROUND_SECONDS = 0.1


def _ifreq_addr(name: str, addr: bytes) -> bytes:
    sockaddr = struct.pack("HH4s8x", socket.AF_INET, 0, addr)
    return struct.pack(f"{IFNAMSIZ}s", name.encode()) + sockaddr


def configure(name: str) -> None:
    """Give the interface HOST_IP/24 and bring it up."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock, SIOCSIFADDR, _ifreq_addr(name, HOST_IP))
        fcntl.ioctl(sock, SIOCSIFNETMASK, _ifreq_addr(name, NETMASK))
        req = struct.pack(f"{IFNAMSIZ}sH", name.encode(), 0)
        flags = struct.unpack(f"{IFNAMSIZ}sH", fcntl.ioctl(sock, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack(f"{IFNAMSIZ}sH", name.encode(), flags | IFF_UP))


@pytest.fixture
def tap() -> Iterator[TapPort]:
    try:
        port = TapPort()
    except TapUnavailable as error:
        pytest.skip(f"TAP backend not testable here: {error}")
    try:
        configure(port.name)
    except OSError as error:
        port.close()
        pytest.skip(f"cannot configure TAP interface {port.name}: {error}")
    yield port
    port.close()


def wait_for(
    tap: TapPort, side: NetSide, host: Responder, wanted: Callable[[bytes], bool]
) -> bytes | None:
    """Pump the TAP into the guest, answering what the responder answers, until `wanted`."""
    for _ in range(WAIT_ROUNDS):
        select.select([tap], [], [], ROUND_SECONDS)
        tap.poll()
        while (frame := side.driver.receive()) is not None:
            if wanted(frame):
                return frame
            answer = host.handle(frame)
            if answer is not None:
                side.driver.send(answer)
    return None


def is_arp_reply(frame: bytes) -> bool:
    return frame[12:14] == ETH_P_ARP.to_bytes(2, "big") and frame[21] == ARP_REPLY


def is_echo_reply(frame: bytes) -> bool:
    ip_packet = frame[12:14] == ETH_P_IP.to_bytes(2, "big") and frame[23] == IPPROTO_ICMP
    return ip_packet and frame[ETH_LEN + IP_LEN] == ICMP_ECHO_REPLY


def test_guest_on_tap_pings_the_host_kernel(tap: TapPort) -> None:
    side = net_side(MAC_A, tap)
    guest = Responder(MAC_A, GUEST_IP)
    side.driver.send(arp(ARP_REQUEST, MAC_A, GUEST_IP, bytes(6), HOST_IP))
    reply = wait_for(tap, side, guest, is_arp_reply)
    assert reply is not None, "no ARP reply from the kernel"
    host_mac = reply[22:28]
    assert reply[28:32] == HOST_IP and reply[:6] == MAC_A
    echo = icmp_echo(ICMP_ECHO_REQUEST, 7, 1, b"virtio-oracle", fill_checksum=True)
    packet = ipv4(GUEST_IP, HOST_IP, IPPROTO_ICMP, echo)
    side.driver.send(ethernet(host_mac, MAC_A, ETH_P_IP, packet))
    pong = wait_for(tap, side, guest, is_echo_reply)
    assert pong is not None, "no echo reply from the kernel"
    assert pong.endswith(b"virtio-oracle")
    assert side.device.stats.tx_frames >= 2 and tap.tx_errors == 0
