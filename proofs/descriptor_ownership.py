"""Obligation 4, descriptor level: every descriptor is free or in exactly one chain.

State (the driver's private bookkeeping, `impl.split_driver.SplitDriver`, as Z3 arrays
over a symbolic queue size N): the `_next` links, `free_head`, `num_free`, and per head
the descriptor count of its record (`descs`, 0 when the head is not outstanding). Ghost
state, the witness the invariant needs: `owner` (FREE or the head whose chain holds the
descriptor) and `rank` (its position on the free list or in that chain), with the
inverses `free_at` (position -> descriptor) and `at` (head, position -> descriptor),
`base` (where each outstanding chain's block starts) and `block_of` (whose block covers a
point).

Invariant: `d -> (owner[d], rank[d])` is a bijection between the descriptors 0..N-1 and
the positions {free j : j < num_free} + {(h, j) : j < descs[h]}, whose inverse is
`free_at`/`at`; consecutive positions are joined by `_next` (so the driver's walks from
`free_head` and from a head visit exactly these positions in order); `free_head` is free
position 0; an outstanding head is position 0 of its own chain; 0 <= num_free <= N, and
the chains' blocks [base, base + count) tile [0, N - num_free) (disjoint, inside, every
point covered). Hence each descriptor is in exactly one place, and
N = num_free + the sum of descs[h].

Transitions: `add` (SplitDriver._write_direct or _write_indirect: a buffer of k >= 1
descriptors, k = 1 for an indirect one, takes the first k free descriptors) and
`release` (SplitDriver._detach, which get_buf and detach_unused_buf call on an
outstanding head: its k descriptors go back to the front of the free list). Counts and
positions are unbounded integers, as in the Python code. Base case: the state after
construction. tests/test_proof_encodings.py runs the real driver and checks each
transition here predicts the state the code reaches.

Spec: §2.7.13 (supplying buffers: free descriptors only), §2.7.14 (reclaiming),
§2.7.5.3 (an indirect buffer takes one descriptor).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import z3

from impl.spec import MAX_QUEUE_SIZE

from .verdict import Claim

FREE = -1
"""The owner of a descriptor on the free list (heads are 0..N-1)."""
INT = z3.IntSort()


@dataclass(frozen=True)
class Descs:
    """The driver's descriptor bookkeeping plus the ghost witness, as Z3 terms."""

    next: Any
    free_head: Any
    num_free: Any
    descs: Any
    owner: Any
    rank: Any
    free_at: Any
    at: Any
    base: Any
    block_of: Any
    table_next: Any
    chained: Any


def any_descs(tag: str = "") -> Descs:
    """A fully symbolic state."""
    def arr(name: str) -> Any:
        return z3.Array(name + tag, INT, INT)

    return Descs(next=arr("next"), free_head=z3.Int("free_head" + tag),
                 num_free=z3.Int("num_free" + tag), descs=arr("descs"), owner=arr("owner"),
                 rank=arr("rank"), free_at=arr("free_at"),
                 at=z3.Array("at" + tag, INT, INT, INT), base=arr("base"),
                 block_of=arr("block_of"),
                 table_next=arr("table_next"),
                 chained=z3.Array("chained" + tag, INT, z3.BoolSort()))


def _in(x: Any, bound: Any) -> Any:
    return z3.And(0 <= x, x < bound)


@dataclass(frozen=True)
class Invariant:
    """The invariant split into a global part and per-element parts (as in
    buffer_ownership: a step assumes the parts at finitely many terms and proves them
    at fresh ones, so every query is quantifier-free)."""

    s: Descs
    n: Any

    def glob(self) -> Any:
        s = self.s
        return z3.And(s.num_free >= 0, s.num_free <= self.n,
                      z3.Implies(s.num_free > 0, s.free_head == s.free_at[0]))

    def desc(self, d: Any) -> Any:
        """Descriptor d < N sits at the position its owner and rank name."""
        s, n = self.s, self.n
        owner, rank = s.owner[d], s.rank[d]
        free = z3.And(owner == FREE, _in(rank, s.num_free), s.free_at[rank] == d)
        chained = z3.And(_in(owner, n), _in(rank, s.descs[owner]), s.at[owner, rank] == d)
        return z3.Implies(_in(d, n), z3.Or(free, chained))

    def head(self, h: Any) -> Any:
        """A record's count is >= 0; an outstanding head is position 0 of its chain,
        and its block [base, base + count) lies in [0, N - num_free)."""
        s, n = self.s, self.n
        return z3.Implies(_in(h, n), z3.And(s.descs[h] >= 0, z3.Implies(
            s.descs[h] != 0, z3.And(s.owner[h] == h, s.rank[h] == 0, s.base[h] >= 0,
                                    s.base[h] + s.descs[h] <= n - s.num_free))))

    def cover(self, p: Any) -> Any:
        """Point p of [0, N - num_free) lies in the block of head `block_of[p]` (so the
        blocks tile that interval: N - num_free is the sum of the counts)."""
        s, n = self.s, self.n
        h = s.block_of[p]
        return z3.Implies(_in(p, n - s.num_free), z3.And(
            _in(h, n), s.descs[h] != 0, s.base[h] <= p, p < s.base[h] + s.descs[h]))

    def apart(self, g: Any, h: Any) -> Any:
        """Two outstanding heads have disjoint blocks (so the counts fit in N)."""
        s, n = self.s, self.n
        both = z3.And(_in(g, n), _in(h, n), g != h, s.descs[g] != 0, s.descs[h] != 0)
        return z3.Implies(both, z3.Or(s.base[g] + s.descs[g] <= s.base[h],
                                      s.base[h] + s.descs[h] <= s.base[g]))

    def free_pos(self, j: Any) -> Any:
        """Free position j holds a free descriptor of rank j, linked to position j+1."""
        s, n = self.s, self.n
        d = s.free_at[j]
        return z3.Implies(_in(j, s.num_free), z3.And(
            _in(d, n), s.owner[d] == FREE, s.rank[d] == j,
            z3.Implies(j + 1 < s.num_free, s.next[d] == s.free_at[j + 1])))

    def chain_pos(self, h: Any, j: Any) -> Any:
        """Position j of head h's chain holds a descriptor owned by h, rank j, linked on,
        both in `_next` and in the table the device walks (NEXT flag and next field)."""
        s, n = self.s, self.n
        d = s.at[h, j]
        more = j + 1 < s.descs[h]
        return z3.Implies(z3.And(_in(h, n), _in(j, s.descs[h])), z3.And(
            _in(d, n), s.owner[d] == h, s.rank[d] == j, s.chained[d] == more,
            z3.Implies(more, z3.And(s.next[d] == s.at[h, j + 1],
                                    s.table_next[d] == s.at[h, j + 1]))))


