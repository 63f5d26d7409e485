"""Obligations 3 and 6: the descriptor-chain walk terminates, never revisits, stays in bounds.

The walk is `impl.chain.walk_chain`, through its encoding in `proofs.walk_encoding`
(checked against the code by tests/test_proof_encodings.py). Descriptor contents, the
table address, the guest memory size, the head and `indirect_ok` are all symbolic; the
only assumption is what `SplitLayout.validate` guarantees before any walk: the
descriptor table lies inside guest memory.

Two proofs of each property:
- for every queue size N from 1 to 32768 at once (N symbolic), by induction over the
  loop: an invariant holds at the start and is kept by every iteration, and the count
  of descriptors read grows by one per iteration while the invariant bounds it;
- for each power-of-two N up to `UNROLL_MAX`, the whole walk unrolled N + 1 times over
  fully symbolic tables, which also states the cycle claim directly.

Obligation 3 (acyclicity and termination): at most N + 2 descriptors are read (N + 1
when the walk returns a chain) by induction; the tight N + 1 for every walk, which
needs the pigeonhole argument the induction does not carry (an indirect table of
`entries` entries holds at most `entries` distinct indices), is checked unrolled for
N <= UNROLL_MAX. Within a table no index is read twice and every index
read is below that table's size; a cycle reachable from the head, in the descriptor
table or in an indirect table, makes the walk raise.
Obligation 6 (hostile-input bounds): every descriptor read lies inside its table and
inside guest memory, every buffer accepted lies inside guest memory (the `addr + len`
sum computed without wrap), and a returned chain has fewer than 2^32 bytes and at most
N descriptors.

Spec: §2.7.5 (descriptor table), §2.7.5.2 (SPLIT-DRV-004: no loops, < 2^32 bytes),
§2.7.5.3 (indirect: SPLIT-DRV-006/007/008, SPLIT-DEV-002/005/006).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import z3

from impl import errors
from impl.spec import DESC_SIZE, MAX_CHAIN_BYTES, MAX_QUEUE_SIZE, DescFlag

from .verdict import Claim
from .walk_encoding import (
    WIDTH,
    Outcome,
    Walk,
    WalkState,
    start,
    step,
    times_desc_size,
    unroll,
    w,
)

UNROLL_MAX = 4
"""Largest queue size the unrolled (whole-walk) claims are checked for."""

UNROLL_INDIRECT_MAX = 2
"""Largest queue size the unrolled indirect-table cycle claim is checked for."""

BITS = z3.BitVecSort(WIDTH)


def symbolic_memory(tag: str = "") -> Any:
    """A reader returning arbitrary (uninterpreted) descriptor fields for each address."""
    fields = [
        z3.Function(f"desc_addr{tag}", BITS, z3.BitVecSort(64)),
        z3.Function(f"desc_len{tag}", BITS, z3.BitVecSort(32)),
        z3.Function(f"desc_flags{tag}", BITS, z3.BitVecSort(16)),
        z3.Function(f"desc_next{tag}", BITS, z3.BitVecSort(16)),
    ]

    def read(addr: Any) -> tuple[Any, Any, Any, Any]:
        return (fields[0](addr), fields[1](addr), fields[2](addr), fields[3](addr))

    return read


def _walk(size: Any, omit: frozenset[type[errors.ChainError]], next_slack: int) -> Walk:
    table, mem_size = z3.BitVec("table", WIDTH), z3.BitVec("mem_size", WIDTH)
    return Walk(symbolic_memory(), mem_size, table, size, z3.Bool("indirect_ok"),
                omit, next_slack)


def _layout_ok(walk: Walk) -> Any:
    """What `SplitLayout.validate` established: the table lies inside guest memory."""
    return z3.And(z3.ULE(walk.mem_size, 1 << 64), z3.ULT(walk.table, 1 << 64),
                  z3.ULE(walk.table + times_desc_size(walk.size), walk.mem_size))


def _read_inside(walk: Walk, before: WalkState, after: WalkState) -> Any:
    """The step's descriptor read lies inside the current table and inside memory."""
    at = after.read_at
    return z3.And(z3.ULE(before.table, at),
                  z3.ULE(at + DESC_SIZE, before.table + times_desc_size(before.cur_size)),
                  z3.ULE(at + DESC_SIZE, walk.mem_size))


def _segment_inside(walk: Walk, after: WalkState) -> Any:
    assert after.segment is not None
    added, addr, length = after.segment
    return z3.Implies(added, z3.ULE(addr + length, walk.mem_size))


def _returned_ok(walk: Walk, s: WalkState) -> Any:
    return z3.Implies(s.status == w(Outcome.RETURNED),
                      z3.And(z3.ULT(s.total, MAX_CHAIN_BYTES),
                             z3.ULE(s.readable + s.writable, walk.size)))


