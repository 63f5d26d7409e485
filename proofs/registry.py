"""The list of proof obligations: what each proves, about which code, for which spec ids.

Rules:
- `all_obligations()` builds descriptions only; no formula is built and no solver runs
  until `Obligation.prove()` (the conformance collector imports this module).
- Each obligation names the `impl` functions it is about and the requirement ids of
  shared/spec/requirements.tsv it proves, and states its bound (`all` when there is none).

Spec: the sections are cited per obligation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .verdict import DEFAULT_TIMEOUT_MS, Claim, Verdict, check_claims


@dataclass(frozen=True)
class Obligation:
    """One named theorem about `impl` code."""

    name: str
    prop: str
    spec_ids: Sequence[str]
    impl_functions: Sequence[str]
    bound: str
    build: Callable[[], list[Claim]]

    def prove(self, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Verdict:
        """Build the claims and check them with Z3."""
        return check_claims(self.build(), timeout_ms)


def _index_wraparound() -> list[Claim]:
    from . import ring_index

    return ring_index.claims()


def all_obligations() -> list[Obligation]:
    """Every obligation, in the order `python -m proofs` prints them."""
    return [
        Obligation(
            name="proof_index_wraparound_2_7_6",
            prop="slots step mod size, in-flight counts and both idx checks are exact across "
            "the 16-bit wrap",
            spec_ids=("SPLIT-DRV-010", "INIT-DRV-007"),
            impl_functions=(
                "impl.ring_math.slot",
                "impl.ring_math.advance",
                "impl.ring_math.distance",
                "impl.ring_math.in_flight",
                "impl.split_device.SplitDevice._pending",
                "impl.split_driver.SplitDriver.get_buf",
            ),
            bound="all sizes 1..32768, all 16-bit indices",
            build=_index_wraparound,
        ),
    ]


def by_name(name: str) -> Obligation:
    """The obligation called `name` (KeyError if none)."""
    for obligation in all_obligations():
        if obligation.name == name:
            return obligation
    raise KeyError(name)
