"""The transport-neutral half of a device: status, features, queue setup, interrupts.

A transport (virtio-mmio's register file, the descriptor page) is a thin decoder in
front of a `DeviceCore`: it turns register accesses or hypercalls into the calls here.
The core owns what every transport shares: the status field and its legal order, the
64-bit feature negotiation, the per-queue configuration (size and three addresses) and
its enablement, the interrupt status bits, the configuration generation, and the
`DeviceBackend` of the device type, which it activates at DRIVER_OK with one
`SplitDevice` or `PackedDevice` per enabled queue.

Rules:
- A hostile driver never makes the core raise: each violation is recorded as a typed
  `DriverError` in `violations` and given the outcome docs/transports.md lists for it:
  *ignored* (the access has no effect), *FEATURES_OK refused* (FEAT-DEV-002), or
  *DEVICE_NEEDS_RESET* plus a configuration change interrupt when DRIVER_OK is set
  (STATUS-DEV-002, STATUS-DEV-003). Writing 0 to status always recovers.
- When FEATURES_OK is granted the backend hears `features_accepted(features)` before
  the status write returns, so the driver's next config read sees what the accepted
  features decide (§3.1.1 step 5). A legacy device has no FEATURES_OK: it freezes
  the features at DRIVER_OK and calls the hook there, just before `activate`.
- Before DRIVER_OK the device touches no queue and sends no used buffer notification
  (STATUS-DEV-001); after a reset the backend's old context is dead: its callbacks
  are ignored (RESET-DEV-002).
- Area address 0 means "not programmed", as QEMU reads it: a queue with any area at 0
  is refused.
- Ring type: a core built with `packed=True` (and not legacy: RING_PACKED needs
  VERSION_1) also offers VIRTIO_F_RING_PACKED. A queue is judged, when the driver
  enables it, as the ring type of the features the driver has accepted at that moment
  (packed when RING_PACKED is accepted and offered): a packed size is any of
  1..QueueNumMax, a split size a power of two up to it (§2.7, §2.8). The type is
  recorded with the queue; DRIVER_OK with a queue enabled under the other type than
  the one negotiated is a driver error (DEVICE_NEEDS_RESET): the driver changed
  RING_PACKED after programming the queue.
- This module decides from its own code; `model/status.py` states the same rules
  independently and the stateful tests compare the two.

Spec: §2.1 (status), §2.2 (features), §2.4 (reset), §2.5.1 (generation), §3.1.1
(initialization), §2.8 and §6 (VIRTIO_F_RING_PACKED), §4.2.2 and §4.2.3 (the register
semantics both transports share).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .device import DeviceBackend, DeviceContext, DeviceQueue
from .errors import (
    BadInterruptAck,
    ChainError,
    DriverError,
    FeaturesFrozen,
    FeaturesNotOffered,
    IllegalStatusWrite,
    InvalidLayout,
    NotifyNotLive,
    QueueBroken,
    QueueBusy,
    QueueConfigInvalid,
    VirtioError,
)
from .layout import SplitLayout, is_valid_queue_size
from .memory import GuestMemory
from .packed_device import PackedDevice
from .packed_layout import PackedLayout, is_valid_packed_size
from .spec import (
    DRIVER_STATUS_BITS,
    FEATURE_WORD_BITS,
    FEATURE_WORDS,
    INTERRUPT_BITS,
    LEGACY_QUEUE_ALIGN,
    Feature,
    InterruptBit,
    Status,
    has_feature,
)
from .split_device import SplitDevice
from .transport import PACKED_RING, RING_FEATURES, TRANSPORT_FEATURES

_WORD_MASK = (1 << FEATURE_WORD_BITS) - 1

STATUS_ORDER: tuple[tuple[Status, Status], ...] = (
    (Status.ACKNOWLEDGE, Status(0)),
    (Status.DRIVER, Status.ACKNOWLEDGE),
    (Status.FEATURES_OK, Status.ACKNOWLEDGE | Status.DRIVER),
    (Status.DRIVER_OK, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK),
    (Status.FAILED, Status(0)),
)
"""Each driver status bit and the bits that must be set with or before it (§3.1.1)."""


@dataclass
class QueueConfig:
    """One queue's driver-programmed configuration (§4.2.2 QueueNum .. QueueDeviceHigh).

    Legacy transports program `legacy_base` (page number times page size) and `align`
    instead of the three addresses.
    """

    max_size: int
    size: int = 0
    desc: int = 0
    driver: int = 0
    device: int = 0
    ready: bool = False
    legacy_base: int = 0
    align: int = LEGACY_QUEUE_ALIGN
    packed: bool = False
    """The ring type the queue was judged as when enabled (§2.8: a packed ring)."""

    def clear(self) -> None:
        """Back to the reset state: not ready, size = max, nothing programmed."""
        self.size, self.desc, self.driver, self.device = self.max_size, 0, 0, 0
        self.ready, self.legacy_base, self.align = False, 0, LEGACY_QUEUE_ALIGN
        self.packed = False


@dataclass
class _Activation:
    """What exists only between DRIVER_OK and the next reset."""

    epoch: int
    queues: list[SplitDevice | PackedDevice | None] = field(default_factory=list)


class DeviceCore:
    """One device's transport-neutral state over `mem`, serving `backend`.

    `legacy` selects the pre-1.0 handshake: no FEATURES_OK step, features frozen at
    DRIVER_OK, queues placed by page frame number. `packed` adds VIRTIO_F_RING_PACKED
    to the offer (never on a legacy device). `on_interrupt` is the interrupt
    line: called each time the core sets a bit in the interrupt status. `on_publish` is
    called when device-side state changes without a driver access (a new generation,
    DEVICE_NEEDS_RESET), for transports that mirror that state in guest memory.
    """

    def __init__(
        self, backend: DeviceBackend, mem: GuestMemory, *, legacy: bool = False,
        packed: bool = False,
    ) -> None:
        self.backend = backend
        self.mem = mem
        self.legacy = legacy
        self.packed = packed and not legacy
        self.queues = [QueueConfig(max_size=m) for m in backend.queue_max_sizes()]
        self.violations: list[VirtioError] = []
        self.interrupts_raised = 0
        self.config_generation = 0
        self._epoch = 0
        self.on_interrupt: Callable[[], None] | None = None
        self.on_publish: Callable[[], None] | None = None
        self._reset_state()

    def _reset_state(self) -> None:
        self._status = 0
        self.driver_features = 0
        self.features_frozen = False
        self.interrupt_status = 0
        self._active: _Activation | None = None
        for queue in self.queues:
            queue.clear()

    # --- reset (§2.4) -----------------------------------------------------------------
    def reset(self) -> None:
        """Status 0, features and queues forgotten, interrupt bits cleared (MMIO-DEV-005)."""
        self._epoch += 1
        self._reset_state()
        self.backend.reset()

    # --- status (§2.1, §3.1.1) -----------------------------------------------------------
    @property
    def status(self) -> int:
        """The status field as the driver reads it."""
        return self._status

    @property
    def offered_features(self) -> int:
        """The backend's offer without transport bits this project does not implement.

        A device never offers what it would not support (FEAT-DEV-003): of bits 24..49
        only `RING_FEATURES` pass, and RING_PACKED when the core serves packed rings
        (which it then offers whatever the backend says); a legacy device offers 32
        bits, so neither VERSION_1 nor RING_PACKED.
        """
        ring_bits = RING_FEATURES | (PACKED_RING if self.packed else 0)
        offer = self.backend.offered_features() & ~(TRANSPORT_FEATURES & ~ring_bits)
        if self.packed:
            offer |= PACKED_RING
        if self.legacy:
            offer &= (1 << FEATURE_WORD_BITS) - 1
        return offer

    @property
    def packed_accepted(self) -> bool:
        """Whether the driver's accepted features (so far) select packed rings (§2.8)."""
        return self.packed and has_feature(self.driver_features, Feature.RING_PACKED)

    @property
    def active(self) -> bool:
        """Whether DRIVER_OK was accepted and the backend is serving its queues."""
        return self._active is not None

    def write_status(self, value: int) -> None:
        """Apply a driver's status write: 0 resets; otherwise bits may only be added, in order."""
        if value == 0:
            self.reset()
            return
        current = self._status & DRIVER_STATUS_BITS
        wanted = value & DRIVER_STATUS_BITS
        if self.legacy:
            wanted &= ~int(Status.FEATURES_OK)
        if current & ~wanted:
            self._driver_broke(IllegalStatusWrite(f"status {value:#x} clears bits of {current:#x}"))
            return
        added = wanted & ~current
        if current & Status.FAILED and added & ~int(Status.FAILED):
            self._driver_broke(IllegalStatusWrite("status bits set after FAILED without a reset"))
            return
        if added & Status.FEATURES_OK and not self._features_acceptable():
            added &= ~int(Status.FEATURES_OK)
        new = current | added
        for bit, needs in STATUS_ORDER:
            if self.legacy:
                needs &= ~int(Status.FEATURES_OK)
            if added & bit and needs & ~new:
                self._driver_broke(IllegalStatusWrite(f"{bit.name} set before {needs!r}"))
                return
        if added & Status.DRIVER_OK and self._ring_type_changed():
            self._driver_broke(IllegalStatusWrite("RING_PACKED changed after a queue was enabled"))
            return
        self._status = (self._status & ~DRIVER_STATUS_BITS) | new
        if added & Status.FEATURES_OK:
            self.features_frozen = True
            self.backend.features_accepted(self.driver_features)
        if added & Status.DRIVER_OK:
            self._activate()

    def _ring_type_changed(self) -> bool:
        """An enabled queue judged as the other ring type than the one negotiated."""
        packed = self.packed_accepted
        return any(queue.ready and queue.packed != packed for queue in self.queues)

    def _features_acceptable(self) -> bool:
        """FEATURES_OK is granted only for a subset of the offer including VERSION_1 (§2.2)."""
        extra = self.driver_features & ~self.offered_features
        if extra:
            self.violations.append(FeaturesNotOffered(f"accepted bits {extra:#x} not offered"))
            return False
        if not has_feature(self.driver_features, Feature.VERSION_1):
            self.violations.append(FeaturesNotOffered("VERSION_1 not accepted by a modern driver"))
            return False
        return True

    # --- features (§2.2) -------------------------------------------------------------------
    def device_features_word(self, select: int) -> int:
        """Bits 32*select .. 32*select+31 of the offer; 0 beyond the words carried."""
        if not 0 <= select < FEATURE_WORDS:
            return 0
        return self.offered_features >> (FEATURE_WORD_BITS * select) & _WORD_MASK

    def write_driver_features_word(self, select: int, value: int) -> None:
        """Store one 32-bit word of the driver's accepted features, unless frozen (§3.1.1)."""
        if self.features_frozen:
            self.violations.append(FeaturesFrozen("driver features written after FEATURES_OK"))
            return
        if not 0 <= select < FEATURE_WORDS:
            return
        shift = FEATURE_WORD_BITS * select
        self.driver_features &= ~(_WORD_MASK << shift)
        self.driver_features |= (value & _WORD_MASK) << shift

    # --- queues (§2.6, §4.2.2) ---------------------------------------------------------------
    def queue_config(self, index: int) -> QueueConfig | None:
        """The configuration of queue `index`, or None if the device has no such queue."""
        return self.queues[index] if 0 <= index < len(self.queues) else None

    def queue_writable(self, index: int) -> QueueConfig | None:
        """The queue whose registers the driver may write now, else None (recorded)."""
        queue = self.queue_config(index)
        if queue is None:
            return None
        if queue.ready or self._status & Status.DRIVER_OK:
            self.violations.append(QueueBusy(f"queue {index} registers written while live"))
            return None
        return queue

    def enable_queue(self, index: int) -> bool:
        """QueueReady = 1: accept the programmed layout if valid; return the ready bit."""
        queue = self.queue_writable(index)
        if queue is None:
            return False
        queue.packed = self.packed_accepted
        try:
            self._layout_of(queue).validate(self.mem.size)
        except QueueConfigInvalid as error:
            self.violations.append(error)
            return False
        except InvalidLayout as error:
            self.violations.append(QueueConfigInvalid(f"queue {index}: {error}"))
            return False
        queue.ready = True
        return True

    def disable_queue(self, index: int) -> None:
        """QueueReady = 0 before DRIVER_OK; a live queue is only stopped by a reset."""
        queue = self.queue_config(index)
        if queue is None:
            return
        if self._status & Status.DRIVER_OK:
            self.violations.append(QueueBusy(f"queue {index} disabled after DRIVER_OK"))
            return
        queue.ready = False

    def _layout_of(self, queue: QueueConfig) -> SplitLayout | PackedLayout:
        """The layout the queue's registers describe; raises if it cannot be one.

        Packed (§2.8): any size 1..max. Split (§2.7): a power of two up to max.
        """
        if queue.packed:
            if not is_valid_packed_size(queue.size) or queue.size > queue.max_size:
                raise QueueConfigInvalid(f"packed size {queue.size} not in 1..{queue.max_size}")
            if 0 in (queue.desc, queue.driver, queue.device):
                raise QueueConfigInvalid("an area address is 0 (not programmed)")
            return PackedLayout(queue.size, queue.desc, queue.driver, queue.device)
        if not is_valid_queue_size(queue.size) or queue.size > queue.max_size:
            raise QueueConfigInvalid(f"size {queue.size} not a power of two <= {queue.max_size}")
        if self.legacy:
            if queue.legacy_base == 0 or not is_valid_queue_size(queue.align):
                raise QueueConfigInvalid(f"base {queue.legacy_base:#x}, align {queue.align}")
            return SplitLayout.legacy(queue.size, queue.legacy_base, queue.align)
        if 0 in (queue.desc, queue.driver, queue.device):
            raise QueueConfigInvalid("an area address is 0 (not programmed)")
        return SplitLayout(queue.size, queue.desc, queue.driver, queue.device)

    # --- activation (§3.1.1 step 8) -------------------------------------------------------
    def _activate(self) -> None:
        if self.legacy:
            self.driver_features &= self.offered_features
            self.features_frozen = True
            self.backend.features_accepted(self.driver_features)
        activation = _Activation(self._epoch)
        for queue in self.queues:
            activation.queues.append(self._device_queue(queue) if queue.ready else None)
        self._active = activation
        epoch = self._epoch
        queues: list[DeviceQueue | None] = list(activation.queues)
        context = DeviceContext(
            mem=self.mem,
            features=self.driver_features,
            queues=queues,
            signal_used=lambda index: self._signal_used(epoch, index),
            config_changed=lambda: self._config_changed(epoch),
            needs_reset=lambda error: self._needs_reset(epoch, error),
        )
        self.backend.activate(context)

    def _device_queue(self, queue: QueueConfig) -> SplitDevice | PackedDevice:
        """The device half of an enabled queue, of the ring type it was enabled as."""
        layout = self._layout_of(queue)
        if isinstance(layout, PackedLayout):
            return PackedDevice(self.mem, layout, self.driver_features)
        return SplitDevice(self.mem, layout, self.driver_features)

    # --- notifications (§2.7.10, §4.2.3.3) -------------------------------------------------
    def notify(self, index: int) -> None:
        """The driver's available buffer notification for queue `index`.

        A kick on a queue already broken by recorded ring corruption (the device needs
        a reset) is ignored: the violation was recorded when the ring broke.
        """
        active = self._active
        live = active.queues[index] if active and 0 <= index < len(active.queues) else None
        if live is None:
            self.violations.append(NotifyNotLive(f"notify of queue {index} that is not live"))
            return
        try:
            self.backend.queue_notify(index)
        except ChainError as error:
            self.violations.append(error)
        except DriverError as error:
            self._driver_broke(error)
        except QueueBroken as error:
            if not self._status & Status.DEVICE_NEEDS_RESET:
                self._driver_broke(error)

    def _signal_used(self, epoch: int, index: int) -> None:
        """Backend pushed used elements on `index`: interrupt if the ring asks (§2.7.7.2)."""
        active = self._active
        if epoch != self._epoch or active is None or not 0 <= index < len(active.queues):
            return
        queue = active.queues[index]
        if queue is not None and queue.needs_notification():
            self._interrupt(InterruptBit.USED_BUFFER)

    def _interrupt(self, bits: int) -> None:
        self.interrupt_status |= bits
        self.interrupts_raised += 1
        if self.on_interrupt is not None:
            self.on_interrupt()

    def ack_interrupt(self, bits: int) -> None:
        """InterruptACK: clear the handled bits (MMIO-DEV-003); undefined bits are recorded."""
        if bits & ~INTERRUPT_BITS:
            self.violations.append(BadInterruptAck(f"ack of undefined bits {bits:#x}"))
        self.interrupt_status &= ~(bits & INTERRUPT_BITS)

    # --- configuration space (§2.5) --------------------------------------------------------
    def read_config(self, offset: int, length: int) -> bytes:
        """`length` config bytes at `offset`; what the backend cannot give reads as zeros."""
        try:
            data = self.backend.read_config(offset, length)
        except VirtioError:
            data = b""
        return bytes(data[:length]).ljust(length, b"\0")

    def write_config(self, offset: int, data: bytes) -> None:
        """A driver's config write, passed to the backend (which ignores read-only fields)."""
        try:
            self.backend.write_config(offset, data)
        except DriverError as error:
            self.violations.append(error)

    def config_changed(self) -> None:
        """The host changed config space: new generation, and an interrupt if live (§2.5)."""
        self._config_changed(self._epoch)

    def _config_changed(self, epoch: int) -> None:
        if epoch != self._epoch:
            return
        self.config_generation += 1
        self._publish()
        if self._status & Status.DRIVER_OK:
            self._interrupt(InterruptBit.CONFIG_CHANGE)

    def _publish(self) -> None:
        if self.on_publish is not None:
            self.on_publish()

    # --- failure (§2.1.2) ------------------------------------------------------------------
    def _needs_reset(self, epoch: int, error: VirtioError) -> None:
        if epoch == self._epoch:
            self._driver_broke(error)

    def _driver_broke(self, error: VirtioError) -> None:
        """Record `error`, set DEVICE_NEEDS_RESET and tell a live driver (STATUS-DEV-003)."""
        self.violations.append(error)
        already = self._status & Status.DEVICE_NEEDS_RESET
        self._status |= Status.DEVICE_NEEDS_RESET
        self._publish()
        if not already and self._status & Status.DRIVER_OK:
            self._interrupt(InterruptBit.CONFIG_CHANGE)
