"""Tests for the conformance matrix: the judging logic on synthetic inputs, then the real repo.

The synthetic half builds a four-row requirements file and hand-made checks, so each
verdict (unknown id, stale file, ratchet) is decided by data the test wrote itself.
The collection half runs the real in-process pytest collection on a throwaway tree.
The last tests run the real check against this repository and audit the error classes.

Spec: none of its own (tooling); the error audit ties `impl.errors` sections to the ids.
"""

from __future__ import annotations

import sys
import textwrap
import types
from decimal import Decimal
from pathlib import Path

import pytest

from model.conformance import (
    DOC_PATH,
    RatchetError,
    judge,
    load_matrix,
    parse_ratchet,
    raise_ratchet,
    render,
)
from model.conformance_collect import collect_errors, collect_proofs, collect_tests
from model.conformance_matrix import (
    ENV_REQUIREMENTS,
    Check,
    CheckKind,
    ConformanceError,
    Matrix,
    Status,
    build,
    load_not_applicable,
    load_requirements,
    load_sections,
    locate_requirements,
)
from model.spec_numbers import number_blocks

HEADER = "id\tarea\tside\tlevel\tspec_section\tspec_source\tstatement\n"
ROWS = [
    ("TOY-DRV-001", "TOY", "driver", "MUST", "Toy / Ring", "toy.tex:10"),
    ("TOY-DRV-002", "TOY", "driver", "MUST NOT", "Toy / Ring", "toy.tex:10"),
    ("TOY-DEV-001", "TOY", "device", "MUST", "Toy / Ring / Extra", "toy.tex:20"),
    ("TOY-DEV-002", "TOY", "device", "MAY", "Toy / Other", "toy.tex:30"),
]


@pytest.fixture
def requirements(tmp_path: Path) -> Path:
    path = tmp_path / "requirements.tsv"
    body = "".join("\t".join(row) + "\tsentence not used\n" for row in ROWS)
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def toy_build(path: Path, checks: list[Check], na: dict[str, str] | None = None) -> Matrix:
    return build(load_requirements(path), checks, na or {}, {"toy.tex:10": "9.1"})


def test_status_is_the_strongest_check_and_errors_alone_do_not_cover(requirements: Path) -> None:
    checks = [
        Check(CheckKind.TEST, "tests/test_toy.py::test_a", ("TOY-DRV-001",)),
        Check(CheckKind.PROOF, "proof_toy", ("TOY-DRV-001",)),
        Check(CheckKind.ERROR, "ToyError", ("TOY-DRV-002",)),
    ]
    matrix = toy_build(requirements, checks)
    status = {row.req.id: row.status for row in matrix.rows}
    assert status == {
        "TOY-DRV-001": Status.PROOF,
        "TOY-DRV-002": Status.ERROR_ONLY,
        "TOY-DEV-001": Status.NOT_COVERED,
        "TOY-DEV-002": Status.NOT_COVERED,
    }
    assert [row.section for row in matrix.rows[:3]] == ["9.1", "9.1", "Extra"]
    assert matrix.share == Decimal("33.33")  # 1 of the 3 MUST/MUST NOT rows, floored


def test_not_applicable_by_id_and_section_leaves_scope(requirements: Path) -> None:
    na = {"TOY-DRV-002": "legacy only", "section:Toy / Ring / Extra": "never offered"}
    covered = [Check(CheckKind.HOSTILE, "tests/test_hostile_toy.py::t", ("TOY-DRV-002",))]
    matrix = toy_build(requirements, covered, na)
    status = {row.req.id: row.status for row in matrix.rows}
    assert status["TOY-DEV-001"] == Status.NOT_APPLICABLE
    assert status["TOY-DRV-002"] == Status.HOSTILE  # a test beats the table
    assert [r.req.id for r in matrix.in_scope] == ["TOY-DRV-001", "TOY-DRV-002"]
    assert matrix.unknown_keys == ()
    assert toy_build(requirements, [], {"section:Toy / Rin": "x"}).unknown_keys == (
        "section:Toy / Rin",
    )


