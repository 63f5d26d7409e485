"""The conformance matrix command: write, check and ratchet docs/conformance.md.

`python -m model.conformance` reads the requirements file (`shared/spec/requirements.tsv`),
collects requirement ids from the test suite (pytest markers), the proof registry and
the error classes (`model.conformance_collect`), classifies every statement
(`model.conformance_matrix`) and writes `docs/conformance.md`. `--check` regenerates it
in memory and fails on a stale file, an unknown id, an unknown not-applicable key, or a
covered share below the recorded ratchet; `--update` raises the ratchet to the current
share (it never lowers it). How to use it: docs/conformance-howto.md.

Rules:
- Tooling, not model: it reads and writes files and imports the project's checks (only
  inside `load_matrix`, so rendering and judging are testable on synthetic data).
- The output holds ids, section numbers, levels, statuses and check names, never the
  requirement sentences, and nothing that varies between runs (no dates, no timings).
- The ratchet is recorded in the generated file itself on a `conformance-ratchet:`
  line; only `--update` changes it, and only upwards.

Spec: VIRTIO 1.4 CS01, every area in requirements.tsv (§2.1, §2.2, §2.4 to §2.8, §3,
§4.2, §5.1, §5.2, §6).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path

from model.conformance_matrix import (
    COVERED,
    REPO_ROOT,
    Check,
    CheckKind,
    ConformanceError,
    Matrix,
    Row,
    Status,
    build,
    covered_share,
    load_not_applicable,
    load_requirements,
    load_sections,
    locate_requirements,
)

DOC_PATH = REPO_ROOT / "docs" / "conformance.md"
_RATCHET_LINE = re.compile(r"<!-- conformance-ratchet: (\d+\.\d\d) -->")

AREA_TITLES = {
    "STATUS": "device status field (§2.1)",
    "FEAT": "feature bits (§2.2, §6)",
    "RESET": "device reset (§2.4)",
    "CONFIG": "device configuration space (§2.5)",
    "VQ": "virtqueue reset (§2.6.1)",
    "INIT": "initialization, cleanup and suspend (§3)",
    "SPLIT": "split virtqueues (§2.7)",
    "PACKED": "packed virtqueues (§2.8)",
    "MMIO": "virtio over MMIO (§4.2)",
    "NET": "network device (§5.1)",
    "BLK": "block device (§5.2)",
}


class RatchetError(ConformanceError):
    """An attempt to lower the ratchet."""


# --- rendering -------------------------------------------------------------------------
_KIND_LABEL = {
    CheckKind.PROOF: "proof",
    CheckKind.STATEFUL: "stateful",
    CheckKind.HOSTILE: "hostile",
    CheckKind.TEST: "test",
    CheckKind.ERROR: "error",
}


def _cell(text: str) -> str:
    """Escape a table cell."""
    return text.replace("|", "\\|")


def _checks_cell(row: Row) -> str:
    """The checks of a row; tests of one module share one `path: test, test` entry."""
    groups: dict[tuple[CheckKind, str], list[str]] = {}
    for check in row.checks:
        module, sep, test = check.name.partition("::")
        if sep and check.kind != CheckKind.PROOF:
            groups.setdefault((check.kind, module), []).append(test)
        else:
            groups.setdefault((check.kind, check.name), [])
    parts = []
    for (kind, name), tests in groups.items():
        names = ", ".join(f"`{_cell(test)}`" for test in tests)
        parts.append(f"{_KIND_LABEL[kind]} `{_cell(name)}`" + (f": {names}" if tests else ""))
    if row.reason:
        parts.append(f"n/a: {_cell(row.reason)}")
    return "; ".join(parts)


def _areas(rows: Sequence[Row]) -> dict[str, list[Row]]:
    grouped: dict[str, list[Row]] = {}
    for row in rows:
        grouped.setdefault(row.req.area, []).append(row)
    return grouped


def _summary(matrix: Matrix, ratchet: Decimal) -> list[str]:
    scope = matrix.in_scope
    covered = sum(1 for r in scope if r.status in COVERED)
    lines = [
        "## Summary",
        "",
        f"Covered: **{covered} of {len(scope)}** in-scope MUST/MUST NOT statements "
        f"(**{matrix.share}%**). Ratchet: that share may not fall below **{ratchet}%**.",
        "",
        f"<!-- conformance-ratchet: {ratchet} -->",
        "",
        "| area | MUST/MUST NOT in scope | covered | share | not applicable (all levels) |",
        "|---|---:|---:|---:|---:|",
    ]
    for area, rows in _areas(matrix.rows).items():
        area_scope = [r for r in scope if r.req.area == area]
        area_covered = sum(1 for r in area_scope if r.status in COVERED)
        na = sum(1 for r in rows if r.status == Status.NOT_APPLICABLE)
        lines.append(
            f"| {area} | {len(area_scope)} | {area_covered} | {covered_share(area_scope)}% | {na} |"
        )
    lines.append(
        f"| **all** | {len(scope)} | {covered} | {matrix.share}% | "
        f"{sum(1 for r in matrix.rows if r.status == Status.NOT_APPLICABLE)} |"
    )
    lines += ["", "### Statements by area, level and status", ""]
    statuses = list(Status)
    lines.append("| area | level | " + " | ".join(s.value for s in statuses) + " | total |")
    lines.append("|---|---|" + "---:|" * (len(statuses) + 1))
    for area, rows in _areas(matrix.rows).items():
        levels = dict.fromkeys(sorted({r.req.level for r in rows}, key=_level_rank))
        for level in levels:
            counts = Counter(r.status for r in rows if r.req.level == level)
            cells = " | ".join(str(counts.get(s, 0)) for s in statuses)
            lines.append(f"| {area} | {level} | {cells} | {sum(counts.values())} |")
    return lines


_LEVEL_ORDER = ("MUST", "MUST NOT", "SHOULD", "SHOULD NOT", "RECOMMENDED", "MAY")


def _level_rank(level: str) -> tuple[int, str]:
    return (_LEVEL_ORDER.index(level) if level in _LEVEL_ORDER else len(_LEVEL_ORDER), level)


def render(matrix: Matrix, ratchet: Decimal) -> str:
    """The text of docs/conformance.md for `matrix`, recording `ratchet` (a percentage)."""
    lines = [
        "# Conformance matrix",
        "",
        "<!-- Generated by `python -m model.conformance`; do not edit by hand. -->",
        "",
        f"Each of the {len(matrix.rows)} normative statements of `shared/spec/requirements.tsv` "
        "(VIRTIO 1.4 CS01), with the checks that enforce it: test node ids (pytest "
        "`spec` markers), proof obligations and typed error classes. Status, strongest "
        "first: **proof**; **stateful test** (a refinement state machine); **hostile-input "
        "test**; **other test**; **error class only** (a typed error enforces the rule, "
        "no test or proof names it); **not applicable** (reason given); **NOT COVERED**. "
        "Only proofs and tests count as covered. Regenerate and ratchet: "
        "docs/conformance-howto.md.",
        "",
        *_summary(matrix, ratchet),
    ]
    for area, rows in _areas(matrix.rows).items():
        title = AREA_TITLES.get(area)
        lines += ["", f"## {area}: {title}" if title else f"## {area}"]
        sides = dict.fromkeys(r.req.side for r in rows)
        for side in sides:
            lines += [
                "",
                f"### {area} {side}",
                "",
                "| id | § | level | status | checks |",
                "|---|---|---|---|---|",
            ]
            for row in rows:
                if row.req.side == side:
                    lines.append(
                        f"| {row.req.id} | {row.section} | {row.req.level} | "
                        f"{row.status.value} | {_checks_cell(row)} |"
                    )
    return "\n".join(lines) + "\n"


# --- judging ---------------------------------------------------------------------------
def parse_ratchet(text: str) -> Decimal:
    """The ratchet recorded in a generated file's text (0.00 when there is none)."""
    match = _RATCHET_LINE.search(text)
    return Decimal(match.group(1)) if match else Decimal("0.00")


