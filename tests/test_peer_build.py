"""The peer build script's own logic, without apt: fixes, package choice, opt-out.

These run everywhere (no Debian needed): the fixes to `tools/virtio` apply once and only
where a header lacks them; the package choice follows `apt-cache policy`; the opt-out
variable is read as documented.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from peers import build


def _tree(tmp_path: Path, compiler: str, module: str) -> Path:
    tree = tmp_path / "linux-source-x"
    headers = tree / "tools" / "virtio" / "linux"
    headers.mkdir(parents=True)
    (headers / "compiler.h").write_text(compiler)
    (headers / "module.h").write_text(module)
    return tree


def test_fixes_fill_only_the_gaps_and_only_once(tmp_path: Path) -> None:
    tree = _tree(tmp_path, "#define READ_ONCE(x) (x)\n", "#define data_race(x) (x)\n")
    assert build.apply_fixes(tree) == ["linux/compiler.h: data_race",
                                       "linux/module.h: MODULE_DESCRIPTION"]
    first = {p.name: p.read_text() for p in (tree / "tools/virtio/linux").iterdir()}
    assert "#define data_race(expr) (expr)" in first["compiler.h"]
    assert build.apply_fixes(tree) == []
    assert {p.name: p.read_text() for p in (tree / "tools/virtio/linux").iterdir()} == first


def test_a_header_that_has_the_definition_is_left_alone(tmp_path: Path) -> None:
    tree = _tree(tmp_path, "#define data_race(expr) ({ expr; })\n",
                 "#define MODULE_DESCRIPTION(x)\n")
    assert build.apply_fixes(tree) == []


def test_package_choice_follows_apt_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    policies = {
        "linux-source-6.12": "linux-source-6.12:\n  Installed: (none)\n  Candidate: (none)\n",
        "linux-source-6.1": "linux-source-6.1:\n  Installed: (none)\n  Candidate: 6.1.176-1\n",
    }
    monkeypatch.setattr(build.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(build, "_run", lambda cmd, cwd=None: policies[cmd[-1]])
    assert build.candidate() == ("linux-source-6.1", "6.1.176-1")
    policies["linux-source-6.12"] = "linux-source-6.12:\n  Candidate: 6.12.57-1~bpo12+1\n"
    assert build.candidate() == ("linux-source-6.12", "6.12.57-1~bpo12+1")


def test_no_candidate_is_a_clear_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(build, "_run", lambda cmd, cwd=None: "Candidate: (none)\n")
    with pytest.raises(build.PeerUnavailable, match="apt knows none of"):
        build.candidate()


@pytest.mark.parametrize(("value", "disabled"), [("", False), ("0", False), ("1", True),
                                                 ("yes", True)])
def test_opt_out_variable(monkeypatch: pytest.MonkeyPatch, value: str, disabled: bool) -> None:
    monkeypatch.setenv(build.NO_PEERS_ENV, value)
    assert build.peers_disabled() is disabled
