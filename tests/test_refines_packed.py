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
from packed_machine import PackedQueueMachine

REFINEMENT_IDS = (
    "PACKED-DEV-001", "PACKED-DEV-002", "PACKED-DEV-004", "PACKED-DEV-005", "PACKED-DEV-006",
    "PACKED-DEV-007", "PACKED-DRV-002", "PACKED-DRV-003", "PACKED-DRV-004", "PACKED-DRV-007",
    "PACKED-DRV-008", "PACKED-DRV-010", "PACKED-DRV-011", "PACKED-DRV-012", "PACKED-DRV-013",
    "PACKED-DRV-015", "PACKED-DRV-016",
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
    assert any(m.crossed_avail and m.layout.size == 32768 for m in machines), (
        "no run of the largest ring flipped its wrap counter"
    )


@pytest.mark.spec("PACKED-DEV-001", "PACKED-DEV-002", "PACKED-DRV-004")
@pytest.mark.parametrize("size", [1, 3, 7])
@pytest.mark.parametrize(("event_idx", "indirect"), [(False, False), (True, True), (True, False)])
@settings(max_examples=1, database=None)
@given(st.none())
def test_same_rules_across_many_wrap_flips(
    size: int, event_idx: bool, indirect: bool, nothing: None
) -> None:
    """A fixed program of the machine's own rules flips both counters many times.

    Every step is checked by the machine's invariants; chains of one to three
    descriptors make the lists straddle the ring's end at varying offsets. (Run under
    `given` only so that the machine's `note()` calls have a test to report to.)
    """
    machine = PackedQueueMachine()
    machine.setup(size=size, event_idx=event_idx, indirect=indirect, behind=1)
    for step in range(4 * size + 6):
        parts = 1 + step % min(3, size)
        machine.add([b"d" * (step % 5 + 1)] * (parts - 1), [8])
        machine.kick_prepare()
        machine.pop(count=2)
        if machine.held:
            machine.no_lost_interrupt()
        machine.enable_cb(delayed=bool(step % 2))
        machine.get_buf()
        machine.refines_model()
        machine.ring_is_whole()
    assert machine.avail_laps >= 4 and machine.used_laps >= 4
