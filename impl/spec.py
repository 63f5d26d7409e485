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
