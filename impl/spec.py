"""The spec's vocabulary: every number the VIRTIO specification names, in one place.

Rules: this module imports nothing from the project and holds no logic. Every other
module (implementation, model, proofs, tests) takes its flag bits, feature bits,
status bits, device ids and structure sizes from here, so a constant is defined once
and checked once (the peer tests compare these values against Linux's uapi headers).

Spec: OASIS VIRTIO 1.4 CS01. §2.1 (device status), §2.2 and §6 (feature bits),
§2.7 (split virtqueues), §2.8 (packed virtqueues), §5 (device ids).
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

# --- Queue sizes (§2.6, §2.7) ---------------------------------------------------------
MAX_QUEUE_SIZE = 32768
"""Largest queue size the split and packed layouts allow (§2.7, §2.8)."""

INDEX_BITS = 16
"""Width of the free-running ring indices (avail.idx, used.idx, event indices)."""

INDEX_MODULUS = 1 << INDEX_BITS
"""Number of distinct index values; index arithmetic is modulo this (§2.7.6, §2.7.8)."""


# --- Split virtqueue descriptors (§2.7.5) -----------------------------------------------
class DescFlag(IntFlag):
    """`virtq_desc.flags` bits (§2.7.5)."""

    NEXT = 1
    """The buffer continues in the descriptor named by `next`."""
    WRITE = 2
    """The buffer is device-writable (otherwise device-readable)."""
    INDIRECT = 4
    """The buffer holds a table of descriptors (§2.7.5.3)."""


VIRTQ_DESC_F_NEXT = DescFlag.NEXT
VIRTQ_DESC_F_WRITE = DescFlag.WRITE
VIRTQ_DESC_F_INDIRECT = DescFlag.INDIRECT

DESC_SIZE = 16
"""sizeof(struct virtq_desc): le64 addr + le32 len + le16 flags + le16 next."""

USED_ELEM_SIZE = 8
"""sizeof(struct virtq_used_elem): le32 id + le32 len."""

RING_HEADER_SIZE = 4
"""flags (le16) + idx (le16) at the start of the available and used rings."""

EVENT_FIELD_SIZE = 2
"""used_event / avail_event trailing the available / used ring (le16)."""

DESC_ALIGN = 16
AVAIL_ALIGN = 2
USED_ALIGN = 4
"""Minimum alignment of each split-ring part in the modern layout (§2.7 table, §2.7.1)."""

LEGACY_QUEUE_ALIGN = 4096
"""Queue Align of the legacy contiguous layout as virtio-pci legacy and lguest used it (§2.7.2)."""

MAX_CHAIN_BYTES = 1 << 32
"""A chain's total length must stay below 2^32 bytes (§2.7.5.2, SPLIT-DRV-004)."""


# --- Ring notification suppression (§2.7.7, §2.7.10) ------------------------------------
class AvailFlag(IntFlag):
    """`virtq_avail.flags` bits, written by the driver (§2.7.7)."""

    NO_INTERRUPT = 1


class UsedFlag(IntFlag):
    """`virtq_used.flags` bits, written by the device (§2.7.10)."""

    NO_NOTIFY = 1


VIRTQ_AVAIL_F_NO_INTERRUPT = AvailFlag.NO_INTERRUPT
VIRTQ_USED_F_NO_NOTIFY = UsedFlag.NO_NOTIFY


# --- Packed virtqueue (§2.8) ------------------------------------------------------------
class PackedDescFlag(IntFlag):
    """`pvirtq_desc.flags` bits (§2.8.13)."""

    NEXT = 1
    WRITE = 2
    INDIRECT = 4
    AVAIL = 1 << 7
    USED = 1 << 15


class PackedEventFlag(IntEnum):
    """`pvirtq_event_suppress.flags` values (§2.8.14)."""

    ENABLE = 0
    DISABLE = 1
    DESC = 2


# --- Feature bits (§2.2, §6) ------------------------------------------------------------
class Feature(IntEnum):
    """Device-independent feature bit numbers (§6 Reserved Feature Bits)."""

    NOTIFY_ON_EMPTY = 24
    ANY_LAYOUT = 27
    INDIRECT_DESC = 28
    EVENT_IDX = 29
    VERSION_1 = 32
    ACCESS_PLATFORM = 33
    RING_PACKED = 34
    IN_ORDER = 35
    ORDER_PLATFORM = 36
    SR_IOV = 37
    NOTIFICATION_DATA = 38
    NOTIF_CONFIG_DATA = 39
    RING_RESET = 40
    ADMIN_VQ = 41


VIRTIO_F_INDIRECT_DESC = Feature.INDIRECT_DESC
VIRTIO_F_EVENT_IDX = Feature.EVENT_IDX
VIRTIO_F_VERSION_1 = Feature.VERSION_1
VIRTIO_F_RING_PACKED = Feature.RING_PACKED


def feature_mask(*bits: int) -> int:
    """Return the 64-bit feature word with each of `bits` set (§2.2)."""
    word = 0
    for bit in bits:
        word |= 1 << bit
    return word


# --- Device status (§2.1) ---------------------------------------------------------------
class Status(IntFlag):
    """Device status field bits (§2.1)."""

    ACKNOWLEDGE = 1
    DRIVER = 2
    DRIVER_OK = 4
    FEATURES_OK = 8
    SUSPEND = 16
    DEVICE_NEEDS_RESET = 64
    FAILED = 128


