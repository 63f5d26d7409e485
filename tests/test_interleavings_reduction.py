"""The explorer's reductions lose no behaviour: compared with a naive enumeration.

The explorer merges local accesses into the step before them and makes buffered
writes visible lazily, at the reads that observe them (impl/weak_memory.py). Here an
independent, deliberately naive enumerator (`eager_outcomes`) gives every store buffer
entry its own flush event and every invalidate-queue entry its own apply event, at
every moment, and walks all schedules. On random small two-sided programs (reads,
writes and barriers over a few words, each word written by one side) both must
produce exactly the same set of outcomes (the values each side read), in every model.
"""

from __future__ import annotations

from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from impl.interleave import Explorer, Finished, Side
from impl.memory import Barrier, GuestMemory
from impl.weak_memory import MODELS, PSO, SC, TSO, WEAK, MemoryModel

Op = tuple[str, int, int]
"""("w", addr, value), ("r", addr, 0), ("f", barrier index, 0), or ("c", addr, value):
write only if the side's last read returned non-zero (a hand-over, for the packed ring's
test of `handover` mode in tests/test_interleavings_packed.py)."""
KINDS = (Barrier.READ, Barrier.WRITE, Barrier.FULL)
OWN = ((0, 2), (4, 6))
"""The words each side may write (one writer per word, as in a ring)."""
WORDS = (0, 2, 4, 6)


def programs(side: int) -> st.SearchStrategy[tuple[Op, ...]]:
    op = st.one_of(
        st.tuples(st.just("w"), st.sampled_from(OWN[side]), st.integers(1, 3)),
        st.tuples(st.just("r"), st.sampled_from(WORDS), st.just(0)),
        st.tuples(st.just("f"), st.integers(0, 2), st.just(0)),
    )
    return st.lists(op, max_size=4).map(tuple)


def run(program: tuple[Op, ...], name: str) -> Side:
    def body(mem: GuestMemory) -> tuple[int, ...]:
        seen = []
        for kind, a, b in program:
            if kind == "w" or (kind == "c" and seen and seen[-1]):
                mem.write_u16(a, b)
            elif kind == "c":
                continue
            elif kind == "r":
                seen.append(mem.read_u16(a))
            else:
                mem.barrier(KINDS[a], "X")
        return tuple(seen)

    return Side(name, body)


def explorer_outcomes(
    first: tuple[Op, ...], second: tuple[Op, ...], model: MemoryModel
) -> set[tuple[object, object]]:
    seen: set[tuple[object, object]] = set()

    def record(done: Finished) -> None:
        seen.add((done.result(0), done.result(1)))

    sides = [run(first, "a"), run(second, "b")]
    Explorer(sides, bytes(8), model, lambda d: record(d)).explore(stop_at_failure=False)
    return seen


