"""Lap arithmetic of the packed ring: (offset, wrap counter) pairs and the AVAIL/USED bits.

Rules:
- A place in the packed ring is an offset `0 <= offset < size` and a one-bit ring wrap
  counter that starts at 1 and flips each time the offset passes the end (§2.8.1). The
  pair is one counter modulo `2 * size`, its *position*: `offset` in a lap whose
  counter is 1, `size + offset` in a lap whose counter is 0. Every position step, gap
  and event test of the packed ring is done on positions here, by these functions
  only; no other module tests or flips a wrap counter by hand.
- The functions use `+`, `-`, `&`, `|`, `^`, `>>` and three helpers (`below`, `select`,
  `choose`), so they accept Python `int` and Z3 terms alike: the proofs run the very
  functions the driver and device call. The position arithmetic (`advance`, `gap`,
  `need_event`, ...) also accepts Z3 integers, which model Python's unbounded ints
  exactly; the flag and event-word functions need bit-vectors. Arguments must be in
  range (positions below `2 * size`, steps at most `2 * size`); on bit-vectors the
  caller picks a width with room for `4 * size`.

Spec: §2.8.1 (wrap counters, AVAIL/USED bits), §2.8.10 and §2.8.14 (event suppression:
offset and wrap of one descriptor), §2.8.21.1 (flipping after the last descriptor).
"""

from __future__ import annotations

from typing import Any

from .spec import EVENT_FLAGS_MASK, EVENT_WRAP_SHIFT, PackedDescFlag, PackedEventFlag

AVAIL_SHIFT = 7
"""Bit number of VIRTQ_DESC_F_AVAIL in `flags` (§2.8.1)."""
USED_SHIFT = 15
"""Bit number of VIRTQ_DESC_F_USED in `flags` (§2.8.1)."""
OFFSET_MASK = (1 << EVENT_WRAP_SHIFT) - 1
"""The 15 offset bits of an event suppression `desc` word (§2.8.14)."""


def below(a: int, b: int) -> Any:
    """Unsigned a < b: `<` on Python and Z3 integers, `z3.ULT` on bit-vectors."""
    if type(a) is int and type(b) is int:  # the runtime path; bools never reach here
        return a < b
    import z3  # only the proofs pass symbolic values

    if z3.is_bv(a) or z3.is_bv(b):
        return z3.ULT(a, b)
    return a < b


def select(cond: Any, if_true: int, if_false: int) -> int:
    """`if_true if cond else if_false`, also for a Z3 condition (then `z3.If`)."""
    if cond is True:
        return if_true
    if cond is False:
        return if_false
    import z3  # only the proofs pass symbolic conditions

    result: int = z3.If(cond, if_true, if_false)
    return result


def like(value: int, constant: int) -> int:
    """`constant` in the type of `value`: an int, or a bit-vector of `value`'s width."""
    return value - value + constant


def position(offset: int, wrap: int, size: int) -> int:
    """The position of `offset` in a lap whose wrap counter is `wrap` (0 or 1)."""
    return offset + (1 - wrap) * size


def offset_of(pos: int, size: int) -> int:
    """The ring offset of position `pos`: pos mod size."""
    return select(below(pos, size), pos, pos - size)


def wrap_of(pos: int, size: int) -> int:
    """The wrap counter in force at position `pos`: 1 in the first lap, 0 in the second."""
    return select(below(pos, size), like(pos, 1), like(pos, 0))


def advance(pos: int, by: int, size: int) -> int:
    """The position `by` descriptors after `pos` (0 <= by <= 2*size), wrapping at 2*size.

    Passing the end of the ring flips the wrap counter (§2.8.1): offset size-1 at
    counter 1 is followed by offset 0 at counter 0, and the reverse.
    """
    moved = pos + by
    return select(below(moved, 2 * size), moved, moved - 2 * size)


def gap(newer: int, older: int, size: int) -> int:
    """How many descriptors `newer` lies after `older`, modulo 2*size."""
    diff = newer - older
    return select(below(newer, older), diff + 2 * size, diff)


