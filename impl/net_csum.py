"""Internet checksums over Ethernet frames: completing a partial one, validating a packet.

Rules:
- Sums are RFC 1071 ones' complement sums of big-endian 16-bit words.
- `complete_checksum` is what NEEDS_CSUM asks of whoever finishes the packet: sum from
  `csum_start` to the end and store the complement at `csum_start + csum_offset`
  (§5.1.9.2 for the device on transmit, §5.1.9.4 for a driver on receive). Offsets
  outside the frame give None; the caller names the fault.
- `checksums_valid` is what DATA_VALID promises (§5.1.9.4): an unfragmented IPv4
  packet whose header checksum and TCP, UDP (non-zero) or ICMP checksum verify.
  Anything else is "not validated", never "invalid".

Spec: §5.1.9.2 and §5.1.9.4 (checksum offload); RFC 1071, RFC 791, RFC 793, RFC 768.
"""

from __future__ import annotations

from .spec import ETH_HEADER_LEN, MAC_LEN

ETHERTYPE_IPV4 = 0x0800
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