def test_unknown_id_is_detected(requirements: Path) -> None:
    checks = [
        Check(CheckKind.STATEFUL, "tests/test_refines_toy.py::TestToy", ("TOY-DRV-001",)),
        Check(CheckKind.ERROR, "ToyError", ("TOY-DRV-999",)),
    ]
    matrix = toy_build(requirements, checks)
    assert matrix.unknown_ids == ("error class ToyError: TOY-DRV-999",)
    problems = judge(matrix, render(matrix, Decimal("0.00")))
    assert problems == ["unknown requirement id named by error class ToyError: TOY-DRV-999"]


def test_fresh_file_passes_and_stale_file_fails(requirements: Path) -> None:
    before = toy_build(requirements, [])
    text = render(before, Decimal("0.00"))
    assert judge(before, text) == []
    after = toy_build(requirements, [Check(CheckKind.TEST, "t::x", ("TOY-DEV-002",))])
    assert any("stale" in problem for problem in judge(after, text))
    assert any("stale" in problem for problem in judge(before, text.replace("MAY", "MUST")))


def test_ratchet_cannot_go_down(requirements: Path) -> None:
    matrix = toy_build(requirements, [Check(CheckKind.TEST, "t::x", ("TOY-DRV-001",))])
    assert matrix.share == Decimal("33.33")
    assert judge(matrix, render(matrix, Decimal("33.33"))) == []
    problems = judge(matrix, render(matrix, Decimal("50.00")))
    assert problems == ["covered share of in-scope MUST/MUST NOT fell to 33.33% (ratchet 50.00%)"]
    with pytest.raises(RatchetError):
        raise_ratchet(Decimal("50.00"), matrix.share)
    assert raise_ratchet(Decimal("10.00"), matrix.share) == Decimal("33.33")
    assert parse_ratchet(render(matrix, Decimal("12.50"))) == Decimal("12.50")
    assert parse_ratchet("no marker here") == Decimal("0.00")


def test_requirements_location(requirements: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_REQUIREMENTS, str(requirements))
    assert locate_requirements() == requirements
    monkeypatch.setenv(ENV_REQUIREMENTS, str(requirements.with_name("absent.tsv")))
    with pytest.raises(ConformanceError):
        locate_requirements()
    monkeypatch.delenv(ENV_REQUIREMENTS)
    nested = requirements.parent / "a" / "b" / "repo"
    nested.mkdir(parents=True)
    beside = requirements.parent / "shared" / "spec" / "requirements.tsv"
    beside.parent.mkdir(parents=True)
    beside.write_text(HEADER)
    assert locate_requirements(nested) == beside


# --- collection ------------------------------------------------------------------------
TOY_TESTS = {
    "test_hostile_toyfx.py": """
        import pytest

        @pytest.mark.spec("TOY-DRV-001")
        @pytest.mark.parametrize("n", [1, 2])
        def test_bad(n):
            pass
    """,
    "test_refines_toyfx.py": """
        import pytest

        pytestmark = pytest.mark.spec("TOY-DEV-001")

        class TestRun:
            @pytest.mark.spec("TOY-DRV-002")
            def test_run(self):
                pass
    """,
    "test_plain_toyfx.py": """
        import pytest

        def test_unmarked():
            pass

        @pytest.mark.spec("TOY-DEV-002")
        def test_marked():
            pass
    """,
    "test_machine_toyfx.py": """
        import pytest
        from hypothesis.stateful import RuleBasedStateMachine, rule

        pytestmark = pytest.mark.spec("TOY-DEV-001")

        class Toy(RuleBasedStateMachine):
            @rule()
            def step(self):
                pass

        TestToy = Toy.TestCase
    """,
    "test_skipped_toyfx.py": """
        import pytest

        pytest.skip("no native peer here", allow_module_level=True)
    """,
}


def _toy_repo(root: Path, files: dict[str, str]) -> None:
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\nmarkers = ["spec(*ids): requirement ids"]\n'
    )
    for name, body in files.items():
        (root / "tests" / name).write_text(textwrap.dedent(body))


