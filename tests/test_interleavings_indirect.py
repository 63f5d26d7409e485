"""Indirect descriptor tables under the interleaving explorer, on both ring types.

With VIRTIO_F_INDIRECT_DESC negotiated and an allocator, the reference drivers put a
buffer of two segments behind one ring descriptor pointing at an indirect table they
fill (split §2.7.5.3, packed §2.8.7). The table is one more thing the device reads
after it sees the buffer made available, so it must be written before the publish:
before `avail.idx` on the split ring (SPLIT-DRV-024), before the head's flags on the
packed ring (PACKED-DRV-016). Both drivers fill the table before the ring descriptor,
so their barrier A orders it. This file shows that:

* every interleaving of the standard scenarios with indirect buffers passes, every
  model, both modes, both directions, both ring types;
* each barrier A and C removed is caught exactly where it is without tables (driver A
  and device C from PSO, device A and driver C only under WEAK);
* a driver that fills the table *after* barrier A (still before the publish) is
  caught from PSO on with a trace in which the device reads a stale table entry, and
  passes SC and TSO: barrier A is what orders the table write, nothing else does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from support.geometry import INDIRECT, PACKED_INDIRECT, Geometry
from support.ordering import Scenario, interrupt_scenario, kick_scenario

from impl.chain import Segment
from impl.layout import DESC_STRUCT
from impl.memory import Barrier
from impl.packed_driver import PackedDriver
from impl.packed_layout import PackedDescriptor, pack_descriptor_body
from impl.ring_math import advance, slot
from impl.spec import DESC_SIZE, DescFlag
from impl.split_driver import SplitDriver
from impl.weak_memory import MODELS, PSO, WEAK, MemoryModel
from impl.wrap_math import advance as advance_pos
from impl.wrap_math import avail_bits, offset_of, wrap_of

Build = Callable[..., Scenario]
RINGS = pytest.mark.parametrize("geometry", [INDIRECT, PACKED_INDIRECT], ids=["split", "packed"])
MODES = pytest.mark.parametrize("event_idx", [False, True], ids=["flags", "event_idx"])


def _explore(scenario: Scenario, model: MemoryModel) -> None:
    report = scenario.explore(model)
    print(f"{scenario.name} {report.summary()}")
    assert report.passed, report.counterexample()
    assert report.executions > 1


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
@MODES
@RINGS
def test_indirect_buffers_pass_every_interleaving(
    geometry: Geometry, event_idx: bool, model: MemoryModel
) -> None:
    """Both directions: the device reads each buffer through its table (kick) and writes
    its data through it (interrupt); data intact, no lost wake-up, refinement."""
    _explore(kick_scenario(event_idx, geometry=geometry), model)
    _explore(interrupt_scenario(event_idx, geometry=geometry), model)


@RINGS
def test_the_race_really_goes_through_indirect_tables(geometry: Geometry) -> None:
    """The counterexample of a removed driver barrier A shows the driver filling tables
    (the trace names their entries), so the scenario exercises them, not direct chains.
    Its first failure is a stale ring descriptor or ring entry: the table-specific
    ordering is isolated by the misplacement test below."""
    report = kick_scenario(False, geometry=geometry).explore(PSO, frozenset({("driver", "A")}))
    assert not report.passed
    assert "write indirect entry 1+0" in report.counterexample()


# side, label, scenario, weakest model needing it
REMOVALS: list[tuple[str, str, Build, MemoryModel]] = [
    ("driver", "A", kick_scenario, PSO),
    ("device", "A", kick_scenario, WEAK),
    ("device", "C", interrupt_scenario, PSO),
    ("driver", "C", interrupt_scenario, WEAK),
]


@pytest.mark.parametrize(
    ("side", "label", "build", "needed"),
    [pytest.param(*r, id=f"{r[0]}-{r[1]}") for r in REMOVALS],
)
@MODES
@RINGS
def test_each_data_barrier_is_necessary_with_indirect_tables(
    geometry: Geometry, event_idx: bool, side: str, label: str, build: Build,
    needed: MemoryModel,
) -> None:
    """The write and read barriers around the publish are needed from the same model
    on as without tables, and not before."""
    scenario = build(event_idx, geometry=geometry)
    dropped = frozenset({(side, label)})
    for model in MODELS:
        report = scenario.explore(model, dropped)
        if MODELS.index(model) >= MODELS.index(needed):
            print(report.counterexample())
            assert not report.passed, f"removing {side} {label} unnoticed on {model.name}"
            assert f"barrier {label}" in "\n".join(report.trace)
        else:
            assert report.passed, report.counterexample()


# --- the table filled after barrier A -------------------------------------------------
class SplitTableAfterA(SplitDriver):
    """Writes the ring descriptor at once but fills the indirect table in `_publish`,
    after barrier A and before `avail.idx`: nothing orders the table before the idx."""

    _late: tuple[tuple[Any, ...], ...] = ()

    def _write_indirect(self, table: int, out: Sequence[Segment], in_: Sequence[Segment]) -> int:
        parts = [(seg, 0) for seg in out] + [(seg, int(DescFlag.WRITE)) for seg in in_]
        last = len(parts) - 1
        self._late = tuple(
            (table + DESC_SIZE * i, seg.addr, seg.len,
             flags | int(DescFlag.NEXT) if i < last else flags, i + 1)
            for i, (seg, flags) in enumerate(parts)
        )
        head = self.free_head
        self.mem.write_struct(DESC_STRUCT, self.layout.desc_addr(head), table,
                              DESC_SIZE * len(parts), int(DescFlag.INDIRECT), self._next[head])
        self.free_head = self._next[head]
        self.num_free -= 1
        return head

    def _publish(self, head: int) -> None:
        self.mem.write_u16(self.layout.avail_ring(slot(self.avail_idx, self.size)), head)
        self.mem.barrier(Barrier.WRITE, "A")
        for entry in self._late:
            self.mem.write_struct(DESC_STRUCT, *entry)
        self._late = ()
        self.avail_idx = advance(self.avail_idx)
        self.mem.write_u16(self.layout.avail_idx, self.avail_idx)
        self._num_added += 1


class PackedTableAfterA(PackedDriver):
    """Writes the head's body, barrier A, then fills the indirect table, then the head's
    flags: nothing orders the table before the flags."""

    _late: tuple[tuple[int, bytes], ...] = ()

    def _write_table(self, table: int, out: Sequence[Segment], in_: Sequence[Segment]) -> None:
        parts = [(seg, 0) for seg in out] + [(seg, int(DescFlag.WRITE)) for seg in in_]
        self._late = tuple(
            (table + DESC_SIZE * i, PackedDescriptor(addr=seg.addr, len=seg.len, flags=f).pack())
            for i, (seg, f) in enumerate(parts)
        )

    def _expose(self, ident: int, elements: list[tuple[int, int, int]]) -> None:
        if not self._late:
            super()._expose(ident, elements)
            return
        ((addr, length, flags),) = elements
        lay, size, pos = self.layout, self.size, self.next_avail
        at = offset_of(pos, size)
        self.mem.write(lay.desc_addr(at), pack_descriptor_body(addr, length, ident))
        self.mem.barrier(Barrier.WRITE, "A")
        for where, entry in self._late:
            self.mem.write(where, entry)
        self._late = ()
        self.mem.write_u16(lay.desc_flags(at), flags | avail_bits(wrap_of(pos, size)))
        self.next_avail = advance_pos(pos, 1, size)
        self.num_free -= 1
        self._num_added += 1


@pytest.mark.parametrize(
    ("geometry", "driver_cls"),
    [
        pytest.param(INDIRECT, SplitTableAfterA, id="split",
                     marks=pytest.mark.spec("SPLIT-DRV-024")),
        pytest.param(PACKED_INDIRECT, PackedTableAfterA, id="packed",
                     marks=pytest.mark.spec("PACKED-DRV-016")),
    ],
)
@MODES
def test_a_table_filled_after_barrier_a_is_caught_from_pso(
    geometry: Geometry, driver_cls: type[Any], event_idx: bool
) -> None:
    """Barrier A is what orders the table before the publish: moved past it, the table
    write can land after the publish once stores pass stores (PSO, WEAK), and the device
    reads a stale entry; with stores in order (SC, TSO) the variant is still correct."""
    scenario = kick_scenario(event_idx, driver_cls=driver_cls, geometry=geometry)
    for model in MODELS:
        report = scenario.explore(model)
        if MODELS.index(model) >= MODELS.index(PSO):
            text = report.counterexample()
            print(text)
            assert not report.passed, model.name
            assert "read indirect entry" in text
        else:
            assert report.passed, report.counterexample()
