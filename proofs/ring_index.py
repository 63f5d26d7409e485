"""Obligation 1: index wraparound, for every queue size and every 16-bit index.

Claims (each evaluated on the `impl.ring_math` functions themselves):
- slot step: `advance(i) == (i + 1) mod 2^16`, `slot(i, n) == i mod n` and
  `slot(advance(i), n) == (slot(i, n) + 1) mod n`.
- in flight: for true (unbounded) counters `a >= u` with `a - u <= n`, the ring indices
  `a mod 2^16`, `u mod 2^16` give `in_flight == a - u` exactly, across any wrap.
- the device's avail.idx check (`SplitDevice._pending`) accepts a new avail.idx exactly
  when some conforming driver could have published it (its true counter between what
  the device last saw and next_avail + n) and then counts the entries exactly.
- the driver's used.idx check (`SplitDriver.get_buf`) accepts a used.idx exactly when a
  device holding `o` buffers could have published it, and counts exactly.

The last two read memory in `impl`, so their comparisons are encoded here
(`device_accepts_avail`, `driver_accepts_used`) and tests/test_proof_encodings.py runs
the real methods against the encodings.

Spec: §2.7 (sizes), §2.7.6 and §2.7.8 (free-running indices), §2.7.6.1 (SPLIT-DRV-010).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import z3

from impl import ring_math
from impl.spec import INDEX_MODULUS

from .terms import bv, is_index, is_queue_size, low16
from .verdict import Claim

Fn = Callable[..., Any]


def device_accepts_avail(avail_idx: Any, next_avail: Any, seen: Any, size: Any,
                         distance: Fn = ring_math.distance) -> Any:
    """The two comparisons `SplitDevice._pending` makes, as a Z3 formula (or a bool)."""
    pending = distance(avail_idx, next_avail)
    too_far = ring_math.ult(size, pending)
    backwards = ring_math.ult(pending, distance(seen, next_avail))
    if isinstance(too_far, bool) and isinstance(backwards, bool):
        return not too_far and not backwards
    return z3.And(z3.Not(too_far), z3.Not(backwards))


def driver_accepts_used(used_idx: Any, last_used: Any, outstanding: Any,
                        distance: Fn = ring_math.distance) -> Any:
    """The comparison `SplitDriver.get_buf` makes on used.idx, as a Z3 formula (or a bool)."""
    too_far = ring_math.ult(outstanding, distance(used_idx, last_used))
    return not too_far if isinstance(too_far, bool) else z3.Not(too_far)


def slot_claims(slot: Fn = ring_math.slot, advance: Fn = ring_math.advance) -> list[Claim]:
    """slot(i) is i mod n, and advancing an index advances its slot by one, mod n."""
    idx, size = bv("idx"), bv("size")
    pre = z3.And(is_index(idx), is_queue_size(size))
    step = slot(advance(idx), size) == z3.URem(slot(idx, size) + 1, size)
    shown = {"queue_size": size, "idx": idx, "slot(idx)": slot(idx, size),
             "slot(idx+1)": slot(advance(idx), size)}
    wraps = advance(idx) == z3.URem(idx + 1, INDEX_MODULUS)
    return [
        Claim("advance(idx) == (idx+1) mod 2^16", pre, wraps, shown),
        Claim("slot(idx) == idx mod size", pre, slot(idx, size) == z3.URem(idx, size), shown),
        Claim("slot(idx+1) == (slot(idx)+1) mod size", pre, step, shown),
    ]


def in_flight_claims(in_flight: Fn = ring_math.in_flight) -> list[Claim]:
    """The 16-bit difference of two free-running indices is the true count, <= size."""
    used, count, size = bv("used_counter"), bv("in_flight_true"), bv("size")
    avail = used + count
    pre = z3.And(is_queue_size(size), z3.ULE(count, size))
    result = in_flight(low16(avail), low16(used))
    shown = {"queue_size": size, "avail_idx": low16(avail), "used_idx": low16(used),
             "true_in_flight": count, "in_flight()": result}
    return [Claim("in_flight(avail_idx, used_idx) == true count", pre, result == count, shown)]


def avail_check_claims(distance: Fn = ring_math.distance) -> list[Claim]:
    """The device's avail.idx check: accepts exactly what a conforming driver can publish."""
    next_avail, seen_ahead, ahead, size = bv("next_avail"), bv("seen"), bv("k"), bv("size")
    avail16 = bv("avail_idx")
    state = z3.And(is_queue_size(size), is_index(next_avail), z3.ULE(seen_ahead, size))
    seen = low16(next_avail + seen_ahead)
    accepts = device_accepts_avail(avail16, next_avail, seen, size, distance)
    conforming = z3.And(z3.ULE(seen_ahead, ahead), z3.ULE(ahead, size))
    published = low16(next_avail + ahead)
    pending = distance(avail16, next_avail)
    shown = {"queue_size": size, "next_avail": next_avail, "avail_seen": seen,
             "avail_idx": avail16, "true_ahead": ahead, "pending": pending}
    must = Claim(
        "device accepts every conforming avail.idx and counts it exactly",
        z3.And(state, conforming, avail16 == published),
        z3.And(accepts, pending == ahead),
        shown,
    )
    only = Claim(
        "device accepts only an avail.idx a conforming driver can publish",
        z3.And(state, is_index(avail16), accepts),
        z3.And(z3.ULE(seen_ahead, pending), z3.ULE(pending, size),
               low16(next_avail + pending) == avail16),
        shown,
    )
    return [must, only]


def used_check_claims(distance: Fn = ring_math.distance) -> list[Claim]:
    """The driver's used.idx check: accepts exactly what a conforming device can publish."""
    last_used, ahead, outstanding, size = bv("last_used"), bv("k"), bv("outstanding"), bv("size")
    used16 = bv("used_idx")
    state = z3.And(is_queue_size(size), is_index(last_used), z3.ULE(outstanding, size))
    accepts = driver_accepts_used(used16, last_used, outstanding, distance)
    pending = distance(used16, last_used)
    shown = {"queue_size": size, "last_used_idx": last_used, "outstanding": outstanding,
             "used_idx": used16, "pending": pending}
    must = Claim(
        "driver accepts every conforming used.idx and counts it exactly",
        z3.And(state, z3.ULE(ahead, outstanding), used16 == low16(last_used + ahead)),
        z3.And(accepts, pending == ahead),
        shown,
    )
    only = Claim(
        "driver accepts only a used.idx a conforming device can publish",
        z3.And(state, is_index(used16), accepts),
        z3.And(z3.ULE(pending, outstanding), low16(last_used + pending) == used16),
        shown,
    )
    return [must, only]


def claims(
    slot: Fn = ring_math.slot,
    advance: Fn = ring_math.advance,
    in_flight: Fn = ring_math.in_flight,
    distance: Fn = ring_math.distance,
) -> list[Claim]:
    """Every claim of obligation 1, over the given (by default the real) functions."""
    return (
        slot_claims(slot, advance)
        + in_flight_claims(in_flight)
        + avail_check_claims(distance)
        + used_check_claims(distance)
    )
