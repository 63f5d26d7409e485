"""The data of the conformance matrix: requirements, checks, statuses, and the classification.

Pure and testable on synthetic data: it reads the three tab-separated inputs
(requirements.tsv, `model/not_applicable.tsv`, `model/spec_sections.tsv`) and turns
them, with a list of `Check` records (from `model.conformance_collect`), into a
`Matrix`. Rendering, judging and the command line live in `model.conformance`.

Rules:
- Tooling, not model: unlike the rest of `model/` it reads files; it imports nothing
  from the project.
- The requirement sentences are never loaded: a `Requirement` keeps the id, area, side,
  level, block label and block source only.
- Status, strongest first: proof, stateful test, hostile-input test, other test,
  error class only, not applicable, NOT COVERED. A statement counts as *covered* when a
  proof or a test names it; an error class alone shows the rule is enforced, not that
  the enforcement was ever exercised, so it does not count. A test naming a statement
  marked not applicable still counts.
- A not-applicable reason may start `feature:NAME[,NAME...]`: the statement matters only
  once one of those features is negotiated. The names are parsed here; that no device
  or driver implements them is checked by tests/test_not_applicable.py (which may import
  the project, unlike this module).
- The covered share is over the in-scope statements (MUST and MUST NOT, not marked not
  applicable), in percent, floored to two decimals so that it can be recorded exactly.

Spec: VIRTIO 1.4 CS01, every area in requirements.tsv (§2.1, §2.2, §2.4 to §2.8, §3,
§4.2, §5.1, §5.2, §6).
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from enum import Enum
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
NOT_APPLICABLE_TSV = Path(__file__).with_name("not_applicable.tsv")
SECTIONS_TSV = Path(__file__).with_name("spec_sections.tsv")
ENV_REQUIREMENTS = "VIRTIO_ORACLE_REQUIREMENTS"
RELATIVE_REQUIREMENTS = Path("shared") / "spec" / "requirements.tsv"
MANDATORY = ("MUST", "MUST NOT")
SECTION_KEY = "section:"
FEATURE_PREFIX = "feature:"
_FEATURE_REASON = re.compile(r"feature:(VIRTIO_\w+(?:,VIRTIO_\w+)*)(?:\s+\S.*)?")


class ConformanceError(Exception):
    """The inputs of the matrix are unusable (a missing file, a malformed row or marker)."""


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
    """Read not_applicable.tsv: key (an id, or `section:` + a label prefix) -> reason.

    A reason starting `feature:` must name its features well (see `reason_features`).
    """
    if not path.is_file():
        return {}
    table: dict[str, str] = {}
    for r in _tsv_rows(path, comments=True):
        key, reason = r["key"].strip(), (r["reason"] or "").strip()
        if not reason:
            raise ConformanceError(f"{path}: {key} has no reason")
        try:
            reason_features(reason)
        except ConformanceError as bad:
            raise ConformanceError(f"{path}: {key}: {bad}") from None
        table[key] = reason
    return table


def reason_features(reason: str) -> tuple[str, ...]:
    """The feature names a not-applicable reason rests on: `feature:A,B rest` -> (A, B).

    Such an entry claims the statement only matters once one of the named features is
    negotiated, and that no device or driver of the project implements any of them
    (tests/test_not_applicable.py checks that claim against every device and driver).
    A reason without the prefix names no feature; a malformed prefix is an error.
    """
    if not reason.startswith(FEATURE_PREFIX):
        return ()
    match = _FEATURE_REASON.fullmatch(reason)
    if match is None:
        raise ConformanceError(
            f"malformed {FEATURE_PREFIX} reason {reason!r}: want "
            f"'{FEATURE_PREFIX}VIRTIO_X_F_A[,VIRTIO_X_F_B...] explanation'"
        )
    return tuple(match.group(1).split(","))


def feature_claims(table: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """Every not-applicable key whose reason names features, with those features."""
    return {key: names for key, reason in table.items() if (names := reason_features(reason))}


# --- classification --------------------------------------------------------------------
def _key_matches(key: str, req: Requirement) -> bool:
    """Whether a not-applicable key (an id, or `section:` + a label prefix) names `req`."""
    if not key.startswith(SECTION_KEY):
        return key == req.id
    prefix = key[len(SECTION_KEY) :].strip()
    label = req.label.strip()  # a few labels of requirements.tsv end in a space
    return label == prefix or label.startswith(prefix + " / ")


def _na_reason(req: Requirement, table: dict[str, str]) -> str:
    """The reason `req` is not applicable, or "" (an id entry beats a section entry)."""
    if req.id in table:
        return table[req.id]
    return next((reason for key, reason in table.items() if _key_matches(key, req)), "")


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
    unused = [k for k in not_applicable if not any(_key_matches(k, r) for r in requirements)]
    return Matrix(tuple(rows), tuple(sorted(unknown)), tuple(unused))
