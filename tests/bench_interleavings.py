"""Benchmark: every exhaustive scenario of docs/ordering.md, every model, mode and direction.

Run `PYTHONPATH=.:tests python tests/bench_interleavings.py [--large]`. Prints one row per
exploration (states, complete executions, interleavings the states stand for,
seconds, states per second) and the totals; the figures in docs/performance.md
("Interleavings") come from this script. The default plan: on the split ring the
standard kick and interrupt scenarios, polling, more_used and delayed (enable_cb_delayed),
and kick and interrupt with indirect tables; on the packed ring the same in its two
shapes (size 2, and size 4 with two-descriptor lists), more_used, delayed, and the
indirect shape. `--large` explores queue size 4 with three and four buffers in flight
instead (TSO and WEAK; not part of CI).
"""

from __future__ import annotations

import os
import platform
import sys
import time

from support.geometry import (
    INDIRECT,
    PACKED_INDIRECT,
    PACKED_LISTS,
    PACKED_STANDARD,
    STANDARD,
    Geometry,
)
from support.ordering import (
    Scenario,
    delayed_scenario,
    interrupt_scenario,
    kick_scenario,
    more_used_scenario,
    polling_scenario,
    standard_scenarios,
)

from impl.weak_memory import MODELS, TSO, WEAK, MemoryModel


def plan(large: bool) -> list[tuple[Scenario, MemoryModel]]:
    """What to explore: the standard scenarios in every model, or the large ones."""
    if not large:
        return [(s, m) for s in _scenarios() for m in MODELS]
    shapes = [Geometry(size=4, buffers=3), Geometry(size=4, buffers=4)]
    return [
        (build(event_idx, geometry=shape), model)
        for shape in shapes
        for build in (kick_scenario, interrupt_scenario)
        for event_idx in (False, True)
        for model in (TSO, WEAK)
    ]


def _scenarios() -> list[Scenario]:
    """The default plan's scenarios (module docstring), split ring first."""
    modes = (False, True)
    found: list[Scenario] = []
    rings = ((STANDARD, [STANDARD]), (PACKED_STANDARD, [PACKED_STANDARD, PACKED_LISTS]))
    for ring, shapes in rings:
        for shape in shapes:
            found += [*standard_scenarios(shape), polling_scenario(geometry=shape)]
        found += [more_used_scenario(e, geometry=ring) for e in modes]
        found += [delayed_scenario(e, geometry=ring) for e in modes]
    for tables in (INDIRECT, PACKED_INDIRECT):
        found += [b(e, geometry=tables) for b in (kick_scenario, interrupt_scenario) for e in modes]
    return found


def main() -> None:
    """Explore everything once and print the table."""
    began = time.perf_counter()
    states = executions = 0
    print(f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}")
    print("| scenario | model | states | executions | interleavings | s | states/s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for scenario, model in plan("--large" in sys.argv):
        report = scenario.explore(model, stop_at_failure=False)
        assert report.passed, report.counterexample()
        states += report.states
        executions += report.executions
        rate = report.states / report.seconds if report.seconds else 0.0
        print(
            f"| {scenario.name} | {model.name} | {report.states} "
            f"| {report.executions} | {report.interleavings:.3g} | {report.seconds:.2f} "
            f"| {rate:.0f} |"
        )
    total = time.perf_counter() - began
    print(f"total: {states} states, {executions} executions, {total:.1f} s wall, "
          f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
