"""Benchmark: the exhaustive standard scenarios, every model, mode and direction.

Run `PYTHONPATH=.:tests python tests/bench_interleavings.py [--large]`. Prints one row per
exploration (states, complete executions, interleavings the states stand for,
seconds, states per second) and the totals; the figures in docs/performance.md
("Interleavings") come from this script. `--large` explores queue size 4 with three
and four buffers in flight instead (TSO and WEAK; not part of CI).
"""

from __future__ import annotations

import platform
import sys
import time

from support.geometry import Geometry
from support.ordering import (
    Scenario,
    interrupt_scenario,
    kick_scenario,
    polling_scenario,
    standard_scenarios,
)

from impl.weak_memory import MODELS, TSO, WEAK, MemoryModel


def plan(large: bool) -> list[tuple[Scenario, MemoryModel]]:
    """What to explore: the standard scenarios in every model, or the large ones."""
    if not large:
        return [(s, m) for s in [*standard_scenarios(), polling_scenario()] for m in MODELS]
    shapes = [Geometry(size=4, buffers=3), Geometry(size=4, buffers=4)]
    return [
        (build(event_idx, geometry=shape), model)
        for shape in shapes
        for build in (kick_scenario, interrupt_scenario)
        for event_idx in (False, True)
        for model in (TSO, WEAK)
    ]


def main() -> None:
    """Explore everything once and print the table."""
    began = time.perf_counter()
    states = executions = 0
    print(f"Python {platform.python_version()}")
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
    print(f"total: {states} states, {executions} executions, {total:.1f} s wall")


if __name__ == "__main__":
    main()