# --- symbolic N: induction over the loop ------------------------------------------------
def invariant(walk: Walk, s: WalkState) -> Any:
    """What holds before every iteration of a running walk."""
    n = walk.size
    return z3.And(
        s.status == w(Outcome.RUNNING),
        z3.ULT(s.index, s.cur_size), z3.Select(s.visited, s.index),
        z3.If(s.in_table,
              z3.And(s.indirect, s.cur_size != 0, z3.ULE(s.cur_size, n),
                     z3.ULT(s.table, 1 << 64),
                     z3.ULE(s.table + times_desc_size(s.cur_size), walk.mem_size)),
              z3.And(z3.Not(s.indirect), s.table == walk.table, s.cur_size == n)),
        z3.ULE(s.readable + s.writable, n), z3.ULE(s.readable, n), z3.ULE(s.writable, n),
        z3.ULT(s.total, MAX_CHAIN_BYTES),
        s.reads == s.readable + s.writable + z3.If(s.in_table, w(1), w(0)),
    )


def _any_state(tag: str) -> WalkState:
    def v(name: str) -> Any:
        return z3.BitVec(f"{name}{tag}", WIDTH)

    return WalkState(
        status=v("status"), table=v("cur_table"), cur_size=v("cur_size"),
        in_table=z3.Bool(f"in_table{tag}"), index=v("index"),
        visited=z3.Array(f"visited{tag}", BITS, z3.BoolSort()),
        readable=v("readable"), writable=v("writable"), total=v("total"),
        indirect=z3.Bool(f"indirect{tag}"), reads=v("reads"),
    )


def _cycle_closed(walk: Walk, s: WalkState, cycle: Any) -> Any:
    """Every index in `cycle` names, in the current table, a descriptor with NEXT set, no
    INDIRECT flag and a `next` in range that is again in `cycle`: a chain that never ends."""
    x = z3.BitVec("x", WIDTH)
    _, _, flags, nxt = walk.read(s.table + times_desc_size(x))
    nxt = z3.ZeroExt(WIDTH - 16, nxt)
    links = z3.And(flags & int(DescFlag.NEXT) != 0, flags & int(DescFlag.INDIRECT) == 0,
                   z3.ULT(nxt, s.cur_size), z3.Select(cycle, nxt))
    return z3.ForAll([x], z3.Implies(z3.Select(cycle, x), links),
                     patterns=[z3.Select(cycle, x)])


@dataclass(frozen=True)
class _Step:
    """One symbolic iteration from any state satisfying the invariant, for symbolic N."""

    walk: Walk
    setting: Any
    before: WalkState
    after: WalkState
    pre: Any
    shown: dict[str, Any]

    @property
    def running(self) -> Any:
        return self.after.status == w(Outcome.RUNNING)


def _symbolic_step(omit: frozenset[type[errors.ChainError]], next_slack: int) -> _Step:
    n = z3.BitVec("queue_size", WIDTH)
    walk = _walk(n, omit, next_slack)
    setting = z3.And(z3.UGE(n, 1), z3.ULE(n, MAX_QUEUE_SIZE), _layout_ok(walk))
    s = _any_state("")
    t = step(walk, s)
    shown = {"queue_size": n, "table": walk.table, "mem_size": walk.mem_size,
             "cur_table": s.table, "cur_size": s.cur_size, "index": s.index,
             "next_index": t.index, "status_after": t.status, "reads": s.reads}
    return _Step(walk, setting, s, t, z3.And(setting, invariant(walk, s)), shown)


def _induction(st: _Step) -> list[Claim]:
    """Base case and inductive step of the invariant itself."""
    head = z3.BitVec("head", WIDTH)
    return [
        Claim("base: the walk's first state satisfies the invariant",
              z3.And(st.setting, z3.ULT(head, st.walk.size)),
              invariant(st.walk, start(st.walk, head)), st.shown),
        Claim("step: a running walk keeps the invariant", z3.And(st.pre, st.running),
              invariant(st.walk, st.after), st.shown),
    ]


