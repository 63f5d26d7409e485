"""Larger cases by Hypothesis: sampled schedules of bigger queues and more buffers.

The exhaustive exploration covers the standard scenario (queue size 2, two buffers).
Here Hypothesis draws the geometry (queue sizes 2 to 16, up to four buffers in flight,
indices starting at 0 or just short of the 16-bit wrap), the mode, the direction and
the memory model, and then draws one schedule: at every state it picks which side
moves and which value a read observes. The same checks run at the end. A failure
shrinks to a short schedule and prints its trace.
"""

from __future__ import annotations

import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from support.geometry import Geometry
from support.ordering import interrupt_scenario, kick_scenario
from test_interleavings import INTERRUPT_IDS, KICK_IDS

from impl.weak_memory import MODELS, MemoryModel


@st.composite
def geometries(draw: st.DrawFn) -> Geometry:
    size = draw(st.sampled_from([2, 4, 8, 16]))
    buffers = draw(st.integers(1, min(size, 4)))
    start = draw(st.sampled_from([0, 0xFFFF - buffers, 0xFFFF]))
    return Geometry(size=size, buffers=buffers, start=start)


@pytest.mark.spec(*KICK_IDS, *INTERRUPT_IDS)
@given(
    geometry=geometries(),
    event_idx=st.booleans(),
    kick=st.booleans(),
    model=st.sampled_from(MODELS),
    data=st.data(),
)
def test_sampled_schedules_of_larger_queues_pass(
    geometry: Geometry, event_idx: bool, kick: bool, model: MemoryModel, data: st.DataObject
) -> None:
    build = kick_scenario if kick else interrupt_scenario
    scenario = build(event_idx, geometry=geometry)
    explorer = scenario.explorer(model)
    report = explorer.walk(lambda n: data.draw(st.integers(0, n - 1)) if n > 1 else 0)
    note(report.counterexample())
    assert report.passed, report.counterexample()
