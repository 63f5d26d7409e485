"""Packed-ring obligations: wrap counters, event suppression, Buffer IDs, list walks (§2.8).

Claims (each evaluated on the `impl.wrap_math` functions themselves, for every queue
size 1..32768, power of two or not, and every position 0..2*size-1):
- positions: one step moves the offset on by one, or to 0 with the wrap counter
  flipped after the last descriptor (§2.8.1); a position is exactly its (offset,
  counter) pair; an event `desc` word names a position and reads back as it.
- availability: a descriptor made available under the counter of its position is
  available for a side at that position and not for a side one lap on (so a side sees
  it available exactly once per lap), and never looks used; a used mark never looks
  available, and looks used exactly for its own counter; a zeroed ring shows nothing
  available under the initial counter.
- need_event: `need_event(e, new, old)` holds exactly when `e` is one of the positions
  from `old` up to `new` (written without modular arithmetic), across the wrap.
- the notification decision (`notify_decision`, shared by `PackedDriver.kick_prepare`
  and `PackedDevice.needs_notification`): in DESC mode it is `need_event` over exactly
  the positions passed (so, with the claim above, it notifies exactly when the named
  position was passed); DISABLE never, ENABLE always; without VIRTIO_F_EVENT_IDX the
  event word is ignored; a named offset beyond the ring notifies.
- list walks: the positions a list of at most `size` descriptors occupies have
  distinct offsets (a walk bounded by the size never reads a descriptor twice), and
  stepping one at a time agrees with skipping a whole list.
- Buffer IDs: the driver's bookkeeping (each id free or outstanding, never both) is an
  inductive invariant of adding a buffer and of reclaiming a used id, given the
  driver's acceptance check (`driver_accepts_id`, tied to `PackedDriver.get_buf` by
  tests/test_proof_packed.py); so no id is lost or returned twice.

Spec: §2.8.1 (wrap counters and flags), §2.8.6 (lists, skipping), §2.8.10 and §2.8.14
(event suppression), §2.8.13 (zeroed ring), §2.8.22 (receiving used buffers).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import z3

from impl import wrap_math
from impl.spec import INITIAL_WRAP_COUNTER, MAX_QUEUE_SIZE, PackedEventFlag

from .registry import Obligation
from .terms import bv as _bv
from .terms import const as _const
from .verdict import Claim

Fn = Callable[..., Any]
FLAGS_LIMIT = 1 << 16
PACKED_BITS = 19
"""Carrier width: positions stay below 2^16 and every sum these claims form below 2^18,
so the solver's own wrap at 2^19 is never reached and cannot hide a missing case."""


def bv(name: str) -> Any:
    """A fresh bit-vector of the packed carrier width."""
    return _bv(name, PACKED_BITS)


def const(value: int) -> Any:
    """A bit-vector constant of the packed carrier width."""
    return _const(value, PACKED_BITS)


def num(name: str) -> Any:
    """A fresh mathematical integer: Python's unbounded `int`, as the runtime computes."""
    return z3.Int(name)


def is_packed_size(size: Any) -> Any:
    """`size` is any queue size from 1 to 32768 (§2.8: no power of two needed)."""
    if z3.is_bv(size):
        return z3.And(z3.UGE(size, 1), z3.ULE(size, MAX_QUEUE_SIZE))
    return z3.And(size >= 1, size <= MAX_QUEUE_SIZE)


def is_position(pos: Any, size: Any) -> Any:
    """`pos` is a position of a ring of `size`: 0 .. 2*size-1."""
    if z3.is_bv(pos):
        return z3.ULT(pos, 2 * size)
    return z3.And(pos >= 0, pos < 2 * size)


def _truth(value: Any) -> Any:
    """A Python bool as a Z3 constant; a Z3 term unchanged."""
    return z3.BoolVal(value) if isinstance(value, bool) else value