def test_collection_reads_markers_and_classifies_tests(tmp_path: Path) -> None:
    _toy_repo(tmp_path, TOY_TESTS)
    checks, skipped = collect_tests(tmp_path)
    found = {(c.kind, c.name, c.spec_ids) for c in checks}
    assert found == {
        (CheckKind.HOSTILE, "tests/test_hostile_toyfx.py::test_bad", ("TOY-DRV-001",)),
        (
            CheckKind.STATEFUL,
            "tests/test_refines_toyfx.py::TestRun::test_run",
            ("TOY-DRV-002", "TOY-DEV-001"),
        ),
        (CheckKind.TEST, "tests/test_plain_toyfx.py::test_marked", ("TOY-DEV-002",)),
        (CheckKind.STATEFUL, "tests/test_machine_toyfx.py::TestToy::runTest", ("TOY-DEV-001",)),
    }
    assert skipped == ["tests/test_skipped_toyfx.py"]


@pytest.mark.parametrize(
    ("module", "body", "message"),
    [
        ("test_import_toyfx.py", "import no_such_module_toyfx\n", "no_such_module_toyfx"),
        (
            "test_empty_toyfx.py",
            "import pytest\n\n@pytest.mark.spec()\ndef test_empty():\n    pass\n",
            "without ids",
        ),
        (
            "test_number_toyfx.py",
            "import pytest\n\n@pytest.mark.spec(7)\ndef test_number():\n    pass\n",
            "must be strings",
        ),
    ],
)
def test_collection_errors_are_fatal(tmp_path: Path, module: str, body: str, message: str) -> None:
    _toy_repo(tmp_path, {module: body})
    with pytest.raises(ConformanceError, match=message):
        collect_tests(tmp_path)


def test_proof_registry_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = types.ModuleType("proofs.registry")
    obligation = types.SimpleNamespace(name="proof_toy", spec_ids=("TOY-DRV-001",))
    registry.all_obligations = lambda: [obligation]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "proofs.registry", registry)
    assert collect_proofs() == [Check(CheckKind.PROOF, "proof_toy", ("TOY-DRV-001",))]
    del registry.all_obligations  # type: ignore[attr-defined]
    assert collect_proofs() == []


# --- the real repository ---------------------------------------------------------------
def test_committed_matrix_is_current() -> None:
    """The CI check itself: docs/conformance.md is fresh, every id known, ratchet held."""
    assert judge(load_matrix(), DOC_PATH.read_text(encoding="utf-8")) == []


def test_error_sections_agree_with_their_ids() -> None:
    """Each error class's `section` is (a parent of) the section of one of its ids."""
    requirements = {r.id: r for r in load_requirements(locate_requirements())}
    sections = load_sections()
    for check in collect_errors():
        module, _, name = check.name.rpartition(".")
        cls = getattr(sys.modules["impl." + (module or "errors")], name)
        numbers = [sections[requirements[i].source] for i in check.spec_ids]
        assert any(n == cls.section or n.startswith(cls.section + ".") for n in numbers), (
            check.name,
            cls.section,
            numbers,
        )


def test_not_applicable_table_is_well_formed() -> None:
    table = load_not_applicable()
    assert table, "model/not_applicable.tsv is empty or missing"
    assert all(reason and "\n" not in reason for reason in table.values())


def test_section_numbering_follows_latex() -> None:
    """Inputs are followed in place, starred headings and comments do not count, the
    normative macros count at the level they wrap, and \\appendix stops numbering."""
    files = {
        "main.tex": ["\\chapter{Intro}", "\\input{body}", "\\appendix", "\\chapter{App}"],
        "body.tex": [
            "\\chapter{Basics}",
            "\\section*{Unnumbered}",
            "% \\section{Commented out}",
            "\\section{Rings}",
            "\\drivernormative{\\subsection}{Rings}{label}",
            "\\devicenormative{\\subsection}{Rings}{label}",
            "\\section{Next}",
            "\\paragraph{Deep}",
        ],
    }
    numbers = number_blocks(files.__getitem__)
    assert numbers == {
        "main.tex:1": "1",
        "body.tex:1": "2",
        "body.tex:4": "2.1",
        "body.tex:5": "2.1.1",
        "body.tex:6": "2.1.2",
        "body.tex:7": "2.2",
        "body.tex:8": "2.2.0.0.1",
    }