# --- transitions ------------------------------------------------------------------------
def add(s: Descs, n: Any, k: Any) -> tuple[Any, Descs]:
    """add_sgs: a buffer of k descriptors takes the first k on the free list.

    The driver walks k-1 links from `free_head` (_write_direct; k = 1 for an indirect
    buffer, _write_indirect), makes `free_head` the buffer's head with a record of k
    descriptors, and moves `free_head` to the link of the last one. `_next` is unchanged.
    In the table, each taken descriptor gets its `_next` link as its next field and the
    NEXT flag unless it is the last (§2.7.5).
    """
    head, last = s.free_head, s.free_at[k - 1]
    d, j = z3.Ints("d j")
    taken = z3.And(s.owner[d] == FREE, s.rank[d] < k)
    after = replace(
        s, free_head=s.next[last], num_free=s.num_free - k,
        descs=z3.Store(s.descs, head, k), base=z3.Store(s.base, head, n - s.num_free),
        block_of=z3.Lambda([j], z3.If(j >= n - s.num_free, head, s.block_of[j])),
        owner=z3.Lambda([d], z3.If(taken, head, s.owner[d])),
        rank=z3.Lambda([d], z3.If(z3.And(s.owner[d] == FREE, s.rank[d] >= k),
                                  s.rank[d] - k, s.rank[d])),
        free_at=z3.Lambda([j], s.free_at[j + k]),
        at=z3.Lambda([h := z3.Int("h"), j], z3.If(h == head, s.free_at[j], s.at[h, j])),
        table_next=z3.Lambda([d], z3.If(taken, s.next[d], s.table_next[d])),
        chained=z3.Lambda([d], z3.If(taken, s.rank[d] < k - 1, s.chained[d])))
    return z3.And(k >= 1, k <= s.num_free), after


def release(s: Descs, n: Any, head: Any) -> tuple[Any, Descs]:
    """_detach (get_buf, detach_unused_buf): an outstanding head's chain goes back first.

    The driver walks descs-1 links from the head to the chain's last descriptor, links
    it to the old `free_head`, makes the head the new `free_head`, adds the count to
    `num_free` and clears the record. The guard is the driver's own check (get_buf
    raises UsedIdOutOfRange / UsedIdNotOutstanding otherwise; detach picks a record).
    """
    k = s.descs[head]
    last = s.at[head, k - 1]
    d, j = z3.Ints("d j")
    mine = s.owner[d] == head
    after = replace(
        s, next=z3.Store(s.next, last, s.free_head), free_head=head,
        num_free=s.num_free + k, descs=z3.Store(s.descs, head, 0),
        base=z3.Lambda([d], z3.If(s.base[d] > s.base[head], s.base[d] - k, s.base[d])),
        block_of=z3.Lambda([j], z3.If(j < s.base[head], s.block_of[j], s.block_of[j + k])),
        owner=z3.Lambda([d], z3.If(mine, FREE, s.owner[d])),
        rank=z3.Lambda([d], z3.If(s.owner[d] == FREE, s.rank[d] + k, s.rank[d])),
        free_at=z3.Lambda([j], z3.If(j < k, s.at[head, j], s.free_at[j - k])))
    return z3.And(_in(head, n), k != 0), after


Transition = Callable[[Descs, Any, Any], tuple[Any, Descs]]
TRANSITIONS: dict[str, Transition] = {"add": add, "release": release}


