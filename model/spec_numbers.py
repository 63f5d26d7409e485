"""Section numbers for the requirement blocks: derive `model/spec_sections.tsv` from the spec.

The requirements file names each statement's block by its label and by the `file:line`
of the block in the specification sources, not by the number a reader sees in the
PDF ("2.7.5.3.1"). This tool recovers the numbers once, offline, by walking the
specification's LaTeX the way LaTeX numbers it, and writes a two-column table
(`spec_source`, `section`) that `model.conformance` reads. It needs the spec sources (a
git directory of oasis-tcs/virtio-spec); the generated table is committed, so nothing
else needs them.

Rules:
- Tooling, not model: it reads files and runs git, unlike the rest of `model/`.
- Numbering follows main.tex: `\\input` files are followed in place, `\\chapter` to
  `\\subparagraph` count (secnumdepth 5), starred forms do not, the normative macros
  (`\\drivernormative{\\subsection}{...}`) count at the level they wrap, and
  `\\appendix` ends the numbered body (nothing in scope lies beyond it).
- Only the block starting lines named in the requirements file are written.

Usage: `python -m model.spec_numbers GIT_DIR [COMMIT]` (run from the repository root).

Spec: VIRTIO 1.4 CS01 (oasis-tcs/virtio-spec 15f488c), all chapters in scope.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from model.conformance_matrix import load_requirements, locate_requirements

LEVELS = ("chapter", "section", "subsection", "subsubsection", "paragraph", "subparagraph")
_HEADING = re.compile(r"\\(?:(?:driver|device)normative\{\\)?(" + "|".join(LEVELS) + r")(\*?)[{}]")
_INPUT = re.compile(r"\\input\{([^}]+)\}")
_COMMENT = re.compile(r"(?<!\\)%.*")
SECTIONS_TSV = Path(__file__).with_name("spec_sections.tsv")


Reader = Callable[[str], list[str]]
"""Returns the lines of one spec source file, given its path with the `.tex` suffix."""


def git_reader(git_dir: str, commit: str = "HEAD") -> Reader:
    """A `Reader` over the files of `commit` in the (bare) repository `git_dir`."""

    def read(name: str) -> list[str]:
        out = subprocess.run(
            ["git", "-C", git_dir, "show", f"{commit}:{name}"],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.splitlines()

    return read


def number_blocks(read: Reader, root: str = "main.tex") -> dict[str, str]:
    """Map every `file:line` holding a numbered heading to its dotted section number."""
    counters = [0] * len(LEVELS)
    numbers: dict[str, str] = {}
    done = False

    def walk(path: str) -> None:
        nonlocal done
        name = path if path.endswith(".tex") else path + ".tex"
        for lineno, raw in enumerate(read(name), start=1):
            if done:
                return
            line = _COMMENT.sub("", raw)
            if line.strip().startswith("\\appendix"):
                done = True
                return
            heading = _HEADING.search(line)
            if heading and not heading.group(2):
                depth = LEVELS.index(heading.group(1))
                counters[depth] += 1
                counters[depth + 1 :] = [0] * (len(LEVELS) - depth - 1)
                numbers[f"{name}:{lineno}"] = ".".join(str(c) for c in counters[: depth + 1])
            for included in _INPUT.findall(line):
                walk(included)

    walk(root)
    return numbers


def main(argv: list[str] | None = None) -> int:
    """Regenerate `model/spec_sections.tsv` from the spec sources given on the command line."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(__doc__)
        return 2
    numbers = number_blocks(git_reader(args[0], args[1] if len(args) > 1 else "HEAD"))
    sources = sorted(
        {req.source for req in load_requirements(locate_requirements())},
        key=lambda s: (s.split(":")[0], int(s.split(":")[1])),
    )
    missing = [src for src in sources if src not in numbers]
    if missing:
        print("no heading found at: " + ", ".join(missing), file=sys.stderr)
        return 1
    rows = ["spec_source\tsection"] + [f"{src}\t{numbers[src]}" for src in sources]
    SECTIONS_TSV.write_text("\n".join(rows) + "\n", encoding="utf-8")
    print(f"wrote {len(sources)} rows to {SECTIONS_TSV}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
