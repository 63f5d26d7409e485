"""What the driver-side bus needs from a transport: Linux's `virtio_config_ops`, sans-IO.

A transport accessor is the guest's view of one device through one transport
(virtio-mmio registers, the descriptor page and its hypercalls). The bus
(`impl/bus.py`) runs the §3.1.1 sequence, `find_vqs` and the interrupt handler through
these operations only, so neither the bus nor a driver knows which transport it is on.

Rules:
- Every operation is one or a few device accesses with no policy: retries, checks and
  error handling belong to the bus. A hostile device can return any value from any
  read; the accessor passes it on unchanged.
- Feature words are 64-bit here; the accessor splits them into the transport's
  32-bit windows. `config_generation()` is None where the transport has no counter
  (legacy virtio-mmio).
- A queue is programmed from its three areas whatever the ring type (`QueueAreas`):
  a split ring's descriptor table, available ring and used ring, or a packed ring's
  descriptor ring and its driver and device event suppression structures (§2.8).

Spec: §2.1, §2.2, §2.5, §2.6 (the facilities every transport carries), §2.8.10 (the
packed ring's three areas), §4.2.3 (MMIO).
"""

from __future__ import annotations

from typing import Protocol

from .layout import SplitLayout
from .packed_layout import PackedLayout
from .spec import TRANSPORT_FEATURE_BITS, Feature, feature_mask

RING_FEATURES = feature_mask(Feature.INDIRECT_DESC, Feature.EVENT_IDX, Feature.VERSION_1)
"""The §6 reserved bits every device and bus of this project uses by default. A device
never offers, and the bus never accepts, any other bit of `TRANSPORT_FEATURES`
(FEAT-DEV-003, FEAT-DRV-003) unless asked for `PACKED_RING`: no NOTIFICATION_DATA,
no RING_RESET, no SUSPEND."""

PACKED_RING = feature_mask(Feature.RING_PACKED)
"""VIRTIO_F_RING_PACKED: offered by a `DeviceCore` built with `packed=True`, accepted
by a `VirtioBus` whose `ring_features` include it (§2.8, §6)."""

IMPLEMENTED_RING_FEATURES = RING_FEATURES | PACKED_RING
"""Every §6 reserved bit this project can negotiate."""

TRANSPORT_FEATURES = feature_mask(*TRANSPORT_FEATURE_BITS)
"""Every bit outside the device types' ranges (§2.2)."""

QueueAreas = SplitLayout | PackedLayout
"""A ring of either type, as a transport programs it: size and three area addresses."""


def area_addresses(layout: QueueAreas) -> tuple[int, int, int]:
    """(descriptor area, driver area, device area) of `layout` (§2.6, §2.8.10).

    Split: descriptor table, available ring, used ring. Packed: descriptor ring,
    driver event suppression, device event suppression.
    """
    if isinstance(layout, PackedLayout):
        return layout.desc, layout.driver, layout.device
    return layout.desc, layout.avail, layout.used


class TransportAccessor(Protocol):
    """The driver's handle on one device's transport registers or page entry."""

    device_id: int
    vendor_id: int
    legacy: bool
    """True for a pre-1.0 device: no FEATURES_OK, 32 feature bits, contiguous rings."""
    irq: int
    """The interrupt line the device raises."""

    def get_status(self) -> int:
        """Read the device status field."""
        ...

    def set_status(self, value: int) -> None:
        """Write the device status field (0 resets the device)."""
        ...

    def get_features(self) -> int:
        """Read the device's offered feature bits."""
        ...

    def set_features(self, value: int) -> None:
        """Write the driver's accepted feature bits."""
        ...

    def queue_max(self, index: int) -> int:
        """The maximum size of queue `index` (0: no such queue)."""
        ...

    def setup_queue(self, index: int, layout: QueueAreas) -> bool:
        """Program queue `index` at `layout` and enable it; True if this call made it ready.

        A queue already ready is not touched (False).
        """
        ...

    def queue_ready(self, index: int) -> bool:
        """Whether the device shows queue `index` enabled."""
        ...

    def teardown_queue(self, index: int) -> None:
        """Disable queue `index` (before it is freed)."""
        ...

    def notify(self, index: int) -> None:
        """Send an available buffer notification for queue `index`."""
        ...

    def read_interrupt_status(self) -> int:
        """Read the interrupt status bits."""
        ...

    def ack_interrupt(self, bits: int) -> None:
        """Acknowledge the handled interrupt bits."""
        ...

    def config_generation(self) -> int | None:
        """The configuration generation counter, or None if the transport has none."""
        ...

    def read_config(self, offset: int, length: int) -> bytes:
        """Read config space once (no generation check: the bus does that)."""
        ...

    def write_config(self, offset: int, data: bytes) -> None:
        """Write config space."""
        ...
