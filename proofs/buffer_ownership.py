"""Obligation 4: no buffer is lost or duplicated, as an inductive invariant over both sides.

State (Z3 arrays, queue size N symbolic, every 16-bit index value): where each head is
(`loc`: free, available, in the device, used), the driver's free heads and outstanding
heads as lists, the device's held heads as a list, the available and used rings, and the
four free-running indices (`avail_idx`, the device's `next_avail`, `used_idx`, the
driver's `last_used`). Each list is tied to `loc` in both directions (a position holds a
head whose `loc` says so and points back; a head whose `loc` says so sits at its
position), and so is each ring window (the entries between the two indices). Together:
every head is in exactly one place, and free + outstanding = N, available + in device +
used = outstanding, with the window sizes computed by `impl.ring_math.distance`.

Transitions (one head per buffer: single-descriptor or indirect buffers):
`add` (SplitDriver.add_sgs, which also publishes), `pop` (SplitDevice.pop),
`push_used` (SplitDevice.push_used), `get_buf` (SplitDriver.get_buf), `reset` (device
reset: the rings stop being live) and `detach` (SplitDriver.detach_unused_buf, only
after a reset). Base case: the state after construction. Step: each transition keeps
the invariant. tests/test_proof_encodings.py runs the real driver and device and checks
each transition here predicts the state the code reaches.

Spec: §2.7.13 (supplying buffers), §2.7.6 and §2.7.8 (rings), §2.7.14 (reclaiming),
§3.3.1 (INIT-DRV-007/008: exposed buffers only taken back after a reset).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import z3

from impl import ring_math

from .terms import bv, is_index, is_queue_size
from .verdict import Claim

FREE, AVAIL, DEVICE, USED = 0, 1, 2, 3
WORD = z3.BitVecSort(32)
Fn = Callable[..., Any]


def _array(name: str) -> Any:
    return z3.Array(name, WORD, WORD)


@dataclass(frozen=True)
class Queue:
    """Both sides' bookkeeping of one queue, as Z3 terms."""

    live: Any
    loc: Any
    free: Any
    free_pos: Any
    n_free: Any
    out: Any
    out_pos: Any
    n_out: Any
    dev: Any
    dev_pos: Any
    n_dev: Any
    avail_ring: Any
    avail_pos: Any
    used_ring: Any
    used_pos: Any
    avail_idx: Any
    next_avail: Any
    used_idx: Any
    last_used: Any


def any_queue(tag: str = "") -> Queue:
    """A fully symbolic state."""
    names = [f for f in Queue.__dataclass_fields__ if f != "live"]
    terms = {name: (_array(name + tag) if name in _ARRAYS else bv(name + tag)) for name in names}
    return Queue(live=z3.Bool("live" + tag), **terms)


_ARRAYS = {"loc", "free", "free_pos", "out", "out_pos", "dev", "dev_pos", "avail_ring",
           "avail_pos", "used_ring", "used_pos"}


@dataclass(frozen=True)
class Ring:
    """The ring functions the invariant and transitions use (mutants replace them)."""

    slot: Fn = ring_math.slot
    advance: Fn = ring_math.advance
    distance: Fn = ring_math.distance


def _list_at(items: Any, pos: Any, count: Any, loc: Any, n: Any,
             member: Callable[[Any], Any], i: Any) -> Any:
    """Position `i` of the list, if used, holds a head < n of the class, pointing back."""
    return z3.Implies(z3.ULT(i, count), z3.And(
        z3.ULT(items[i], n), member(loc[items[i]]), pos[items[i]] == i))


def _head_in_list(items: Any, pos: Any, count: Any, loc: Any, n: Any,
                  member: Callable[[Any], Any], h: Any) -> Any:
    """A head of the class sits in the list at its position."""
    return z3.Implies(z3.And(z3.ULT(h, n), member(loc[h])), z3.And(
        z3.ULT(pos[h], count), items[pos[h]] == h))


def _window_at(ring: Any, pos: Any, start: Any, count: Any, loc: Any, n: Any, where: int,
               fns: Ring, p: Any) -> Any:
    """Window entry `p` (if inside) is a head < n of class `where`, pointing back."""
    at = fns.advance(start, p)
    head = ring[fns.slot(at, n)]
    return z3.Implies(z3.ULT(p, count), z3.And(
        z3.ULT(head, n), loc[head] == where, pos[head] == at))


