"""The packed obligations hold for the real functions and fail for broken ones.

Each mutant is a packed-ring bug of a real kind: a wrap counter that never flips, an
availability test that looks at the AVAIL bit alone, an event word read without its
wrap bit, an off-by-one event compare, a decision that ignores DISABLE, an offset
taken with a power-of-two mask, a driver that accepts any in-range used id. Handed
to the obligation in place of the `impl` function, each must give a counterexample.
The id obligation's encoding of `PackedDriver.get_buf`'s checks is tied to the code.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import z3

from impl import wrap_math
from impl.chain import Segment
from impl.errors import PackedUsedIdNotOutstanding, PackedUsedIdOutOfRange
from impl.memory import GuestMemory
from impl.packed_driver import PackedDriver
from impl.packed_layout import PackedLayout
from proofs import packed
from proofs.registry import all_obligations
from proofs.verdict import Status, Verdict, check_claims


def mutated(**swaps: Any) -> Any:
    """`impl.wrap_math` with some functions swapped for mutants."""
    names = {name: getattr(wrap_math, name) for name in dir(wrap_math) if not name.startswith("_")}
    return SimpleNamespace(**{**names, **swaps})


def refuted(verdict: Verdict) -> None:
    assert verdict.status is Status.COUNTEREXAMPLE, verdict
    assert verdict.describe()


def never_flips(pos: Any, by: Any, size: Any) -> Any:
    """advance modulo size: the counter bit of the position never changes."""
    moved = pos + by
    return wrap_math.select(wrap_math.below(moved, size), moved, moved - size)


def avail_bit_only(flags: Any, wrap: Any) -> Any:
    """availability judged by the AVAIL bit alone."""
    return (flags >> wrap_math.AVAIL_SHIFT & 1) == wrap


def wrapless_decode(off_wrap: Any, size: Any) -> Any:
    """an event word read without its wrap bit."""
    return wrap_math.event_offset(off_wrap)


def off_by_one(event: Any, new: Any, old: Any, size: Any) -> Any:
    """need_event testing `new - event` instead of `new - event - 1`."""
    return wrap_math.below(wrap_math.gap(new, event, size), wrap_math.gap(new, old, size))


def ignores_disable(flags: Any, off_wrap: Any, count: Any, old: Any, new: Any, size: Any, *,
                    event_idx: bool) -> Any:
    """a decision that notifies in flag mode whatever the flags say."""
    if not event_idx:
        return True
    return wrap_math.notify_decision(flags, off_wrap, count, old, new, size, event_idx=True)


def subtracts_one_lap(pos: Any, by: Any, size: Any) -> Any:
    """advance that takes `size` off past the end instead of `2 * size`."""
    moved = pos + by
    return wrap_math.select(wrap_math.below(moved, 2 * size), moved, moved - size)


def any_in_range(ident: Any, size: Any, outstanding: Any) -> Any:
    """accepting a used id only by range, not by whether it was handed out."""
    return z3.ULT(ident, size)


def test_every_packed_obligation_is_registered_and_proved() -> None:
    names = {o.name for o in all_obligations()}
    assert {o.name for o in packed.obligations()} <= names
    for obligation in packed.obligations():
        assert obligation.prove().ok, obligation.name


@pytest.mark.spec("PACKED-DEV-005")
def test_flags_obligation_fails_without_the_flip() -> None:
    refuted(check_claims(packed.position_claims(mutated(advance=never_flips))))


@pytest.mark.spec("PACKED-DEV-005")
def test_flags_obligation_fails_on_the_avail_bit_alone() -> None:
    refuted(check_claims(packed.availability_claims(mutated(is_available=avail_bit_only))))


def test_flags_obligation_fails_reading_events_without_wrap() -> None:
    refuted(check_claims(packed.position_claims(mutated(decode_event=wrapless_decode))))


def test_need_event_obligation_fails_off_by_one() -> None:
    refuted(check_claims(packed.need_event_claims(mutated(need_event=off_by_one))))


def test_decision_obligation_fails_ignoring_disable() -> None:
    refuted(check_claims(packed.decision_claims(mutated(notify_decision=ignores_disable))))


def test_walk_obligation_fails_when_skipping_one_lap_short() -> None:
    refuted(check_claims(packed.walk_claims(mutated(advance=subtracts_one_lap))))


def test_id_obligation_fails_without_the_outstanding_check() -> None:
    refuted(check_claims(packed.id_claims(any_in_range)))


@pytest.mark.parametrize("size", [1, 3, 8])
def test_id_encoding_matches_get_buf(size: int) -> None:
    """`driver_accepts_id` decides as `PackedDriver.get_buf` does, for every id near range."""
    for ident in range(size + 3):
        layout = PackedLayout.modern(size, 0x1000)
        mem = GuestMemory(0x10000)
        driver = PackedDriver(mem, layout)
        handed = [driver.add_inbuf([Segment(0x8000 + 64 * i, 8)], i) for i in range(size)]
        reclaimed = handed[: size // 2]
        for h in reclaimed:  # the driver forgets these (as after get_buf)
            driver._detach(h, driver._state[h])  # type: ignore[arg-type]
        outstanding = [driver.token_of(i) is not None for i in range(size)]
        mem.write_u16(layout.desc_id(0), ident)
        mem.write_u32(layout.desc_len(0), 0)
        mem.write_u16(layout.desc_flags(0), wrap_math.used_bits(1))
        accepted = packed.driver_accepts_id(ident, size, outstanding + [False] * 3)
        try:
            got = driver.get_buf()
        except (PackedUsedIdOutOfRange, PackedUsedIdNotOutstanding):
            got = None
        assert (got is not None) == accepted, (ident, outstanding)