# --- positions (§2.8.1, §2.8.14) ---------------------------------------------------------
def position_claims(wm: ModuleType = wrap_math) -> list[Claim]:
    """Stepping, the (offset, counter) pair and event words, for every size and position."""
    pos, size = num("pos"), num("size")
    pre = z3.And(is_packed_size(size), is_position(pos, size))
    off, wrap = wm.offset_of(pos, size), wm.wrap_of(pos, size)
    nxt = wm.advance(pos, 1, size)
    last = off == size - 1
    shown = {"size": size, "pos": pos, "offset": off, "wrap": wrap, "next": nxt}
    bpos, bsize = bv("pos"), bv("size")
    event = wm.encode_event(bpos, bsize)
    event_pre = z3.And(is_packed_size(bsize), is_position(bpos, bsize))
    return [
        Claim("a position is its offset and counter", pre,
              z3.And(off >= 0, off < size, z3.Or(wrap == 0, wrap == 1),
                     wm.position(off, wrap, size) == pos),
              shown),
        Claim("one step: offset + 1, or offset 0 with the counter flipped after the last", pre,
              z3.And(is_position(nxt, size),
                     wm.offset_of(nxt, size) == z3.If(last, 0, off + 1),
                     wm.wrap_of(nxt, size) == z3.If(last, 1 - wrap, wrap)),
              shown),
        Claim("an event word names the position and reads back as it", event_pre,
              z3.And(z3.ULT(event, FLAGS_LIMIT), wm.decode_event(event, bsize) == bpos,
                     z3.ULT(wm.event_offset(event), bsize)),
              {"size": bsize, "pos": bpos, "event": event}),
    ]


def availability_claims(wm: ModuleType = wrap_math) -> list[Claim]:
    """AVAIL/USED bits decide availability exactly once per lap (§2.8.1)."""
    pos, size, other, w, x = bv("pos"), bv("size"), bv("other_flags"), bv("w"), bv("x")
    clean = z3.And(z3.ULT(other, FLAGS_LIMIT), other & wm.wrap_bits_mask() == 0)
    pre = z3.And(is_packed_size(size), is_position(pos, size), clean)
    here = wm.wrap_of(pos, size)
    later = wm.wrap_of(wm.advance(pos, size, size), size)
    made = other | wm.avail_bits(here)
    used = other | wm.used_bits(w)
    bits = z3.And(clean, z3.ULE(w, 1), z3.ULE(x, 1))
    shown = {"size": size, "pos": pos, "flags": made, "w": w, "x": x}
    return [
        Claim("made available at a position: available there, not one lap on, never used",
              pre,
              z3.And(_truth(wm.is_available(made, here)),
                     z3.Not(_truth(wm.is_available(made, later))),
                     z3.Not(_truth(wm.is_used(made, here))),
                     z3.Not(_truth(wm.is_used(made, later)))),
              shown),
        Claim("a used mark is never available and is used exactly for its own counter", bits,
              z3.And(z3.Not(_truth(wm.is_available(used, x))),
                     _truth(wm.is_used(used, x)) == (x == w)),
              {"flags": used, "w": w, "x": x}),
        Claim("a zeroed descriptor is not available under the initial counter",
              z3.BoolVal(True),
              z3.Not(_truth(wm.is_available(const(0), const(INITIAL_WRAP_COUNTER)))), {}),
    ]


# --- event suppression (§2.8.10) -----------------------------------------------------------
def in_window(event: Any, old: Any, count: Any, size: Any) -> Any:
    """`event` is one of old, old+1, ..., old+count-1 taken modulo 2*size (no modulo used)."""
    end = old + count
    return z3.Or(z3.And(old <= event, event < end),
                 z3.And(old <= event + 2 * size, event + 2 * size < end))


def need_event_claims(wm: ModuleType = wrap_math) -> list[Claim]:
    """need_event(e, new, old) iff e was passed moving from old to new (fewer than 2*size)."""
    event, old, count, size = num("event"), num("old"), num("count"), num("size")
    pre = z3.And(is_packed_size(size), is_position(event, size), is_position(old, size),
                 count >= 0, count < 2 * size)
    new = wm.advance(old, count, size)
    got = _truth(wm.need_event(event, new, old, size))
    shown = {"size": size, "event": event, "old": old, "count": count, "new": new,
             "need_event": got}
    return [Claim("need_event == event passed between old and new", pre,
                  got == in_window(event, old, count, size), shown)]