# --- Device ids (§5) --------------------------------------------------------------------
class DeviceId(IntEnum):
    """Virtio device ids (§5 Device Types) for the device types this project covers."""

    RESERVED = 0
    NET = 1
    BLOCK = 2


def has_feature(features: int, bit: int) -> bool:
    """Whether feature `bit` is set in the 64-bit word `features` (§2.2)."""
    return bool(features >> bit & 1)


# --- virtio-net (§5.1) ------------------------------------------------------------------
class NetFeature(IntEnum):
    """virtio-net feature bit numbers (§5.1.3)."""

    CSUM = 0
    GUEST_CSUM = 1
    CTRL_GUEST_OFFLOADS = 2
    MTU = 3
    MAC = 5
    GUEST_TSO4 = 7
    GUEST_TSO6 = 8
    GUEST_ECN = 9
    GUEST_UFO = 10
    HOST_TSO4 = 11
    HOST_TSO6 = 12
    HOST_ECN = 13
    HOST_UFO = 14
    MRG_RXBUF = 15
    STATUS = 16
    CTRL_VQ = 17
    CTRL_RX = 18
    CTRL_VLAN = 19
    CTRL_RX_EXTRA = 20
    GUEST_ANNOUNCE = 21
    MQ = 22
    CTRL_MAC_ADDR = 23
    HOST_USO = 56
    HASH_REPORT = 57
    RSS = 60
    SPEED_DUPLEX = 63


class NetStatus(IntFlag):
    """Bits of the `status` config field (§5.1.4)."""

    LINK_UP = 1
    ANNOUNCE = 2


class NetHdrFlag(IntFlag):
    """`virtio_net_hdr.flags` bits (§5.1.9)."""

    NEEDS_CSUM = 1
    DATA_VALID = 2
    RSC_INFO = 4


class NetGso(IntEnum):
    """`virtio_net_hdr.gso_type` values (§5.1.9); ECN is a bit OR-ed onto the others."""

    NONE = 0
    TCPV4 = 1
    UDP = 3
    TCPV6 = 4
    UDP_L4 = 5
    ECN = 0x80


NET_HDR_SIZE = 12
"""struct virtio_net_hdr up to and including num_buffers (§5.1.9, NET-DRV-053)."""

NET_HDR_LEGACY_SIZE = 10
"""The legacy header without num_buffers: no VERSION_1 and no MRG_RXBUF (§5.1.9.1)."""

NET_QUEUE_RX = 0
NET_QUEUE_TX = 1
NET_QUEUE_CTRL = 2
"""Queue indices with one queue pair: receiveq1, transmitq1, controlq (§5.1.2)."""

MAC_LEN = 6
"""Bytes in an Ethernet (IEEE 802) MAC address (§5.1.4 `mac`)."""

ETH_HEADER_LEN = 14
"""The 'low level ethernet header length' MTU figures add (§5.1.4): dst, src, type."""

NET_MTU_MIN = 68
NET_MTU_MAX = 65535
"""Bounds of `mtu` when VIRTIO_NET_F_MTU is offered (NET-DEV-002)."""

NET_MAX_FRAME = 65535
"""Largest frame this reference passes at all (the 64 KiB cap of the issue)."""

NET_SMALL_RX_FRAME = 1514
"""Largest incoming frame without GSO features (§5.1.9.3: 14 + 1500)."""

NET_CONFIG_MAC = 0
NET_CONFIG_STATUS = 6
NET_CONFIG_MAX_PAIRS = 8
NET_CONFIG_MTU = 10
NET_CONFIG_SIZE = 12
"""Offsets in struct virtio_net_config of the fields this reference serves (§5.1.4)."""


class NetCtrlClass(IntEnum):
    """`virtio_net_ctrl.class` values (§5.1.9.5)."""

    RX = 0
    MAC = 1
    VLAN = 2
    ANNOUNCE = 3
    MQ = 4


class NetCtrlRx(IntEnum):
    """Commands of class VIRTIO_NET_CTRL_RX (§5.1.9.5.1)."""

    PROMISC = 0
    ALLMULTI = 1
    ALLUNI = 2
    NOMULTI = 3
    NOUNI = 4
    NOBCAST = 5


class NetCtrlMac(IntEnum):
    """Commands of class VIRTIO_NET_CTRL_MAC (§5.1.9.5.2)."""

    TABLE_SET = 0
    ADDR_SET = 1


class NetCtrlVlan(IntEnum):
    """Commands of class VIRTIO_NET_CTRL_VLAN (§5.1.9.5.3)."""

    ADD = 0
    DEL = 1


VLAN_TPID = 0x8100
"""The IEEE 802.1Q tag protocol identifier in the ethertype position of a tagged frame."""

VLAN_ID_MASK = 0x0FFF
"""The VLAN id bits of the tag control information (IEEE 802.1Q)."""

NET_CTRL_ANNOUNCE_ACK = 0
"""The one command of class VIRTIO_NET_CTRL_ANNOUNCE (§5.1.9.5.4)."""


class NetAck(IntEnum):
    """The `ack` byte of a control command (§5.1.9.5)."""

    OK = 0
    ERR = 1


NET_CTRL_HEADER_SIZE = 2
"""class + command bytes at the start of every control command (§5.1.9.5)."""

NET_CTRL_MAC_ENTRIES_SIZE = 4
"""The le32 entry count in front of each MAC table (§5.1.9.5.2)."""
