"""The reference packed ring refines the same abstract virtqueue as the split ring.

`PackedQueueMachine` (tests/packed_machine.py) is `SplitQueueMachine` with the packed
hooks: the same rules and invariants, the same model, over queue sizes from 1 to 32768
(powers of two or not). After every step the abstraction of packed memory equals the
model's view; every decision (kick, interrupt, enable_cb, enable_notification) equals
the model's; the runs flip both wrap counters several times.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test
from packed_machine import PackedQueueMachine, run_fixed_program

REFINEMENT_IDS = (
    "PACKED-DEV-001", "PACKED-DEV-002", "PACKED-DEV-004", "PACKED-DEV-005", "PACKED-DEV-006",
    "PACKED-DEV-007", "PACKED-DRV-002", "PACKED-DRV-003", "PACKED-DRV-008", "PACKED-DRV-010",
    "PACKED-DRV-011", "PACKED-DRV-012", "PACKED-DRV-015",
)


@pytest.mark.spec(*REFINEMENT_IDS)
def test_reference_packed_ring_refines_the_model() -> None:
    machines: list[PackedQueueMachine] = []

    def build() -> PackedQueueMachine:
        machine = PackedQueueMachine()
        machines.append(machine)
        return machine

    run_state_machine_as_test(build)
    assert any(m.crossed_avail for m in machines), "no run flipped the driver's wrap counter"
    assert any(m.crossed_used for m in machines), "no run flipped the device's wrap counter"


@pytest.mark.spec("PACKED-DEV-001", "PACKED-DEV-002")
@pytest.mark.parametrize(("size", "steps", "flips"), [(1, 10, 4), (3, 18, 4), (7, 34, 4),
                                                     (32768, 6, 1)])
@pytest.mark.parametrize(("event_idx", "indirect"), [(False, False), (True, True), (True, False)])
@settings(max_examples=1, database=None)
@given(st.none())
def test_same_rules_across_many_wrap_flips(
    size: int, steps: int, flips: int, event_idx: bool, indirect: bool, nothing: None
) -> None:
    """A fixed program of the machine's own rules flips both counters many times.

    Every step is checked by the machine's invariants; chains of one to three
    descriptors make the lists straddle the ring's end at varying offsets. The largest
    ring starts one descriptor short of its end, so it flips too. (Run under
    `given` only so that the machine's `note()` calls have a test to report to.)
    """
    machine = PackedQueueMachine()
    machine.setup(size=size, event_idx=event_idx, indirect=indirect, behind=1)
    run_fixed_program(machine, steps)
    assert machine.avail_laps >= flips and machine.used_laps >= flips
