"""What a device's lifecycle means: status, features, queue enablement, interrupts owed.

This is the spec's device lifecycle as sets and flags, with no registers and no bytes.
A transport's device (virtio-mmio, the descriptor page) must look, through its
registers, exactly like `Lifecycle.view()` after the same operations; the stateful
tests compare the two after every step.

Rules, with the outcome this project chose where the spec leaves the device free
(docs/transports.md, "hostile driver"):
- Status (§2.1, §3.1.1): writing 0 resets everything. Otherwise the driver may only
  add bits (clearing one is STATUS-DRV-002) and only in the order of `PREREQUISITES`
  (a bit's prerequisites must be set with it or before it); nothing but FAILED may be
  added once FAILED is set. A write breaking these rules changes nothing but sets
  DEVICE_NEEDS_RESET (STATUS-DEV-002), and when DRIVER_OK is set the device also
  raises a configuration change interrupt (STATUS-DEV-003). Bits the device owns
  (DEVICE_NEEDS_RESET) in a write are not the driver's to set and are disregarded.
- Features (§2.2): the accepted set may change until FEATURES_OK (legacy: DRIVER_OK);
  later writes are ignored (INIT-DRV-003). FEATURES_OK is granted only if the
  accepted set is a subset of the offer and contains VERSION_1 (modern); otherwise the
  rest of that write applies and FEATURES_OK stays clear (FEAT-DEV-002).
- Queues (§2.6, §4.2.2): a queue may be enabled before DRIVER_OK with a valid layout
  (addresses programmed and valid; size a power of two up to its maximum for a split
  ring, any size from 1 to its maximum for a packed ring, §2.8); enabling otherwise
  is ignored. A queue is live from DRIVER_OK to the next reset.
- Ring type (§2.8, §6): a queue is a packed ring when, as it is enabled, the accepted
  set holds VIRTIO_F_RING_PACKED and the device offers it (never on a legacy device).
  DRIVER_OK with a queue enabled as the other type than the accepted set now selects
  is a broken rule like any other status write (DEVICE_NEEDS_RESET).
- Notifications (§2.7.10, STATUS-DEV-001): a kick reaches the device only for a live
  queue; any other is ignored.
- The interrupt promise (§2.7.7, §4.2.2): a used buffer the driver asked to hear
  about sets the used-buffer bit and owes that queue a callback; a configuration
  change after DRIVER_OK sets the config bit; a bit stays set until acknowledged
  (MMIO-DEV-003). After every pending interrupt is delivered, nothing is owed.

Spec: §2.1 (status), §2.2 and §6 (features), §2.4 (reset), §2.5.1 (generation),
§3.1.1 (initialization), §2.8 (packed ring sizes), §4.2.2 (interrupt status, queue ready).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from impl.spec import Feature, InterruptBit, Status

PREREQUISITES: dict[Status, frozenset[Status]] = {
    Status.ACKNOWLEDGE: frozenset(),
    Status.DRIVER: frozenset({Status.ACKNOWLEDGE}),
    Status.FEATURES_OK: frozenset({Status.ACKNOWLEDGE, Status.DRIVER}),
    Status.DRIVER_OK: frozenset({Status.ACKNOWLEDGE, Status.DRIVER, Status.FEATURES_OK}),
    Status.FAILED: frozenset(),
}
"""The driver's status bits and what must already be (or become) set with each (§3.1.1)."""

DRIVER_BITS = frozenset(PREREQUISITES)
"""The bits a driver sets; every other status bit is the device's."""


class Outcome(Enum):
    """What an operation did."""

    APPLIED = "applied"
    RESET = "reset"
    IGNORED = "ignored"
    FEATURES_REFUSED = "features refused"
    NEEDS_RESET = "device needs reset"


@dataclass
class QueueState:
    """One queue as the lifecycle sees it."""

    max_size: int
    enabled: bool = False
    packed: bool = False