def initial(n: Any) -> Descs:
    """The state after construction: _next[i] = i + 1, every descriptor free, in order."""
    x = z3.Int("x")
    identity = z3.Lambda([x], x)
    s = any_descs("_init")
    return replace(s, next=z3.Lambda([x], x + 1), free_head=z3.IntVal(0), num_free=n,
                   descs=z3.K(INT, z3.IntVal(0)), owner=z3.K(INT, z3.IntVal(FREE)),
                   rank=identity, free_at=identity)


def is_size(n: Any) -> Any:
    """A queue size: 1..32768 (the free list needs no power of two)."""
    return z3.And(n >= 1, n <= MAX_QUEUE_SIZE)


Pairs = list[tuple[Any, Any]]


def _holds_at(inv: Invariant, descs: list[Any], heads: list[Any], frees: list[Any],
              chains: Pairs, aparts: Pairs | None = None, covers: list[Any] | None = None
              ) -> Any:
    return z3.And(inv.glob(), *(inv.desc(t) for t in descs), *(inv.head(t) for t in heads),
                  *(inv.free_pos(t) for t in frees), *(inv.chain_pos(h, j) for h, j in chains),
                  *(inv.apart(g, h) for g, h in aparts or []),
                  *(inv.cover(p) for p in covers or []))


def _instances(s: Descs, arg: Any, d: Any, g: Any, h: Any, j: Any, p: Any
               ) -> tuple[list[Any], list[Any], list[Any], Pairs, Pairs, list[Any]]:
    """Terms at which a step assumes the per-element parts (both transitions' needs)."""
    k = s.descs[arg]
    owner, rank = s.owner[d], s.rank[d]
    descs = [d, arg, s.free_head, h, s.free_at[j], s.at[h, j]]
    covers = [p, p + k]
    heads = [arg, g, h, owner, s.free_head, s.owner[s.free_at[j]], s.owner[s.at[h, j]],
             *(s.block_of[c] for c in covers)]
    frees = [z3.IntVal(0), rank, j, j + 1, j + arg, j + arg + 1, arg - 1, arg,
             j - k, j - k + 1, rank - k]
    chains = [(owner, rank), (h, j), (h, j + 1), (arg, j), (arg, j + 1), (arg, k - 1),
              (arg, z3.IntVal(0)), (h, rank)]
    aparts = [(g, h), (g, arg), (h, arg), (g, s.free_head), (h, s.free_head),
              *((s.block_of[c], arg) for c in covers)]
    return descs, heads, frees, chains, aparts, covers


def claims(transitions: dict[str, Transition] | None = None) -> list[Claim]:
    """Base case, then each transition keeps each part, for every N <= 32768 and k."""
    transitions = TRANSITIONS if transitions is None else transitions
    n = z3.Int("queue_size")
    d, g, h, j, p, arg = z3.Ints("d g h j p arg")
    base = Invariant(initial(n), n)
    result = [Claim("base: a new driver's descriptors are all free, linked in order",
                    is_size(n), _holds_at(base, [d], [h], [j], [(h, j)], [(g, h)], [p]),
                    {"queue_size": n, "d": d, "g": g, "h": h, "j": j})]
    s = any_descs()
    pre_inv = Invariant(s, n)
    result.append(Claim(
        "add takes a head that is not outstanding", z3.And(
            is_size(n), arg >= 1, arg <= s.num_free,
            _holds_at(pre_inv, [s.free_head], [s.free_head], [z3.IntVal(0)], [])),
        s.descs[s.free_head] == 0, {"queue_size": n, "k": arg, "free_head": s.free_head}))
    jj = z3.Int("jj")
    result.append(Claim(
        "add writes only descriptors no outstanding chain holds (INIT-DRV-007)", z3.And(
            is_size(n), arg >= 1, arg <= s.num_free,
            _holds_at(pre_inv, [], [], [j], [(h, jj)])),
        z3.Implies(z3.And(_in(j, arg), _in(h, n), _in(jj, s.descs[h])),
                   s.at[h, jj] != s.free_at[j]),
        {"queue_size": n, "k": arg, "j": j, "h": h, "jj": jj, "free_at[j]": s.free_at[j]}))
    for name, transition in transitions.items():
        guard, after = transition(s, n, arg)
        pre = z3.And(is_size(n), guard, _holds_at(pre_inv, *_instances(s, arg, d, g, h, j, p)))
        post = Invariant(after, n)
        shown = {"queue_size": n, "k or head": arg, "num_free": s.num_free,
                 "free_head": s.free_head, "descs[head]": s.descs[arg], "d": d,
                 "owner[d]": s.owner[d], "owner'[d]": after.owner[d], "rank[d]": s.rank[d],
                 "rank'[d]": after.rank[d], "h": h, "j": j}
        for part, goal in (("free list head and count", post.glob()),
                           ("each descriptor", post.desc(d)), ("each head", post.head(h)),
                           ("each free position", post.free_pos(j)),
                           ("each chain position", post.chain_pos(h, j)),
                           ("chains apart", post.apart(g, h)),
                           ("chains tile [0, N - num_free)", post.cover(p))):
            result.append(Claim(f"step: {name} keeps the descriptor invariant ({part})",
                                pre, goal, shown))
    return result
