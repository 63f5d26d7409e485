"""Every proof obligation can fail: fed a broken function, it returns a counterexample.

Each mutant is a bug of the kind real ring code has had (an off-by-one, a missing
16-bit mask, a slot taken modulo the wrong value, a walk without its loop check). The
test hands the mutant to the obligation in place of the `impl` function and asserts the
verdict is a counterexample whose values are concrete integers a person can read.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from impl import errors, layout, ring_math
from proofs import (
    buffer_ownership,
    chain_walk,
    descriptor_ownership,
    notification,
    ownership_link,
    ring_index,
    ring_layout,
)
from proofs.verdict import Status, Verdict, check_claims


def _refuted(verdict: Verdict) -> None:
    assert verdict.status is Status.COUNTEREXAMPLE, verdict
    assert verdict.counterexample
    assert all(isinstance(v, int | bool) for v in verdict.counterexample.values())
    assert verdict.describe()


def unmasked_advance(idx: Any, by: int = 1, bits: int = 16) -> Any:
    """advance without the wrap: 0xffff + 1 becomes 0x10000."""
    return idx + by


def slot_mod_size_plus_one(idx: Any, size: int, bits: int = 16) -> Any:
    """slot masking with `size` instead of `size - 1`."""
    return idx & size & ring_math.mask(bits)


def unmasked_distance(newer: Any, older: Any, bits: int = 16) -> Any:
    """distance without the modulo: wrong once an index wraps past 65535."""
    return newer - older


def test_index_wraparound_can_fail_without_the_wrap_mask() -> None:
    _refuted(check_claims(ring_index.slot_claims(advance=unmasked_advance)))


def test_index_wraparound_can_fail_with_the_wrong_slot_mask() -> None:
    _refuted(check_claims(ring_index.slot_claims(slot=slot_mod_size_plus_one)))


def test_index_wraparound_in_flight_can_fail_without_the_modulo() -> None:
    _refuted(check_claims(ring_index.in_flight_claims(in_flight=unmasked_distance)))


@pytest.mark.spec("SPLIT-DRV-010", "INIT-DRV-007")
def test_index_wraparound_idx_checks_can_fail_without_the_modulo() -> None:
    _refuted(check_claims(ring_index.avail_check_claims(distance=unmasked_distance)))
    _refuted(check_claims(ring_index.used_check_claims(distance=unmasked_distance)))



def off_by_one_need_event(event: Any, new: Any, old: Any, bits: int = 16) -> Any:
    """need_event testing `new - event` instead of `new - event - 1`."""
    return ring_math.ult(ring_math.wrap(new - event, bits), ring_math.distance(new, old, bits))


def half_masked_need_event(event: Any, new: Any, old: Any, bits: int = 16) -> Any:
    """need_event that forgets the 16-bit wrap of `new - old`."""
    return ring_math.ult(ring_math.wrap(new - event - 1, bits), new - old)


def inclusive_need_event(event: Any, new: Any, old: Any, bits: int = 16) -> Any:
    """need_event with `<=`: also fires when event == new (one entry too early)."""
    import z3

    return z3.ULE(ring_math.wrap(new - event - 1, bits), ring_math.distance(new, old, bits))


@pytest.mark.spec("SPLIT-DRV-022", "SPLIT-DEV-011", "SPLIT-DRV-023", "SPLIT-DEV-012")
@pytest.mark.parametrize(
    "mutant", [off_by_one_need_event, half_masked_need_event, inclusive_need_event]
)
def test_need_event_obligation_can_fail(mutant: Any) -> None:
    _refuted(check_claims(notification.need_event_claims(mutant)))
    _refuted(check_claims(notification.claims(mutant)[1:]))



def unaligned_modern(size: Any, base: Any = 0) -> layout.SplitLayout:
    """The modern layout packed with no alignment at all."""
    desc = base
    avail = desc + layout.desc_table_bytes(size)
    return layout.SplitLayout(size, desc, avail, avail + layout.avail_ring_bytes(size))


def legacy_with_align_rounding_down(size: Any, base: Any = 0, queue_align: int = 4096) -> Any:
    """The legacy layout rounding the used ring down to Queue Align (overlaps the avail ring)."""
    avail = layout.align_up(base, queue_align) + layout.desc_table_bytes(size)
    used = (avail + layout.avail_ring_bytes(size)) & ~(queue_align - 1)
    return layout.SplitLayout(size, avail - layout.desc_table_bytes(size), avail, used)


def avail_ring_without_used_event(size: Any) -> Any:
    """The available ring's size forgetting its trailing used_event word."""
    return 4 + 2 * size


