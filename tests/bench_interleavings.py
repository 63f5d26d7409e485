"""Benchmark: the exhaustive standard scenarios, every model, mode and direction.

Run `PYTHONPATH=.:tests python tests/bench_interleavings.py`. Prints one row per
exploration (states, complete executions, interleavings the states stand for,
seconds, states per second) and the totals; the figures in docs/performance.md
("Interleavings") come from this script.
"""

from __future__ import annotations

import platform
import time

from support.ordering import polling_scenario, standard_scenarios

from impl.weak_memory import MODELS


def main() -> None:
    """Explore everything once and print the table."""
    began = time.perf_counter()
    states = executions = 0
    print(f"Python {platform.python_version()}")
    print("| scenario | model | states | executions | interleavings | s | states/s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for scenario in [*standard_scenarios(), polling_scenario()]:
        for model in MODELS:
            report = scenario.explore(model, stop_at_failure=False)
            assert report.passed, report.counterexample()
            states += report.states
            executions += report.executions
            rate = report.states / report.seconds if report.seconds else 0.0
            print(
                f"| {scenario.name} | {model.name} | {report.states} | {report.executions} "
                f"| {report.interleavings:.3g} | {report.seconds:.2f} | {rate:.0f} |"
            )
    total = time.perf_counter() - began
    print(f"total: {states} states, {executions} executions, {total:.1f} s wall")


if __name__ == "__main__":
    main()
