"""`enable_cb_delayed` under the interleaving explorer, on both ring types.

The delayed scenario (`support.ordering.delayed_scenario`) is the interrupt race with a
driver that re-arms with `enable_cb_delayed`: it names a position about 3/4 of the way
through what is outstanding (split: used_event, §2.7.7; packed: the Driver Event
Suppression structure, §2.8.10), fences (publish D in `_arm`), re-checks whether that
many are used already, and idles if not, while the device returns every buffer and
decides after each whether to interrupt. Shapes: the standard one (two buffers in
flight: the driver asks to hear after the second) and queue size 4 with three in
flight (it asks to hear after the third, so the device's first two decisions must
say no interrupt and the third must say yes).

Shown here: no lost wake-up in every interleaving under every model, and the fence
after the re-arm is needed from TSO on (removed at `_arm`, the site
`enable_cb_delayed` reaches; it is not needed under SC).
"""

from __future__ import annotations

import pytest
from support.geometry import PACKED_STANDARD, STANDARD, Geometry
from support.ordering import delayed_scenario
from support.ring_types import PACKED

from impl.weak_memory import MODELS, SC, TSO, MemoryModel

SHAPES = pytest.mark.parametrize(
    "geometry",
    [
        pytest.param(STANDARD, id="split"),
        pytest.param(Geometry(size=4, buffers=3), id="split-3"),
        pytest.param(PACKED_STANDARD, id="packed"),
        pytest.param(Geometry(size=4, buffers=3, ring=PACKED), id="packed-3"),
    ],
)
MODES = pytest.mark.parametrize("event_idx", [False, True], ids=["flags", "event_idx"])


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
@MODES
@SHAPES
def test_a_delayed_re_arm_loses_no_wake_up(
    geometry: Geometry, event_idx: bool, model: MemoryModel
) -> None:
    """Every interleaving: data intact, the interrupt asked for comes, refinement (the
    model's `enable_cb_delayed` names the same position)."""
    scenario = delayed_scenario(event_idx, geometry=geometry)
    report = scenario.explore(model)
    print(f"{scenario.name} {report.summary()}")
    assert report.passed, report.counterexample()
    assert report.executions > 1


@MODES
@SHAPES
def test_the_fence_after_a_delayed_re_arm_is_needed_from_tso(
    geometry: Geometry, event_idx: bool
) -> None:
    """Without `_arm`'s fence D the re-check reads the used index (flags) before the new
    event position is visible to the device: store buffering, a lost wake-up from TSO on.
    Under SC nothing is buffered and the variant passes."""
    scenario = delayed_scenario(event_idx, geometry=geometry)
    arm = frozenset({("driver", "D", f"{geometry.ring.reference_driver.__name__}._arm")})
    assert scenario.explore(SC, arm).passed
    for model in MODELS[MODELS.index(TSO):]:
        report = scenario.explore(model, arm)
        text = report.counterexample()
        print(text)
        assert (report.failure or "").startswith("lost wake-up"), model.name
        assert "_arm: barrier D (mb) REMOVED" in text
