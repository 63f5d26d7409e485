"""A tiny ARP and ICMP-echo responder, with the Ethernet/IPv4 frames it reads and writes.

Just enough of RFC 826 (ARP over Ethernet for IPv4) and RFC 792 (ICMP echo) to let
two virtio-net guests find each other and ping: frames are built byte by byte, with
real checksums (RFC 1071), so a standard reader (dpkt, tcpdump) parses them.
"""

from __future__ import annotations

import struct

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ARP_REQUEST = 1
ARP_REPLY = 2
IPPROTO_ICMP = 1
ICMP_ECHO_REPLY = 0
ICMP_ECHO_REQUEST = 8
BROADCAST = b"\xff" * 6
ETH_LEN = 14
IP_LEN = 20
ICMP_CSUM_OFFSET = 2

_ETH = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_IP = struct.Struct("!BBHHHBBH4s4s")
_ICMP = struct.Struct("!BBHHH")


def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum of `data`."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ethernet(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    return _ETH.pack(dst, src, ethertype) + payload


def arp(op: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes) -> bytes:
    """An ARP packet for IPv4 over Ethernet, in an Ethernet frame (broadcast if a request)."""
    body = _ARP.pack(1, ETH_P_IP, 6, 4, op, sha, spa, tha, tpa)
    dst = BROADCAST if op == ARP_REQUEST else tha
    return ethernet(dst, sha, ETH_P_ARP, body)


def ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, ident: int = 1) -> bytes:
    """An IPv4 header (no options, DF clear, TTL 64) with its checksum, and `payload`."""
    head = _IP.pack(0x45, 0, IP_LEN + len(payload), ident, 0, 64, proto, 0, src, dst)
    head = head[:10] + struct.pack("!H", checksum(head)) + head[12:]
    return head + payload


def icmp_echo(kind: int, ident: int, seq: int, data: bytes, *, fill_checksum: bool) -> bytes:
    """An ICMP echo message; its checksum left 0 unless `fill_checksum`."""
    body = _ICMP.pack(kind, 0, 0, ident, seq) + data
    if fill_checksum:
        body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    return body


class Responder:
    """Answers ARP requests for `ip` and ICMP echo requests to `ip`, as host `mac`."""

    def __init__(self, mac: bytes, ip: bytes) -> None:
        self.mac = mac
        self.ip = ip
        self.neighbours: dict[bytes, bytes] = {}

    def handle(self, frame: bytes) -> bytes | None:
        """The answer to `frame`, or None; ARP replies teach the neighbour table."""
        dst, src, ethertype = _ETH.unpack_from(frame)
        if ethertype == ETH_P_ARP:
            return self._arp(frame[ETH_LEN:])
        if ethertype == ETH_P_IP and dst == self.mac:
            return self._ip(src, frame[ETH_LEN:])
        return None

    def _arp(self, body: bytes) -> bytes | None:
        _, _, _, _, op, sha, spa, _, tpa = _ARP.unpack_from(body)
        self.neighbours[spa] = sha
        if op == ARP_REQUEST and tpa == self.ip:
            return arp(ARP_REPLY, self.mac, self.ip, sha, spa)
        return None

    def _ip(self, src_mac: bytes, packet: bytes) -> bytes | None:
        fields = _IP.unpack_from(packet)
        proto, src_ip, dst_ip = fields[6], fields[8], fields[9]
        if proto != IPPROTO_ICMP or dst_ip != self.ip or checksum(packet[:IP_LEN]):
            return None
        message = packet[IP_LEN : fields[2]]
        kind, _, _, ident, seq = _ICMP.unpack_from(message)
        if kind != ICMP_ECHO_REQUEST or checksum(message):
            return None
        reply = icmp_echo(ICMP_ECHO_REPLY, ident, seq, message[8:], fill_checksum=True)
        return ethernet(src_mac, self.mac, ETH_P_IP, ipv4(self.ip, src_ip, IPPROTO_ICMP, reply))