def need_event(event: int, new: int, old: int, size: int) -> Any:
    """Whether moving from position `old` to `new` passes the other side's `event`.

    True exactly when `event` is one of old, old+1, ..., new-1 (positions modulo
    2*size): the descriptor the other side named in its event suppression structure
    (offset and wrap, §2.8.14) was among those just made available or used. The same
    closed form as the split ring's, over the packed modulus.
    """
    return below(gap(new, advance(event, 1, size), size), gap(new, old, size))


# --- flags (§2.8.1) ------------------------------------------------------------------
def avail_bits(wrap: int) -> int:
    """AVAIL/USED bits of a descriptor made available under counter `wrap`: AVAIL=w, USED=!w."""
    return wrap << AVAIL_SHIFT | (wrap ^ 1) << USED_SHIFT


def used_bits(wrap: int) -> int:
    """AVAIL/USED bits of a descriptor marked used under counter `wrap`: both equal to w."""
    return wrap << AVAIL_SHIFT | wrap << USED_SHIFT


def is_available(flags: int, wrap: int) -> Any:
    """Whether `flags` mark a descriptor available for a side whose counter is `wrap`."""
    avail = flags >> AVAIL_SHIFT & 1
    used = flags >> USED_SHIFT & 1
    return ((avail ^ wrap) | (used ^ wrap ^ 1)) == 0


def is_used(flags: int, wrap: int) -> Any:
    """Whether `flags` mark a descriptor used for a side whose counter is `wrap`."""
    avail = flags >> AVAIL_SHIFT & 1
    used = flags >> USED_SHIFT & 1
    return ((avail ^ wrap) | (used ^ wrap)) == 0


def wrap_bits_mask() -> int:
    """The two bits `avail_bits`/`used_bits` own in a descriptor's flags."""
    return int(PackedDescFlag.AVAIL | PackedDescFlag.USED)


# --- event suppression words (§2.8.14) ----------------------------------------------
def encode_event(pos: int, size: int) -> int:
    """The le16 `desc` word naming position `pos`: offset in bits 0-14, wrap in bit 15."""
    return offset_of(pos, size) | wrap_of(pos, size) << EVENT_WRAP_SHIFT


def event_offset(off_wrap: int) -> int:
    """The 15-bit descriptor offset of an event suppression `desc` word."""
    return off_wrap & OFFSET_MASK


def event_wrap(off_wrap: int) -> int:
    """The wrap counter bit of an event suppression `desc` word."""
    return off_wrap >> EVENT_WRAP_SHIFT & 1


def decode_event(off_wrap: int, size: int) -> int:
    """The position an event `desc` word names; only meaningful if its offset < size."""
    return position(event_offset(off_wrap), event_wrap(off_wrap), size)


# --- the notification decision (§2.8.10, §2.8.21.2) -----------------------------------
def choose(cond: Any, if_true: Any, if_false: Any) -> Any:
    """`if_true if cond else if_false` for truth values, also for a Z3 condition."""
    if isinstance(cond, bool):
        return if_true if cond else if_false
    import z3  # only the proofs pass symbolic conditions

    return z3.If(cond, if_true, if_false)


def notify_decision(
    flags: int, off_wrap: int, count: int, old: int, new: int, size: int, *, event_idx: bool
) -> Any:
    """Whether a side that moved from position `old` to `new` over `count` descriptors notifies.

    `flags` and `off_wrap` are the other side's event suppression structure. DISABLE:
    never. ENABLE (or any value without VIRTIO_F_EVENT_IDX, or the reserved value):
    always. DESC with VIRTIO_F_EVENT_IDX: when the named position is one of the `count`
    positions before `new`; a named offset no descriptor has, or 2 * size descriptors
    or more (every position passed), notify too (an extra notification is allowed,
    PACKED-DRV-005). The driver's `kick_prepare` and the device's `needs_notification`
    both decide with this function.
    """
    mode = flags & EVENT_FLAGS_MASK
    if not event_idx:
        return mode != PackedEventFlag.DISABLE
    named = need_event(decode_event(off_wrap, size), new, old, size)
    in_ring = below(event_offset(off_wrap), size)
    desc_rule = choose(in_ring, choose(below(count, 2 * size), named, True), True)
    enabled = choose(mode == PackedEventFlag.DESC, desc_rule, True)
    return choose(mode == PackedEventFlag.DISABLE, False, enabled)
