"""The refinement checked where both sides are between operations, not only at the end.

`Scenario.explore(model, between=True)` makes each side mark the points between its
operations with a snapshot of itself (`impl.replay.ScriptedMemory.mark`); at every
explored state where both sides are exactly at such a point, the explorer lands every
buffered write (a state the hardware may reach at any moment) and the scenario checks
that the memory decodes to the model replayed with the operations each side has
finished (`support.ordering._between_kick`, `_between_used`). Marks are not accesses:
the states and executions explored are the same with the check on or off.

Shown here: every standard scenario passes the check on both ring types under every
model with unchanged counts, and a device whose memory disagrees with the model only
in the middle of the race (it asks for kicks while it is busy, then asks again when it
goes idle) passes the end-only check and is caught by this one.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.geometry import PACKED_STANDARD, STANDARD, Geometry
from support.ordering import (
    Scenario,
    delayed_scenario,
    interrupt_scenario,
    kick_scenario,
    more_used_scenario,
)

from impl.chain import Chain
from impl.packed_device import PackedDevice
from impl.spec import PackedEventFlag
from impl.split_device import SplitDevice
from impl.weak_memory import MODELS, SC, MemoryModel

RINGS = pytest.mark.parametrize("geometry", [STANDARD, PACKED_STANDARD], ids=["split", "packed"])


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
@pytest.mark.parametrize("event_idx", [False, True], ids=["flags", "event_idx"])
@pytest.mark.parametrize(
    "build", [kick_scenario, interrupt_scenario, more_used_scenario, delayed_scenario],
    ids=["kick", "interrupt", "more_used", "delayed"],
)
@RINGS
def test_the_refinement_holds_between_operations(
    geometry: Geometry, build: Any, event_idx: bool, model: MemoryModel
) -> None:
    """Every state with both sides between operations refines the model, and the
    exploration is the same one as without the check."""
    scenario: Scenario = build(event_idx, geometry=geometry)
    plain = scenario.explore(model)
    checked = scenario.explore(model, between=True)
    print(f"{scenario.name} {model.name}: {plain.summary()} / between: {checked.summary()}"
          f" ({checked.between} states checked between operations)")
    assert checked.passed, checked.counterexample()
    assert (checked.states, checked.executions, checked.interleavings) == (
        plain.states, plain.executions, plain.interleavings
    )
    assert checked.between > 0
    assert plain.between == 0


class SplitKicksWhileBusy(SplitDevice):
    """Clears VIRTQ_USED_F_NO_NOTIFY as soon as it takes a buffer, with kicks meant to be
    off until it re-enables them: harmless extra kicks, but the memory says kicks are
    wanted while the model says they are not, until `enable_notification` agrees."""

    def pop(self) -> Chain | None:
        chain = super().pop()
        if chain is not None:
            self.mem.write_u16(self.layout.used_flags, 0)
        return chain


class PackedKicksWhileBusy(PackedDevice):
    """The same on the packed ring: writes ENABLE into its event structure on each pop."""

    def pop(self) -> Chain | None:
        chain = super().pop()
        if chain is not None:
            self.mem.write_u16(self.layout.device_flags, PackedEventFlag.ENABLE)
        return chain


@pytest.mark.parametrize(
    ("geometry", "device_cls"),
    [(STANDARD, SplitKicksWhileBusy), (PACKED_STANDARD, PackedKicksWhileBusy)],
    ids=["split", "packed"],
)
def test_a_disagreement_in_the_middle_is_caught_only_between_operations(
    geometry: Geometry, device_cls: type[Any]
) -> None:
    """At the end the device has re-enabled kicks, so memory and model agree again and
    the end-only check passes; between its pop and its re-enable they do not."""
    scenario = kick_scenario(False, device_cls=device_cls, geometry=geometry)
    assert scenario.explore(SC).passed
    report = scenario.explore(SC, between=True)
    print(report.counterexample())
    assert (report.failure or "").startswith("between operations: refinement broken here")
    assert "kicks_wanted=True" in (report.failure or "")
