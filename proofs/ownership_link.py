"""Obligation 4, the link between its halves: heads (buffer_ownership) and descriptors.

The head half tracks where each outstanding head is (available, in the device, used);
the descriptor half tracks which descriptors each outstanding head's chain holds. They
describe one driver, so they must agree on which heads are outstanding:
`loc[h] != FREE` exactly when the record of h holds a nonzero descriptor count. This
module proves that agreement is a joint invariant: it holds at construction, and each
transition of the head half, run together with the descriptor step the same driver
call makes (add_sgs: `add`; get_buf and detach_unused_buf: `release`; pop, push_used
and reset: none), keeps it. It also proves each joint step is enabled on both sides:
the head the driver takes (`free_head`) is one the head half may pick, and the head
get_buf or detach hands back is one the descriptor half may release.

Head indices are 32-bit vectors there and integers here; `BV2Int`/`Int2BV` convert
them, exactly, since both are below N <= 32768.

Spec: §2.7.13 and §2.7.14 (one driver: its records and its rings).
"""

from __future__ import annotations

from typing import Any

import z3

from . import buffer_ownership as heads
from . import descriptor_ownership as descs
from .terms import bv, is_index, is_queue_size
from .verdict import Claim


def _linked(q: heads.Queue, s: descs.Descs, n: Any, h: Any, num: Any = z3.BV2Int) -> Any:
    """Head h (a bit-vector; `num(h)` as an integer) is outstanding on both sides or on
    neither."""
    return z3.Implies(z3.ULT(h, n), (q.loc[h] != heads.FREE) == (s.descs[num(h)] != 0))


def _distinct_stay_distinct(*terms: Any, num: Any = z3.BV2Int) -> list[Any]:
    """`num` is injective on the terms at hand (for BV2Int, a valid fact)."""
    return [z3.Implies(a != b, num(a) != num(b))
            for i, a in enumerate(terms) for b in terms[i + 1:]]


AS_INT = z3.Function("as_int", z3.BitVecSort(32), z3.IntSort())
"""An uninterpreted stand-in for BV2Int (which Z3 handles slowly) in the link steps that
need only that it is injective: a claim proved for every injective function holds for
BV2Int."""


def claims(add: descs.Transition = descs.add,
           release: descs.Transition = descs.release) -> list[Claim]:
    """Base case, and each joint step is enabled on both sides and keeps the link.

    `add` and `release` are the descriptor steps (mutants replace them)."""
    n = bv("queue_size")
    n_int = z3.BV2Int(n)
    start, choice, h, k = bv("start_idx"), bv("choice"), bv("h"), z3.Int("k")
    setting = is_queue_size(n)
    result = [Claim("link base: a new driver has no outstanding head on either side",
                    z3.And(setting, is_index(start)),
                    _linked(heads.initial(n, start), descs.initial(n_int), n, h),
                    {"queue_size": n, "h": h})]
    q, s, fns = heads.any_queue(), descs.any_descs(), heads.Ring()
    taken = bv("free_head_bv")  # the same head as s.free_head, as a bit-vector
    head_inv, desc_inv = heads.Invariant(q, n, fns), descs.Invariant(s, n_int)
    for name, transition in heads.TRANSITIONS.items():
        pick = q.free_pos[taken] if name == "add" else choice
        guard, q_after = transition(q, n, fns, pick)
        moved = heads._moved_head(name, q, n, fns, pick)
        if name == "add":
            enabled, s_after = add(s, n_int, k)
            joint = z3.And(q.live, enabled)
            goals = [("the driver's free_head is a head the head half may pick",
                      z3.And(guard, moved == taken))]
        elif name in ("get_buf", "detach"):
            joint, (enabled, s_after) = guard, release(s, n_int, z3.BV2Int(moved))
            goals = [("the head handed back is one the descriptor half may release",
                      enabled)]
        else:
            joint, s_after = guard, s
            goals = []
        common = [setting, joint, z3.BV2Int(taken) == s.free_head,
                  *_distinct_stay_distinct(h, moved, taken)]
        pre = z3.And(
            *common, head_inv.glob(), desc_inv.glob(),
            *(head_inv.head(t) for t in (h, moved, taken)), head_inv.index(pick),
            head_inv.window(z3.BitVecVal(0, 32)),
            *(desc_inv.head(t) for t in (s.free_head, z3.BV2Int(moved), z3.BV2Int(h))),
            desc_inv.free_pos(z3.IntVal(0)),
            *(_linked(q, s, n, t) for t in (h, moved, taken)))
        shown = {"queue_size": n, "head": moved, "h": h, "loc[h]": q.loc[h],
                 "descs[h]": s.descs[z3.BV2Int(h)], "free_head": s.free_head, "k": k}
        result += [Claim(f"link step: {name} {what}", pre, goal, shown)
                   for what, goal in goals]
        if name in ("add", "get_buf", "detach"):
            # The claim just above proved `pre -> lemma`; this one proves
            # `common and lemma and link(h) -> keeps`, whose hypotheses `pre` implies:
            # together `pre -> keeps`, as a far smaller query for the solver.
            lemma = z3.And(moved == taken, k >= 1) if name == "add" else z3.BoolVal(True)
            if name != "add":
                s_after = release(s, n_int, AS_INT(moved))[1]
            pre = z3.And(setting, AS_INT(taken) == s.free_head, lemma,
                         *_distinct_stay_distinct(h, moved, taken, num=AS_INT),
                         _linked(q, s, n, h, AS_INT))
            keeps = _linked(q_after, s_after, n, h, AS_INT)
        else:
            keeps = _linked(q_after, s_after, n, h)
        result.append(Claim(f"link step: {name} keeps the link", pre, keeps, shown))
    return result
