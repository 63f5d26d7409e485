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

AVAIL_ELEM_SIZE = 2
"""One entry of virtq_avail.ring: a le16 descriptor head."""

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


# --- Transports: status, interrupts, virtio-mmio, descriptor page (§2.1, §2.5, §4.2) -----
DRIVER_STATUS_BITS = int(
    Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK | Status.FAILED
)
"""The status bits a driver sets (§2.1); DEVICE_NEEDS_RESET is the device's own bit."""


class InterruptBit(IntFlag):
    """Interrupt status bits (§4.2.2 InterruptStatus; the descriptor page reuses them)."""

    USED_BUFFER = 1
    """A used buffer notification for some virtqueue."""
    CONFIG_CHANGE = 2
    """A configuration change notification (also raised with DEVICE_NEEDS_RESET, §2.1.2)."""


INTERRUPT_BITS = int(InterruptBit.USED_BUFFER | InterruptBit.CONFIG_CHANGE)
"""Every defined interrupt status bit; a driver ignores the others (MMIO-DRV-012).

A plain int: `~` of an IntFlag stays inside its members and would hide undefined bits.
"""

TRANSPORT_FEATURE_BITS = range(24, 50)
"""Bits 24..41 (queue and negotiation extensions) and 42..49 (future) are not device-type
bits (§2.2); device types use 0..23 and 50 and up."""

FEATURE_WORD_BITS = 32
"""Feature bits travel through 32-bit windows selected by a *FeaturesSel register (§4.2.2)."""

FEATURE_WORDS = 2
"""Number of 32-bit feature words this project carries (bits 0..63, §6)."""

MMIO_MAGIC = 0x74726976
"""MagicValue: little-endian "virt" (§4.2.2, MMIO-DEV-001)."""

MMIO_VERSION_MODERN = 2
MMIO_VERSION_LEGACY = 1
"""Version register values: 2 for virtio 1.x, 1 for the legacy interface (§4.2.2, §4.2.4)."""

MMIO_REGISTER_WIDTH = 4
"""Control registers are 32 bits wide and accessed 32 bits at a time (MMIO-DRV-002)."""

MMIO_CONFIG_OFFSET = 0x100
"""Device-specific configuration space starts here in the register window (§4.2.2)."""

MMIO_WINDOW_SIZE = 0x200
"""The register window this project maps per device: registers plus 256 config bytes."""


class MmioReg(IntEnum):
    """virtio-mmio register offsets (§4.2.2 modern; §4.2.4 adds the legacy ones)."""

    MAGIC_VALUE = 0x000
    VERSION = 0x004
    DEVICE_ID = 0x008
    VENDOR_ID = 0x00C
    DEVICE_FEATURES = 0x010
    DEVICE_FEATURES_SEL = 0x014
    DRIVER_FEATURES = 0x020
    DRIVER_FEATURES_SEL = 0x024
    GUEST_PAGE_SIZE = 0x028
    QUEUE_SEL = 0x030
    QUEUE_NUM_MAX = 0x034
    QUEUE_NUM = 0x038
    QUEUE_ALIGN = 0x03C
    QUEUE_PFN = 0x040
    QUEUE_READY = 0x044
    QUEUE_NOTIFY = 0x050
    INTERRUPT_STATUS = 0x060
    INTERRUPT_ACK = 0x064
    STATUS = 0x070
    QUEUE_DESC_LOW = 0x080
    QUEUE_DESC_HIGH = 0x084
    QUEUE_DRIVER_LOW = 0x090
    QUEUE_DRIVER_HIGH = 0x094
    QUEUE_DEVICE_LOW = 0x0A0
    QUEUE_DEVICE_HIGH = 0x0A4
    SHM_SEL = 0x0AC
    SHM_LEN_LOW = 0x0B0
    SHM_LEN_HIGH = 0x0B4
    SHM_BASE_LOW = 0x0B8
    SHM_BASE_HIGH = 0x0BC
    CONFIG_GENERATION = 0x0FC


SHM_NO_REGION = 0xFFFFFFFF
"""SHMLen/SHMBase halves read for a shared memory region that does not exist (§4.2.2)."""

LEGACY_PAGE_SIZE = 4096
"""GuestPageSize a legacy driver writes; QueuePFN counts pages of this size (§4.2.4)."""

DEVPAGE_HEADER_SIZE = 40
"""Descriptor page: bytes of one device entry's fixed header (docs/transports.md)."""

DEVPAGE_VQ_SIZE = 32
"""Descriptor page: bytes of one virtqueue record (docs/transports.md)."""

DEVPAGE_ALIGN = 8
"""Descriptor page: every entry starts 8-byte aligned (docs/transports.md)."""

