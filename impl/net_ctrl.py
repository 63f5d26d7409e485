"""virtio-net control commands: their byte formats, and what each does to a device.

A command is `class`, `command`, command-specific data (device-readable), then an
`ack` byte the device writes (device-writable). `encode_*` build the readable part for
the driver; `execute` interprets it for the device against a `CtrlTarget`.

Rules:
- Every command is checked before anything changes: known class and command, its
  feature negotiated, data of exactly the length the command needs, on/off bytes 0 or
  1. The first violation raises a `NetDriverError` subclass and the state is as before
  (the device then acks VIRTIO_NET_ERR).
- MAC_TABLE_SET replaces both tables at once, before the command is consumed
  (NET-DEV-046); MAC_ADDR_SET updates the device's mac (and config space) likewise
  (NET-DEV-047); ANNOUNCE_ACK clears VIRTIO_NET_S_ANNOUNCE (NET-DEV-052).
- Work is bounded by the data length, which the device caps before calling.

Spec: §5.1.9.5 (control virtqueue), §5.1.9.5.1, §5.1.9.5.2, §5.1.9.5.3, §5.1.9.5.4.
"""

from __future__ import annotations

import struct
from typing import Protocol

from .errors import NetCtrlBadValue, NetCtrlMalformed, NetCtrlUnsupported
from .net_filter import RxFilter
from .spec import (
    MAC_LEN,
    NET_CTRL_ANNOUNCE_ACK,
    NET_CTRL_HEADER_SIZE,
    NET_CTRL_MAC_ENTRIES_SIZE,
    VLAN_ID_MASK,
    NetCtrlClass,
    NetCtrlMac,
    NetCtrlRx,
    NetCtrlVlan,
    NetFeature,
    has_feature,
)

_ENTRIES = struct.Struct("<I")
_VLAN_ID = struct.Struct("<H")

_RX_FEATURE = {
    NetCtrlRx.PROMISC: NetFeature.CTRL_RX,
    NetCtrlRx.ALLMULTI: NetFeature.CTRL_RX,
    NetCtrlRx.ALLUNI: NetFeature.CTRL_RX_EXTRA,
    NetCtrlRx.NOMULTI: NetFeature.CTRL_RX_EXTRA,
    NetCtrlRx.NOUNI: NetFeature.CTRL_RX_EXTRA,
    NetCtrlRx.NOBCAST: NetFeature.CTRL_RX_EXTRA,
}
_RX_FIELD = {
    NetCtrlRx.PROMISC: "promisc",
    NetCtrlRx.ALLMULTI: "allmulti",
    NetCtrlRx.ALLUNI: "alluni",
    NetCtrlRx.NOMULTI: "nomulti",
    NetCtrlRx.NOUNI: "nouni",
    NetCtrlRx.NOBCAST: "nobcast",
}


class CtrlTarget(Protocol):
    """What control commands act on: the filter, the MAC, the announce bit."""

    rx_filter: RxFilter

    def set_mac(self, mac: bytes) -> None:
        """Make `mac` the device's address (and config space `mac`)."""
        ...

    def ack_announce(self) -> None:
        """Clear VIRTIO_NET_S_ANNOUNCE in status."""
        ...


# --- encoding (driver side) -------------------------------------------------------------
def encode_rx_mode(command: NetCtrlRx, on: bool) -> bytes:
    """VIRTIO_NET_CTRL_RX command: one on/off byte (§5.1.9.5.1)."""
    return bytes((NetCtrlClass.RX, command, int(on)))


def encode_mac_table(unicast: list[bytes], multicast: list[bytes]) -> bytes:
    """VIRTIO_NET_CTRL_MAC_TABLE_SET: le32 count, MACs, le32 count, MACs (NET-DRV-062)."""
    parts = [bytes((NetCtrlClass.MAC, NetCtrlMac.TABLE_SET))]
    for table in (unicast, multicast):
        parts.append(_ENTRIES.pack(len(table)))
        parts.extend(table)
    return b"".join(parts)


def encode_mac_addr(mac: bytes) -> bytes:
    """VIRTIO_NET_CTRL_MAC_ADDR_SET: the 6-byte address (§5.1.9.5.2)."""
    return bytes((NetCtrlClass.MAC, NetCtrlMac.ADDR_SET)) + mac


def encode_vlan(command: NetCtrlVlan, vid: int) -> bytes:
    """VIRTIO_NET_CTRL_VLAN_ADD / _DEL with a le16 VLAN id (§5.1.9.5.3)."""
    return bytes((NetCtrlClass.VLAN, command)) + _VLAN_ID.pack(vid)


def encode_announce_ack() -> bytes:
    """VIRTIO_NET_CTRL_ANNOUNCE_ACK, no data (§5.1.9.5.4, NET-DRV-067)."""
    return bytes((NetCtrlClass.ANNOUNCE, NET_CTRL_ANNOUNCE_ACK))


