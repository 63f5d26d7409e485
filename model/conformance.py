"""The conformance matrix: every normative statement in scope, and the checks that enforce it.

`python -m model.conformance` reads the requirements file (`shared/spec/requirements.tsv`),
collects requirement ids from the test suite (pytest markers), the proof registry and
the error classes (see `model.conformance_collect`), and writes `docs/conformance.md`.
`--check` regenerates it in memory and fails on a stale file, an unknown id, an
unknown not-applicable key, or a covered share below the recorded ratchet; `--update`
raises the ratchet to the current share (it never lowers it). How to use it:
docs/conformance-howto.md.

Rules:
- Tooling, not model: unlike the rest of `model/` it reads files and imports the
  project's checks; it never imports them at module level, so the pure part (load,
  classify, render, judge) is testable on synthetic data.
- The requirement sentences are never copied: the matrix shows ids, section numbers,
  levels, statuses and check names only.
- Status, strongest first: proof, stateful test, hostile-input test, other test,
  error class only, not applicable, NOT COVERED. A statement counts as *covered* when
  a proof or a test names it; an error class alone shows the rule is enforced, not
  that the enforcement was ever exercised, so it does not count.
- The ratchet is the floor (two decimals) of the covered share of in-scope MUST and
  MUST NOT statements (not applicable ones are out of scope), recorded in the
  generated file itself on a `conformance-ratchet:` line.

Spec: VIRTIO 1.4 CS01, every area in requirements.tsv (§2.1, §2.2, §2.4 to §2.8, §3,
§4.2, §5.1, §5.2, §6).
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from enum import Enum
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DOC_PATH = REPO_ROOT / "docs" / "conformance.md"
NOT_APPLICABLE_TSV = Path(__file__).with_name("not_applicable.tsv")
SECTIONS_TSV = Path(__file__).with_name("spec_sections.tsv")
ENV_REQUIREMENTS = "VIRTIO_ORACLE_REQUIREMENTS"
RELATIVE_REQUIREMENTS = Path("shared") / "spec" / "requirements.tsv"
MANDATORY = ("MUST", "MUST NOT")
SECTION_KEY = "section:"
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


class ConformanceError(Exception):
    """The inputs of the matrix are unusable (a missing file, a malformed row or marker)."""


class RatchetError(ConformanceError):
    """An attempt to lower the ratchet."""


class CheckKind(Enum):
    """What kind of check names a requirement id."""

    PROOF = "proof"
    STATEFUL = "stateful test"
    HOSTILE = "hostile-input test"
    TEST = "other test"
    ERROR = "error class"


class Status(Enum):
    """A requirement's coverage, strongest first (the order of the members)."""

    PROOF = "proof"
    STATEFUL = "stateful test"
    HOSTILE = "hostile-input test"
    TEST = "other test"
    ERROR_ONLY = "error class only"
    NOT_APPLICABLE = "not applicable"
    NOT_COVERED = "NOT COVERED"


COVERED = frozenset({Status.PROOF, Status.STATEFUL, Status.HOSTILE, Status.TEST})
_STATUS_OF_KIND = {
    CheckKind.PROOF: Status.PROOF,
    CheckKind.STATEFUL: Status.STATEFUL,
    CheckKind.HOSTILE: Status.HOSTILE,
    CheckKind.TEST: Status.TEST,
    CheckKind.ERROR: Status.ERROR_ONLY,
}
_STATUS_RANK = {status: rank for rank, status in enumerate(Status)}


@dataclass(frozen=True, slots=True)
class Requirement:
    """One row of requirements.tsv, without its sentence."""

    id: str
    area: str
    side: str
    level: str
    label: str
    source: str


@dataclass(frozen=True, slots=True)
class Check:
    """One check and the requirement ids it names: a test node, a proof or an error class."""

    kind: CheckKind
    name: str
    spec_ids: tuple[str, ...]

    @property
    def sort_key(self) -> tuple[int, str]:
        """Order checks by kind (as CheckKind lists them), then by name."""
        return (list(CheckKind).index(self.kind), self.name)


@dataclass(frozen=True, slots=True)
class Row:
    """One requirement in the matrix: its section number, status and covering checks."""

    req: Requirement
    section: str
    status: Status
    checks: tuple[Check, ...]
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Matrix:
    """The whole matrix plus what did not fit in it (unknown ids and keys)."""

    rows: tuple[Row, ...]
    unknown_ids: tuple[str, ...]
    unknown_keys: tuple[str, ...]

    @property
    def in_scope(self) -> list[Row]:
        """MUST and MUST NOT rows that are not marked not applicable."""
        return [
            r for r in self.rows if r.req.level in MANDATORY and r.status != Status.NOT_APPLICABLE
        ]

    @property
    def share(self) -> Decimal:
        """The covered share of in-scope MUST/MUST NOT rows, in percent, floored to 0.01."""
        return covered_share(self.in_scope)


def covered_share(rows: Sequence[Row]) -> Decimal:
    """Percent of `rows` whose status counts as covered, floored to two decimals."""
    if not rows:
        return Decimal("100.00")
    covered = sum(1 for r in rows if r.status in COVERED)
    exact = Decimal(covered * 100) / Decimal(len(rows))
    return exact.quantize(Decimal("0.01"), rounding=ROUND_FLOOR)