def decision_claims(wm: ModuleType = wrap_math) -> list[Claim]:
    """`notify_decision` notifies as the other side's event suppression structure asks."""
    old, count, size, off_wrap, flags = bv("old"), bv("count"), bv("size"), bv("off_wrap"), \
        bv("flags")
    word = z3.And(z3.ULT(off_wrap, FLAGS_LIMIT), z3.ULT(flags, FLAGS_LIMIT))
    sane = z3.And(is_packed_size(size), is_position(old, size), word, z3.ULT(count, FLAGS_LIMIT))
    new = bv("new")
    mode = flags & 3
    named = wm.decode_event(off_wrap, size)
    in_ring = z3.ULT(wm.event_offset(off_wrap), size)

    def decide(event_idx: bool, word_: Any = off_wrap) -> Any:
        return _truth(
            wm.notify_decision(flags, word_, count, old, new, size, event_idx=event_idx)
        )

    shown = {"size": size, "old": old, "count": count, "new": new, "off_wrap": off_wrap,
             "flags": flags, "notify": decide(True)}
    desc = z3.And(sane, mode == PackedEventFlag.DESC, in_ring, z3.ULT(count, 2 * size))
    return [
        Claim("DESC: the decision is need_event over the positions passed", desc,
              decide(True) == _truth(wm.need_event(named, new, old, size)), shown),
        Claim("DESC naming no descriptor, or 2*size passed: notify",
              z3.And(sane, mode == PackedEventFlag.DESC,
                     z3.Or(z3.Not(in_ring), z3.UGE(count, 2 * size))),
              decide(True), shown),
        Claim("DISABLE never notifies", z3.And(sane, mode == PackedEventFlag.DISABLE),
              z3.And(z3.Not(decide(True)), z3.Not(decide(False))), shown),
        Claim("ENABLE always notifies", z3.And(sane, mode == PackedEventFlag.ENABLE),
              z3.And(decide(True), decide(False)), shown),
        Claim("without EVENT_IDX the event word is ignored", sane,
              decide(False) == decide(False, bv("other_word")), shown),
    ]


# --- list walks (§2.8.6) -------------------------------------------------------------------
def walk_claims(wm: ModuleType = wrap_math) -> list[Claim]:
    """A list of at most `size` descriptors occupies distinct ring offsets."""
    pos, size, i, j = num("pos"), num("size"), num("i"), num("j")
    pre = z3.And(is_packed_size(size), is_position(pos, size), 0 <= i, i < j, j < size)
    at_i, at_j = wm.advance(pos, i, size), wm.advance(pos, j, size)
    shown = {"size": size, "pos": pos, "i": i, "j": j, "at_i": at_i, "at_j": at_j}
    step = z3.And(is_packed_size(size), is_position(pos, size), 0 <= i, i < 2 * size)
    return [
        Claim("descriptors i < j < size of a list sit at different offsets", pre,
              wm.offset_of(at_i, size) != wm.offset_of(at_j, size), shown),
        Claim("stepping one at a time agrees with skipping a whole list", step,
              wm.advance(wm.advance(pos, i, size), 1, size) == wm.advance(pos, i + 1, size),
              shown),
    ]


# --- Buffer IDs (§2.8.6, §2.8.22) ----------------------------------------------------------
def driver_accepts_id(ident: Any, size: Any, outstanding: Any) -> Any:
    """The checks `PackedDriver.get_buf` makes on a used id: in range, and handed out."""
    if isinstance(ident, int):
        return ident < size and bool(outstanding[ident])
    return z3.And(z3.ULT(ident, size), z3.Select(outstanding, ident))