def _head_in_window(ring: Any, pos: Any, start: Any, count: Any, loc: Any, n: Any,
                    where: int, fns: Ring, h: Any) -> Any:
    """A head of class `where` sits in the window at its recorded index."""
    return z3.Implies(z3.And(z3.ULT(h, n), loc[h] == where), z3.And(
        is_index(pos[h]), z3.ULT(fns.distance(pos[h], start), count),
        ring[fns.slot(pos[h], n)] == h))


def _is_free(v: Any) -> Any:
    return v == FREE


def _is_out(v: Any) -> Any:
    return v != FREE


def _in_device(v: Any) -> Any:
    return v == DEVICE


@dataclass(frozen=True)
class Invariant:
    """The invariant split into its global part and its per-element parts.

    The whole invariant is `glob and (for all h) head(h) and (for all i) index(i) and
    (for all p) window(p)`. An inductive step assumes the per-element parts at a finite
    set of terms (a sound instantiation of the universal hypothesis) and proves them
    at fresh, arbitrary elements, so every solver query is quantifier-free.
    """

    q: Queue
    n: Any
    fns: Ring

    def counts(self) -> tuple[Any, Any]:
        q, d = self.q, self.fns.distance
        return d(q.avail_idx, q.next_avail), d(q.used_idx, q.last_used)

    def glob(self) -> Any:
        q, n = self.q, self.n
        avail_count, used_count = self.counts()
        indices = z3.And(*(is_index(x) for x in (q.avail_idx, q.next_avail, q.used_idx,
                                                  q.last_used)))
        live = z3.And(avail_count + q.n_dev + used_count == q.n_out,
                      z3.ULE(avail_count, n), z3.ULE(used_count, n), z3.ULE(q.n_dev, n))
        return z3.And(indices, z3.ULE(q.n_free, n), z3.ULE(q.n_out, n),
                      q.n_free + q.n_out == n, z3.Implies(q.live, live))

    def head(self, h: Any) -> Any:
        q, n, fns = self.q, self.n, self.fns
        avail_count, used_count = self.counts()
        live = z3.And(
            _head_in_list(q.dev, q.dev_pos, q.n_dev, q.loc, n, _in_device, h),
            _head_in_window(q.avail_ring, q.avail_pos, q.next_avail, avail_count, q.loc, n,
                            AVAIL, fns, h),
            _head_in_window(q.used_ring, q.used_pos, q.last_used, used_count, q.loc, n,
                            USED, fns, h))
        return z3.And(
            z3.Implies(z3.ULT(h, n), z3.ULE(q.loc[h], USED)),
            _head_in_list(q.free, q.free_pos, q.n_free, q.loc, n, _is_free, h),
            _head_in_list(q.out, q.out_pos, q.n_out, q.loc, n, _is_out, h),
            z3.Implies(q.live, live))

    def index(self, i: Any) -> Any:
        q, n = self.q, self.n
        return z3.And(
            _list_at(q.free, q.free_pos, q.n_free, q.loc, n, _is_free, i),
            _list_at(q.out, q.out_pos, q.n_out, q.loc, n, _is_out, i),
            z3.Implies(q.live, _list_at(q.dev, q.dev_pos, q.n_dev, q.loc, n, _in_device, i)))

    def window(self, p: Any) -> Any:
        q, n, fns = self.q, self.n, self.fns
        avail_count, used_count = self.counts()
        return z3.Implies(q.live, z3.And(
            _window_at(q.avail_ring, q.avail_pos, q.next_avail, avail_count, q.loc, n, AVAIL,
                       fns, p),
            _window_at(q.used_ring, q.used_pos, q.last_used, used_count, q.loc, n, USED,
                       fns, p)))


# --- transitions ------------------------------------------------------------------------
def _remove(items: Any, pos: Any, count: Any, at: Any) -> tuple[Any, Any, Any]:
    """Swap-remove position `at` from a list (order inside a list carries no meaning)."""
    last = items[count - 1]
    return z3.Store(items, at, last), z3.Store(pos, last, at), count - 1


def _append(items: Any, pos: Any, count: Any, head: Any) -> tuple[Any, Any, Any]:
    return z3.Store(items, count, head), z3.Store(pos, head, count), count + 1