@pytest.mark.spec("SPLIT-DRV-001")
def test_layout_obligation_can_fail() -> None:
    _refuted(check_claims(ring_layout.claims(modern=unaligned_modern)))
    _refuted(check_claims(ring_layout.claims(legacy=legacy_with_align_rounding_down)))
    sizes = (layout.desc_table_bytes, avail_ring_without_used_event, layout.used_ring_bytes)
    _refuted(check_claims(ring_layout.claims(part_sizes=sizes)))



# --- the chain walk: mutants are walk_chain with one check removed or off by one ----------
NO_LOOP_CHECK = frozenset({errors.DescriptorLoop})
NO_LOOP_BOUND = frozenset({errors.DescriptorLoop, errors.ChainTooLong})


@pytest.mark.spec("SPLIT-DRV-004", "SPLIT-DRV-007")
def test_chain_termination_can_fail_without_the_visited_check() -> None:
    claims = chain_walk.termination_claims(omit=NO_LOOP_CHECK)
    verdict = check_claims(c for c in claims if "new and in range" in c.label)
    _refuted(verdict)
    assert "new and in range" in verdict.failed_claim


@pytest.mark.spec("SPLIT-DRV-004", "SPLIT-DRV-007", "SPLIT-DEV-002")
def test_chain_termination_can_fail_without_any_loop_bound() -> None:
    _refuted(check_claims(chain_walk.termination_claims(omit=NO_LOOP_BOUND)))
    _refuted(check_claims(chain_walk.unrolled_claims(2, omit=NO_LOOP_BOUND)))


def test_chain_bounds_can_fail_with_an_off_by_one_next_check() -> None:
    _refuted(check_claims(chain_walk.bounds_claims(next_slack=1)))


def test_chain_bounds_can_fail_without_the_memory_check() -> None:
    _refuted(check_claims(chain_walk.bounds_claims(omit=frozenset({errors.BufferOutOfBounds}))))


@pytest.mark.spec("SPLIT-DRV-004")
def test_chain_bounds_can_fail_without_the_length_check() -> None:
    omit = frozenset({errors.ChainLengthOverflow})
    _refuted(check_claims(chain_walk.bounds_claims(omit=omit)))


# --- buffer ownership: a ring function without its wrap, a driver that frees twice ------
def get_buf_keeping_the_head_outstanding(q: Any, n: Any, fns: Any, choice: Any) -> Any:
    """get_buf that frees the head but leaves it in the outstanding list (a double count)."""
    import z3

    guard, after = buffer_ownership.get_buf(q, n, fns, choice)
    free, free_pos, n_free = after.free, after.free_pos, after.n_free
    return guard, dataclasses.replace(q, loc=after.loc, free=free, free_pos=free_pos,
                                      n_free=n_free, last_used=after.last_used,
                                      out=z3.Store(q.out, 0, q.out[0]))


@pytest.mark.spec("INIT-DRV-007")
def test_ownership_can_fail_without_the_wrap_mask() -> None:
    fns = buffer_ownership.Ring(advance=unmasked_advance)
    _refuted(check_claims(buffer_ownership.claims(fns, {"pop": buffer_ownership.pop})[1:]))


@pytest.mark.spec("INIT-DRV-007")
def test_ownership_can_fail_when_a_head_is_freed_but_kept() -> None:
    mutant = {"get_buf": get_buf_keeping_the_head_outstanding}
    _refuted(check_claims(buffer_ownership.claims(None, mutant)[1:]))


# --- descriptor ownership: a free list that loses, leaks or double-hands descriptors ------
def release_returning_one_short(s: Any, n: Any, head: Any) -> Any:
    """_detach that adds k-1 to num_free: one descriptor of the chain is lost."""
    guard, after = descriptor_ownership.release(s, n, head)
    return guard, dataclasses.replace(after, num_free=after.num_free - 1)


def release_dropping_the_old_free_head(s: Any, n: Any, head: Any) -> Any:
    """_detach that links the chain past the old free head: that descriptor is lost."""
    import z3

    guard, after = descriptor_ownership.release(s, n, head)
    last = s.at[head, s.descs[head] - 1]
    return guard, dataclasses.replace(after, next=z3.Store(s.next, last, s.next[s.free_head]))


