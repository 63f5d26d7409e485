"""Run CrossHair over `proofs.contracts` as a bounded subprocess and summarise what it said.

Rules: one `crosshair check --analysis_kind=PEP316 --report_all` process with a time
limit per condition; every postcondition is reported as confirmed over all paths (a
proof, for the paths of that function), not confirmed (searched until the limit, no
counterexample) or an error (a counterexample, printed with its inputs). Any error, or
a non-zero exit, fails `python -m proofs`.

Spec: none of its own; see `proofs.contracts`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CONTRACTS = Path(__file__).with_name("contracts.py")
DEFAULT_PER_CONDITION_S = 2.0


@dataclass(frozen=True)
class CrosshairReport:
    """What one CrossHair run found."""

    returncode: int
    confirmed: int
    searched: int
    failures: tuple[str, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        """No counterexample and a clean exit."""
        return self.returncode == 0 and not self.failures

    def summary(self) -> str:
        """One line for the table."""
        verdict = "ok" if self.ok else "FAILED"
        return (f"crosshair {verdict}: {self.confirmed} conditions confirmed over all paths, "
                f"{self.searched} searched without a counterexample, "
                f"{len(self.failures)} counterexamples ({self.seconds:.1f}s)")


def start(path: Path = CONTRACTS,
          per_condition_s: float = DEFAULT_PER_CONDITION_S) -> subprocess.Popen[str]:
    """Start CrossHair on `path` in the background."""
    command = [sys.executable, "-m", "crosshair", "check", "--analysis_kind=PEP316",
               "--report_all", f"--per_condition_timeout={per_condition_s}", str(path)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def finish(process: subprocess.Popen[str], started: float) -> CrosshairReport:
    """Wait for a run started by `start` and classify its report lines."""
    output, _ = process.communicate()
    lines = [line for line in output.splitlines() if line.strip()]
    confirmed = sum("Confirmed over all paths" in line for line in lines)
    searched = sum("Not confirmed" in line for line in lines)
    failures = tuple(line for line in lines if ": error:" in line)
    return CrosshairReport(process.returncode, confirmed, searched, failures,
                           time.perf_counter() - started)
