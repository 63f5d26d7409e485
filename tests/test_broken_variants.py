"""Tests of the tests: the refinement machine must catch each deliberately broken variant.

Each variant changes one thing in the reference driver or device, the way real bugs
look (a compare without the 16-bit wrap, an off-by-one in the event rule, a free list
that hands out a head twice, a missing re-check). A check that cannot fail is a
defect, so each variant must make `SplitQueueMachine` report a failure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test
from machines import SplitQueueMachine, reference_device, reference_driver
from support.verdict import fails

import impl.split_device as device_module
import impl.split_driver as driver_module
from impl.ring_math import distance, need_event, ult, wrap
from impl.split_device import SplitDevice
from impl.split_driver import SplitDriver

HUNT = settings(
    max_examples=300,
    stateful_step_count=60,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)
"""Detection only: no shrinking (it makes a counterexample readable, not found), and a
fixed seed so a pass or a failure of a variant is the same on every run."""


def machine_fails(driver_factory: Callable[..., Any] = reference_driver,
                  device_factory: Callable[..., Any] = reference_device) -> bool:
    """Run the machine on a pair; True if Hypothesis found a failing program."""
    return fails(lambda: run_state_machine_as_test(
        lambda: SplitQueueMachine(driver_factory, device_factory), settings=HUNT
    ))


def off_by_one_need_event(event: Any, new: Any, old: Any, bits: int = 16) -> Any:
    """need_event that tests `new - event` instead of `new - event - 1`."""
    return ult(wrap(new - event, bits), distance(new, old, bits))


def unwrapped_distance(newer: Any, older: Any, bits: int = 16) -> Any:
    """distance without the modulo: wrong once an index wraps past 65535."""
    return newer - older


class ReusesHead(SplitDriver):
    """Leaves a direct chain's head at the front of the free list after adding it."""

    def _write_direct(self, out: Any, in_: Any, parts: int) -> int:
        head = super()._write_direct(out, in_, parts)
        self.free_head = head
        return head


class NoRecheck(SplitDevice):
    """Re-enables kicks but never looks at the ring again afterwards."""

    def enable_notification(self) -> bool:
        super().enable_notification()
        return False


class AlwaysKicks(SplitDriver):
    """Ignores the device's suppression request."""

    def kick_prepare(self) -> bool:
        super().kick_prepare()
        return True


class ForgetsLength(SplitDevice):
    """Reports every used buffer as empty, whatever it wrote."""

    def push_used(self, head: int, written: int) -> None:
        super().push_used(head, 0)


def test_reference_pair_passes_the_same_hunt() -> None:
    assert not machine_fails()


@pytest.mark.spec("SPLIT-DEV-011", "SPLIT-DEV-012")
def test_catches_off_by_one_in_device_need_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_module, "need_event", off_by_one_need_event)
    assert machine_fails()


@pytest.mark.spec("SPLIT-DRV-022", "SPLIT-DRV-023")
def test_catches_off_by_one_in_driver_need_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver_module, "need_event", off_by_one_need_event)
    assert machine_fails()


@pytest.mark.spec("SPLIT-DRV-010")
def test_catches_index_compare_without_wrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_module, "distance", unwrapped_distance)
    assert machine_fails()


@pytest.mark.spec("SPLIT-DRV-007")
def test_catches_free_list_reusing_a_head() -> None:
    def build(mem: Any, layout: Any, features: int, allocator: Any, start: int) -> SplitDriver:
        return ReusesHead(mem, layout, features, allocator=allocator, initial_index=start)

    assert machine_fails(driver_factory=build)


@pytest.mark.spec("SPLIT-DEV-020")
def test_catches_missing_recheck_after_enable_notification() -> None:
    def build(mem: Any, layout: Any, features: int, start: int) -> SplitDevice:
        return NoRecheck(mem, layout, features, initial_index=start)

    assert machine_fails(device_factory=build)


@pytest.mark.spec("SPLIT-DRV-019")
def test_catches_driver_ignoring_no_notify() -> None:
    def build(mem: Any, layout: Any, features: int, allocator: Any, start: int) -> SplitDriver:
        return AlwaysKicks(mem, layout, features, allocator=allocator, initial_index=start)

    assert machine_fails(driver_factory=build)


@pytest.mark.spec("SPLIT-DEV-014")
def test_catches_device_misreporting_length() -> None:
    def build(mem: Any, layout: Any, features: int, start: int) -> SplitDevice:
        return ForgetsLength(mem, layout, features, initial_index=start)

    assert machine_fails(device_factory=build)


def test_need_event_mutant_really_differs() -> None:
    """The mutant is a real mutant: it disagrees with need_event somewhere."""
    assert any(
        off_by_one_need_event(e, n, o, 4) != need_event(e, n, o, 4)
        for e in range(16) for n in range(16) for o in range(16)
    )
