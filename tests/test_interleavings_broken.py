"""Tests of the tests: remove or misplace any barrier and the explorer finds the failure.

Each ordering point (docs/ordering.md) is removed on one side only, with the shipped
code unchanged (the explorer ignores that side's barrier of that label). The variant
must fail under the weakest model where the barrier is needed, with a counterexample
trace, and pass under the stronger models: the barrier is necessary exactly where the
table in docs/ordering.md says, and not claimed necessary where it is not (a write
barrier does nothing on TSO; a read barrier matters only with an invalidate queue).
Then the misplacements real code has had: the driver reading the suppression field
before publishing, either side forgetting its re-check after re-enabling, either side
fencing before its write instead of after.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from support.geometry import PACKED_STANDARD, STANDARD, Geometry
from support.ordering import (
    Scenario,
    interrupt_scenario,
    kick_scenario,
    more_used_scenario,
    polling_scenario,
)

from impl.errors import DroppedBarrierNotFound
from impl.memory import Barrier
from impl.ring_math import advance, need_event, slot, wrap
from impl.spec import AvailFlag, UsedFlag
from impl.split_device import SplitDevice
from impl.split_driver import SplitDriver
from impl.weak_memory import MODELS, PSO, SC, TSO, WEAK, MemoryModel

Build = Callable[..., Scenario]

# side, label, scenario, weakest model needing it, the spec ids it enforces
REMOVALS: list[tuple[str, str, Build, MemoryModel, tuple[str, ...]]] = [
    ("driver", "A", kick_scenario, PSO, ("SPLIT-DRV-024",)),
    ("device", "A", kick_scenario, WEAK, ()),
    ("driver", "B", kick_scenario, TSO, ("SPLIT-DRV-025",)),
    ("device", "B", kick_scenario, TSO, ()),
    ("device", "C", interrupt_scenario, PSO, ("SPLIT-DEV-013", "SPLIT-DEV-014")),
    ("driver", "C", interrupt_scenario, WEAK, ()),
    ("driver", "D", interrupt_scenario, TSO, ()),
    ("device", "D", interrupt_scenario, TSO, ("SPLIT-DEV-009", "SPLIT-DEV-011")),
]


def _removal_cases() -> list[Any]:
    cases = []
    for side, label, build, needed, ids in REMOVALS:
        for event_idx in (False, True):
            mode = "event_idx" if event_idx else "flags"
            cases.append(
                pytest.param(
                    side, label, build, needed, event_idx,
                    id=f"{side}-{label}-{mode}",
                    marks=[pytest.mark.spec(*ids)] if ids else [],
                )
            )
    return cases


@pytest.mark.parametrize(("side", "label", "build", "needed", "event_idx"), _removal_cases())
def test_each_barrier_is_necessary_where_the_model_says(
    side: str, label: str, build: Build, needed: MemoryModel, event_idx: bool
) -> None:
    scenario = build(event_idx)
    dropped = frozenset({(side, label)})
    weaker = MODELS[MODELS.index(needed) :]
    stronger = MODELS[: MODELS.index(needed)]
    for model in weaker:
        report = scenario.explore(model, dropped)
        print(report.counterexample())
        assert not report.passed, f"removing {side} barrier {label} went unnoticed on {model.name}"
        assert f"barrier {label}" in "\n".join(report.trace)
    for model in stronger:
        report = scenario.explore(model, dropped)
        assert report.passed, report.counterexample()


@pytest.mark.parametrize(
    "dropped",
    [("driver", "D", "SplitDriver._hand_back"), ("device", "D")],
    ids=["driver-D-in-get_buf", "device-D"],
)
def test_the_fence_after_get_buf_moves_used_event_is_necessary(dropped: tuple[str, ...]) -> None:
    """Only the polling scenario reaches get_buf's fence; removing it alone loses a wake-up."""
    scenario = polling_scenario()
    assert scenario.explore(SC, frozenset({dropped})).passed
    for model in (TSO, PSO, WEAK):
        report = scenario.explore(model, frozenset({dropped}))
        print(report.counterexample())
        assert (report.failure or "").startswith("lost wake-up")


