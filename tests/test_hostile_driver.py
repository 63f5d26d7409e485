"""A lying device against the reference driver: every rejection, and teardown after it.

One test per rule the driver checks in what a device writes to the used ring (docs/
architecture.md, "Recovery policy"). Each asserts the exact error type and its spec ids,
that nothing leaked (no token handed out, the free list, `last_used_idx` and the
outstanding records untouched, no indirect table freed), that the driver is broken
(`QueueBroken` from then on), and the recovery: after the device is reset,
`detach_unused_buf()` returns every outstanding token exactly once and the free list is
whole again. The lying device is `impl.testing.MockDeviceRing`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impl.alloc import GuestAllocator
from impl.chain import Segment
from impl.errors import (
    DeviceError,
    QueueBroken,
    UsedIdNotOutstanding,
    UsedIdOutOfRange,
    UsedIndexJump,
    UsedLengthTooLong,
)
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


class Pair:
    """The reference driver, a raw-writing device, and the tokens the driver added."""

    def __init__(self, features: int = 0, start: int = 0, size: int = SIZE) -> None:
        self.layout = SplitLayout.modern(size)
        data = align_up(self.layout.end, DESC_SIZE)
        self.mem = GuestMemory(data + DATA_BYTES)
        self.alloc = GuestAllocator(data, self.mem.size)
        self.driver = SplitDriver(
            self.mem, self.layout, features, allocator=self.alloc, initial_index=start
        )
        self.device = MockDeviceRing(self.mem, self.layout, initial_index=start)
        self.start = start
        self.tokens: dict[int, Hashable] = {}
        self.data_ranges = 0

    def add(self, token: Hashable, readable: int = 1, writable: int = 1) -> int:
        """Add a buffer of `readable` + `writable` segments of SEG bytes; return its head."""
        segments = []
        for _ in range(readable + writable):
            addr = self.alloc.alloc(SEG, 8)
            assert addr is not None
            segments.append(Segment(addr, SEG))
            self.data_ranges += 1
        head = self.driver.add_sgs(segments[:readable], segments[readable:], token)
        self.tokens[head] = token
        return head

    def snapshot(self) -> tuple[object, ...]:
        """Everything a rejected completion must leave as it was."""
        drv = self.driver
        return (
            drv.free_head, drv.num_free, drv.outstanding, drv.last_used_idx,
            [drv.token_of(head) for head in range(self.layout.size)],
            self.alloc.allocated,
            self.mem.read_u16(self.layout.used_event),
        )


def assert_lying_device(pair: Pair, error: type[DeviceError], ids: tuple[str, ...]) -> None:
    """get_buf meets a lie: typed error, nothing leaked, broken; teardown returns each token."""
    before = pair.snapshot()
    with pytest.raises(DeviceError) as info:
        pair.driver.get_buf()
    assert type(info.value) is error
    assert error.spec_ids == ids
    assert pair.snapshot() == before, "a rejected completion changed the driver's state"
    assert pair.driver.broken
    calls: list[Callable[[], object]] = [
        pair.driver.get_buf, pair.driver.kick_prepare,
        lambda: pair.driver.add_outbuf([Segment(0, 1)], "late"),
    ]
    for call in calls:
        with pytest.raises(QueueBroken):
            call()
    assert pair.snapshot() == before
    assert_teardown_returns_each_token_once(pair)


def assert_teardown_returns_each_token_once(pair: Pair) -> None:
    """After the device reset, detach_unused_buf hands back exactly the outstanding tokens."""
    outstanding = [pair.driver.token_of(head) for head in range(pair.layout.size)]
    expected = sorted(str(token) for token in outstanding if token is not None)
    returned = [str(token) for token in iter(pair.driver.detach_unused_buf, None)]
    assert sorted(returned) == expected
    assert pair.driver.detach_unused_buf() is None
    assert pair.driver.num_free == pair.layout.size and pair.driver.outstanding == 0
    assert len(pair.alloc.allocated) == pair.data_ranges, "an indirect table was not freed"


# --- used id out of range ---------------------------------------------------------------
@pytest.mark.parametrize("used_id", [SIZE, SIZE + 1, 0xFFFF, 0xFFFF_FFFF])
@pytest.mark.parametrize("start", [0, START_NEAR_WRAP])
def test_used_id_out_of_range(used_id: int, start: int) -> None:
    pair = Pair(start=start)
    pair.add("a")
    pair.add("b")
    pair.device.push(used_id, 0)
    assert_lying_device(pair, UsedIdOutOfRange, ())


# --- used id not an outstanding head ------------------------------------------------------
def test_used_id_never_added() -> None:
    pair = Pair()
    pair.add("a")
    pair.device.push(SIZE - 1, 0)
    assert_lying_device(pair, UsedIdNotOutstanding, ())


def test_used_id_of_a_non_head_descriptor() -> None:
    pair = Pair()
    head = pair.add("a", readable=1, writable=2)
    pair.device.push(head + 1, 0)  # the second descriptor of the chain, not its head
    assert_lying_device(pair, UsedIdNotOutstanding, ())


@pytest.mark.parametrize("start", [0, START_NEAR_WRAP])
def test_completion_twice_after_reclaim(start: int) -> None:
    pair = Pair(start=start)
    first = pair.add("a")
    pair.add("b")
    pair.device.push(first, 5)
    assert pair.driver.get_buf() == ("a", 5)
    pair.device.push(first, 5)
    assert_lying_device(pair, UsedIdNotOutstanding, ())


def test_completion_twice_in_one_batch() -> None:
    pair = Pair(features=INDIRECT)
    first = pair.add("a", readable=2, writable=1)
    pair.add("b")
    pair.device.push(first, 0)
    pair.device.push(first, 0)
    assert pair.driver.get_buf() == ("a", 0)
    assert_lying_device(pair, UsedIdNotOutstanding, ())


# --- used.idx running past what is outstanding -------------------------------------------
@pytest.mark.parametrize("start", [0, START_NEAR_WRAP])
@pytest.mark.parametrize("ahead", [3, SIZE, SIZE + 1, 0xFFFF])
def test_used_idx_past_outstanding(start: int, ahead: int) -> None:
    pair = Pair(start=start)
    heads = [pair.add("a"), pair.add("b")]
    for offset, head in enumerate(heads):
        pair.device.put(start + offset, head, 0)
    pair.device.set_used_idx(start + ahead)
    assert_lying_device(pair, UsedIndexJump, ())


def test_used_idx_past_outstanding_after_reclaim() -> None:
    pair = Pair()
    first = pair.add("a")
    pair.add("b")
    pair.device.push(first, 0)
    assert pair.driver.get_buf() == ("a", 0)
    pair.device.set_used_idx(pair.device.used_idx + 2)  # only "b" is outstanding
    assert_lying_device(pair, UsedIndexJump, ())


# --- len beyond the writable bytes -------------------------------------------------------
@pytest.mark.spec("SPLIT-DEV-014")
@pytest.mark.parametrize("features", [0, INDIRECT])
@pytest.mark.parametrize(("readable", "writable"), [(1, 0), (0, 1), (1, 2), (2, 3)])
def test_used_len_beyond_writable_bytes(features: int, readable: int, writable: int) -> None:
    pair = Pair(features=features)
    pair.add("other")
    head = pair.add("a", readable, writable)
    pair.device.push(head, SEG * writable + 1)
    assert_lying_device(pair, UsedLengthTooLong, ("SPLIT-DEV-014",))


@pytest.mark.spec("SPLIT-DEV-014")
def test_used_len_of_every_writable_byte_is_accepted() -> None:
    pair = Pair(features=INDIRECT)
    head = pair.add("a", 2, 3)
    pair.device.push(head, 3 * SEG)
    assert pair.driver.get_buf() == ("a", 3 * SEG)
    assert not pair.driver.broken


def test_honest_completions_out_of_order_are_accepted() -> None:
    """The checks refuse lies only: any order of real completions goes through."""
    pair = Pair(features=INDIRECT, start=START_NEAR_WRAP)
    heads = {pair.add(token, 1, 1): token for token in "abcd"}
    for head in reversed(list(heads)):
        pair.device.push(head, 1)
    assert [pair.driver.get_buf() for _ in heads] == [(heads[h], 1) for h in reversed(list(heads))]
    assert pair.driver.get_buf() is None
    assert pair.driver.num_free == SIZE


lies = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 3), st.integers(0, 3)),
        st.tuples(st.just("push"), st.integers(0, SIZE + 2), st.integers(0, 4 * SEG)),
        st.tuples(st.just("used_idx"), st.integers(0, 0xFFFF), st.just(0)),
        st.tuples(st.just("get_buf"), st.just(0), st.just(0)),
    ),
    max_size=40,
)


@given(features=st.sampled_from([0, INDIRECT]), program=lies)
def test_a_lying_device_meets_only_device_errors(
    features: int, program: list[tuple[str, int, int]]
) -> None:
    """Any used-ring writes: only DeviceError or QueueBroken escape; each token comes back
    at most once, only if it was added, and teardown returns exactly the rest."""
    pair = Pair(features=features)
    added: set[str] = set()
    returned: list[str] = []
    for step, (op, a, b) in enumerate(program):
        try:
            if op == "add" and a + b and not pair.driver.broken:
                if pair.driver.num_free >= (1 if features and a + b > 1 else a + b):
                    pair.add(f"t{step}", a, b)
                    added.add(f"t{step}")
            elif op == "push":
                pair.device.push(a, b)
            elif op == "used_idx":
                pair.device.set_used_idx(a)
            elif op == "get_buf":
                got = pair.driver.get_buf()
                if got is not None:
                    returned.append(str(got[0]))
        except (DeviceError, QueueBroken):
            assert pair.driver.broken
    assert len(returned) == len(set(returned)) and set(returned) <= added
    rest = [str(token) for token in iter(pair.driver.detach_unused_buf, None)]
    assert sorted(rest + returned) == sorted(added)
    assert pair.driver.num_free == SIZE


TEARDOWN_SIZE = 64


def test_teardown_hands_back_every_token_once_in_one_pass() -> None:
    """detach_unused_buf returns each outstanding token exactly once, then None, and the
    search resumes where it stopped: emptying the queue reads each slot a bounded number
    of times, not once per buffer (§3.3 teardown; the reset itself is checked elsewhere)."""
    layout = SplitLayout.modern(TEARDOWN_SIZE)
    mem = GuestMemory(layout.end + TEARDOWN_SIZE * 16)
    driver = SplitDriver(mem, layout)
    tokens = {f"t{i}" for i in range(TEARDOWN_SIZE)}
    for i, token in enumerate(sorted(tokens)):
        driver.add_outbuf([Segment(layout.end + 16 * i, 16)], token)
    reads = _CountingList(driver._state)
    driver._state = reads
    got = [driver.detach_unused_buf() for _ in range(TEARDOWN_SIZE)]
    assert set(got) == tokens and len(got) == TEARDOWN_SIZE
    assert driver.detach_unused_buf() is None
    assert reads.count <= 2 * TEARDOWN_SIZE
    assert driver.num_free == TEARDOWN_SIZE and driver.outstanding == 0


class _CountingList(list):  # type: ignore[type-arg]
    """A list that counts item reads, by index or by iteration."""

    count = 0

    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        self.count += 1
        return super().__getitem__(index)

    def __iter__(self):  # type: ignore[no-untyped-def]
        for item in super().__iter__():
            self.count += 1
            yield item
