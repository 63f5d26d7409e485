"""What a device driver (virtio-net, virtio-blk) sees of a device, and what it gives the bus.

This mirrors Linux's virtio core: a `VirtioDriver` declares an id table and the
feature bits it knows; the bus matches it to a device found by a transport and calls
`probe(vdev)` with a `VirtioDevice`, the transport-neutral handle through which the
driver reads features and config space, finds its virtqueues and reaches guest memory
(`mem`, `allocator`: what Linux's drivers get from the kernel). The bus has already
done the first steps of §3.1.1 (reset, ACKNOWLEDGE, DRIVER, feature negotiation,
FEATURES_OK) before `probe`, and sets DRIVER_OK after it returns (§3.1.1 step 8),
unless the driver already did.

Between choosing the features and setting FEATURES_OK the bus calls the driver's
`validate(vdev, features)` (Linux's `virtio_driver.validate`): the driver checks the
device's offer and config space against the features it is about to accept, and
either returns the subset it keeps (clearing bits it cannot use with this device) or
raises a `DeviceError` to refuse the device before FEATURES_OK (FEAT-DRV-002,
CONFIG-DRV-004). It may read config space then, never write it (INIT-DRV-002).

Rules:
- Drivers never touch transport registers; every device access goes through the
  handle, so the same driver runs over virtio-mmio and the descriptor page.
- `find_vqs` returns driver-side queues (`DriverQueue`) whose `kick()` notifies the
  device through the transport, and whose callback runs from the interrupt path
  (Linux's `vring_interrupt`) when the device used buffers.
- A driver that finds the device lying raises a `DeviceError` from `probe`; the bus then
  sets FAILED (§3.1.1) and the device stays unbound.

Spec: §3.1 (device initialization), §2.2 (features), §2.5 (config space), §2.6.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .alloc import GuestAllocator
from .chain import Segment
from .memory import GuestMemory
from .spec import DeviceId

ANY_VENDOR = -1
"""Vendor wildcard in a `DeviceMatch` (Linux's VIRTIO_DEV_ANY_ID)."""


@dataclass(frozen=True)
class DeviceMatch:
    """One id-table entry: a device id and a vendor id or `ANY_VENDOR`."""

    device: DeviceId
    vendor: int = ANY_VENDOR

    def matches(self, device: int, vendor: int) -> bool:
        """Whether a device with these ids is served by this entry."""
        return self.device == device and self.vendor in (ANY_VENDOR, vendor)


class DriverQueue(Protocol):
    """The driver half of one virtqueue, whatever its ring type, bound to its transport."""

    size: int

    def add_sgs(self, out: Sequence[Segment], in_: Sequence[Segment], token: Hashable) -> int:
        """Expose a buffer; returns its head (raises NoSpace when full)."""
        ...

    def kick(self) -> bool:
        """Publish and notify the device if it wants to hear; True if it was notified."""
        ...

    def get_buf(self) -> tuple[Hashable, int] | None:
        """The next used buffer's token and written length, or None."""
        ...

    def detach_unused_buf(self) -> Hashable | None:
        """After a reset: one token the device never returned, or None."""
        ...

    def disable_cb(self) -> None:
        """Ask the device not to interrupt."""
        ...

    def enable_cb(self) -> bool:
        """Ask for interrupts again; False if used buffers are already waiting."""
        ...


QueueCallback = Callable[[DriverQueue], None]


class VirtioDevice(Protocol):
    """A device as its driver sees it (Linux's `struct virtio_device` and config ops)."""

    @property
    def device_id(self) -> int:
        """The device id the transport found."""
        ...

    @property
    def vendor_id(self) -> int:
        """The vendor id the transport found."""
        ...

    @property
    def features(self) -> int:
        """The negotiated feature word (frozen at FEATURES_OK)."""
        ...

    def has_feature(self, bit: int) -> bool:
        """Whether `bit` was negotiated."""
        ...

    @property
    def mem(self) -> GuestMemory:
        """The guest memory the device's rings and the driver's buffers live in."""
        ...

    @property
    def allocator(self) -> GuestAllocator:
        """The guest allocator a driver takes its data buffers from (rings come from it too)."""
        ...

    @property
    def config_size(self) -> int | None:
        """Bytes of config space the transport publishes, or None if it publishes no size
        (virtio-mmio). A driver checks only that the fields it needs fit (CONFIG-DRV-004),
        never that the size is some exact value (CONFIG-DRV-003)."""
        ...

    def read_config(self, offset: int, length: int) -> bytes:
        """A consistent read of config space: retried until the generation is stable (§2.5.1)."""
        ...

    def write_config(self, offset: int, data: bytes) -> None:
        """Write config space (§2.5)."""
        ...

    def find_vqs(
        self, names: Sequence[str], callbacks: Sequence[QueueCallback | None]
    ) -> list[DriverQueue]:
        """Set up queues 0..len(names)-1 and return them, live once DRIVER_OK is set."""
        ...

    def reset(self) -> None:
        """Reset the device (§2.1): no queue is used by the device afterwards."""
        ...


class VirtioDriver(Protocol):
    """A device driver as the bus sees it (Linux's `struct virtio_driver`).

    Optional: `feature_requires`, a mapping of feature bit to the bits it requires (all
    of them); the bus then drops an offered bit whose prerequisites it did not keep
    (`bus.without_unmet_requirements`, FEAT-DRV-001/002).
    """

    name: str
    id_table: Sequence[DeviceMatch]
    feature_table: int
    """The feature bits this driver knows; the bus accepts offered ∩ known (§2.2)."""

    def validate(self, vdev: VirtioDevice, features: int) -> int:
        """Check the device before FEATURES_OK; return the bits of `features` to accept.

        `features` is what the bus is about to accept (offered ∩ known, requirements
        met); `vdev.features` reads the same while this runs. Return a subset (clear
        what this device cannot have), or raise a `DeviceError` to refuse the device:
        the bus then sets FAILED without ever setting FEATURES_OK (§3.1.1 steps 4-5,
        FEAT-DRV-002). Config space may be read here, never written (INIT-DRV-002).
        """
        ...

    def probe(self, vdev: VirtioDevice) -> None:
        """Bind to `vdev`: read config, find queues, fill them (§3.1.1 step 7)."""
        ...

    def remove(self, vdev: VirtioDevice) -> None:
        """Unbind after the bus reset the device: detach unused buffers, free queues."""
        ...

    def config_changed(self, vdev: VirtioDevice) -> None:
        """The device raised a configuration change interrupt (§2.5)."""
        ...