def add(q: Queue, n: Any, fns: Ring, choice: Any) -> tuple[Any, Queue]:
    """add_sgs: a free head (any: `choice` picks it) goes into the available ring."""
    head = q.free[choice]
    free, free_pos, n_free = _remove(q.free, q.free_pos, q.n_free, choice)
    out, out_pos, n_out = _append(q.out, q.out_pos, q.n_out, head)
    after = replace(
        q, loc=z3.Store(q.loc, head, AVAIL), free=free, free_pos=free_pos, n_free=n_free,
        out=out, out_pos=out_pos, n_out=n_out,
        avail_ring=z3.Store(q.avail_ring, fns.slot(q.avail_idx, n), head),
        avail_pos=z3.Store(q.avail_pos, head, q.avail_idx),
        avail_idx=fns.advance(q.avail_idx))
    return z3.And(q.live, z3.ULT(choice, q.n_free)), after


def pop(q: Queue, n: Any, fns: Ring, choice: Any) -> tuple[Any, Queue]:
    """pop: the device takes the next available head."""
    head = q.avail_ring[fns.slot(q.next_avail, n)]
    dev, dev_pos, n_dev = _append(q.dev, q.dev_pos, q.n_dev, head)
    after = replace(q, loc=z3.Store(q.loc, head, DEVICE), dev=dev, dev_pos=dev_pos,
                    n_dev=n_dev, next_avail=fns.advance(q.next_avail))
    return z3.And(q.live, fns.distance(q.avail_idx, q.next_avail) != 0), after


def push_used(q: Queue, n: Any, fns: Ring, choice: Any) -> tuple[Any, Queue]:
    """push_used: any head the device holds (`choice`) goes into the used ring."""
    head = q.dev[choice]
    dev, dev_pos, n_dev = _remove(q.dev, q.dev_pos, q.n_dev, choice)
    after = replace(
        q, loc=z3.Store(q.loc, head, USED), dev=dev, dev_pos=dev_pos, n_dev=n_dev,
        used_ring=z3.Store(q.used_ring, fns.slot(q.used_idx, n), head),
        used_pos=z3.Store(q.used_pos, head, q.used_idx), used_idx=fns.advance(q.used_idx))
    return z3.And(q.live, z3.ULT(choice, q.n_dev)), after


def get_buf(q: Queue, n: Any, fns: Ring, choice: Any) -> tuple[Any, Queue]:
    """get_buf: the driver reclaims the next used head; it becomes free."""
    head = q.used_ring[fns.slot(q.last_used, n)]
    out, out_pos, n_out = _remove(q.out, q.out_pos, q.n_out, q.out_pos[head])
    free, free_pos, n_free = _append(q.free, q.free_pos, q.n_free, head)
    after = replace(q, loc=z3.Store(q.loc, head, FREE), out=out, out_pos=out_pos,
                    n_out=n_out, free=free, free_pos=free_pos, n_free=n_free,
                    last_used=fns.advance(q.last_used))
    return z3.And(q.live, fns.distance(q.used_idx, q.last_used) != 0), after


def reset(q: Queue, n: Any, fns: Ring, choice: Any) -> tuple[Any, Queue]:
    """Device reset: the rings stop being live; the driver still owns its outstanding list."""
    return q.live, replace(q, live=z3.BoolVal(False))


def detach(q: Queue, n: Any, fns: Ring, choice: Any) -> tuple[Any, Queue]:
    """detach_unused_buf after a reset: one outstanding head (`choice`) becomes free."""
    head = q.out[choice]
    out, out_pos, n_out = _remove(q.out, q.out_pos, q.n_out, choice)
    free, free_pos, n_free = _append(q.free, q.free_pos, q.n_free, head)
    after = replace(q, loc=z3.Store(q.loc, head, FREE), out=out, out_pos=out_pos,
                    n_out=n_out, free=free, free_pos=free_pos, n_free=n_free)
    return z3.And(z3.Not(q.live), z3.ULT(choice, q.n_out)), after


TRANSITIONS: dict[str, Callable[[Queue, Any, Ring, Any], tuple[Any, Queue]]] = {  # in order
    "add": add, "pop": pop, "push_used": push_used, "get_buf": get_buf,
    "reset": reset, "detach": detach,
}


def initial(n: Any, start: Any) -> Queue:
    """The state after construction: every head free (in order), all indices at `start`."""
    identity = z3.Lambda([x := z3.BitVec("x", 32)], x)
    zero = z3.K(WORD, z3.BitVecVal(FREE, 32))
    q = any_queue("_init")
    return replace(q, live=z3.BoolVal(True), loc=zero, free=identity, free_pos=identity,
                   n_free=n, n_out=z3.BitVecVal(0, 32), n_dev=z3.BitVecVal(0, 32),
                   avail_idx=start, next_avail=start, used_idx=start, last_used=start)


