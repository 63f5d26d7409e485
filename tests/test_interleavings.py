"""Every interleaving of the standard scenarios passes, under every memory model.

The scenarios (`tests/support/ordering.py`): queue size 2, two buffers in flight, both
notification modes, both directions (the driver publishing while the device goes idle;
the device returning used buffers while the driver goes idle). The explorer
(`impl/interleave.py`) runs the shipped driver and device, each shared access a
scheduling point, and checks each complete execution: no side raised, no buffer seen
before its descriptors and data were complete, no lost wake-up, and the memory decodes
to the model's view at quiescence. The figures (states, executions, interleavings,
seconds) print with `-s` and are in docs/performance.md under "Interleavings".
"""

from __future__ import annotations

import pytest
from support.geometry import PACKED_LISTS, PACKED_STANDARD, STANDARD, Geometry
from support.ordering import (
    Scenario,
    interrupt_scenario,
    kick_scenario,
    more_used_scenario,
    polling_scenario,
)

from impl.weak_memory import MODELS, MemoryModel

KICK_IDS = ("SPLIT-DRV-024", "SPLIT-DRV-025", "SPLIT-DRV-020", "SPLIT-DRV-022")
"""The driver's barriers and its duty to notify: what the kick scenario enforces."""
INTERRUPT_IDS = ("SPLIT-DEV-013", "SPLIT-DEV-014", "SPLIT-DEV-009", "SPLIT-DEV-011")
"""The device's used-ring order and its duty to notify: what the interrupt scenario enforces."""


def _explore(scenario: Scenario, model: MemoryModel) -> None:
    report = scenario.explore(model, stop_at_failure=True)
    print(f"{scenario.name} {report.summary()}")
    assert report.passed, report.counterexample()
    assert report.executions > 1
    assert report.interleavings >= report.executions


@pytest.mark.spec(*KICK_IDS)
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
@pytest.mark.parametrize("event_idx", [False, True], ids=["flags", "event_idx"])
def test_kick_scenario_passes_every_interleaving(event_idx: bool, model: MemoryModel) -> None:
    _explore(kick_scenario(event_idx), model)


@pytest.mark.spec(*INTERRUPT_IDS)
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
@pytest.mark.parametrize("event_idx", [False, True], ids=["flags", "event_idx"])
def test_interrupt_scenario_passes_every_interleaving(
    event_idx: bool, model: MemoryModel
) -> None:
    _explore(interrupt_scenario(event_idx), model)



@pytest.mark.spec(*KICK_IDS, *INTERRUPT_IDS)
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
@pytest.mark.parametrize("event_idx", [False, True], ids=["flags", "event_idx"])
def test_both_scenarios_pass_across_the_16_bit_wrap(event_idx: bool, model: MemoryModel) -> None:
    """The same, with the indices starting at 65535 so every run crosses the wrap."""
    wrapping = Geometry(start=0xFFFF)
    _explore(kick_scenario(event_idx, geometry=wrapping), model)
    _explore(interrupt_scenario(event_idx, geometry=wrapping), model)


@pytest.mark.spec(*KICK_IDS, *INTERRUPT_IDS)
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
@pytest.mark.parametrize("event_idx", [False, True], ids=["flags", "event_idx"])
def test_both_scenarios_pass_with_two_descriptor_chains(
    event_idx: bool, model: MemoryModel
) -> None:
    """The same, queue size 4, each raced buffer a chain of two descriptors."""
    chains = Geometry(size=4, segments=2)
    _explore(kick_scenario(event_idx, geometry=chains), model)
    _explore(interrupt_scenario(event_idx, geometry=chains), model)


@pytest.mark.spec("SPLIT-DEV-011")
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_polling_with_callbacks_on_passes_every_interleaving(model: MemoryModel) -> None:
    """Event index, callbacks left on: get_buf's used_event write and fence (publish D)."""
    _explore(polling_scenario(), model)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
@pytest.mark.parametrize("event_idx", [False, True], ids=["flags", "event_idx"])
@pytest.mark.parametrize(
    "geometry", [STANDARD, PACKED_STANDARD, PACKED_LISTS], ids=["split", "packed", "packed-lists"]
)
def test_more_used_scenario_passes_every_interleaving(
    geometry: Geometry, event_idx: bool, model: MemoryModel
) -> None:
    """The driver polls with `more_used`, re-arms, re-checks with `more_used` (fence D in
    `more_used`), on both ring types."""
    _explore(more_used_scenario(event_idx, geometry=geometry), model)
