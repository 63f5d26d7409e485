"""The reference split ring refines the abstract virtqueue (tests/machines.py).

Runs the lockstep machine on the reference driver and device; after every step the
abstraction of memory equals the model's view, every decision (kick, interrupt,
enable_cb, enable_notification) equals the model's, and the run's indices cross the
16-bit wrap.
"""

from __future__ import annotations

import pytest
from hypothesis.stateful import run_state_machine_as_test
from machines import SplitQueueMachine

REFINEMENT_IDS = (
    "SPLIT-DRV-002", "SPLIT-DRV-010", "SPLIT-DRV-011", "SPLIT-DRV-013", "SPLIT-DRV-014",
    "SPLIT-DRV-015", "SPLIT-DRV-017", "SPLIT-DRV-018", "SPLIT-DRV-019", "SPLIT-DRV-020",
    "SPLIT-DRV-021", "SPLIT-DRV-022", "SPLIT-DRV-023", "SPLIT-DRV-024", "SPLIT-DRV-025",
    "SPLIT-DEV-003", "SPLIT-DEV-004", "SPLIT-DEV-007", "SPLIT-DEV-008", "SPLIT-DEV-009",
    "SPLIT-DEV-010", "SPLIT-DEV-011", "SPLIT-DEV-012", "SPLIT-DEV-013", "SPLIT-DEV-014",
    "SPLIT-DEV-016", "SPLIT-DEV-017", "SPLIT-DEV-018", "SPLIT-DEV-019", "SPLIT-DEV-020",
    "SPLIT-DEV-005", "SPLIT-DEV-006", "SPLIT-DRV-005",
)


@pytest.mark.spec(*REFINEMENT_IDS)
def test_reference_split_ring_refines_the_model() -> None:
    machines: list[SplitQueueMachine] = []

    def build() -> SplitQueueMachine:
        machine = SplitQueueMachine()
        machines.append(machine)
        return machine

    run_state_machine_as_test(build)
    assert any(m.crossed_avail for m in machines), "no run crossed the avail.idx wrap"
    assert any(m.crossed_used for m in machines), "no run crossed the used.idx wrap"