def _instances(q: Queue, after: Queue, n: Any, fns: Ring, head: Any, choice: Any,
               h: Any, i: Any, p: Any) -> tuple[list[Any], list[Any], list[Any]]:
    """Terms at which an inductive step assumes the per-element parts of the invariant."""
    lists = [(q.free, q.free_pos, q.n_free), (q.out, q.out_pos, q.n_out),
             (q.dev, q.dev_pos, q.n_dev)]
    heads = [h, head, after.free[i], after.out[i], after.dev[i]]
    indices = [i, choice, i + 1]
    for items, pos, count in lists:
        heads += [items[i], items[count - 1], items[choice]]
        indices += [count - 1, pos[h], pos[head]]
    windows = [p, p + 1, p - 1, z3.BitVecVal(0, 32)]
    for ring, start, after_start in ((q.avail_ring, q.next_avail, after.next_avail),
                                     (q.used_ring, q.last_used, after.last_used)):
        heads += [ring[fns.slot(fns.advance(after_start, p), n)]]
        windows += [fns.distance(q.avail_pos[h], start), fns.distance(q.used_pos[h], start),
                    fns.distance(fns.advance(after_start, p), start)]
    heads += [after.avail_ring[fns.slot(fns.advance(after.next_avail, p), n)],
              after.used_ring[fns.slot(fns.advance(after.last_used, p), n)]]
    return heads, indices, windows


def _holds_at(inv: Invariant, heads: list[Any], indices: list[Any], windows: list[Any]) -> Any:
    return z3.And(inv.glob(), *(inv.head(t) for t in heads), *(inv.index(t) for t in indices),
                  *(inv.window(t) for t in windows))


Transition = Callable[[Queue, Any, Ring, Any], tuple[Any, Queue]]


def claims(fns: Ring | None = None,
           transitions: dict[str, Transition] | None = None) -> list[Claim]:
    """Base case plus one inductive step per transition, for every N and index value."""
    fns = fns or Ring()
    transitions = TRANSITIONS if transitions is None else transitions
    n, start, choice = bv("queue_size"), bv("start_idx"), bv("choice")
    h, i, p = bv("h"), bv("i"), bv("p")
    setting = is_queue_size(n)
    q = any_queue()
    base = Invariant(initial(n, start), n, fns)
    result = [Claim("base: a new queue satisfies the invariant",
                    z3.And(setting, is_index(start)), _holds_at(base, [h], [i], [p]),
                    {"queue_size": n, "start_idx": start})]
    for name, transition in transitions.items():
        guard, after = transition(q, n, fns, choice)
        moved = _moved_head(name, q, n, fns, choice)
        heads, indices, windows = _instances(q, after, n, fns, moved, choice, h, i, p)
        shown = {"queue_size": n, "avail_idx": q.avail_idx, "next_avail": q.next_avail,
                 "used_idx": q.used_idx, "last_used": q.last_used, "free": q.n_free,
                 "outstanding": q.n_out, "in_device": q.n_dev, "choice": choice,
                 "head": moved, "h": h, "loc[h]": q.loc[h], "loc'[h]": after.loc[h]}
        pre = z3.And(setting, guard, _holds_at(Invariant(q, n, fns), heads, indices, windows))
        counts_pre = z3.And(setting, guard, Invariant(q, n, fns).glob())
        post = Invariant(after, n, fns)
        for part, assumed, goal in (
            ("counts", counts_pre, post.glob()), ("each head", pre, post.head(h)),
            ("each list position", pre, post.index(i)), ("each ring entry", pre, post.window(p)),
        ):
            result.append(Claim(f"step: {name} keeps the invariant ({part})", assumed, goal,
                                shown))
    return result


def transition_claims(name: str, fns: Ring | None = None) -> list[Claim]:
    """The claims of one transition (the base case goes with `add`)."""
    every = claims(fns, {name: TRANSITIONS[name]})
    return every if name == "add" else every[1:]


def _moved_head(name: str, q: Queue, n: Any, fns: Ring, choice: Any) -> Any:
    """The head a transition moves (for `reset`, any: nothing moves)."""
    return {
        "add": q.free[choice], "pop": q.avail_ring[fns.slot(q.next_avail, n)],
        "push_used": q.dev[choice], "get_buf": q.used_ring[fns.slot(q.last_used, n)],
        "reset": q.free[choice], "detach": q.out[choice],
    }[name]