# --- execution (device side) ------------------------------------------------------------
def execute(command: bytes, features: int, target: CtrlTarget) -> None:
    """Apply one control command; raise a NetDriverError (nothing changed) if it is bad."""
    if len(command) < NET_CTRL_HEADER_SIZE:
        raise NetCtrlMalformed(f"control command of {len(command)} bytes has no class/command")
    cls, cmd, data = command[0], command[1], command[NET_CTRL_HEADER_SIZE:]
    if cls == NetCtrlClass.RX:
        _rx_mode(cmd, data, features, target.rx_filter)
    elif cls == NetCtrlClass.MAC:
        _mac(cmd, data, features, target)
    elif cls == NetCtrlClass.VLAN:
        _vlan(cmd, data, features, target.rx_filter)
    elif cls == NetCtrlClass.ANNOUNCE and cmd == NET_CTRL_ANNOUNCE_ACK:
        _require(features, NetFeature.GUEST_ANNOUNCE, "ANNOUNCE_ACK")
        _exact(data, 0, "ANNOUNCE_ACK")
        target.ack_announce()
    else:
        raise NetCtrlUnsupported(f"unknown control class {cls} command {cmd}")


def _require(features: int, bit: NetFeature, what: str) -> None:
    if not has_feature(features, bit):
        raise NetCtrlUnsupported(f"{what} needs VIRTIO_NET_F_{bit.name}, not negotiated")


def _exact(data: bytes, length: int, what: str) -> None:
    if len(data) != length:
        raise NetCtrlMalformed(f"{what} carries {len(data)} data bytes, not {length}")


def _rx_mode(cmd: int, data: bytes, features: int, rx_filter: RxFilter) -> None:
    if cmd not in _RX_FEATURE:
        raise NetCtrlUnsupported(f"unknown VIRTIO_NET_CTRL_RX command {cmd}")
    mode = NetCtrlRx(cmd)
    _require(features, _RX_FEATURE[mode], mode.name)
    _exact(data, 1, mode.name)
    if data[0] > 1:
        raise NetCtrlBadValue(f"{mode.name} value {data[0]} is neither 0 nor 1")
    setattr(rx_filter, _RX_FIELD[mode], bool(data[0]))


def _vlan(cmd: int, data: bytes, features: int, rx_filter: RxFilter) -> None:
    """VLAN_ADD / VLAN_DEL: a le16 VLAN id into or out of the table (§5.1.9.5.3)."""
    if cmd not in (NetCtrlVlan.ADD, NetCtrlVlan.DEL):
        raise NetCtrlUnsupported(f"unknown VIRTIO_NET_CTRL_VLAN command {cmd}")
    _require(features, NetFeature.CTRL_VLAN, "VIRTIO_NET_CTRL_VLAN")
    _exact(data, _VLAN_ID.size, "VLAN command")
    (vid,) = _VLAN_ID.unpack(data)
    if vid > VLAN_ID_MASK:
        raise NetCtrlBadValue(f"VLAN id {vid} is above {VLAN_ID_MASK}")
    if cmd == NetCtrlVlan.ADD:
        rx_filter.vlans = rx_filter.vlans | {vid}
    else:
        rx_filter.vlans = rx_filter.vlans - {vid}


def _mac(cmd: int, data: bytes, features: int, target: CtrlTarget) -> None:
    _require(features, NetFeature.CTRL_RX, "VIRTIO_NET_CTRL_MAC")
    if cmd == NetCtrlMac.ADDR_SET:
        _require(features, NetFeature.CTRL_MAC_ADDR, "MAC_ADDR_SET")
        _exact(data, MAC_LEN, "MAC_ADDR_SET")
        target.set_mac(bytes(data))
    elif cmd == NetCtrlMac.TABLE_SET:
        unicast, rest = _mac_list(data, "unicast")
        multicast, rest = _mac_list(rest, "multicast")
        _exact(rest, 0, "MAC_TABLE_SET after its tables")
        target.rx_filter.unicast = frozenset(unicast)
        target.rx_filter.multicast = frozenset(multicast)
    else:
        raise NetCtrlUnsupported(f"unknown VIRTIO_NET_CTRL_MAC command {cmd}")


def _mac_list(data: bytes, name: str) -> tuple[list[bytes], bytes]:
    """Split a `virtio_net_ctrl_mac` table off the front of `data`."""
    if len(data) < NET_CTRL_MAC_ENTRIES_SIZE:
        raise NetCtrlMalformed(f"MAC_TABLE_SET {name} table has no entry count")
    (entries,) = _ENTRIES.unpack_from(data)
    end = NET_CTRL_MAC_ENTRIES_SIZE + MAC_LEN * entries
    if end > len(data):
        raise NetCtrlMalformed(f"MAC_TABLE_SET {name} table of {entries} entries is truncated")
    macs = [data[i : i + MAC_LEN] for i in range(NET_CTRL_MAC_ENTRIES_SIZE, end, MAC_LEN)]
    return macs, data[end:]
