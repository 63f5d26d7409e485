"""`struct virtio_net_config` and the feature words a virtio-net device offers.

Rules: config space is little-endian and read-only for the driver (NET-DRV-001); this
reference serves `mac`, `status`, `max_virtqueue_pairs` (always 1: no multiqueue),
`mtu` (0 unless VIRTIO_NET_F_MTU is offered), `speed` and `duplex` (unknown unless
VIRTIO_NET_F_SPEED_DUPLEX is offered); the RSS fields after them belong to features
it never offers. Features that need the control queue are
only offered with it (§5.1.3.1; NET-DEV-013, NET-DEV-014).

Spec: §5.1.3 (feature bits), §5.1.4 (device configuration layout, NET-DEV-010/011).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from .spec import (
    NET_CONFIG_SIZE,
    NET_SPEED_MAX,
    NET_SPEED_UNKNOWN,
    Feature,
    NetDuplex,
    NetFeature,
    feature_mask,
)

CTRL_FEATURES = (
    NetFeature.CTRL_VQ,
    NetFeature.CTRL_RX,
    NetFeature.CTRL_RX_EXTRA,
    NetFeature.CTRL_VLAN,
    NetFeature.CTRL_MAC_ADDR,
    NetFeature.GUEST_ANNOUNCE,
)

FEATURE_REQUIRES: dict[int, tuple[int, ...]] = {
    NetFeature.GUEST_TSO4: (NetFeature.GUEST_CSUM,),
    NetFeature.GUEST_TSO6: (NetFeature.GUEST_CSUM,),
    NetFeature.GUEST_UFO: (NetFeature.GUEST_CSUM,),
    NetFeature.HOST_TSO4: (NetFeature.CSUM,),
    NetFeature.HOST_TSO6: (NetFeature.CSUM,),
    NetFeature.HOST_UFO: (NetFeature.CSUM,),
    NetFeature.HOST_USO: (NetFeature.CSUM,),
    NetFeature.CTRL_RX: (NetFeature.CTRL_VQ,),
    NetFeature.CTRL_RX_EXTRA: (NetFeature.CTRL_VQ,),
    NetFeature.CTRL_VLAN: (NetFeature.CTRL_VQ,),
    NetFeature.GUEST_ANNOUNCE: (NetFeature.CTRL_VQ,),
    NetFeature.MQ: (NetFeature.CTRL_VQ,),
    NetFeature.CTRL_MAC_ADDR: (NetFeature.CTRL_VQ,),
    NetFeature.RSS: (NetFeature.CTRL_VQ,),
}
"""The all-of requirements of §5.1.3.1 among the bits `NetFeature` names (the
either-or ones, ECN over TSO4 or TSO6, are left out: the driver never knows those
bits), plus CTRL_RX_EXTRA over CTRL_VQ, which §5.1.4.2 asks of drivers (NET-DRV-013)
though §5.1.3.1 does not list it. The driver drops an offered bit missing its
prerequisite (FEAT-DRV-002)."""


def device_features(
    *, mrg_rxbuf: bool, ctrl_vq: bool, csum: bool, mtu: bool, speed_duplex: bool = False
) -> int:
    """The device-type feature word: VERSION_1, MAC, STATUS and the chosen extras."""
    bits = [Feature.VERSION_1, NetFeature.MAC, NetFeature.STATUS]
    bits += [NetFeature.SPEED_DUPLEX] * speed_duplex
    bits += [NetFeature.MRG_RXBUF] * mrg_rxbuf
    bits += [NetFeature.CSUM, NetFeature.GUEST_CSUM] * csum
    bits += [NetFeature.MTU] * mtu
    bits += list(CTRL_FEATURES) * ctrl_vq
    return feature_mask(*bits)


@dataclass(frozen=True, slots=True, kw_only=True)
class NetConfig:
    """`struct virtio_net_config` (§5.1.4) up to `duplex`: mac[6], le16 status,
    le16 max_virtqueue_pairs, le16 mtu, le32 speed, u8 duplex."""

    mac: bytes
    status: int
    max_virtqueue_pairs: int = 1
    mtu: int = 0
    speed: int = NET_SPEED_UNKNOWN
    duplex: int = NetDuplex.UNKNOWN

    SIZE: ClassVar[int] = NET_CONFIG_SIZE
    _STRUCT: ClassVar[struct.Struct] = struct.Struct("<6sHHHIB")

    def pack(self) -> bytes:
        """The config bytes from offset 0."""
        return self._STRUCT.pack(
            self.mac, self.status, self.max_virtqueue_pairs, self.mtu, self.speed, self.duplex
        )

    @classmethod
    def unpack(cls, raw: bytes) -> NetConfig:
        """Decode the first `SIZE` bytes of config space."""
        mac, status, pairs, mtu, speed, duplex = cls._STRUCT.unpack(raw[: cls.SIZE])
        return cls(
            mac=mac,
            status=status,
            max_virtqueue_pairs=pairs,
            mtu=mtu,
            speed=speed,
            duplex=duplex,
        )


def speed_duplex_valid(speed: int, duplex: int) -> bool:
    """Whether a device may publish this speed and duplex (NET-DEV-010, NET-DEV-011)."""
    speed_ok = 0 <= speed <= NET_SPEED_MAX or speed == NET_SPEED_UNKNOWN
    return speed_ok and duplex in tuple(NetDuplex)
