"""A stand-in transport: binds a `VirtioDriver` to a `DeviceBackend` over one guest memory.

No registers, no status byte: the driver gets a `VirtioDevice` handle whose features
are offered ∩ known as the driver's `validate` narrows them (the backend then hears
`features_accepted`, where FEATURES_OK would be granted), `find_vqs` lays out split
rings in the guest memory and pairs a `SplitDriver` with a `SplitDevice` for each, a
kick calls the backend's `queue_notify`, and `signal_used` runs the queue's callback
when the device side says the driver wants an interrupt. `bind` probes, then
activates (DRIVER_OK).
Interrupts run the callback at once, or with `immediate=False` wait (one pending flag
per queue, as a level-triggered line) until the test calls `deliver()`.
This is what the real transports (virtio-mmio, the descriptor page) do with bytes;
it exists so device types can be tested before those land and is replaced by them.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from impl.alloc import GuestAllocator
from impl.chain import Segment
from impl.device import DeviceBackend, DeviceContext, DeviceQueue
from impl.driver import DriverQueue, QueueCallback, VirtioDriver
from impl.errors import ConfigWriteTooEarly, VirtioError
from impl.layout import SplitLayout, avail_ring_bytes, desc_table_bytes, used_ring_bytes
from impl.memory import GuestMemory
from impl.spec import has_feature
from impl.split_device import SplitDevice
from impl.split_driver import SplitDriver

RING_ALIGN = 4096


class DirectQueue:
    """A `DriverQueue` whose kick reaches the backend directly."""

    def __init__(self, ring: SplitDriver, backend: DeviceBackend, index: int) -> None:
        self.ring = ring
        self.size = ring.size
        self._backend = backend
        self._index = index
        self.kicks = 0

    def add_sgs(self, out: Sequence[Segment], in_: Sequence[Segment], token: Hashable) -> int:
        return self.ring.add_sgs(out, in_, token)

    def kick(self) -> bool:
        if not self.ring.kick_prepare():
            return False
        self.kicks += 1
        self._backend.queue_notify(self._index)
        return True

    def get_buf(self) -> tuple[Hashable, int] | None:
        return self.ring.get_buf()

    def detach_unused_buf(self) -> Hashable | None:
        return self.ring.detach_unused_buf()

    def disable_cb(self) -> None:
        self.ring.disable_cb()

    def enable_cb(self) -> bool:
        return self.ring.enable_cb()

    def more_used(self) -> bool:
        return self.ring.more_used()


class DirectDevice:
    """The `VirtioDevice` handle of one backend, seen by one driver."""

    def __init__(
        self, backend: DeviceBackend, mem: GuestMemory, allocator: GuestAllocator, known: int
    ) -> None:
        self.backend = backend
        self.mem = mem
        self.allocator = allocator
        self._features = backend.offered_features() & known
        self.queues: list[DirectQueue] = []
        self.device_queues: list[SplitDevice] = []
        self.callbacks: list[QueueCallback | None] = []
        self.driver: VirtioDriver | None = None
        self.reset_requests: list[VirtioError] = []
        self.interrupts = 0
        self.config_interrupts = 0
        self.queue_size: int | None = None
        self.immediate = True
        self.pending: set[int] = set()
        self.config_pending = False
        self.validating = False

    @property
    def device_id(self) -> int:
        return int(self.backend.device_id)

    @property
    def vendor_id(self) -> int:
        return self.backend.vendor_id

    @property
    def features(self) -> int:
        return self._features

    def has_feature(self, bit: int) -> bool:
        return has_feature(self._features, bit)

    @property
    def config_size(self) -> int | None:
        size = getattr(self.backend, "config_size", None)
        return size if isinstance(size, int) else None

    def read_config(self, offset: int, length: int) -> bytes:
        return self.backend.read_config(offset, length)

    def write_config(self, offset: int, data: bytes) -> None:
        if self.validating:
            raise ConfigWriteTooEarly(f"config write at {offset} before FEATURES_OK")
        self.backend.write_config(offset, data)

    def find_vqs(
        self, names: Sequence[str], callbacks: Sequence[QueueCallback | None]
    ) -> list[DriverQueue]:
        maxima = self.backend.queue_max_sizes()
        for index in range(len(names)):
            size = min(maxima[index], self.queue_size or maxima[index])
            layout = self._layout(size)
            ring = SplitDriver(self.mem, layout, self._features, allocator=self.allocator)
            self.queues.append(DirectQueue(ring, self.backend, index))
            self.device_queues.append(SplitDevice(self.mem, layout, self._features))
            self.callbacks.append(callbacks[index])
        return list(self.queues)

    def _layout(self, size: int) -> SplitLayout:
        total = desc_table_bytes(size) + avail_ring_bytes(size) + used_ring_bytes(size) + 64
        base = self.allocator.alloc(total, RING_ALIGN)
        assert base is not None, "guest memory too small for the rings"
        return SplitLayout.modern(size, base)

    def accept_features(self, driver: VirtioDriver) -> None:
        """§3.1.1 steps 4-5 without registers: the driver validates the proposal, the
        backend hears what was accepted (as at FEATURES_OK)."""
        self.validating = True
        try:
            kept = driver.validate(self, self._features)
        finally:
            self.validating = False
        assert kept & ~self._features == 0, "validate may only clear bits"
        self._features = kept
        self.backend.features_accepted(kept)

    def activate(self) -> None:
        """DRIVER_OK: hand the backend its queues."""
        queues: list[DeviceQueue | None] = list(self.device_queues)
        context = DeviceContext(
            mem=self.mem,
            features=self._features,
            queues=queues,
            signal_used=self._signal_used,
            config_changed=self._config_changed,
            needs_reset=self.reset_requests.append,
        )
        self.backend.activate(context)

    def _signal_used(self, index: int) -> None:
        if not self.device_queues[index].needs_notification():
            return
        self.interrupts += 1
        self.pending.add(index)
        if self.immediate:
            self.deliver()

    def deliver(self) -> int:
        """Run the callback of every queue with a pending interrupt; return how many."""
        count = 0
        if self.config_pending and self.driver is not None:
            self.config_pending = False
            self.driver.config_changed(self)
            count += 1
        while self.pending:
            index = min(self.pending)
            self.pending.discard(index)
            callback = self.callbacks[index]
            if callback is not None:
                callback(self.queues[index])
            count += 1
        return count

    def _config_changed(self) -> None:
        self.config_interrupts += 1
        self.config_pending = True
        if self.immediate:
            self.deliver()

    def reset(self) -> None:
        self.backend.reset()


def bind(
    driver: Any,
    backend: DeviceBackend,
    mem: GuestMemory,
    allocator: GuestAllocator,
    *,
    queue_size: int | None = None,
    immediate: bool = True,
) -> DirectDevice:
    """Probe `driver` on `backend` and set DRIVER_OK; return the handle."""
    handle = DirectDevice(backend, mem, allocator, driver.feature_table)
    handle.queue_size = queue_size
    handle.immediate = immediate
    handle.driver = driver
    handle.accept_features(driver)
    driver.probe(handle)
    handle.activate()
    return handle
