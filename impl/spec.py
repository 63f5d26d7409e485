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