@pytest.mark.parametrize("event_idx", [False, True], ids=["flags", "event_idx"])
@pytest.mark.parametrize("geometry", [STANDARD, PACKED_STANDARD], ids=["split", "packed"])
def test_the_fence_in_more_used_is_needed_only_after_a_re_arm_that_does_not_fence(
    geometry: Geometry, event_idx: bool
) -> None:
    """`more_used`'s fence D is redundant in this driver: every write that asks for an
    interrupt is fenced where it is made (`_arm`, `get_buf`), so removing it alone
    passes every model. It is what the re-check relies on when the re-arm does not
    fence: with `_arm`'s D removed too, the re-check reads the used index before the
    re-arm is visible and a wake-up is lost from TSO on; with only `_arm`'s removed,
    `more_used`'s fence keeps every model correct."""
    scenario = more_used_scenario(event_idx, geometry=geometry)
    driver = geometry.ring.reference_driver.__name__
    more_used = ("driver", "D", f"{driver}.more_used")
    arm = ("driver", "D", f"{driver}._arm")
    for model in MODELS:
        assert scenario.explore(model, frozenset({more_used})).passed, model.name
        assert scenario.explore(model, frozenset({arm})).passed, model.name
    assert scenario.explore(SC, frozenset({more_used, arm})).passed
    for model in (TSO, PSO, WEAK):
        report = scenario.explore(model, frozenset({more_used, arm}))
        print(report.counterexample())
        assert (report.failure or "").startswith("lost wake-up"), report.failure
        assert f"{driver}.more_used: barrier D (mb) REMOVED" in report.counterexample()


# --- misplaced orderings ------------------------------------------------------------
class EarlyEventRead(SplitDriver):
    """Reads avail_event / used.flags before publishing avail.idx, decides from that."""

    def _publish(self, head: int) -> None:
        lay = self.layout
        self.mem.write_u16(lay.avail_ring(slot(self.avail_idx, self.size)), head)
        self.mem.barrier(Barrier.WRITE, "A")
        self.mem.barrier(Barrier.FULL, "B")
        if self.event_idx:
            self._early = self.mem.read_u16(lay.avail_event)
        else:
            self._early = self.mem.read_u16(lay.used_flags)
        self.avail_idx = advance(self.avail_idx)
        self.mem.write_u16(lay.avail_idx, self.avail_idx)
        self._num_added += 1

    def kick_prepare(self) -> bool:
        added, self._num_added = self._num_added, 0
        if self.event_idx:
            new = self.avail_idx
            return bool(need_event(self._early, new, wrap(new - added)))
        return not self._early & UsedFlag.NO_NOTIFY


class DeviceEarlyEventRead(SplitDevice):
    """Reads used_event / avail.flags before publishing used.idx, decides from that."""

    def _write_used(self, head: int, written: int) -> None:
        elem = self.layout.used_ring(slot(self.next_used, self.size))
        self.mem.write_u32(elem, head)
        self.mem.write_u32(elem + 4, written)
        self.mem.barrier(Barrier.WRITE, "C")
        self.mem.barrier(Barrier.FULL, "D")
        if self.event_idx:
            self._early = self.mem.read_u16(self.layout.used_event)
        else:
            self._early = self.mem.read_u16(self.layout.avail_flags)
        self.next_used = advance(self.next_used)
        self.mem.write_u16(self.layout.used_idx, self.next_used)
        self._unsignalled += 1

    def needs_notification(self) -> bool:
        self._unsignalled = 0
        old, self._signalled_used = self._signalled_used, self.next_used
        if self.event_idx:
            return bool(need_event(self._early, self.next_used, old))
        return not self._early & AvailFlag.NO_INTERRUPT


class NotifiesOnce(SplitDevice):
    """Interrupts when used.idx reaches 2 (buffer 1, the first returned in the race),
    asked or not (a spurious interrupt is allowed, SPLIT-DRV-015), and never again: an
    early interrupt the check must not count for a buffer returned after it."""

    def needs_notification(self) -> bool:
        super().needs_notification()
        return bool(self.next_used == 2)


class DeviceNoRecheck(SplitDevice):
    """Re-enables kicks but never looks at avail.idx again (goes idle at once)."""

    def enable_notification(self) -> bool:
        super().enable_notification()
        return False


