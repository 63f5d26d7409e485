"""A lying device against Linux's driver side (virtio_ring.c) and ours, side by side.

The cases are those of tests/test_hostile_driver.py, written with
`impl.testing.MockDeviceRing` onto two identical queues, one driven by the reference
driver and one by Linux's. Each driver then calls `get_buf` up to three times; the
answers (a token and length, `nothing`, or the error: for Linux, `broken`, its
BAD_RING) must be the ones recorded in `OUTCOMES`. docs/oracle.md carries the table
with which answer the spec supports.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import pytest
from peers.linux import LinuxDriver, require_library

from impl.alloc import GuestAllocator
from impl.chain import Segment
from impl.errors import QueueBroken, VirtioError
from impl.layout import SplitLayout, align_up
from impl.memory import GuestMemory
from impl.spec import DESC_SIZE, Feature, feature_mask
from impl.split_driver import SplitDriver
from impl.testing import MockDeviceRing

SIZE = 8
SEG = 16
DATA_BYTES = 1 << 14
INDIRECT = feature_mask(Feature.INDIRECT_DESC)
START_NEAR_WRAP = 0xFFFE
CALLS = 3


class Pair:
    """A driver (reference or Linux) and a raw-writing device over one queue."""

    def __init__(self, linux: bool, features: int, start: int) -> None:
        self.layout = SplitLayout.modern(SIZE)
        data = align_up(self.layout.end, DESC_SIZE)
        self.mem = GuestMemory(data + DATA_BYTES)
        self.alloc = GuestAllocator(data, self.mem.size)
        make: Any = LinuxDriver if linux else SplitDriver
        self.driver = make(self.mem, self.layout, features, allocator=self.alloc,
                           initial_index=start)
        self.device = MockDeviceRing(self.mem, self.layout, initial_index=start)
        self.start = start

    def add(self, token: Hashable, readable: int = 1, writable: int = 1) -> int:
        """Add a buffer of `readable` + `writable` segments of SEG bytes; return its head."""
        segments = []
        for _ in range(readable + writable):
            addr = self.alloc.alloc(SEG, 8)
            assert addr is not None
            segments.append(Segment(addr, SEG))
        head: int = self.driver.add_sgs(segments[:readable], segments[readable:], token)
        return head


Case = Callable[[Pair], None]


def used_id(value: int) -> Case:
    def build(pair: Pair) -> None:
        pair.add("a")
        pair.add("b")
        pair.device.push(value, 0)
    return build


def never_added(pair: Pair) -> None:
    pair.add("a")
    pair.device.push(SIZE - 1, 0)


def non_head(pair: Pair) -> None:
    head = pair.add("a", readable=1, writable=2)
    pair.device.push(head + 1, 0)


def twice_after_reclaim(pair: Pair) -> None:
    first = pair.add("a")
    pair.add("b")
    pair.device.push(first, 5)
    pair.driver.get_buf()
    pair.device.push(first, 5)


def twice_in_one_batch(pair: Pair) -> None:
    first = pair.add("a", readable=2, writable=1)
    pair.add("b")
    pair.device.push(first, 0)
    pair.device.push(first, 0)


def used_idx_ahead(ahead: int) -> Case:
    def build(pair: Pair) -> None:
        heads = [pair.add("a"), pair.add("b")]
        for offset, head in enumerate(heads):
            pair.device.put(pair.start + offset, head, 0)
        pair.device.set_used_idx(pair.start + ahead)
    return build


def used_idx_ahead_after_reclaim(pair: Pair) -> None:
    first = pair.add("a")
    pair.add("b")
    pair.device.push(first, 0)
    pair.driver.get_buf()
    pair.device.set_used_idx(pair.device.used_idx + 2)


def len_beyond(readable: int, writable: int) -> Case:
    def build(pair: Pair) -> None:
        pair.add("other")
        head = pair.add("a", readable, writable)
        pair.device.push(head, SEG * writable + 1)
    return build


def len_exact(pair: Pair) -> None:
    head = pair.add("a", 2, 3)
    pair.device.push(head, 3 * SEG)


CASES: dict[str, tuple[Case, int, int]] = {
    **{f"used id {v:#x} out of range{' near the wrap' if s else ''}": (used_id(v), 0, s)
       for v in (SIZE, SIZE + 1, 0xFFFF, 0xFFFF_FFFF) for s in (0, START_NEAR_WRAP)},
    "used id never added": (never_added, 0, 0),
    "used id of a non-head descriptor": (non_head, 0, 0),
    "completion twice, after reclaim": (twice_after_reclaim, 0, 0),
    "completion twice in one batch (indirect)": (twice_in_one_batch, INDIRECT, 0),
    **{f"used.idx {n:#x} ahead, 2 outstanding{' near the wrap' if s else ''}": (
        used_idx_ahead(n), 0, s)
       for n in (3, SIZE, SIZE + 1, 0xFFFF) for s in (0, START_NEAR_WRAP)},
    "used.idx 2 ahead, 1 outstanding": (used_idx_ahead_after_reclaim, 0, 0),
    **{f"len past the writable bytes, {r}r+{w}w{' indirect' if f else ''}": (
        len_beyond(r, w), f, 0)
       for f in (0, INDIRECT) for r, w in ((1, 0), (0, 1), (1, 2), (2, 3))},
    "len of exactly the writable bytes": (len_exact, INDIRECT, 0),
}

OUTCOMES: dict[str, tuple[str, str]] = {
    'used id 0x8 out of range': ('UsedIdOutOfRange', 'broken'),
    'used id 0x8 out of range near the wrap': ('UsedIdOutOfRange', 'broken'),
    'used id 0x9 out of range': ('UsedIdOutOfRange', 'broken'),
    'used id 0x9 out of range near the wrap': ('UsedIdOutOfRange', 'broken'),
    'used id 0xffff out of range': ('UsedIdOutOfRange', 'broken'),
    'used id 0xffff out of range near the wrap': ('UsedIdOutOfRange', 'broken'),
    'used id 0xffffffff out of range': ('UsedIdOutOfRange', 'broken'),
    'used id 0xffffffff out of range near the wrap': ('UsedIdOutOfRange', 'broken'),
    'used id never added': ('UsedIdNotOutstanding', 'broken'),
    'used id of a non-head descriptor': ('UsedIdNotOutstanding', 'broken'),
    'completion twice, after reclaim': ('UsedIdNotOutstanding', 'broken'),
    'completion twice in one batch (indirect)': ('a:0; UsedIdNotOutstanding', 'a:0; broken'),
    'used.idx 0x3 ahead, 2 outstanding': ('UsedIndexJump', 'a:0; b:0; broken'),
    'used.idx 0x3 ahead, 2 outstanding near the wrap': ('UsedIndexJump', 'a:0; b:0; broken'),
    'used.idx 0x8 ahead, 2 outstanding': ('UsedIndexJump', 'a:0; b:0; broken'),
    'used.idx 0x8 ahead, 2 outstanding near the wrap': ('UsedIndexJump', 'a:0; b:0; broken'),
    'used.idx 0x9 ahead, 2 outstanding': ('UsedIndexJump', 'a:0; b:0; broken'),
    'used.idx 0x9 ahead, 2 outstanding near the wrap': ('UsedIndexJump', 'a:0; b:0; broken'),
    'used.idx 0xffff ahead, 2 outstanding': ('UsedIndexJump', 'a:0; b:0; broken'),
    'used.idx 0xffff ahead, 2 outstanding near the wrap': ('UsedIndexJump', 'a:0; b:0; broken'),
    'used.idx 2 ahead, 1 outstanding': ('UsedIndexJump', 'broken'),
    'len past the writable bytes, 1r+0w': ('UsedLengthTooLong', 'a:1; nothing'),
    'len past the writable bytes, 0r+1w': ('UsedLengthTooLong', 'a:17; nothing'),
    'len past the writable bytes, 1r+2w': ('UsedLengthTooLong', 'a:33; nothing'),
    'len past the writable bytes, 2r+3w': ('UsedLengthTooLong', 'a:49; nothing'),
    'len past the writable bytes, 1r+0w indirect': ('UsedLengthTooLong', 'a:1; nothing'),
    'len past the writable bytes, 0r+1w indirect': ('UsedLengthTooLong', 'a:17; nothing'),
    'len past the writable bytes, 1r+2w indirect': ('UsedLengthTooLong', 'a:33; nothing'),
    'len past the writable bytes, 2r+3w indirect': ('UsedLengthTooLong', 'a:49; nothing'),
    'len of exactly the writable bytes': ('a:48; nothing', 'a:48; nothing'),
}


def _answers(driver: Any) -> str:
    seen = []
    for _ in range(CALLS):
        try:
            got = driver.get_buf()
        except QueueBroken:
            seen.append("broken")
            break
        except VirtioError as error:
            seen.append(type(error).__name__)
            break
        if got is None:
            seen.append("nothing")
            break
        seen.append(f"{got[0]}:{got[1]}")
    return "; ".join(seen)


def answers(name: str) -> tuple[str, str]:
    """(reference answers, Linux answers) for case `name`."""
    build, features, start = CASES[name]
    results = []
    for linux in (False, True):
        pair = Pair(linux, features, start)
        build(pair)
        results.append(_answers(pair.driver))
    return results[0], results[1]


SPEC_IDS = {name: ("SPLIT-DEV-014",) for name in CASES if name.startswith("len")}


def _params() -> list[object]:
    return [pytest.param(name, marks=[pytest.mark.spec(*SPEC_IDS[name])] if name in SPEC_IDS
                         else [], id=name) for name in CASES]


@pytest.mark.parametrize("name", _params())
def test_lying_device_answers(name: str) -> None:
    if require_library() is None:
        pytest.skip("VIRTIO_ORACLE_NO_PEERS=1: Linux's driver not available")
    assert answers(name) == OUTCOMES[name]