def id_claims(accepts: Fn = driver_accepts_id) -> list[Claim]:
    """Each id free or outstanding, never both: kept by add and by an accepted reclaim."""
    idx = z3.BitVecSort(PACKED_BITS)
    free = z3.Array("free", idx, z3.BoolSort())
    out = z3.Array("outstanding", idx, z3.BoolSort())
    size, ident, probe = bv("size"), bv("id"), bv("probe")

    def whole_at(k: Any) -> Any:
        """The invariant at id `k` (it is pointwise, so checking it at the changed id and
        at an arbitrary probe id proves it for all ids)."""
        return z3.Implies(z3.ULT(k, size), z3.Select(free, k) != z3.Select(out, k))

    inv = z3.And(is_packed_size(size), whole_at(probe), whole_at(ident), z3.ULT(probe, size))
    added = z3.And(inv, z3.ULT(ident, size), z3.Select(free, ident))
    after_add = (z3.Store(free, ident, False), z3.Store(out, ident, True))
    reclaimed = z3.And(inv, z3.ULT(ident, FLAGS_LIMIT), accepts(ident, size, out))
    after_reclaim = (z3.Store(free, ident, True), z3.Store(out, ident, False))
    shown = {"size": size, "id": ident, "probe": probe}
    return [
        Claim("adding a buffer with a free id keeps every id in exactly one place", added,
              z3.Select(after_add[0], probe) != z3.Select(after_add[1], probe), shown),
        Claim("reclaiming an accepted used id keeps every id in exactly one place", reclaimed,
              z3.Select(after_reclaim[0], probe) != z3.Select(after_reclaim[1], probe), shown),
        Claim("an accepted used id was outstanding (no id comes back twice)", reclaimed,
              z3.And(z3.ULT(ident, size), z3.Select(out, ident),
                     z3.Not(z3.Select(free, ident))), shown),
    ]


def flag_claims() -> list[Claim]:
    """Obligation: positions, wrap counters and the AVAIL/USED encoding."""
    return position_claims() + availability_claims()


def notification_claims() -> list[Claim]:
    """Obligation: need_event across the wrap and the shared notification decision."""
    return need_event_claims() + decision_claims()


def claims() -> list[Claim]:
    """Every packed claim, over the real functions."""
    return flag_claims() + notification_claims() + walk_claims() + id_claims()


def obligations() -> list[Obligation]:
    """The packed ring's obligations, as `proofs.registry` lists them (no solver runs)."""
    wm = "impl.wrap_math."
    return [
        Obligation(
            name="proof_wrap_counter_availability_2_8_1",
            prop="positions step and flip the wrap counter after the last descriptor; a "
            "descriptor is seen available exactly once per lap, a used one never",
            spec_ids=("PACKED-DEV-005",),
            impl_functions=tuple(wm + f for f in (
                "advance", "offset_of", "wrap_of", "position", "avail_bits", "used_bits",
                "is_available", "is_used", "encode_event", "decode_event",
            )),
            bound="all sizes 1..32768, all positions, all 16-bit flags",
            parts=(position_claims, availability_claims),
        ),
        Obligation(
            name="proof_packed_need_event_2_8_10",
            prop="need_event is 'event passed from old to new' mod 2*size; both sides "
            "notify exactly as DESC/ENABLE/DISABLE ask",
            spec_ids=(),
            impl_functions=(
                wm + "need_event", wm + "gap", wm + "notify_decision",
                "impl.packed_driver.PackedDriver.kick_prepare",
                "impl.packed_device.PackedDevice.needs_notification",
            ),
            bound="all sizes 1..32768, all positions, fewer than 2*size passed (more: notify)",
            parts=(need_event_claims, decision_claims),
        ),
        Obligation(
            name="proof_packed_list_walk_2_8_6",
            prop="a list of at most size descriptors occupies distinct offsets; stepping "
            "agrees with skipping",
            spec_ids=("PACKED-DEV-007",),
            impl_functions=(wm + "advance", wm + "offset_of", "impl.packed_chain.read_list"),
            bound="all sizes 1..32768, all positions",
            parts=(walk_claims,),
        ),
        Obligation(
            name="proof_buffer_id_conservation_2_8_22",
            prop="every Buffer ID free or outstanding, never both, across add and an "
            "accepted reclaim; no id comes back twice",
            spec_ids=(),
            impl_functions=("impl.packed_driver.PackedDriver.add_sgs",
                            "impl.packed_driver.PackedDriver.get_buf"),
            bound="all sizes 1..32768, all 16-bit ids (inductive, pointwise)",
            parts=(id_claims,),
        ),
    ]
