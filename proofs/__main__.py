"""`python -m proofs`: check every obligation, print a table, exit non-zero unless all hold.

Options: `--list` (names and properties, no solver), `--only NAME` (repeatable),
`--json PATH` (the table as JSON), `--jobs N` (worker processes, default: CPU count),
`--timeout-ms MS` (per claim), `--no-crosshair` (skip the CrossHair contracts, which
otherwise run after the proofs with a bounded time per condition).

Spec: none of its own; see `proofs.registry` for what each obligation proves.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

from . import crosshair_run
from .registry import Obligation, all_obligations, by_name
from .verdict import DEFAULT_TIMEOUT_MS, Status, Verdict


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    obligation: Obligation
    verdict: Verdict

    def as_json(self) -> dict[str, object]:
        """The row as a JSON object."""
        ob, v = self.obligation, self.verdict
        return {
            "name": ob.name,
            "property": ob.prop,
            "spec_ids": list(ob.spec_ids),
            "impl_functions": list(ob.impl_functions),
            "bound": ob.bound,
            "verdict": v.status.value,
            "claims": v.claims,
            "seconds": round(v.seconds, 3),
            "cpu_seconds": round(v.cpu_seconds, 3),
            "failed_claim": v.failed_claim,
            "counterexample": dict(v.counterexample),
        }


def _prove_part(name: str, index: int, timeout_ms: int) -> Verdict:
    return by_name(name).prove_part(index, timeout_ms)


def _merge(verdicts: Sequence[Verdict]) -> Verdict:
    """One obligation's verdict from its parts': the first failure, all times summed."""
    seconds = sum(v.seconds for v in verdicts)
    cpu = sum(v.cpu_seconds for v in verdicts)
    claims = sum(v.claims for v in verdicts)
    for v in verdicts:
        if not v.ok:
            return replace(v, seconds=seconds, claims=claims, cpu_seconds=cpu)
    return Verdict(Status.PROVED, seconds, claims, cpu_seconds=cpu)


def run(obligations: Sequence[Obligation], jobs: int, timeout_ms: int) -> list[Row]:
    """Prove the obligations' parts, in worker processes when `jobs > 1`."""
    if jobs <= 1:
        return [Row(ob, ob.prove(timeout_ms)) for ob in obligations]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [[pool.submit(_prove_part, ob.name, i, timeout_ms)
                    for i in range(len(ob.parts))] for ob in obligations]
        return [Row(ob, _merge([f.result() for f in parts]))
                for ob, parts in zip(obligations, futures, strict=True)]


def print_table(rows: Sequence[Row]) -> None:
    """One block per obligation: verdict, time, bound, ids, property, counterexample."""
    for row in rows:
        ob, v = row.obligation, row.verdict
        print(f"{v.status.value.upper():<15} {v.seconds:6.2f}s ({v.cpu_seconds:5.2f}s cpu)  "
              f"{ob.name}  ({v.claims} claims)")
        print(f"    property: {ob.prop}")
        print(f"    bound:    {ob.bound}")
        print(f"    spec ids: {', '.join(ob.spec_ids)}")
        print(f"    about:    {', '.join(ob.impl_functions)}")
        if not v.ok:
            print(f"    FAILED:   {v.describe()}")


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m proofs", description=__doc__)
    parser.add_argument("--list", action="store_true", help="list the obligations and exit")
    parser.add_argument("--only", action="append", default=[], metavar="NAME")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout-ms", type=int, default=DEFAULT_TIMEOUT_MS)
    parser.add_argument("--no-crosshair", action="store_true", help="skip CrossHair")
    parser.add_argument("--crosshair-timeout", type=float,
                        default=crosshair_run.DEFAULT_PER_CONDITION_S,
                        help="CrossHair's time limit per condition, in seconds")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    obligations = all_obligations()
    if args.list:
        for ob in obligations:
            print(f"{ob.name}\n    {ob.prop}\n    bound: {ob.bound}")
        return 0
    if args.only:
        try:
            obligations = [by_name(name) for name in args.only]
        except KeyError as error:
            print(f"no obligation named {error}", file=sys.stderr)
            return 2
    start = time.perf_counter()
    crosshair = None
    if not args.no_crosshair and not args.only:
        crosshair = crosshair_run.start(per_condition_s=args.crosshair_timeout)
    rows = run(obligations, args.jobs, args.timeout_ms)
    print_table(rows)
    failed = [row.obligation.name for row in rows if not row.verdict.ok]
    cpu = sum(row.verdict.cpu_seconds for row in rows)
    print(f"\n{len(rows) - len(failed)}/{len(rows)} obligations proved "
          f"in {time.perf_counter() - start:.1f}s wall, {cpu:.1f}s solver cpu")
    report = None
    if crosshair is not None:
        report = crosshair_run.finish(crosshair, start)
        print(f"{report.summary()}\n    contracts of impl.ring_math, impl.layout and "
              f"impl.chain.walk_chain in {crosshair_run.CONTRACTS.name}")
        for line in report.failures:
            print(f"    {line}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            doc: dict[str, object] = {"obligations": [row.as_json() for row in rows]}
            if report is not None:
                doc["crosshair"] = {"ok": report.ok, "confirmed": report.confirmed,
                                    "searched": report.searched,
                                    "counterexamples": list(report.failures)}
            json.dump(doc, out, indent=2)
    return 1 if failed or (report is not None and not report.ok) else 0


if __name__ == "__main__":
    sys.exit(main())