class DriverNoRecheck(SplitDriver):
    """Re-enables interrupts but never looks at used.idx again."""

    def enable_cb(self) -> bool:
        super().enable_cb()
        return True


class DeviceFencesFirst(SplitDevice):
    """Fences, then re-enables kicks, then re-checks: the fence is on the wrong side."""

    def enable_notification(self) -> bool:
        self.mem.barrier(Barrier.FULL, "B")
        if self.event_idx:
            self.mem.write_u16(self.layout.avail_event, self.next_avail)
        else:
            self.mem.write_u16(self.layout.used_flags, 0)
        return self._pending() != 0


class DriverFencesFirst(SplitDriver):
    """Fences, then re-enables interrupts: the fence is on the wrong side of the write."""

    def _arm(self, event: int) -> None:
        self.mem.barrier(Barrier.FULL, "D")
        if self.no_interrupt:
            self.no_interrupt = False
            if not self.event_idx:
                self.mem.write_u16(self.layout.avail_flags, 0)
        if self.event_idx:
            self.mem.write_u16(self.layout.used_event, event)


MISPLACED = [
    pytest.param(
        kick_scenario, {"driver_cls": EarlyEventRead}, SC,
        id="driver-reads-event-before-publishing", marks=pytest.mark.spec("SPLIT-DRV-025"),
    ),
    pytest.param(
        interrupt_scenario, {"device_cls": DeviceEarlyEventRead}, SC,
        id="device-reads-event-before-publishing",
    ),
    pytest.param(
        kick_scenario, {"device_cls": DeviceNoRecheck}, SC,
        id="device-no-recheck",
    ),
    pytest.param(
        interrupt_scenario, {"driver_cls": DriverNoRecheck}, SC,
        id="driver-no-recheck",
    ),
    pytest.param(
        kick_scenario, {"device_cls": DeviceFencesFirst}, TSO,
        id="device-fences-before-enabling",
    ),
    pytest.param(
        interrupt_scenario, {"driver_cls": DriverFencesFirst}, TSO,
        id="driver-fences-before-enabling",
    ),
]


def test_an_early_notification_does_not_excuse_a_later_one() -> None:
    """The lost wake-up check counts only decisions made after the work left behind."""
    for event_idx in (False, True):
        scenario = interrupt_scenario(event_idx, device_cls=NotifiesOnce)
        report = scenario.explore(SC)
        print(report.counterexample())
        assert (report.failure or "").startswith("lost wake-up")


@pytest.mark.parametrize(("build", "classes", "needed"), MISPLACED)
@pytest.mark.parametrize("event_idx", [False, True], ids=["flags", "event_idx"])
def test_misplaced_ordering_is_caught(
    build: Build, classes: dict[str, Any], needed: MemoryModel, event_idx: bool
) -> None:
    scenario = build(event_idx, **classes)
    report = scenario.explore(needed)
    print(report.counterexample())
    assert not report.passed
    assert "lost wake-up" in (report.failure or "")
    assert report.trace


def test_counterexample_is_a_readable_trace() -> None:
    """The store-buffering lost wake-up of the driver's barrier B, as a person reads it."""
    report = kick_scenario(False).explore(TSO, frozenset({("driver", "B")}))
    text = report.counterexample()
    print(text)
    assert report.failure is not None and report.failure.startswith("lost wake-up")
    assert "SplitDriver.kick_prepare: barrier B (mb) REMOVED" in text
    assert "read used.flags" in text
    assert "SplitDevice.enable_notification: write used.flags = 0 (buffered)" in text
    assert len(report.trace) < 40



@pytest.mark.parametrize(
    "dropped",
    [("driver", "Z"), ("driver", "D", "SplitDriver.get_buff"), ("devise", "A")],
    ids=["unknown-label", "unknown-function", "unknown-side"],
)
def test_removing_a_barrier_no_side_makes_is_refused(dropped: tuple[str, ...]) -> None:
    """A removal that names no barrier any side reached is an error, not a vacuous pass."""
    with pytest.raises(DroppedBarrierNotFound):
        polling_scenario().explore(SC, frozenset({dropped}))