def termination_claims(omit: frozenset[type[errors.ChainError]] = frozenset(),
                       next_slack: int = 0) -> list[Claim]:
    """Obligation 3 by induction, for every N <= 32768 at once."""
    st = _symbolic_step(omit, next_slack)
    s, t, n = st.before, st.after, st.walk.size
    probe = z3.BitVec("probe", WIDTH)
    same_table = t.in_table == s.in_table
    fresh = z3.And(z3.Not(z3.Select(s.visited, t.index)), z3.ULT(t.index, s.cur_size),
                   z3.Select(t.visited, probe) == z3.Or(z3.Select(s.visited, probe),
                                                        probe == t.index))
    cycle = z3.Array("cycle", BITS, z3.BoolSort())
    on_cycle = z3.And(st.pre, z3.Select(cycle, s.index), _cycle_closed(st.walk, s, cycle))
    stays = z3.And(z3.Select(cycle, t.index), t.table == s.table, t.cur_size == s.cur_size,
                   t.in_table == s.in_table)
    return [
        *_induction(st),
        Claim("step: at most N + 1 reads while running, N + 2 in all", st.pre,
              z3.And(t.reads == s.reads + 1, z3.ULE(t.reads, n + 2),
                     z3.Implies(st.running, z3.ULE(t.reads, n + 1)),
                     z3.Implies(t.status == w(Outcome.RETURNED), z3.ULE(t.reads, n + 1))),
              st.shown),
        Claim("step: within a table, the next index is new and in range",
              z3.And(st.pre, st.running, same_table), fresh, st.shown),
        Claim("step: on a cycle, the walk does not return and stays on the cycle", on_cycle,
              z3.And(t.status != w(Outcome.RETURNED), z3.Implies(st.running, stays)),
              st.shown),
    ]


def bounds_claims(omit: frozenset[type[errors.ChainError]] = frozenset(),
                  next_slack: int = 0) -> list[Claim]:
    """Obligation 6 by induction, for every N <= 32768 at once."""
    st = _symbolic_step(omit, next_slack)
    return [
        *_induction(st),
        Claim("step: the descriptor read lies in its table and in memory", st.pre,
              _read_inside(st.walk, st.before, st.after), st.shown),
        Claim("step: an accepted buffer lies in memory; a returned chain is < 2^32 bytes",
              st.pre, z3.And(_segment_inside(st.walk, st.after),
                             _returned_ok(st.walk, st.after)), st.shown),
    ]


# --- concrete N: the whole walk unrolled -------------------------------------------------
def _path_cycles(walk: Walk, table: Any, entries: Any, first: Any, length: int) -> Any:
    """Following `next` from `first` stays in the table with NEXT set for `length` links."""
    conds = []
    index = first
    for _ in range(length + 1):
        _, _, flags, nxt = walk.read(table + times_desc_size(index))
        conds += [flags & int(DescFlag.NEXT) != 0, flags & int(DescFlag.INDIRECT) == 0,
                  z3.ULT(z3.ZeroExt(WIDTH - 16, nxt), entries)]
        index = z3.ZeroExt(WIDTH - 16, nxt)
    return z3.And(conds)


def unrolled_claims(size: int, omit: frozenset[type[errors.ChainError]] = frozenset(),
                    next_slack: int = 0) -> list[Claim]:
    """The whole walk over a fully symbolic table of `size` entries, unrolled N + 1 times."""
    walk = _walk(w(size), omit, next_slack)
    head = z3.BitVec("head", WIDTH)
    states = unroll(walk, head, size + 1)
    final = states[-1]
    pre = z3.And(_layout_ok(walk), z3.ULT(head, size))
    shown = {"queue_size": w(size), "head": head, "table": walk.table,
             "mem_size": walk.mem_size, "outcome": final.status, "reads": final.reads}
    executed = [before.status == w(Outcome.RUNNING) for before in states[:-1]]
    distinct = []
    for i, before in enumerate(states[:-1]):
        for j in range(i + 1, len(executed)):
            other = states[j]
            distinct.append(z3.Implies(
                z3.And(executed[j], other.in_table == before.in_table),
                z3.And(other.index != before.index, z3.ULT(other.index, other.cur_size))))
    _, head_len, head_flags, _ = walk.read(walk.table + times_desc_size(head))
    pointer_addr = z3.ZeroExt(WIDTH - 64, walk.read(walk.table + times_desc_size(head))[0])
    entries = z3.UDiv(z3.ZeroExt(WIDTH - 32, head_len), DESC_SIZE)
    direct_cycle = _path_cycles(walk, walk.table, w(size), head, size)
    indirect_cycle = z3.And(head_flags & int(DescFlag.INDIRECT) != 0,
                            _path_cycles(walk, pointer_addr, entries, w(0), size))
    not_returned = final.status != w(Outcome.RETURNED)
    return [
        Claim(f"N={size}: the walk ends within N + 1 reads", pre,
              final.status != w(Outcome.RUNNING), shown),
        Claim(f"N={size}: within a table no index is read twice, all in range", pre,
              z3.And(distinct) if distinct else z3.BoolVal(True), shown),
        Claim(f"N={size}: a cycle reachable from the head raises", z3.And(pre, direct_cycle),
              not_returned, shown),
    ] + ([
        Claim(f"N={size}: a cycle in the indirect table raises", z3.And(pre, indirect_cycle),
              not_returned, shown),
    ] if size <= UNROLL_INDIRECT_MAX else [])


def unrolled_sizes() -> list[int]:
    """The powers of two up to `UNROLL_MAX`."""
    return [1 << k for k in range(UNROLL_MAX.bit_length()) if 1 << k <= UNROLL_MAX]