def raise_ratchet(old: Decimal, share: Decimal) -> Decimal:
    """The new ratchet when recording `share`: it may only go up."""
    if share < old:
        raise RatchetError(f"covered share {share}% is below the ratchet {old}%; it cannot go down")
    return share


def judge(matrix: Matrix, doc_text: str, doc_name: str = "docs/conformance.md") -> list[str]:
    """Every reason the committed `doc_text` fails the check; empty when it passes."""
    ratchet = parse_ratchet(doc_text)
    problems = [f"unknown requirement id named by {entry}" for entry in matrix.unknown_ids]
    problems += [f"not-applicable key matches no requirement: {key}" for key in matrix.unknown_keys]
    if matrix.share < ratchet:
        problems.append(
            f"covered share of in-scope MUST/MUST NOT fell to {matrix.share}% (ratchet {ratchet}%)"
        )
    if doc_text != render(matrix, ratchet):
        problems.append(f"{doc_name} is stale: run `python -m model.conformance`")
    return problems


def load_matrix(checks: Iterable[Check] | None = None) -> Matrix:
    """Build the repository's matrix (collecting the checks unless given)."""
    if checks is None:
        from model.conformance_collect import collect_all

        checks = collect_all(REPO_ROOT)
    return build(
        load_requirements(locate_requirements()),
        checks,
        load_not_applicable(),
        load_sections(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write docs/conformance.md, or `--check` it, or `--update` the ratchet."""
    parser = argparse.ArgumentParser(
        prog="python -m model.conformance", description=__doc__.split("\n")[0]
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="fail if the file is stale or wrong")
    mode.add_argument("--update", action="store_true", help="also raise the ratchet")
    parser.add_argument("--output", type=Path, default=DOC_PATH, help="the generated file")
    args = parser.parse_args(argv)
    try:
        matrix = load_matrix()
        current = args.output.read_text(encoding="utf-8") if args.output.is_file() else ""
        if args.check:
            problems = judge(matrix, current, str(args.output))
        else:
            ratchet = parse_ratchet(current)
            if args.update:
                ratchet = raise_ratchet(ratchet, matrix.share)
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(render(matrix, ratchet), encoding="utf-8")
            problems = judge(matrix, args.output.read_text(encoding="utf-8"), str(args.output))
    except ConformanceError as error:
        print(f"conformance: {error}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"conformance: {problem}", file=sys.stderr)
    scope = matrix.in_scope
    written = args.output.read_text(encoding="utf-8") if args.output.is_file() else ""
    print(
        f"conformance: {sum(1 for r in scope if r.status in COVERED)} of {len(scope)} in-scope "
        f"MUST/MUST NOT statements covered ({matrix.share}%, ratchet {parse_ratchet(written)}%)"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
