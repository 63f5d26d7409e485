"""Obligation 2: notification suppression, driver side and device side (§2.7.7, §2.7.10).

Claims:
- `impl.ring_math.need_event(event, new, old)` holds exactly when `event` lies in the
  wrapping interval `[old, new)`, for all 16-bit values (the interval is written here
  without modular arithmetic: two cases on whether the interval wraps).
- Event-index mode, for any number of entries published (or used) since the last
  decision, below 2^32: the side notifies when the other side's event index was the
  ring index of one of those entries (the MUST: SPLIT-DRV-022, SPLIT-DEV-011), and
  only then (the SHOULD NOT: SPLIT-DRV-023, SPLIT-DEV-012); the flags word is ignored
  (SPLIT-DRV-021, SPLIT-DEV-010).
- Flags mode: flags 0 always notifies (SPLIT-DRV-020, SPLIT-DEV-009); flags with the
  suppress bit never does (SPLIT-DRV-019, SPLIT-DEV-008); the event index is ignored
  (SPLIT-DRV-018, SPLIT-DEV-007).

`SplitDriver.kick_prepare` and `SplitDevice.needs_notification` read memory, so their
decisions are encoded here (`driver_kicks`, `device_notifies`, calling the real
`need_event`), and tests/test_proof_encodings.py checks both against the methods.

Spec: §2.7.7.2 (used buffer notifications), §2.7.10.1 (available buffer notifications).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import z3

from impl import ring_math
from impl.spec import INDEX_MODULUS, AvailFlag, UsedFlag

from .terms import bv, is_index, low16
from .verdict import Claim

Fn = Callable[..., Any]


def _decide(event_idx: bool, crossed: Any, count: Any, flags: Any, suppress: int) -> Any:
    """Event-index mode: `count >= 2^16 or crossed`; flags mode: suppress bit clear."""
    if isinstance(count, int) and not isinstance(count, bool):
        if event_idx:
            return count >= INDEX_MODULUS or bool(crossed)
        return not flags & suppress
    if event_idx:
        return z3.Or(z3.UGE(count, INDEX_MODULUS), crossed)
    return flags & suppress == 0


def driver_kicks(event_idx: bool, added: Any, new: Any, avail_event: Any, used_flags: Any,
                 need_event: Fn = ring_math.need_event) -> Any:
    """`SplitDriver.kick_prepare`'s decision after `added` entries, avail_idx now `new`."""
    old = ring_math.wrap(new - added)
    crossed = need_event(avail_event, new, old)
    return _decide(event_idx, crossed, added, used_flags, UsedFlag.NO_NOTIFY)


def device_notifies(event_idx: bool, used: Any, old: Any, new: Any, used_event: Any,
                    avail_flags: Any, need_event: Fn = ring_math.need_event) -> Any:
    """`SplitDevice.needs_notification`'s decision: `used` entries from used idx `old` to `new`."""
    crossed = need_event(used_event, new, old)
    return _decide(event_idx, crossed, used, avail_flags, AvailFlag.NO_INTERRUPT)


def in_interval(x: Any, lo: Any, hi: Any) -> Any:
    """`x` in the wrapping interval `[lo, hi)` of 16-bit values, written without modulo."""
    straight = z3.And(z3.ULE(lo, x), z3.ULT(x, hi))
    wrapped = z3.Or(z3.ULE(lo, x), z3.ULT(x, hi))
    return z3.If(z3.ULE(lo, hi), straight, wrapped)


def need_event_claims(need_event: Fn = ring_math.need_event) -> list[Claim]:
    """need_event(event, new, old) iff event in [old, new), for all 16-bit values."""
    event, new, old = bv("event"), bv("new"), bv("old")
    pre = z3.And(is_index(event), is_index(new), is_index(old))
    shown = {"event": event, "new": new, "old": old, "need_event": need_event(event, new, old)}
    post = need_event(event, new, old) == in_interval(event, old, new)
    return [Claim("need_event == event in [old, new)", pre, post, shown)]


Decision = Callable[[bool, Any, Any, Any, Any], Any]
"""(event_idx, count, start, event, flags) -> notify, for one side."""


def _side_claims(side: str, decide: Decision) -> list[Claim]:
    """The event-index and flags-mode claims for one side's decision function."""
    start, count, k, event, flags, other = (
        bv(f"{side}_start_idx"), bv("entries"), bv("k"), bv("event"), bv("flags"), bv("other"))
    sane = z3.And(is_index(start), is_index(event), z3.ULT(flags, INDEX_MODULUS),
                  z3.ULT(other, INDEX_MODULUS), count != 0)
    on = decide(True, count, start, event, flags)
    shown = {"start_idx": start, "entries": count, "event": event, "flags": flags, "notify": on}
    witness = low16(event - start)
    off = decide(False, count, start, event, flags)
    return [
        Claim(f"{side}: an entry placed at the event index forces a notification",
              z3.And(sane, z3.ULT(k, count), low16(start + k) == event), on, shown),
        Claim(f"{side}: a notification only when an entry was placed at the event index",
              z3.And(sane, on), z3.And(z3.ULT(witness, count), low16(start + witness) == event),
              shown),
        Claim(f"{side}: event-index mode ignores the flags", sane,
              on == decide(True, count, start, event, other), shown),
        Claim(f"{side}: flags 0 always notifies", z3.And(sane, flags == 0), off, shown),
        Claim(f"{side}: the suppress bit never notifies", z3.And(sane, flags & 1 == 1),
              z3.Not(off), shown),
        Claim(f"{side}: flags mode ignores the event index", sane,
              off == decide(False, count, start, other, flags), shown),
    ]


def claims(need_event: Fn = ring_math.need_event) -> list[Claim]:
    """Every claim of obligation 2, over the given (by default the real) need_event."""

    def driver(event_idx: bool, count: Any, start: Any, event: Any, flags: Any) -> Any:
        new = low16(start + count)
        return driver_kicks(event_idx, count, new, event, flags, need_event)

    def device(event_idx: bool, count: Any, start: Any, event: Any, flags: Any) -> Any:
        new = low16(start + count)
        return device_notifies(event_idx, count, start, new, event, flags, need_event)

    return (
        need_event_claims(need_event)
        + _side_claims("driver", driver)
        + _side_claims("device", device)
    )
