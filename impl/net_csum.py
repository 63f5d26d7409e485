"""Internet checksums over Ethernet frames: completing a partial one, validating a packet.

Rules:
- Sums are RFC 1071 ones' complement sums of big-endian 16-bit words.
- `complete_checksum` is what NEEDS_CSUM asks of whoever finishes the packet: sum from
  `csum_start` to the end and store the complement at `csum_start + csum_offset`
  (§5.1.9.2 for the device on transmit, §5.1.9.4 for a driver on receive). Offsets
  outside the frame give None; the caller names the fault.
- `offload_fault` is what a driver owes before it sets NEEDS_CSUM (§5.1.9.2.1): the
  field inside the frame (NET-DRV-033), every earlier checksum already right
  (NET-DRV-031: the IPv4 header's, the one this module can see), and a TCP or UDP
  field holding the pseudo-header sum (NET-DRV-032). Frames it cannot parse (not IPv4
  or IPv6, IPv6 extension headers, lengths beyond the frame) get the first check only.
- `checksums_valid` is what DATA_VALID promises (§5.1.9.4): an unfragmented IPv4
  packet whose header checksum and TCP, UDP (non-zero) or ICMP checksum verify.
  Anything else is "not validated", never "invalid".

Spec: §5.1.9.2, §5.1.9.2.1 and §5.1.9.4 (checksum offload); RFC 1071, RFC 791,
RFC 793, RFC 768, RFC 8200.
"""

from __future__ import annotations

from .spec import ETH_HEADER_LEN, MAC_LEN

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
IPV6_HEADER = 40
_V6_LENGTH_FIELD = 4
"""The upper-layer length is 32 bits wide in the IPv6 pseudo-header (RFC 8200 §8.1)."""
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPV4_MIN_HEADER = 20
CSUM_FIELD = 2
_U16_MASK = 0xFFFF
_ALL_ONES = 0xFFFF
_IHL_MASK = 0x0F
_WORD = 4
_FRAGMENT_MASK = 0x3FFF
"""More-fragments flag and fragment offset of the IPv4 flags/offset field."""
_L4_CSUM_AT = {IPPROTO_ICMP: 2, IPPROTO_TCP: 16, IPPROTO_UDP: 6}
_PSEUDO_PROTOS = (IPPROTO_TCP, IPPROTO_UDP)


def ones_complement_sum(data: bytes, start: int = 0) -> int:
    """The 16-bit ones' complement sum of `data` (big-endian words), plus `start`."""
    if len(data) % 2:
        data += b"\0"
    total = start + sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & _U16_MASK) + (total >> 16)
    return total


def complete_checksum(frame: bytes, start: int, offset: int) -> bytes | None:
    """`frame` with the complemented sum from `start` stored at `start + offset`, or None."""
    where = start + offset
    if where + CSUM_FIELD > len(frame):
        return None
    checksum = ~ones_complement_sum(frame[start:]) & _U16_MASK
    return frame[:where] + checksum.to_bytes(CSUM_FIELD, "big") + frame[where + CSUM_FIELD :]


def offload_fault(frame: bytes, start: int, offset: int) -> str | None:
    """Why asking for the checksum of `frame` from `start`, stored at `start + offset`,
    breaks §5.1.9.2.1 (NET-DRV-031/032/033); None if nothing this module checks does."""
    where = start + offset
    if start < 0 or offset < 0 or where + CSUM_FIELD > len(frame):
        return f"checksum field at {start}+{offset} lies outside a frame of {len(frame)} bytes"
    network = _network_header(frame)
    if network is None:
        return None
    l4_start, proto, pseudo, header_ok = network
    if start >= l4_start and not header_ok:
        return "the IPv4 header checksum, before csum_start, does not verify"
    if start != l4_start or proto not in _PSEUDO_PROTOS or offset != _L4_CSUM_AT[proto]:
        return None
    stored = int.from_bytes(frame[where : where + CSUM_FIELD], "big")
    if stored % _ALL_ONES != pseudo % _ALL_ONES:  # 0 and 0xffff are the same sum
        return f"the {proto} checksum field holds {stored:#06x}, not the pseudo-header sum"
    return None


def _network_header(frame: bytes) -> tuple[int, int, int, bool] | None:
    """For an IPv4 or IPv6 packet: where its transport header starts, the protocol, the
    folded pseudo-header sum (RFC 793, RFC 8200 §8.1) and whether the IPv4 header
    checksum verifies (True for IPv6, which has none). None for anything else."""
    ethertype = int.from_bytes(frame[2 * MAC_LEN : ETH_HEADER_LEN], "big")
    ip = frame[ETH_HEADER_LEN:]
    if ethertype == ETHERTYPE_IPV4 and len(ip) >= IPV4_MIN_HEADER:
        ihl = (ip[0] & _IHL_MASK) * _WORD
        total = int.from_bytes(ip[2:4], "big")
        if ihl < IPV4_MIN_HEADER or not ihl <= total <= len(ip):
            return None
        length = (total - ihl).to_bytes(CSUM_FIELD, "big")
        pseudo = ones_complement_sum(ip[12:20] + bytes((0, ip[9])) + length)
        header_ok = ones_complement_sum(ip[:ihl]) == _ALL_ONES
        return ETH_HEADER_LEN + ihl, ip[9], pseudo, header_ok
    if ethertype == ETHERTYPE_IPV6 and len(ip) >= IPV6_HEADER:
        payload = int.from_bytes(ip[4:6], "big")
        if IPV6_HEADER + payload > len(ip):
            return None
        length = payload.to_bytes(_V6_LENGTH_FIELD, "big")
        pseudo = ones_complement_sum(ip[8:IPV6_HEADER] + length + bytes((0, 0, 0, ip[6])))
        return ETH_HEADER_LEN + IPV6_HEADER, ip[6], pseudo, True
    return None


def checksums_valid(frame: bytes) -> bool:
    """Whether `frame` is an unfragmented IPv4 TCP/UDP/ICMP packet whose checksums verify."""
    if int.from_bytes(frame[2 * MAC_LEN : ETH_HEADER_LEN], "big") != ETHERTYPE_IPV4:
        return False
    ip = frame[ETH_HEADER_LEN:]
    if len(ip) < IPV4_MIN_HEADER:
        return False
    ihl = (ip[0] & _IHL_MASK) * _WORD
    total = int.from_bytes(ip[2:4], "big")
    if ihl < IPV4_MIN_HEADER or not ihl <= total <= len(ip):
        return False
    if int.from_bytes(ip[6:8], "big") & _FRAGMENT_MASK:
        return False
    if ones_complement_sum(ip[:ihl]) != _ALL_ONES:
        return False
    return _l4_valid(ip[9], ip[12:20], ip[ihl:total])


def _l4_valid(proto: int, addresses: bytes, segment: bytes) -> bool:
    at = _L4_CSUM_AT.get(proto)
    if at is None or len(segment) < at + CSUM_FIELD:
        return False
    if proto == IPPROTO_UDP and segment[at : at + CSUM_FIELD] == bytes(CSUM_FIELD):
        return False
    pseudo = 0
    if proto != IPPROTO_ICMP:
        length = len(segment).to_bytes(CSUM_FIELD, "big")
        pseudo = ones_complement_sum(addresses + bytes((0, proto)) + length)
    return ones_complement_sum(segment, pseudo) == _ALL_ONES
