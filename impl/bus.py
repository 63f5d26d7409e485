"""The driver-side virtio bus: registration, matching, the §3.1.1 probe, queues, interrupts.

This mirrors Linux's virtio core. Transports register devices (a `TransportAccessor`
each) and device drivers register `VirtioDriver`s, in either order; each device is
bound to the first driver whose id table matches it and whose probe succeeds.

Rules:
- Probe follows §3.1.1: reset; ACKNOWLEDGE; DRIVER; read the offer; accept offered ∩
  known (the driver's device-type bits plus the ring features this bus is given,
  never a bit not offered, FEAT-DRV-001/003), then drop every bit whose prerequisites
  (the driver's optional `feature_requires` table) were not all offered and kept
  (FEAT-DRV-001/002); a modern device must offer VERSION_1,
  which is then accepted (FEAT-DRV-006/007); the driver's `validate` (it may clear
  bits or refuse the device; requirements are re-checked after it); the features are
  written, then FEATURES_OK, read back; the driver's `probe`; DRIVER_OK. Any
  `VirtioError` on the way sets FAILED, frees every queue and leaves the device
  registered but unbound (INIT-DRV-004/005).
- Ring type: with VIRTIO_F_RING_PACKED negotiated (only if the bus's `ring_features`
  include it, and never on a legacy device) `find_vqs` lays out packed rings
  (`PackedLayout`: descriptor ring, driver and device event suppression) of the
  queue's maximum size capped at the bus's `queue_size`, any size, and builds a
  `PackedDriver`; otherwise split rings of the largest power of two that fits.
- Kicks before DRIVER_OK are held and sent right after it (INIT-DRV-006).
- Remove: reset (INIT-DRV-008), the driver's `remove`, then any buffer still
  outstanding is detached by the bus (`detached`), and the rings are freed.
- The interrupt handler reads the interrupt status, acknowledges exactly the defined
  bits it saw (MMIO-DRV-013/023), ignores undefined ones (MMIO-DRV-012), runs the
  callback of each queue with used buffers (Linux's `vring_interrupt`) and tells the
  driver about configuration changes. A spurious interrupt does nothing.
- Config reads retry until the generation is stable, a bounded number of times
  (§2.5.1, CONFIG-DRV-001). A config write while the driver validates (before
  FEATURES_OK) is refused with `ConfigWriteTooEarly` (INIT-DRV-002).

Spec: §3.1.1 (initialization), §3.3 (cleanup), §2.2, §2.5.1, §2.6, §2.7 and §2.8 (the
two ring types), §4.2.3.2, §4.2.3.4.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from .alloc import GuestAllocator
from .driver import DriverQueue, QueueCallback, VirtioDriver
from .errors import (
    BusMisuse,
    ConfigUnstable,
    ConfigWriteTooEarly,
    DeviceError,
    FeaturesRefused,
    NoSpace,
    NoVersion1,
    QueueNotEnabled,
    QueueUnavailable,
    ResetIncomplete,
    ValidateAddedFeatures,
    VirtioError,
)
from .interrupts import InterruptController
from .layout import SplitLayout
from .memory import GuestMemory
from .packed_driver import PackedDriver
from .packed_layout import PackedLayout
from .spec import (
    FEATURE_WORD_BITS,
    INTERRUPT_BITS,
    LEGACY_PAGE_SIZE,
    MAX_QUEUE_SIZE,
    Feature,
    InterruptBit,
    Status,
    feature_mask,
    has_feature,
)
from .split_driver import SplitDriver
from .transport import (
    IMPLEMENTED_RING_FEATURES,
    RING_FEATURES,
    TRANSPORT_FEATURES,
    QueueAreas,
    TransportAccessor,
)

CONFIG_READ_RETRIES = 16
"""How many times a config read is retried while the generation keeps moving."""

RESET_POLLS = 16
"""How many times status is read after writing 0 before the reset counts as failed."""

DEFAULT_QUEUE_SIZE = 256
"""The largest ring this bus allocates (smaller if the device's maximum is)."""


FeatureRequires = Mapping[int, Sequence[int]]
"""Feature bit -> every bit it requires, as a device type's feature section lists them.

A driver may carry one as `feature_requires`; only all-of requirements are expressed
(an either-or requirement is left out, and its bit must then stay unknown to the driver).
"""


def accepted_features(
    offered: int,
    known: int,
    ring_features: int,
    *,
    legacy: bool,
    requires: FeatureRequires | None = None,
) -> int:
    """The bits a driver accepts: offered AND (device-type bits it knows OR ring bits) (§2.2),
    without any bit whose prerequisites are not all among them (§2.2.1)."""
    wanted = (known & ~TRANSPORT_FEATURES) | (ring_features & IMPLEMENTED_RING_FEATURES)
    if legacy:
        wanted &= (1 << FEATURE_WORD_BITS) - 1
        wanted &= ~feature_mask(Feature.VERSION_1, Feature.RING_PACKED)
    return without_unmet_requirements(offered & wanted, requires or {})


def without_unmet_requirements(features: int, requires: FeatureRequires) -> int:
    """Drop each bit whose required bits are not all set, until nothing more drops.

    This is the driver validating the offer (FEAT-DRV-002): a device that offers a
    feature without what it requires (breaking FEAT-DEV-001) does not make the driver
    accept a feature missing its prerequisite (FEAT-DRV-001). At most one pass per bit.
    """
    for _ in range(len(requires) + 1):
        unmet = [
            bit for bit, needs in requires.items()
            if has_feature(features, bit) and not all(has_feature(features, n) for n in needs)
        ]
        if not unmet:
            break
        features &= ~feature_mask(*unmet)
    return features


class BusDevice:
    """A device on the bus as its driver sees it (implements `driver.VirtioDevice`)."""

    def __init__(self, bus: VirtioBus, transport: TransportAccessor) -> None:
        self.transport = transport
        self._bus = bus
        self.driver: VirtioDriver | None = None
        self._features = 0
        self.queues: list[SplitDriver | PackedDriver] = []
        self._callbacks: list[QueueCallback | None] = []
        self._rings: list[int] = []
        self._live = False
        self._held_kicks: list[int] = []
        self.probe_error: VirtioError | None = None
        self.errors: list[VirtioError] = []
        self.unknown_interrupt_bits = 0
        self.config_changes = 0
        self.needs_reset = False
        self.detached: list[object] = []
        self.validating = False
        """True while the driver's `validate` runs (config is then read-only, INIT-DRV-002)."""

    # --- identity and features ------------------------------------------------------------
    @property
    def device_id(self) -> int:
        """The device id the transport found."""
        return self.transport.device_id

    @property
    def vendor_id(self) -> int:
        """The vendor id the transport found."""
        return self.transport.vendor_id

    @property
    def features(self) -> int:
        """The negotiated feature word."""
        return self._features

    def has_feature(self, bit: int) -> bool:
        """Whether `bit` was negotiated."""
        return has_feature(self._features, bit)

    @property
    def mem(self) -> GuestMemory:
        """Guest memory, for a driver's data buffers."""
        return self._bus.mem

    @property
    def allocator(self) -> GuestAllocator:
        """The guest allocator rings come from; drivers allocate data buffers from it too."""
        return self._bus.allocator

    @property
    def live(self) -> bool:
        """Whether DRIVER_OK is set by this bus and no reset followed."""
        return self._live

    # --- status (§2.1, §2.4) ---------------------------------------------------------------
    def add_status(self, bit: int) -> None:
        """Set one more status bit, keeping the ones set (STATUS-DRV-001/002)."""
        self.transport.set_status(self.transport.get_status() | bit)

    def reset(self) -> None:
        """Write 0 to status and wait (bounded) to read 0 back (RESET-DRV-001)."""
        self._live = False
        self._held_kicks.clear()
        self.transport.set_status(0)
        for _ in range(RESET_POLLS):
            if self.transport.get_status() == 0:
                return
        raise ResetIncomplete("status never read back 0 after reset")

    def set_live(self) -> None:
        """Set DRIVER_OK and send the kicks held until now (INIT-DRV-006)."""
        self.add_status(Status.DRIVER_OK)
        self._live = True
        held, self._held_kicks = self._held_kicks, []
        for index in held:
            self.transport.notify(index)

    # --- config space (§2.5) ---------------------------------------------------------------
    @property
    def config_size(self) -> int | None:
        """The config size the transport publishes (the descriptor page's `config_len`),
        or None for a transport that publishes none (virtio-mmio)."""
        size = getattr(self.transport, "config_size", None)
        return size if isinstance(size, int) else None

    def read_config(self, offset: int, length: int) -> bytes:
        """A consistent read: retried until the generation is the same before and after."""
        for _ in range(CONFIG_READ_RETRIES):
            before = self.transport.config_generation()
            data = self.transport.read_config(offset, length)
            if self.transport.config_generation() == before:
                return data
        raise ConfigUnstable(f"config generation moved in {CONFIG_READ_RETRIES} reads")

    def write_config(self, offset: int, data: bytes) -> None:
        """Write config space; refused while the driver validates (INIT-DRV-002)."""
        if self.validating:
            raise ConfigWriteTooEarly(f"config write at {offset} before FEATURES_OK")
        self.transport.write_config(offset, data)

    # --- virtqueues (§2.6, §4.2.3.2) -------------------------------------------------------
    def find_vqs(
        self, names: Sequence[str], callbacks: Sequence[QueueCallback | None]
    ) -> list[DriverQueue]:
        """Set up queues 0..len(names)-1: size, ring in guest memory, addresses, enable."""
        if self.queues:
            raise BusMisuse("find_vqs called twice without del_vqs")
        try:
            for index, _name in enumerate(names):
                callback = callbacks[index] if index < len(callbacks) else None
                self._setup_queue(index, callback)
        except VirtioError:
            self.del_vqs()
            raise
        return list(self.queues)

    @property
    def packed(self) -> bool:
        """Whether VIRTIO_F_RING_PACKED was negotiated: every queue is a packed ring."""
        return self.has_feature(Feature.RING_PACKED)

    def _setup_queue(self, index: int, callback: QueueCallback | None) -> None:
        maximum = self.transport.queue_max(index)
        if maximum < 1:
            raise QueueUnavailable(f"queue {index} has maximum size {maximum}")
        fits = min(maximum, self._bus.queue_size, MAX_QUEUE_SIZE)
        layout = self._place_ring(fits if self.packed else 1 << (fits.bit_length() - 1))
        queue: SplitDriver | PackedDriver
        if isinstance(layout, PackedLayout):
            queue = PackedDriver(
                self.mem, layout, self._features, allocator=self.allocator,
                notify=self._notifier(index),
            )
        else:
            queue = SplitDriver(
                self.mem, layout, self._features, allocator=self.allocator,
                notify=self._notifier(index),
            )
        self.queues.append(queue)
        self._callbacks.append(callback)
        if not self.transport.setup_queue(index, layout):
            raise QueueNotEnabled(f"queue {index} did not read back ready")

    def _place_ring(self, size: int) -> QueueAreas:
        """Allocate a ring of `size` entries of the negotiated type and lay it out there.

        Packed: descriptor ring, then the two event suppression structures (§2.8.10.1).
        Split: the modern layout, or the legacy contiguous one (§2.7.2).
        """
        legacy = self.transport.legacy
        if self.packed:
            shape: QueueAreas = PackedLayout.modern(size)
        else:
            shape = SplitLayout.legacy(size) if legacy else SplitLayout.modern(size)
        base = self.allocator.alloc(shape.end, LEGACY_PAGE_SIZE)
        if base is None:
            raise NoSpace(f"no guest memory for a ring of {size}")
        self._rings.append(base)
        if self.packed:
            return PackedLayout.modern(size, base)
        return SplitLayout.legacy(size, base) if legacy else SplitLayout.modern(size, base)

    def _notifier(self, index: int) -> Callable[[], None]:
        def notify() -> None:
            if self._live:
                self.transport.notify(index)
            elif index not in self._held_kicks:
                self._held_kicks.append(index)

        return notify

    def del_vqs(self) -> None:
        """Disable and free every queue's ring (after a reset or a failed probe)."""
        for index in range(len(self.queues)):
            self.transport.teardown_queue(index)
        for base in self._rings:
            self.allocator.free(base)
        self.queues, self._callbacks, self._rings = [], [], []

    def detach_all(self) -> None:
        """Take back every buffer still outstanding in any queue (after a reset, §3.3)."""
        for queue in self.queues:
            while (token := queue.detach_unused_buf()) is not None:
                self.detached.append(token)

    # --- interrupts (§2.3, §4.2.3.4) -------------------------------------------------------
    def interrupt(self) -> bool:
        """The interrupt handler; True if any defined bit was set (else spurious)."""
        status = self.transport.read_interrupt_status()
        handled = status & INTERRUPT_BITS
        self.unknown_interrupt_bits |= status & ~INTERRUPT_BITS
        if not handled:
            return False
        self.transport.ack_interrupt(handled)
        if handled & InterruptBit.USED_BUFFER:
            self._run_callbacks()
        if handled & InterruptBit.CONFIG_CHANGE:
            self._config_interrupt()
        return True

    def _run_callbacks(self) -> None:
        for queue, callback in zip(self.queues, self._callbacks, strict=True):
            if callback is None or queue.broken or not queue.more_used():
                continue
            try:
                callback(queue)
            except DeviceError as error:
                self.errors.append(error)

    def _config_interrupt(self) -> None:
        self.config_changes += 1
        if self.transport.get_status() & Status.DEVICE_NEEDS_RESET:
            self.needs_reset = True
        if self.driver is not None:
            self.driver.config_changed(self)


class VirtioBus:
    """Drivers and devices, matched in either order; rings come from `allocator` in `mem`.

    `ring_features` are the §6 ring bits the bus accepts for every driver when offered;
    add `transport.PACKED_RING` to negotiate packed rings. `queue_size` caps each ring.
    """

    def __init__(
        self,
        mem: GuestMemory,
        allocator: GuestAllocator,
        irqs: InterruptController,
        *,
        ring_features: int = RING_FEATURES,
        queue_size: int = DEFAULT_QUEUE_SIZE,
    ) -> None:
        self.mem = mem
        self.allocator = allocator
        self.irqs = irqs
        self.ring_features = ring_features
        self.queue_size = queue_size
        self.drivers: list[VirtioDriver] = []
        self.devices: list[BusDevice] = []

    # --- registration -------------------------------------------------------------------
    def register_driver(self, driver: VirtioDriver) -> None:
        """Add a driver and offer it every unbound device."""
        if driver in self.drivers:
            raise BusMisuse(f"driver {driver.name} is already registered")
        self.drivers.append(driver)
        for device in self.devices:
            if device.driver is None:
                self._try_bind(device, [driver])

    def unregister_driver(self, driver: VirtioDriver) -> None:
        """Remove every device bound to `driver`, then forget the driver."""
        if driver not in self.drivers:
            raise BusMisuse(f"driver {driver.name} is not registered")
        for device in self.devices:
            if device.driver is driver:
                self.remove(device)
        self.drivers.remove(driver)

    def register_virtio_device(self, transport: TransportAccessor) -> BusDevice:
        """Add a device found by a transport, wire its interrupt, and bind a driver if any."""
        device = BusDevice(self, transport)
        self.devices.append(device)
        self.irqs.request(device.transport.irq, device.interrupt)
        self._try_bind(device, self.drivers)
        return device

    def unregister_virtio_device(self, device: BusDevice) -> None:
        """Remove the device's driver (if bound) and forget the device."""
        if device not in self.devices:
            raise BusMisuse("device is not registered")
        if device.driver is not None:
            self.remove(device)
        self.irqs.free(device.transport.irq)
        self.devices.remove(device)

    # --- matching and probe (§3.1.1) -----------------------------------------------------------
    @staticmethod
    def matches(driver: VirtioDriver, device: BusDevice) -> bool:
        """Whether any id-table entry of `driver` serves `device`."""
        return any(m.matches(device.device_id, device.vendor_id) for m in driver.id_table)

    def _try_bind(self, device: BusDevice, drivers: Sequence[VirtioDriver]) -> None:
        for driver in drivers:
            if self.matches(driver, device) and self.probe(device, driver):
                return

    def probe(self, device: BusDevice, driver: VirtioDriver) -> bool:
        """Run §3.1.1 for `driver` on `device`; on any error set FAILED and return False."""
        device.probe_error = None
        try:
            self._negotiate(device, driver)
            device.driver = driver
            driver.probe(device)
            device.set_live()
        except VirtioError as error:
            device.probe_error = error
            device.driver = None
            device.add_status(Status.FAILED)
            device.del_vqs()
            return False
        return True

    def _negotiate(self, device: BusDevice, driver: VirtioDriver) -> None:
        """Steps 1-6 of §3.1.1: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK."""
        transport = device.transport
        device.reset()
        device.add_status(Status.ACKNOWLEDGE)
        device.add_status(Status.DRIVER)
        offered = transport.get_features()
        if not transport.legacy and not has_feature(offered, Feature.VERSION_1):
            raise NoVersion1("a modern device must offer VIRTIO_F_VERSION_1")
        requires = getattr(driver, "feature_requires", None)
        accepted = accepted_features(
            offered, driver.feature_table, self.ring_features, legacy=transport.legacy,
            requires=requires,
        )
        if not transport.legacy:
            accepted |= feature_mask(Feature.VERSION_1)
        accepted = self._validated(device, driver, accepted, requires or {})
        transport.set_features(accepted)
        device._features = accepted
        if transport.legacy:
            return
        device.add_status(Status.FEATURES_OK)
        if not transport.get_status() & Status.FEATURES_OK:
            raise FeaturesRefused("the device did not keep FEATURES_OK")

    @staticmethod
    def _validated(
        device: BusDevice, driver: VirtioDriver, proposed: int, requires: FeatureRequires
    ) -> int:
        """The driver's `validate` on the proposed features, before any is written (§3.1.1).

        The driver may only clear bits; what it cleared may leave another bit without its
        prerequisite, so requirements are applied again (FEAT-DRV-001). VERSION_1 stays
        accepted on a modern device (FEAT-DRV-006). A `DeviceError` refuses the device.
        """
        device._features = proposed
        device.validating = True
        try:
            kept = driver.validate(device, proposed)
        finally:
            device.validating = False
        if kept & ~proposed:
            raise ValidateAddedFeatures(
                f"{driver.name}.validate added bits {kept & ~proposed:#x}"
            )
        kept = without_unmet_requirements(kept, requires)
        return kept | (proposed & feature_mask(Feature.VERSION_1))

    def remove(self, device: BusDevice) -> None:
        """Reset the device, let its driver unbind, detach what is left, free the rings."""
        driver = device.driver
        device.reset()
        if driver is not None:
            driver.remove(device)
        device.detach_all()
        device.del_vqs()
        device.driver = None
