"""Claims, verdicts and the one function that checks a claim with Z3.

Rules:
- A claim is `pre -> post` over named Z3 variables. Checking it first asks whether
  `pre` is satisfiable at all (a contradictory precondition would prove anything, so an
  unsatisfiable one is the verdict `vacuous`, a failure), then whether `pre and not post`
  is: unsat is `proved`, a model is a `counterexample` shown as the named variables'
  concrete values, and a solver timeout is `unknown` (also a failure).
- An obligation is a list of claims; its verdict is the first claim that is not proved,
  or `proved` when all are.

Spec: none of its own; it serves every obligation in this package.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import z3

DEFAULT_TIMEOUT_MS = 60_000
"""Per-claim solver limit; every claim in this package needs far less."""


class Status(Enum):
    """What the solver said about an obligation."""

    PROVED = "proved"
    COUNTEREXAMPLE = "counterexample"
    UNKNOWN = "unknown"
    VACUOUS = "vacuous"


@dataclass(frozen=True)
class Claim:
    """`pre -> post`, with the variables a counterexample should show, by name."""

    label: str
    pre: Any
    post: Any
    shown: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """The result of checking an obligation's claims."""

    status: Status
    seconds: float
    claims: int
    failed_claim: str = ""
    counterexample: Mapping[str, int | bool | str] = field(default_factory=dict)
    cpu_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether every claim was proved."""
        return self.status is Status.PROVED

    def describe(self) -> str:
        """The counterexample (or failure) as one readable line."""
        if self.ok:
            return ""
        values = ", ".join(f"{k}={_show(v)}" for k, v in self.counterexample.items())
        return f"{self.failed_claim}: {values}" if values else self.failed_claim


def _show(value: int | bool | str) -> str:
    if isinstance(value, (bool, str)):
        return str(value)
    return str(value) if value < 10 else f"{value} ({value:#x})"


def _value(model: z3.ModelRef, term: Any) -> int | bool | str:
    evaluated = model.eval(term, model_completion=True)
    if z3.is_bv_value(evaluated):
        return int(evaluated.as_long())
    if z3.is_true(evaluated) or z3.is_false(evaluated):
        return bool(z3.is_true(evaluated))
    if z3.is_int_value(evaluated):
        return int(evaluated.as_long())
    return str(evaluated)


def check_claim(claim: Claim, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Verdict:
    """Check one claim: vacuity first, then `pre and not post` (see the module rules)."""
    start, cpu = time.perf_counter(), time.process_time()
    solver = z3.Solver()
    solver.set("timeout", timeout_ms)
    solver.add(claim.pre)
    satisfiable = solver.check()
    if satisfiable != z3.sat:
        status = Status.VACUOUS if satisfiable == z3.unsat else Status.UNKNOWN
        return Verdict(status, time.perf_counter() - start, 1, claim.label + " (precondition)",
                       cpu_seconds=time.process_time() - cpu)
    solver.add(z3.Not(claim.post))
    result = solver.check()
    elapsed, used = time.perf_counter() - start, time.process_time() - cpu
    if result == z3.unsat:
        return Verdict(Status.PROVED, elapsed, 1, cpu_seconds=used)
    if result == z3.unknown:
        return Verdict(Status.UNKNOWN, elapsed, 1, claim.label, cpu_seconds=used)
    model = solver.model()
    shown = {name: _value(model, term) for name, term in claim.shown.items()}
    return Verdict(Status.COUNTEREXAMPLE, elapsed, 1, claim.label, shown, used)


def check_claims(claims: Iterable[Claim], timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Verdict:
    """Check claims in order; the first one not proved decides the verdict."""
    total = cpu = 0.0
    count = 0
    for claim in claims:
        verdict = check_claim(claim, timeout_ms)
        total += verdict.seconds
        cpu += verdict.cpu_seconds
        count += 1
        if not verdict.ok:
            return Verdict(verdict.status, total, count, verdict.failed_claim,
                           verdict.counterexample, cpu)
    return Verdict(Status.PROVED, total, count, cpu_seconds=cpu)