# --- inputs ----------------------------------------------------------------------------
def locate_requirements(root: Path = REPO_ROOT) -> Path:
    """Find requirements.tsv: $VIRTIO_ORACLE_REQUIREMENTS, else `shared/spec/` beside an ancestor.

    The repository's parent is tried first (`../shared/spec/requirements.tsv`, as CI lays
    it out), then each further ancestor (a git worktree nested elsewhere).
    """
    override = os.environ.get(ENV_REQUIREMENTS)
    if override:
        path = Path(override)
        if not path.is_file():
            raise ConformanceError(f"{ENV_REQUIREMENTS}={override} is not a file")
        return path
    for ancestor in root.resolve().parents:
        candidate = ancestor / RELATIVE_REQUIREMENTS
        if candidate.is_file():
            return candidate
    raise ConformanceError(
        f"requirements.tsv not found as ../{RELATIVE_REQUIREMENTS} above {root}; "
        f"set {ENV_REQUIREMENTS}"
    )


def _tsv_rows(path: Path, *, comments: bool = False) -> list[dict[str, str]]:
    """The rows of a tab-separated file with a header line (and `#` comment lines if asked)."""
    with path.open(encoding="utf-8", newline="") as handle:
        lines = [line for line in handle if not (comments and line.startswith("#"))]
    reader = csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    return [row for row in reader if any(row.values())]


def load_requirements(path: Path) -> list[Requirement]:
    """Read requirements.tsv (id, area, side, level, spec_section, spec_source, statement)."""
    try:
        rows = [
            Requirement(
                r["id"], r["area"], r["side"], r["level"], r["spec_section"], r["spec_source"]
            )
            for r in _tsv_rows(path)
        ]
    except KeyError as missing:
        raise ConformanceError(f"{path}: missing column {missing}") from None
    seen = Counter(r.id for r in rows)
    duplicates = sorted(i for i, n in seen.items() if n > 1)
    if duplicates:
        raise ConformanceError(f"{path}: duplicate ids {', '.join(duplicates)}")
    return rows


def load_sections(path: Path = SECTIONS_TSV) -> dict[str, str]:
    """Read spec_sections.tsv: `spec_source` -> section number (see model.spec_numbers)."""
    if not path.is_file():
        return {}
    return {r["spec_source"]: r["section"] for r in _tsv_rows(path)}


def load_not_applicable(path: Path = NOT_APPLICABLE_TSV) -> dict[str, str]:
    """Read not_applicable.tsv: key (an id, or `section:` + a label prefix) -> reason."""
    if not path.is_file():
        return {}
    table: dict[str, str] = {}
    for r in _tsv_rows(path, comments=True):
        key, reason = r["key"].strip(), r["reason"].strip()
        if not reason:
            raise ConformanceError(f"{path}: {key} has no reason")
        table[key] = reason
    return table


# --- classification --------------------------------------------------------------------
def _na_reason(req: Requirement, table: dict[str, str]) -> str:
    """The reason `req` is not applicable, or "" (an id entry beats a section entry)."""
    if req.id in table:
        return table[req.id]
    for key, reason in table.items():
        if key.startswith(SECTION_KEY):
            prefix = key[len(SECTION_KEY) :].strip()
            if req.label == prefix or req.label.startswith(prefix + " / "):
                return reason
    return ""


def _unused_keys(requirements: Sequence[Requirement], table: dict[str, str]) -> list[str]:
    """Keys of the not-applicable table that match no requirement."""
    ids = {r.id for r in requirements}
    unused = []
    for key in table:
        if key.startswith(SECTION_KEY):
            prefix = key[len(SECTION_KEY) :].strip()
            hit = any(r.label == prefix or r.label.startswith(prefix + " / ") for r in requirements)
        else:
            hit = key in ids
        if not hit:
            unused.append(key)
    return unused


def build(
    requirements: Sequence[Requirement],
    checks: Iterable[Check],
    not_applicable: dict[str, str],
    sections: dict[str, str],
) -> Matrix:
    """Classify every requirement by the checks that name it (Status order decides)."""
    known = {r.id for r in requirements}
    by_id: dict[str, list[Check]] = defaultdict(list)
    unknown: set[str] = set()
    for check in checks:
        for spec_id in dict.fromkeys(check.spec_ids):
            if spec_id in known:
                by_id[spec_id].append(check)
            else:
                unknown.add(f"{check.kind.value} {check.name}: {spec_id}")
    rows = []
    for req in requirements:
        covering = tuple(sorted(set(by_id.get(req.id, ())), key=lambda c: c.sort_key))
        reason = _na_reason(req, not_applicable)
        status = min(
            (_STATUS_OF_KIND[c.kind] for c in covering),
            key=_STATUS_RANK.__getitem__,
            default=Status.NOT_COVERED,
        )
        if reason and status not in COVERED:
            status = Status.NOT_APPLICABLE
        section = sections.get(req.source) or req.label.rsplit(" / ", 1)[-1]
        rows.append(Row(req, section, status, covering, reason))
    return Matrix(
        tuple(rows), tuple(sorted(unknown)), tuple(_unused_keys(requirements, not_applicable))
    )


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
    parts = [f"{_KIND_LABEL[c.kind]} `{_cell(c.name)}`" for c in row.checks]
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
    # Run the imported module's main, not this __main__ copy: the collectors import
    # `model.conformance`, and its enums must be the ones the matrix compares against.
    from model.conformance import main as _main

    raise SystemExit(_main())