DEVPAGE_SIZE = 4096
"""Descriptor page: the page the host publishes its device list in (docs/transports.md)."""


class Hypercall(IntEnum):
    """Descriptor-page hypercall numbers (this project's own, modelled on lguest/s390)."""

    NOTIFY = 1
    """Argument: a virtqueue's descriptor-table address; the device serves that queue."""
    SET_STATUS = 2
    """Argument: a device entry's address; the host applies the status and queue records."""
    ACK_INTERRUPT = 3
    """Arguments: a device entry's address and the interrupt bits handled."""
    CONFIG_WRITE = 4
    """Arguments: a device entry's address, a config offset and a length written in the page."""
    RESET = 5
    """Argument: a device entry's address; the host resets the device and the entry."""
# --- Packed virtqueue layout and wrap counters (§2.8) -----------------------------------
PACKED_DESC_ALIGN = 16
"""Alignment of the packed Descriptor Ring (§2.8.10.1 table)."""

EVENT_SUPPRESS_SIZE = 4
"""sizeof(struct pvirtq_event_suppress): le16 desc (offset + wrap) + le16 flags (§2.8.14)."""

EVENT_SUPPRESS_ALIGN = 4
"""Alignment of the Driver and Device Event Suppression areas (§2.8.10.1 table)."""

EVENT_WRAP_SHIFT = 15
"""Bit of `desc_event_wrap` in the le16 `desc` word; the offset is the bits below (§2.8.14)."""

EVENT_FLAGS_MASK = 3
"""`desc_event_flags` is the low two bits of the `flags` word; the rest is reserved (§2.8.14)."""

INITIAL_WRAP_COUNTER = 1
"""Both ring wrap counters start at 1, and the descriptor ring starts zeroed (§2.8.1, §2.8.13)."""


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
    UDP_TUNNEL_CSUM = 8


class NetGso(IntEnum):
    """`virtio_net_hdr.gso_type` values (§5.1.9); the tunnel and ECN bits are OR-ed on."""

    NONE = 0
    TCPV4 = 1
    UDP = 3
    TCPV6 = 4
    UDP_L4 = 5
    UDP_TUNNEL_IPV4 = 0x20
    UDP_TUNNEL_IPV6 = 0x40
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
NET_CONFIG_SPEED = 12
NET_CONFIG_DUPLEX = 16
NET_CONFIG_SIZE = 17
"""Offsets in struct virtio_net_config of the fields this reference serves (§5.1.4)."""

NET_SPEED_MAX = 0x7FFFFFFF
NET_SPEED_UNKNOWN = 0xFFFFFFFF
"""`speed` in Mbit/s is 0..NET_SPEED_MAX, or NET_SPEED_UNKNOWN (§5.1.4)."""


class NetDuplex(IntEnum):
    """`duplex` values, as §5.1.4's field description and ethtool define them.

    The device-normative sentence (NET-DEV-011) swaps full and half; this follows the
    description, Linux's ethtool constants and its virtio_net driver.
    """

    HALF = 0x00
    FULL = 0x01
    UNKNOWN = 0xFF


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


# --- Feature bits no side of this project implements (§2.2, §6, §5.1.3) -------------------
class UnimplementedFeature(IntEnum):
    """§6 reserved bits that `Feature` does not list (named for model/not_applicable.tsv)."""

    SUSPEND = 43


class NetUnimplementedFeature(IntEnum):
    """virtio-net bits (§5.1.3) that `NetFeature` does not list: no device here offers them
    and no driver accepts them; model/not_applicable.tsv names them, and
    tests/test_not_applicable.py checks that they stay unimplemented. Bits 64 and up live
    in the third feature word."""

    DEVICE_STATS = 50
    HASH_TUNNEL = 51
    VQ_NOTF_COAL = 52
    NOTF_COAL = 53
    GUEST_USO4 = 54
    GUEST_USO6 = 55
    GUEST_HDRLEN = 59
    RSC_EXT = 61
    STANDBY = 62
    RSS_CONTEXT = 64
    GUEST_UDP_TUNNEL_GSO = 65
    GUEST_UDP_TUNNEL_GSO_CSUM = 66
    HOST_UDP_TUNNEL_GSO = 67
    HOST_UDP_TUNNEL_GSO_CSUM = 68
    OUT_NET_HEADER = 69
    IPSEC = 70


# --- Block device (§5.2) ----------------------------------------------------------------
class BlkFeature(IntEnum):
    """virtio-blk feature bit numbers (§5.2.3); BARRIER and SCSI are legacy-only (§5.2.3.1)."""

    BARRIER = 0
    SIZE_MAX = 1
    SEG_MAX = 2
    GEOMETRY = 4
    RO = 5
    BLK_SIZE = 6
    SCSI = 7
    FLUSH = 9
    TOPOLOGY = 10
    CONFIG_WCE = 11
    MQ = 12
    DISCARD = 13
    WRITE_ZEROES = 14
    LIFETIME = 15
    SECURE_ERASE = 16
    ZONED = 17


