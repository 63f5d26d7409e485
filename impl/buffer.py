"""What makes a buffer one a driver may expose, whatever the ring type.

Rules (§2.7.5.2, §2.8.6 and their driver requirements):
- a buffer has a token (the driver's handle for it; None is reserved for "nothing"),
- at least one segment and no more segments than the queue has descriptors,
- every segment inside guest memory,
- and fewer than 2^32 bytes in total, so every length fits the 32-bit used length.
A buffer that breaks one is the local caller's mistake (`BadBuffer`), refused before
anything is written. Each ring raises the subclass citing its own rules (the packed
driver `PackedBadBuffer`, §2.8.17).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from .chain import Segment, segment_len
from .errors import BadBuffer
from .memory import GuestMemory
from .spec import MAX_CHAIN_BYTES


def check_buffer(
    mem: GuestMemory,
    size: int,
    out: Sequence[Segment],
    in_: Sequence[Segment],
    token: Hashable,
    error: type[BadBuffer] = BadBuffer,
) -> int:
    """Refuse a buffer no driver may add; return its device-writable bytes.

    `out` are the device-readable segments and `in_` the device-writable ones. A refusal
    raises `error`: the caller's ring's `BadBuffer` (the split ring's by default).
    """
    if token is None:
        raise error("a buffer needs a token other than None")
    parts = len(out) + len(in_)
    if not parts:
        raise error("a buffer needs at least one segment")
    if parts > size:
        raise error(f"{parts} segments exceed queue size {size}")
    total = 0
    contains = mem.contains
    for addr, length in (*out, *in_):
        if not contains(addr, length):
            raise error(f"segment [{addr:#x}, +{length}) outside guest memory")
        total += length
    if total >= MAX_CHAIN_BYTES:
        raise error("a buffer must stay below 2^32 bytes")
    return sum(map(segment_len, in_))