def release_walking_one_link_too_few(s: Any, n: Any, head: Any) -> Any:
    """_detach that stops one descriptor early (walks k-2 links): the chain's tail is lost."""
    import z3

    guard, after = descriptor_ownership.release(s, n, head)
    last = s.at[head, s.descs[head] - 2]
    return guard, dataclasses.replace(after, next=z3.Store(s.next, last, s.free_head))


def add_taking_one_less(s: Any, n: Any, k: Any) -> Any:
    """_write_direct that subtracts k-1 from num_free: a descriptor is both free and used."""
    guard, after = descriptor_ownership.add(s, n, k)
    return guard, dataclasses.replace(after, num_free=after.num_free + 1)


def add_moving_the_head_one_too_far(s: Any, n: Any, k: Any) -> Any:
    """_write_direct whose new free_head is the link after the k+1st free descriptor."""
    guard, after = descriptor_ownership.add(s, n, k)
    return guard, dataclasses.replace(after, free_head=s.next[s.free_at[k]])


def add_flagging_next_on_the_last(s: Any, n: Any, k: Any) -> Any:
    """_write_direct that sets NEXT on every descriptor: the device walks past the chain."""
    import z3

    guard, after = descriptor_ownership.add(s, n, k)
    d = z3.Int("d")
    taken = z3.And(s.owner[d] == descriptor_ownership.FREE, s.rank[d] < k)
    return guard, dataclasses.replace(
        after, chained=z3.Lambda([d], z3.If(taken, z3.BoolVal(True), s.chained[d])))


DESCRIPTOR_MUTANTS = [
    ("release", release_returning_one_short), ("release", release_dropping_the_old_free_head),
    ("release", release_walking_one_link_too_few), ("add", add_taking_one_less),
    ("add", add_moving_the_head_one_too_far), ("add", add_flagging_next_on_the_last),
]


def release_keeping_the_record(s: Any, n: Any, head: Any) -> Any:
    """_detach that frees the chain but leaves the head's record set (still outstanding)."""
    guard, after = descriptor_ownership.release(s, n, head)
    return guard, dataclasses.replace(after, descs=s.descs)


def test_ownership_link_can_fail_when_a_record_outlives_its_buffer() -> None:
    _refuted(check_claims(ownership_link.claims(release=release_keeping_the_record)))


@pytest.mark.spec("INIT-DRV-007")
@pytest.mark.parametrize(("step", "mutant"), DESCRIPTOR_MUTANTS,
                         ids=[m.__name__ for _, m in DESCRIPTOR_MUTANTS])
def test_descriptor_ownership_can_fail(step: str, mutant: Any) -> None:
    steps = descriptor_ownership.claims({step: mutant})[3:]
    _refuted(check_claims(steps))


# --- CrossHair: the same contracts refute a broken function -------------------------------
BROKEN_CONTRACT = '''
from impl import ring_math


def need_event_off_by_one(event: int, new: int, old: int) -> bool:
    """
    pre: 0 <= event < 65536 and 0 <= new < 65536 and 0 <= old < 65536
    post: __return__ == ((event - old) % 65536 < (new - old) % 65536)
    """
    return bool(ring_math.ult(ring_math.wrap(new - event), ring_math.distance(new, old)))
'''


@pytest.mark.spec("SPLIT-DRV-022", "SPLIT-DEV-011")
def test_crosshair_contract_can_fail(tmp_path: Any) -> None:
    import time

    from proofs import crosshair_run

    module = tmp_path / "broken_contract.py"
    module.write_text(BROKEN_CONTRACT)
    report = crosshair_run.finish(crosshair_run.start(module, 10.0), time.perf_counter())
    assert not report.ok
    assert report.failures and "false when calling need_event_off_by_one" in report.failures[0]


# --- the command: a refuted obligation makes `python -m proofs` fail ---------------------
def test_proofs_command_exits_nonzero_on_a_counterexample(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import proofs.__main__ as command
    from proofs.registry import Obligation

    broken = Obligation(
        name="proof_broken_slot", prop="slot with the wrong mask", spec_ids=(),
        impl_functions=("tests.slot_mod_size_plus_one",), bound="all",
        parts=(lambda: ring_index.slot_claims(slot=slot_mod_size_plus_one),),
    )
    monkeypatch.setattr(command, "all_obligations", lambda: [broken])
    assert command.main(["--jobs", "1", "--no-crosshair"]) == 1
    out = capsys.readouterr().out
    assert "COUNTEREXAMPLE" in out and "queue_size=" in out and "0/1 obligations proved" in out
