"""What a virtio-net device counts: frames and bytes each way, and every drop by reason.

Rules: a frame the device does not deliver is counted under exactly one `DropReason`;
with the delivered frames and the backlog these account for every frame that
arrived (receive side) or was taken from the transmit ring (transmit side).

Spec: §5.1 (the device's link); the reasons name where §5.1.9.2 to §5.1.9.5 and the
device's own bounds stop a frame.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import Enum


class DropReason(Enum):
    """Why a frame was not delivered; `NetStats.drops` counts each."""

    NOT_READY = "not_ready"
    """Arrived before DRIVER_OK (or after a reset)."""
    LINK_DOWN = "link_down"
    """Arrived, or waited in the backlog, while the link was down."""
    RUNT = "runt"
    """Shorter than an Ethernet header."""
    OVERSIZE = "oversize"
    """Longer than the device passes (mtu + 14 after MTU, else 64 KiB), or than a buffer."""
    FILTERED = "filtered"
    """Refused by the receive filter (§5.1.9.5.1, §5.1.9.5.2)."""
    BACKLOG_FULL = "backlog_full"
    """The bounded backlog of frames waiting for receive buffers was full."""
    NO_ROOM = "no_room"
    """Needs more mergeable buffers than the whole receive ring holds."""
    RESET = "reset"
    """Waiting in the backlog when the device was reset."""
    TX_MALFORMED = "tx_malformed"
    """A transmit chain the device refused (the error is recorded)."""
    TX_LINK_DOWN = "tx_link_down"
    """Transmitted while the link was down."""
    TX_NO_PORT = "tx_no_port"
    """Transmitted by a device attached to no backend."""


@dataclass
class NetStats:
    """Frames and bytes through the device, and every drop by reason."""

    tx_frames: int = 0
    tx_bytes: int = 0
    rx_frames: int = 0
    rx_bytes: int = 0
    drops: Counter[DropReason] = field(default_factory=Counter)