class BlkReqType(IntEnum):
    """`virtio_blk_req.type` values (§5.2.6); SCSI_CMD(_OUT) are legacy-only (§5.2.6.4)."""

    IN = 0
    OUT = 1
    SCSI_CMD = 2
    SCSI_CMD_OUT = 3
    FLUSH = 4
    GET_ID = 8
    GET_LIFETIME = 10
    DISCARD = 11
    WRITE_ZEROES = 13
    SECURE_ERASE = 14


BLK_T_BARRIER = 1 << 31
"""Legacy flag or'ed into `type` to ask for a barrier (§5.2.6.4); never valid in 1.x."""


class BlkStatus(IntEnum):
    """The status byte the device writes at the end of every request (§5.2.6)."""

    OK = 0
    IOERR = 1
    UNSUPP = 2


BLK_SECTOR_SIZE = 512
"""The protocol's sector: capacity and `sector` fields count 512-byte units (§5.2.4)."""

BLK_REQ_HEADER_SIZE = 16
"""type (le32) + reserved (le32) + sector (le64) at the start of every request (§5.2.6)."""

BLK_STATUS_SIZE = 1
"""The status byte, the last device-writable byte of a request (§5.2.6)."""

BLK_ID_BYTES = 20
"""Length of the GET_ID answer: a NUL-padded ASCII string of up to 20 bytes (§5.2.6)."""

BLK_DWZ_SEGMENT_SIZE = 16
"""sizeof(struct virtio_blk_discard_write_zeroes): le64 sector, le32 num_sectors, le32 flags."""

BLK_DWZ_F_UNMAP = 1
"""The `unmap` bit of a discard / write-zeroes segment's flags (§5.2.6)."""

BLK_CONFIG_SIZE = 96
"""sizeof(struct virtio_blk_config) in VIRTIO 1.4 (§5.2.4), through `zoned`."""

BLK_MAX_ADDRESS = 1 << 64
"""Byte offsets `sector * 512 + length` must stay below 2^64 (the le64 the wire carries)."""


class BlkConfigOffset(IntEnum):
    """Offsets of the `struct virtio_blk_config` fields this project serves (§5.2.4)."""

    CAPACITY = 0
    SIZE_MAX = 8
    SEG_MAX = 12
    GEOMETRY = 16
    BLK_SIZE = 20
    PHYSICAL_BLOCK_EXP = 24
    ALIGNMENT_OFFSET = 25
    MIN_IO_SIZE = 26
    OPT_IO_SIZE = 28
    WRITEBACK = 32
    UNUSED0 = 33
    NUM_QUEUES = 34
    MAX_DISCARD_SECTORS = 36
    MAX_DISCARD_SEG = 40
    DISCARD_SECTOR_ALIGNMENT = 44
    MAX_WRITE_ZEROES_SECTORS = 48
    MAX_WRITE_ZEROES_SEG = 52
    WRITE_ZEROES_MAY_UNMAP = 56
    UNUSED1 = 57


# --- net and blk conformance gaps (§5.1.4) ---
NET_MTU_RECOMMENDED_MIN = 1280
"""The least `mtu` a device offering VIRTIO_NET_F_MTU should publish (NET-DEV-003): the
IPv6 minimum link MTU. This reference's device refuses to offer less."""


# --- net control commands of features no side implements (§5.1.9.5) ---
class NetCtrlUnimplementedClass(IntEnum):
    """`virtio_net_ctrl.class` values past `NetCtrlClass` (§5.1.9.5.5 to §5.1.9.5.11): each
    needs a feature nothing here implements; tests/test_net_ctrl_trace.py checks the
    driver never sends them."""

    GUEST_OFFLOADS = 5
    NOTF_COAL = 6
    HASH_TUNNEL = 7
    STATS = 8
    RSS_CTX = 9


class NetCtrlMq(IntEnum):
    """Commands of class VIRTIO_NET_CTRL_MQ (§5.1.9.5.6, §5.1.9.5.7)."""

    VQ_PAIRS_SET = 0
    RSS_CONFIG = 1
    HASH_CONFIG = 2


class NetCtrlNotfCoal(IntEnum):
    """Commands of class VIRTIO_NET_CTRL_NOTF_COAL (§5.1.9.5.10)."""

    TX_SET = 0
    RX_SET = 1
    VQ_SET = 2
    VQ_GET = 3
