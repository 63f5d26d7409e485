"""The memory models checked on the classic litmus tests, and the replay machinery.

Store buffering (SB) is the pattern of barriers B and D: each side writes its flag, then
reads the other's. Message passing (MP) is the pattern of barriers A and C: one side
writes data then a flag, the other reads the flag then the data. Each outcome a model
allows or forbids is the one the Linux kernel memory model's litmus tests of the same
name state for x86 (TSO) and for a store buffer with an invalidate queue (WEAK).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from impl.errors import MultipleWriters, StepLimitExceeded
from impl.interleave import Explorer, Finished, Side
from impl.memory import Barrier, GuestMemory
from impl.replay import Op, run_side
from impl.weak_memory import MODELS, PSO, SC, TSO, WEAK, MemoryModel

X, Y = 0, 8
"""Two words in separate places; each side writes one."""


def _outcomes(sides: list[Side], model: MemoryModel) -> set[tuple[object, ...]]:
    """Every pair of results the two sides can end with under `model`."""
    seen: set[tuple[object, ...]] = set()

    def record(done: Finished) -> None:
        seen.add((done.result(0), done.result(1)))

    Explorer(sides, bytes(16), model, lambda done: record(done)).explore(stop_at_failure=False)
    return seen


def _store_then_load(mine: int, theirs: int, barrier: Barrier | None) -> Callable[..., int]:
    def program(mem: GuestMemory) -> int:
        mem.write_u16(mine, 1)
        if barrier is not None:
            mem.barrier(barrier, "B")
        return mem.read_u16(theirs)

    return program


def _sb(barrier: Barrier | None) -> list[Side]:
    return [
        Side("driver", _store_then_load(X, Y, barrier)),
        Side("device", _store_then_load(Y, X, barrier)),
    ]


@pytest.mark.parametrize("model", [SC], ids=lambda m: m.name)
def test_store_buffering_is_forbidden_under_sc(model: MemoryModel) -> None:
    assert (0, 0) not in _outcomes(_sb(None), model)


@pytest.mark.parametrize("model", [TSO, PSO, WEAK], ids=lambda m: m.name)
def test_store_buffering_is_allowed_without_a_full_barrier(model: MemoryModel) -> None:
    assert (0, 0) in _outcomes(_sb(None), model)
    assert (0, 0) in _outcomes(_sb(Barrier.WRITE), model)
    assert (0, 0) in _outcomes(_sb(Barrier.READ), model)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_store_buffering_is_forbidden_with_full_barriers(model: MemoryModel) -> None:
    outcomes = _outcomes(_sb(Barrier.FULL), model)
    assert (0, 0) not in outcomes
    assert {(0, 1), (1, 0), (1, 1)} <= outcomes


def _mp(write_barrier: bool, read_barrier: bool) -> list[Side]:
    def writer(mem: GuestMemory) -> None:
        mem.write_u16(X, 7)
        if write_barrier:
            mem.barrier(Barrier.WRITE, "A")
        mem.write_u16(Y, 1)

    def reader(mem: GuestMemory) -> tuple[int, int]:
        flag = mem.read_u16(Y)
        if read_barrier:
            mem.barrier(Barrier.READ, "A")
        return flag, mem.read_u16(X)

    return [Side("driver", writer), Side("device", reader)]


STALE = (None, (1, 0))
"""The message-passing failure: the flag is seen, the data is not."""


@pytest.mark.parametrize(
    ("model", "wmb", "rmb", "stale"),
    [
        (SC, False, False, False),
        (TSO, False, False, False),
        (PSO, False, True, True),
        (PSO, True, False, False),
        (WEAK, True, False, True),
        (WEAK, False, True, True),
        (WEAK, True, True, False),
    ],
)
def test_message_passing_needs_the_barriers_the_model_says(
    model: MemoryModel, wmb: bool, rmb: bool, stale: bool
) -> None:
    outcomes = _outcomes(_mp(wmb, rmb), model)
    assert (STALE in outcomes) == stale
    assert (None, (1, 7)) in outcomes


def test_a_side_reads_its_own_buffered_store() -> None:
    def own(mem: GuestMemory) -> int:
        mem.write_u16(X, 5)
        return mem.read_u16(X)

    def idle(mem: GuestMemory) -> int:
        return mem.read_u16(Y)

    for model in MODELS:
        assert {result for result, _ in _outcomes([Side("a", own), Side("b", idle)], model)} == {5}


def test_replay_stops_at_the_first_read_without_a_value() -> None:
    program = _store_then_load(X, Y, Barrier.FULL)
    first = run_side(program, 16, [], limit=10)
    assert first.pending
    assert [access.op for access in first.accesses] == [Op.WRITE, Op.BARRIER, Op.READ]
    done = run_side(program, 16, [b"\x03\x00"], limit=10)
    assert not done.pending
    assert done.result == 3


def test_a_side_that_never_stops_is_reported() -> None:
    def spins(mem: GuestMemory) -> None:
        while True:
            mem.read_u16(X)

    with pytest.raises(StepLimitExceeded):
        run_side(spins, 16, [b"\x00\x00"] * 20, limit=10)


def test_a_side_error_is_an_outcome_not_a_crash() -> None:
    def faults(mem: GuestMemory) -> None:
        mem.read_u16(100)

    run = run_side(faults, 16, [], limit=10)
    assert not run.pending
    assert run.error is not None


def test_two_writers_of_one_address_are_refused() -> None:
    """The reductions assume one writer per byte (§2.7); a pair that breaks it is refused."""

    def writes(mem: GuestMemory) -> None:
        mem.write_u16(X, 1)

    with pytest.raises(MultipleWriters):
        Explorer([Side("a", writes), Side("b", writes)], bytes(16), SC, lambda _: None).explore()
