"""`struct virtio_net_config` and the feature words a virtio-net device offers.

Rules: config space is little-endian and read-only for the driver (NET-DRV-001); this
reference serves `mac`, `status`, `max_virtqueue_pairs` (always 1: no multiqueue) and
`mtu` (0 unless VIRTIO_NET_F_MTU is offered); the fields after them (speed, duplex,
RSS) belong to features it never offers. Features that need the control queue are
only offered with it (§5.1.3.1; NET-DEV-013, NET-DEV-014).

Spec: §5.1.3 (feature bits), §5.1.4 (device configuration layout).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from .spec import (
    NET_CONFIG_SIZE,
    Feature,
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


def device_features(*, mrg_rxbuf: bool, ctrl_vq: bool, csum: bool, mtu: bool) -> int:
    """The device-type feature word: VERSION_1, MAC, STATUS and the chosen extras."""
    bits = [Feature.VERSION_1, NetFeature.MAC, NetFeature.STATUS]
    bits += [NetFeature.MRG_RXBUF] * mrg_rxbuf
    bits += [NetFeature.CSUM, NetFeature.GUEST_CSUM] * csum
    bits += [NetFeature.MTU] * mtu
    bits += list(CTRL_FEATURES) * ctrl_vq
    return feature_mask(*bits)


@dataclass(frozen=True, slots=True, kw_only=True)
class NetConfig:
    """`struct virtio_net_config` (§5.1.4) up to `mtu`: mac[6], le16 status,
    le16 max_virtqueue_pairs, le16 mtu."""

    mac: bytes
    status: int
    max_virtqueue_pairs: int = 1
    mtu: int = 0

    SIZE: ClassVar[int] = NET_CONFIG_SIZE
    _STRUCT: ClassVar[struct.Struct] = struct.Struct("<6sHHH")

    def pack(self) -> bytes:
        """The config bytes from offset 0."""
        return self._STRUCT.pack(self.mac, self.status, self.max_virtqueue_pairs, self.mtu)

    @classmethod
    def unpack(cls, raw: bytes) -> NetConfig:
        """Decode the first `SIZE` bytes of config space."""
        mac, status, pairs, mtu = cls._STRUCT.unpack(raw[: cls.SIZE])
        return cls(mac=mac, status=status, max_virtqueue_pairs=pairs, mtu=mtu)
