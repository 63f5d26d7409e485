"""A stand-in for a transport: one device backend and one driver joined directly, in-process.

Until the real transports (virtio-mmio, the descriptor page) are wired in, this binds a
`DeviceBackend` to a `VirtioDriver` over one `GuestMemory`: features are offered ∩
known, each queue is a `SplitDriver`/`SplitDevice` pair on rings allocated from the
guest allocator, a kick calls `queue_notify`, and `signal_used` runs the driver's
callback when the ring says the driver wants an interrupt. No status register, no
generation counter: the transports' own tests cover those.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from impl.alloc import GuestAllocator
from impl.device import DeviceBackend, DeviceContext, DeviceQueue
from impl.driver import DriverQueue, QueueCallback, VirtioDriver
from impl.errors import VirtioError
from impl.layout import SplitLayout
from impl.memory import GuestMemory
from impl.spec import LEGACY_QUEUE_ALIGN, has_feature
from impl.split_device import SplitDevice
from impl.split_driver import SplitDriver

RING_REGION = 1 << 20
"""Bytes at the start of guest memory reserved for rings (the rest is for buffers)."""


@dataclass
class DirectHandle:
    """The `VirtioDevice` handle a driver gets from the direct bus."""

    backend: DeviceBackend
    mem: GuestMemory
    ring_allocator: GuestAllocator
    buffer_allocator: GuestAllocator
    features: int
    drivers: list[SplitDriver] = field(default_factory=list)
    devices: list[SplitDevice] = field(default_factory=list)
    callbacks: list[QueueCallback | None] = field(default_factory=list)
    resets_needed: list[VirtioError] = field(default_factory=list)
    driver: VirtioDriver | None = None
    config_changes: int = 0

    @property
    def device_id(self) -> int:
        return int(self.backend.device_id)

    @property
    def vendor_id(self) -> int:
        return self.backend.vendor_id

    def has_feature(self, bit: int) -> bool:
        return has_feature(self.features, bit)

    def read_config(self, offset: int, length: int) -> bytes:
        return self.backend.read_config(offset, length)

    def write_config(self, offset: int, data: bytes) -> None:
        self.backend.write_config(offset, data)

    def find_vqs(
        self, names: Sequence[str], callbacks: Sequence[QueueCallback | None]
    ) -> list[DriverQueue]:
        sizes = self.backend.queue_max_sizes()
        for index, _ in enumerate(names):
            layout = self._layout(sizes[index])
            notify = self._notifier(index)
            self.drivers.append(
                SplitDriver(
                    self.mem, layout, self.features, allocator=self.buffer_allocator, notify=notify
                )
            )
            self.devices.append(SplitDevice(self.mem, layout, self.features))
        self.callbacks = list(callbacks)
        return list(self.drivers)

    def _layout(self, size: int) -> SplitLayout:
        probe = SplitLayout.modern(size, 0)
        base = self.ring_allocator.alloc(probe.end, LEGACY_QUEUE_ALIGN)
        assert base is not None, "the ring region is large enough"
        return SplitLayout.modern(size, base)

    def _notifier(self, index: int):  # type: ignore[no-untyped-def]
        return lambda: self.backend.queue_notify(index)

    def reset(self) -> None:
        self.backend.reset()

    # --- the device side's hooks ----------------------------------------------------
    def signal_used(self, index: int) -> None:
        """Interrupt the driver for queue `index` if its ring asks for it."""
        if self.devices[index].needs_notification():
            callback = self.callbacks[index]
            if callback is not None:
                callback(self.drivers[index])

    def config_changed(self) -> None:
        """The configuration-change interrupt: the bus calls the driver's handler."""
        self.config_changes += 1
        if self.driver is not None:
            self.driver.config_changed(self)

    def needs_reset(self, error: VirtioError) -> None:
        self.resets_needed.append(error)


def connect(
    backend: DeviceBackend,
    driver: VirtioDriver,
    mem: GuestMemory,
    buffer_allocator: GuestAllocator,
) -> DirectHandle:
    """Negotiate, probe the driver, then activate the backend (DRIVER_OK)."""
    features = backend.offered_features() & driver.feature_table
    handle = DirectHandle(
        backend, mem, GuestAllocator(0, RING_REGION), buffer_allocator, features
    )
    handle.driver = driver
    driver.probe(handle)
    queues: list[DeviceQueue | None] = list(handle.devices)
    backend.activate(
        DeviceContext(
            mem=mem,
            features=features,
            queues=queues,
            signal_used=handle.signal_used,
            config_changed=handle.config_changed,
            needs_reset=handle.needs_reset,
        )
    )
    return handle


def guest(size: int = 1 << 24) -> tuple[GuestMemory, GuestAllocator]:
    """A guest memory whose first `RING_REGION` bytes hold rings and the rest buffers."""
    return GuestMemory(size), GuestAllocator(RING_REGION, size)
