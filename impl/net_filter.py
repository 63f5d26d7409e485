"""The receive filter of a virtio-net device: which incoming frames reach the driver.

Rules:
- A frame is judged by its destination MAC (its first 6 bytes) alone: broadcast
  (all ones), multicast (group bit set in the first byte) or unicast.
- Promiscuous mode accepts everything, whatever the other modes say (NET-DEV-033/034).
- Broadcast is accepted unless NOBCAST (NET-DEV-043/044); NOMULTI never applies to it
  (NET-DEV-040).
- Multicast: NOMULTI refuses it even with ALLMULTI (NET-DEV-038/039); otherwise
  ALLMULTI or a match in the multicast table accepts it (NET-DEV-035).
- Unicast: NOUNI refuses it even with ALLUNI (NET-DEV-041/042); otherwise ALLUNI, the
  device's own `mac` or a match in the unicast table accepts it (NET-DEV-037, 048).
- After reset the tables are empty (NET-DEV-045) and the device is promiscuous, as
  QEMU's is, so a driver that never configures filtering receives everything.
- VLAN: with VIRTIO_NET_F_CTRL_VLAN negotiated (`vlan_filtering`), a tagged frame
  passes only if its VLAN id is in the table, which starts empty (NET-DEV-050);
  without it every tagged frame passes (NET-DEV-049). Untagged frames are never
  judged by VLAN. The VLAN check comes before the MAC rules, promiscuous or not.

Spec: §5.1.9.5.1 (receive filtering), §5.1.9.5.2 (MAC address filtering),
§5.1.9.5.3 (VLAN filtering).
"""

from __future__ import annotations

from dataclasses import dataclass

from .spec import ETH_HEADER_LEN, MAC_LEN, VLAN_ID_MASK, VLAN_TPID

_ETHERTYPE = 2 * MAC_LEN
_TCI = ETH_HEADER_LEN
_TAG_LEN = 2

BROADCAST = b"\xff" * MAC_LEN
_GROUP_BIT = 1


def is_multicast(mac: bytes) -> bool:
    """Whether `mac` is a group (multicast or broadcast) address: low bit of byte 0."""
    return bool(mac[0] & _GROUP_BIT)


@dataclass
class RxFilter:
    """Receive modes and MAC tables set through the control queue, and the device MAC."""

    mac: bytes
    promisc: bool = True
    allmulti: bool = False
    alluni: bool = False
    nomulti: bool = False
    nouni: bool = False
    nobcast: bool = False
    unicast: frozenset[bytes] = frozenset()
    multicast: frozenset[bytes] = frozenset()
    vlan_filtering: bool = False
    vlans: frozenset[int] = frozenset()

    def accepts(self, frame: bytes) -> bool:
        """Whether a frame (at least an Ethernet header long) passes the filter."""
        if not self._vlan_passes(frame):
            return False
        dst = frame[:MAC_LEN]
        if self.promisc:
            return True
        if dst == BROADCAST:
            return not self.nobcast
        if is_multicast(dst):
            if self.nomulti:
                return False
            return self.allmulti or dst in self.multicast
        if self.nouni:
            return False
        return self.alluni or dst == self.mac or dst in self.unicast

    def _vlan_passes(self, frame: bytes) -> bool:
        """Untagged, unfiltered, or tagged with an id in the table."""
        tagged = int.from_bytes(frame[_ETHERTYPE:ETH_HEADER_LEN], "big") == VLAN_TPID
        if not tagged or not self.vlan_filtering:
            return True
        tci = frame[_TCI : _TCI + _TAG_LEN]
        return len(tci) == _TAG_LEN and int.from_bytes(tci, "big") & VLAN_ID_MASK in self.vlans