def eager_outcomes(
    first: tuple[Op, ...],
    second: tuple[Op, ...],
    model: MemoryModel,
    races: set[tuple[object, object]] | None = None,
) -> set[tuple[object, object]]:
    """Every schedule, with explicit flush and apply events (no reduction at all).

    With `races`, a write to a word while the other side's write to it is pending (in
    that side's buffer or in the writer's queue) adds the reads so far to `races`.
    """
    progs = (first, second)
    fence_marker = ("fence", 0)
    outcomes: set[tuple[object, object]] = set()

    def view_write(views: tuple, side: int, addr: int, value: int) -> tuple:
        changed = dict(views[side])
        changed[addr] = value
        return (*views[:side], tuple(sorted(changed.items())), *views[side + 1:])

    def flushed(state: tuple, side: int, index: int) -> tuple:
        pcs, reads, views, bufs, queues = state
        entry = bufs[side][index]
        rest = list(bufs[side][:index] + bufs[side][index + 1 :])
        while rest and rest[0] == fence_marker:
            rest.pop(0)
        bufs = (*bufs[:side], tuple(rest), *bufs[side + 1:])
        views = view_write(views, side, *entry)
        other = 1 - side
        if model.invalidate:
            queues = (*queues[:other], queues[other] + (entry,), *queues[other + 1:])
        else:
            views = view_write(views, other, *entry)
        return pcs, reads, views, bufs, queues

    def applied(state: tuple, side: int, index: int) -> tuple:
        pcs, reads, views, bufs, queues = state
        entry = queues[side][index]
        views = view_write(views, side, *entry)
        queue = queues[side][:index] + queues[side][index + 1 :]
        return pcs, reads, views, bufs, (*queues[:side], queue, *queues[side + 1:])

    def flushable(buf: tuple, index: int) -> bool:
        entry = buf[index]
        if entry == fence_marker or fence_marker in buf[:index]:
            return False
        if model.fifo:
            return index == 0
        return all(older[0] != entry[0] for older in buf[:index])

    def drain(state: tuple, side: int) -> tuple:
        while state[3][side]:
            state = flushed(state, side, 0)
        return state

    def stepped(state: tuple, side: int) -> tuple:
        pcs, reads, views, bufs, queues = state
        kind, a, b = progs[side][pcs[side]]
        pcs = (*pcs[:side], pcs[side] + 1, *pcs[side + 1:])
        if kind == "c":
            if not (reads[side] and reads[side][-1]):
                return pcs, reads, views, bufs, queues
            kind = "w"
        if kind == "w" and races is not None:
            other_buf = [e for e in bufs[1 - side] if e != fence_marker]
            if any(e[0] == a for e in other_buf) or any(e[0] == a for e in queues[side]):
                races.add(tuple(reads))  # type: ignore[arg-type]
        if kind == "r":
            value = dict(views[side]).get(a, 0)
            for entry in bufs[side]:
                if entry != fence_marker and entry[0] == a:
                    value = entry[1]
            reads = (*reads[:side], reads[side] + (value,), *reads[side + 1:])
            return pcs, reads, views, bufs, queues
        if kind == "w":
            if not model.buffered:
                views = view_write(view_write(views, 0, a, b), 1, a, b)
                return pcs, reads, views, bufs, queues
            bufs = (*bufs[:side], bufs[side] + ((a, b),), *bufs[side + 1:])
            return pcs, reads, views, bufs, queues
        state = (pcs, reads, views, bufs, queues)
        barrier = KINDS[a]
        if barrier is Barrier.FULL:
            state = drain(state, side)
        if barrier in (Barrier.FULL, Barrier.READ):
            while state[4][side]:
                state = applied(state, side, 0)
        if barrier is Barrier.WRITE and model.buffered and not model.fifo:
            pcs, reads, views, bufs, queues = state
            if bufs[side] and bufs[side][-1] != fence_marker:
                bufs = (*bufs[:side], bufs[side] + (fence_marker,), *bufs[side + 1:])
            state = (pcs, reads, views, bufs, queues)
        return state

    @cache
    def walk(state: tuple) -> None:
        pcs, reads, _, bufs, queues = state
        if all(pcs[side] == len(progs[side]) for side in (0, 1)):
            outcomes.add(tuple(reads))  # type: ignore[arg-type]
            return
        for side in (0, 1):
            if pcs[side] < len(progs[side]):
                walk(stepped(state, side))
            for index in range(len(bufs[side])):
                if flushable(bufs[side], index):
                    walk(flushed(state, side, index))
            for index, entry in enumerate(queues[side]):
                if all(older[0] != entry[0] for older in queues[side][:index]):
                    walk(applied(state, side, index))

    walk(((0, 0), ((), ()), ((), ()), ((), ()), ((), ())))
    return outcomes


@settings(max_examples=40, deadline=None)
@given(first=programs(0), second=programs(1), model=st.sampled_from(MODELS))
def test_the_reduced_search_finds_exactly_the_naive_outcomes(
    first: tuple[Op, ...], second: tuple[Op, ...], model: MemoryModel
) -> None:
    assert explorer_outcomes(first, second, model) == eager_outcomes(first, second, model)


def test_the_naive_enumerator_itself_tells_the_models_apart() -> None:
    """Store buffering: (0, 0) only with store buffers; message passing: stale only on PSO+."""
    sb = ((("w", 0, 1), ("r", 4, 0)), (("w", 4, 1), ("r", 0, 0)))
    assert ((0,), (0,)) not in eager_outcomes(*sb, SC)
    assert ((0,), (0,)) in eager_outcomes(*sb, TSO)
    mp = ((("w", 0, 1), ("w", 2, 1)), (("r", 2, 0), ("r", 0, 0)))
    assert ((), (1, 0)) not in eager_outcomes(*mp, TSO)
    assert ((), (1, 0)) in eager_outcomes(*mp, PSO)
    mp_fenced = ((("w", 0, 1), ("f", 1, 0), ("w", 2, 1)), (("r", 2, 0), ("r", 0, 0)))
    assert ((), (1, 0)) not in eager_outcomes(*mp_fenced, PSO)
    assert ((), (1, 0)) in eager_outcomes(*mp_fenced, WEAK)
