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
    parts: tuple[Callable[[], list[Claim]], ...]
    """Builders of the claims, in groups that `python -m proofs` may check in parallel."""

    def prove(self, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Verdict:
        """Build every claim and check them with Z3, in order."""
        return check_claims((c for part in self.parts for c in part()), timeout_ms)

    def prove_part(self, index: int, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Verdict:
        """Check one group of claims."""
        return check_claims(self.parts[index](), timeout_ms)


def _index_wraparound() -> list[Claim]:
    from . import ring_index

    return ring_index.claims()


def _notification() -> list[Claim]:
    from . import notification

    return notification.claims()


def _layout() -> list[Claim]:
    from . import ring_layout

    return ring_layout.claims()


def _termination() -> list[Claim]:
    from . import chain_walk

    return chain_walk.termination_claims()


def _bounds() -> list[Claim]:
    from . import chain_walk

    return chain_walk.bounds_claims()


def _unrolled(size: int) -> Callable[[], list[Claim]]:
    def build() -> list[Claim]:
        from . import chain_walk

        return chain_walk.unrolled_claims(size)

    return build


def _ownership(name: str) -> Callable[[], list[Claim]]:
    def build() -> list[Claim]:
        from . import buffer_ownership

        return buffer_ownership.transition_claims(name)

    return build


def _descriptors() -> list[Claim]:
    from . import descriptor_ownership

    return descriptor_ownership.claims()


def _link() -> list[Claim]:
    from . import ownership_link

    return ownership_link.claims()


OWNERSHIP_STEPS = ("add", "pop", "push_used", "get_buf", "reset", "detach")
"""The transitions of obligation 4 (proofs.buffer_ownership.TRANSITIONS), one part each."""

_WALK_FUNCTIONS = (
    "impl.chain.walk_chain",
    "impl.chain._enter_indirect",
    "impl.chain.read_descriptor",
    "impl.memory.GuestMemory.contains",
)
UNROLLED_SIZES = (1, 2, 4)
"""Queue sizes of the unrolled cross-check of obligation 3 (see chain_walk.UNROLL_MAX)."""


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
            parts=(_index_wraparound,),
        ),
        Obligation(
            name="proof_need_event_matches_2_7_7_2",
            prop="need_event is 'event in [old,new)'; both sides notify exactly as the event "
            "index or the flags ask",
            spec_ids=(
                "SPLIT-DRV-018", "SPLIT-DRV-019", "SPLIT-DRV-020", "SPLIT-DRV-021",
                "SPLIT-DRV-022", "SPLIT-DRV-023",
                "SPLIT-DEV-007", "SPLIT-DEV-008", "SPLIT-DEV-009", "SPLIT-DEV-010",
                "SPLIT-DEV-011", "SPLIT-DEV-012",
            ),
            impl_functions=(
                "impl.ring_math.need_event",
                "impl.split_driver.SplitDriver.kick_prepare",
                "impl.split_device.SplitDevice.needs_notification",
            ),
            bound="all 16-bit indices, any batch of 1..2^32-1 entries, any 16-bit flags",
            parts=(_notification,),
        ),
        Obligation(
            name="proof_no_buffer_lost_or_duplicated_2_7_13",
            prop="each head is free, available, in the device or used, exactly once, and "
            "each descriptor free or in one chain; counts add up to N; every step keeps it",
            spec_ids=("INIT-DRV-007",),
            impl_functions=(
                "impl.split_driver.SplitDriver.add_sgs",
                "impl.split_device.SplitDevice.pop",
                "impl.split_device.SplitDevice.push_used",
                "impl.split_driver.SplitDriver.get_buf",
                "impl.split_device.SplitDevice.reset",
                "impl.driver_ring.DriverRing.detach_unused_buf",
                "impl.split_driver.SplitDriver._write_direct",
                "impl.split_driver.SplitDriver._write_indirect",
                "impl.split_driver.SplitDriver._detach",
                "impl.ring_math.slot",
                "impl.ring_math.advance",
                "impl.ring_math.distance",
            ),
            bound="induction: every queue size 1..32768, all 16-bit indices; descriptors: "
            "any chain length k >= 1 (direct or indirect)",
            parts=(*(_ownership(name) for name in OWNERSHIP_STEPS), _descriptors, _link),
        ),
        Obligation(
            name="proof_layout_aligned_disjoint_2_7",
            prop="modern and legacy split rings: parts aligned, disjoint, sized as the "
            "§2.7 table, fields inside",
            spec_ids=("SPLIT-DRV-001",),
            impl_functions=(
                "impl.layout.SplitLayout.modern",
                "impl.layout.SplitLayout.legacy",
                "impl.layout.align_up",
                "impl.layout.desc_table_bytes",
                "impl.layout.avail_ring_bytes",
                "impl.layout.used_ring_bytes",
                "impl.layout.SplitLayout (field addresses)",
            ),
            bound="all sizes 1..32768, every base address below 2^64, every slot",
            parts=(_layout,),
        ),
        Obligation(
            name="proof_chain_walk_terminates_2_7_5_2",
            prop="the walk reads <= N+2 descriptors (N+1 unrolled), never one index twice "
            "per table, and raises on any reachable cycle",
            spec_ids=("SPLIT-DRV-004", "SPLIT-DRV-007", "SPLIT-DEV-002"),
            impl_functions=_WALK_FUNCTIONS,
            bound="induction: every queue size 1..32768, any table contents; unrolled "
            "cross-check: N in {1, 2, 4} (indirect-table cycle: N <= 2)",
            parts=(_termination, *(_unrolled(n) for n in UNROLLED_SIZES)),
        ),
        Obligation(
            name="proof_chain_walk_in_bounds_2_7_5",
            prop="every descriptor read lies in its table and in memory; every accepted "
            "buffer lies in memory; chains < 2^32 bytes",
            spec_ids=("SPLIT-DRV-004", "SPLIT-DEV-001"),
            impl_functions=_WALK_FUNCTIONS,
            bound="induction: every queue size 1..32768, every 64-bit address and 32-bit "
            "length, memory up to 2^64 bytes",
            parts=(_bounds,),
        ),
        *_packed(),
    ]


def _packed() -> list[Obligation]:
    """The packed ring's obligations, listed in `proofs.packed` (§2.8)."""
    from .packed import obligations

    return obligations()


def by_name(name: str) -> Obligation:
    """The obligation called `name` (KeyError if none)."""
    for obligation in all_obligations():
        if obligation.name == name:
            return obligation
    raise KeyError(name)
