"""Collect the requirement ids the project's checks name: tests, proofs and error classes.

Three sources, each turned into `model.conformance.Check` records:

- Tests: pytest's own collection, run in-process over `tests/` with a small plugin that
  reads `item.iter_markers("spec")` on every collected item (so module-level
  `pytestmark`, class marks and function marks all count) and records the node id
  without its parametrization suffix. Nothing is grepped and no test runs.
  A test's kind comes from its module name: `tests/test_hostile_*.py` are hostile-input
  tests; `tests/test_refines_*.py` and `tests/test_stateful_*.py`, and any Hypothesis
  `RuleBasedStateMachine.TestCase`, are stateful tests; every other test is "other".
- Proofs: the registry protocol below, `proofs.registry.all_obligations()`. A missing
  `proofs` package, module or function means zero proofs, not an error.
- Error classes: every subclass of `impl.errors.VirtioError` defined in any module of
  `impl` that declares its own non-empty `spec_ids`.

Rules:
- Collection must stay cheap: importing the test modules and the proof registry is the
  whole cost; `all_obligations()` must not run a solver.
- A test module that fails to import is an error (its ids would silently vanish); one
  that skips itself at collection is reported, because its ids are then not counted
  on that machine (use a `skipif` mark on the tests instead).

Spec: none of its own; it serves the matrix of `model.conformance`.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import pkgutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import pytest

from model.conformance_matrix import Check, CheckKind, ConformanceError

HOSTILE_PREFIXES = ("test_hostile",)
STATEFUL_PREFIXES = ("test_refines", "test_stateful")


class Obligation(Protocol):
    """What the proof registry hands out: a proof obligation's name and requirement ids."""

    @property
    def name(self) -> str:
        """A stable name, e.g. `proof_need_event_matches_2_7_7_2`."""

    @property
    def spec_ids(self) -> Sequence[str]:
        """The requirement ids (requirements.tsv) the obligation proves."""


def _ids(values: Iterable[object], owner: str) -> tuple[str, ...]:
    ids = tuple(values)
    if not all(isinstance(value, str) for value in ids):
        raise ConformanceError(f"{owner}: spec ids must be strings, got {ids!r}")
    return tuple(str(value) for value in ids)


def kind_of_test(item: pytest.Item) -> CheckKind:
    """Classify a collected test: hostile-input, stateful or other (module docstring)."""
    module = item.path.name
    if module.startswith(HOSTILE_PREFIXES):
        return CheckKind.HOSTILE
    runner = getattr(item, "obj", None)
    if module.startswith(STATEFUL_PREFIXES) or hasattr(runner, "_hypothesis_state_machine_class"):
        return CheckKind.STATEFUL
    return CheckKind.TEST


class _SpecPlugin:
    """pytest plugin that records, per collected item, the ids of its `spec` markers."""

    def __init__(self) -> None:
        self.checks: list[Check] = []
        self.failed: list[str] = []
        self.skipped: list[str] = []

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.failed.append(f"{report.nodeid}: {report.longreprtext}")
        elif report.skipped:
            self.skipped.append(report.nodeid)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            ids: list[object] = []
            for marker in item.iter_markers("spec"):
                if not marker.args:
                    self.failed.append(f"{item.nodeid}: a spec marker without ids")
                ids.extend(marker.args)
            if ids:
                name = item.nodeid.split("[", 1)[0]
                try:
                    self.checks.append(Check(kind_of_test(item), name, _ids(ids, name)))
                except ConformanceError as error:
                    self.failed.append(str(error))


def collect_tests(root: Path) -> tuple[list[Check], list[str]]:
    """Run pytest's collection over `root/tests`; return the checks and the skipped modules."""
    plugin = _SpecPlugin()
    args = [
        "--collect-only",
        "-q",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(root),
        "-c",
        str(root / "pyproject.toml"),
        str(root / "tests"),
    ]
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        code = pytest.main(args, plugins=[plugin])
    if plugin.failed or code not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        detail = "\n".join(plugin.failed) or output.getvalue()[-2000:]
        raise ConformanceError(f"pytest collection failed (exit {int(code)}):\n{detail}")
    merged: dict[str, Check] = {}
    for check in plugin.checks:  # parametrized items share a node id once "[...]" is cut
        seen = merged.get(check.name)
        ids = check.spec_ids if seen is None else seen.spec_ids + check.spec_ids
        merged[check.name] = Check(check.kind, check.name, tuple(dict.fromkeys(ids)))
    return list(merged.values()), plugin.skipped


def collect_proofs() -> list[Check]:
    """Proof obligations from `proofs.registry.all_obligations()`; none if it is absent."""
    try:
        registry = importlib.import_module("proofs.registry")
    except ModuleNotFoundError as error:
        if error.name in ("proofs", "proofs.registry"):
            return []
        raise
    all_obligations = getattr(registry, "all_obligations", None)
    if all_obligations is None:
        return []
    checks = []
    for obligation in all_obligations():
        name = getattr(obligation, "name", None)
        if not isinstance(name, str):
            raise ConformanceError(f"proof obligation without a string name: {obligation!r}")
        checks.append(Check(CheckKind.PROOF, name, _ids(getattr(obligation, "spec_ids", ()), name)))
    return checks


def collect_errors() -> list[Check]:
    """Error classes of `impl` (any module) that declare their own `spec_ids`."""
    import impl
    from impl.errors import VirtioError

    for module in pkgutil.iter_modules(impl.__path__):
        importlib.import_module(f"impl.{module.name}")
    checks = []
    pending: list[type[VirtioError]] = [VirtioError]
    seen: set[type[VirtioError]] = set()
    while pending:
        cls = pending.pop()
        if cls in seen:
            continue
        seen.add(cls)
        pending.extend(cls.__subclasses__())
        if not cls.__module__.startswith("impl.") or not cls.__dict__.get("spec_ids"):
            continue
        where = "" if cls.__module__ == "impl.errors" else cls.__module__ + "."
        name = where + cls.__qualname__
        checks.append(Check(CheckKind.ERROR, name, _ids(cls.spec_ids, name)))
    return sorted(checks, key=lambda c: c.name)


def collect_all(root: Path, *, warn: bool = True) -> list[Check]:
    """Every check of the repository at `root`: tests, then proofs, then error classes."""
    tests, skipped = collect_tests(root)
    if warn:
        for nodeid in skipped:
            print(f"conformance: warning: {nodeid} skipped at collection; its ids are not counted")
    return tests + collect_proofs() + collect_errors()