@dataclass
class Lifecycle:
    """One device's lifecycle: offer and queue maxima fixed, the rest driven by the driver."""

    offered: frozenset[int]
    queue_max: tuple[int, ...]
    legacy: bool = False
    status: frozenset[Status] = frozenset()
    needs_reset: bool = False
    accepted: frozenset[int] = frozenset()
    frozen: bool = False
    queues: list[QueueState] = field(default_factory=list)
    interrupts: frozenset[InterruptBit] = frozenset()
    generation: int = 0
    owed: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.queues = [QueueState(m) for m in self.queue_max]

    # --- reset (§2.4) ---------------------------------------------------------------
    def reset(self) -> Outcome:
        """Everything back to its initial value; generation and the offer persist."""
        self.status, self.needs_reset = frozenset(), False
        self.accepted, self.frozen = frozenset(), False
        self.queues = [QueueState(m) for m in self.queue_max]
        self.interrupts = frozenset()
        self.owed = set()
        return Outcome.RESET

    @property
    def live(self) -> bool:
        """DRIVER_OK accepted and no reset since."""
        return Status.DRIVER_OK in self.status

    # --- status (§2.1, §3.1.1) -----------------------------------------------------------
    def write_status(self, bits: frozenset[Status]) -> Outcome:
        """A status write of `bits` (the empty set is the reset write)."""
        if not bits:
            return self.reset()
        wanted = bits & DRIVER_BITS
        if self.legacy:
            wanted -= {Status.FEATURES_OK}
        if self.status - wanted:
            return self._broken()
        added = wanted - self.status
        if Status.FAILED in self.status and added - {Status.FAILED}:
            return self._broken()
        refused = Status.FEATURES_OK in added and not self._acceptable()
        if refused:
            added -= {Status.FEATURES_OK}
        new = self.status | added
        for bit in added:
            needs = PREREQUISITES[bit] - ({Status.FEATURES_OK} if self.legacy else set())
            if needs - new:
                return self._broken()
        if Status.DRIVER_OK in added and any(
            q.enabled and q.packed != self.packed for q in self.queues
        ):
            return self._broken()
        self.status = new
        if Status.FEATURES_OK in added or (self.legacy and Status.DRIVER_OK in added):
            self.frozen = True
        return Outcome.FEATURES_REFUSED if refused else Outcome.APPLIED

    @property
    def packed(self) -> bool:
        """Whether the accepted set (so far) selects packed rings: offered and accepted."""
        both = self.accepted & self.offered
        return not self.legacy and Feature.RING_PACKED in both

    def _acceptable(self) -> bool:
        return self.accepted <= self.offered and Feature.VERSION_1 in self.accepted

    def _broken(self) -> Outcome:
        if not self.needs_reset and self.live:
            self.interrupts |= {InterruptBit.CONFIG_CHANGE}
        self.needs_reset = True
        return Outcome.NEEDS_RESET

    # --- features (§2.2) ---------------------------------------------------------------
    def write_features(self, accepted: frozenset[int]) -> Outcome:
        """The driver's accepted set; ignored once frozen."""
        if self.frozen:
            return Outcome.IGNORED
        self.accepted = accepted
        return Outcome.APPLIED

    @property
    def negotiated(self) -> frozenset[int]:
        """The features in force once live (legacy: what was accepted and offered)."""
        return self.accepted & self.offered if self.legacy else self.accepted

    # --- queues (§2.6, §4.2.2) -------------------------------------------------------------
    def enable_queue(self, index: int, size: int, layout_valid: bool) -> Outcome:
        """QueueReady = 1 for queue `index` of `size` at a layout the caller knows (in)valid."""
        if not 0 <= index < len(self.queues):
            return Outcome.IGNORED
        queue = self.queues[index]
        if queue.enabled or self.live:
            return Outcome.IGNORED
        size_fits = 0 < size <= queue.max_size
        if not self.packed:
            size_fits = size_fits and size & (size - 1) == 0
        if not (size_fits and layout_valid):
            return Outcome.IGNORED
        queue.enabled, queue.packed = True, self.packed
        return Outcome.APPLIED

    def disable_queue(self, index: int) -> Outcome:
        """QueueReady = 0: honoured before DRIVER_OK; a live queue stops only at a reset."""
        if not 0 <= index < len(self.queues) or self.live:
            return Outcome.IGNORED
        self.queues[index].enabled = False
        return Outcome.APPLIED

    def kick(self, index: int) -> Outcome:
        """An available buffer notification: served only for a live, enabled queue."""
        if self.live and 0 <= index < len(self.queues) and self.queues[index].enabled:
            return Outcome.APPLIED
        return Outcome.IGNORED

    # --- interrupts (§2.7.7, §4.2.2) ----------------------------------------------------------
    def used(self, index: int, wanted: bool) -> None:
        """The device used buffers on `index`; `wanted` if the ring asked for an interrupt."""
        if wanted:
            self.interrupts |= {InterruptBit.USED_BUFFER}
            self.owed.add(index)

    def config_change(self) -> None:
        """The device changed its configuration: new generation, interrupt if live (§2.5)."""
        self.generation += 1
        if self.live:
            self.interrupts |= {InterruptBit.CONFIG_CHANGE}

    def device_error(self) -> None:
        """The device entered an error state that needs a reset (STATUS-DEV-002/003)."""
        self._broken()

    def acknowledge(self, bits: frozenset[InterruptBit]) -> None:
        """The driver acknowledged `bits`."""
        self.interrupts -= bits

    def callbacks_ran(self, indices: set[int]) -> None:
        """The handler ran the callbacks of `indices`: those debts are paid."""
        self.owed -= indices

    # --- what the registers must show ------------------------------------------------------
    def view(self) -> LifecycleView:
        """The observable state a transport's registers must decode to."""
        status = 0
        for bit in self.status:
            status |= bit
        if self.needs_reset:
            status |= Status.DEVICE_NEEDS_RESET
        interrupts = 0
        for ibit in self.interrupts:
            interrupts |= ibit
        return LifecycleView(
            status=status,
            ready=tuple(q.enabled for q in self.queues),
            interrupt_status=interrupts,
            generation=self.generation,
        )


@dataclass(frozen=True)
class LifecycleView:
    """Status field, per-queue ready bits and interrupt status, as numbers."""

    status: int
    ready: tuple[bool, ...]
    interrupt_status: int
    generation: int
