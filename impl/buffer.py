"""What makes a buffer one a driver may expose, whatever the ring type.

Rules (§2.7.5.2, §2.8.6 and their driver requirements):
- a buffer has a token (the driver's handle for it; None is reserved for "nothing"),
- at least one segment and no more segments than the queue has descriptors,
- every segment inside guest memory,
- and fewer than 2^32 bytes in total, so every length fits the 32-bit used length.
A buffer that breaks one is the local caller's mistake (`BadBuffer`), refused before
anything is written.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from .chain import Segment
from .errors import BadBuffer
from .memory import GuestMemory
from .spec import MAX_CHAIN_BYTES


def check_buffer(
    mem: GuestMemory, size: int, segments: Sequence[tuple[Segment, int]], token: Hashable
) -> int:
    """Refuse a buffer no driver may add; return its device-writable bytes.

    `segments` pairs each segment with its flags word (nonzero means device-writable).
    """
    if token is None:
        raise BadBuffer("a buffer needs a token other than None")
    if not segments:
        raise BadBuffer("a buffer needs at least one segment")
    if len(segments) > size:
        raise BadBuffer(f"{len(segments)} segments exceed queue size {size}")
    total = writable = 0
    contains = mem.contains
    for seg, flags in segments:
        if not contains(seg.addr, seg.len):
            raise BadBuffer(f"segment [{seg.addr:#x}, +{seg.len}) outside guest memory")
        total += seg.len
        if flags:
            writable += seg.len
    if total >= MAX_CHAIN_BYTES:
        raise BadBuffer("a buffer must stay below 2^32 bytes")
    return writable
