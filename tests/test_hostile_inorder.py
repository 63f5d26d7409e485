"""VIRTIO_F_IN_ORDER against hostile sides: a device lying to the driver, a caller
misusing the device's in-order API.

Driver side (the lying device is `impl.testing.MockDeviceRing`): a used element naming
a buffer made available after one not yet returned (out of order, or a batch longer
than used.idx advanced), an earlier head already reclaimed, a head never added or out
of range, a batch larger than what is outstanding, a len beyond the named buffer. Each
asserts the exact type and spec ids, that nothing leaked (no token handed out, free
run, last_used_idx, batch state untouched), that the queue is broken, and the recovery:
after the device reset every outstanding token comes back once, oldest first.

Device side: returning a buffer while an older one is held, a batch of 0, of more than
is held, over a rejected chain, or without the feature, and a len too long for the
batch's last buffer are refused before anything is written; the device then still
works, and after `reset()` starts clean.

Spec: §2.7.9 (in-order use), §6 (FEAT-DEV-009), §2.7.8 (used ring).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from test_hostile_driver import Pair

from impl.alloc import GuestAllocator
from impl.chain import Segment
from impl.errors import (
    BadUsedBatch,
    DeviceError,
    NextOutOfRange,
    NotInFlight,
    NotOldestHeld,
    PayloadTooLarge,
    QueueBroken,
    UsageError,
    UsedIdNotOutstanding,
    UsedIdOutOfRange,
    UsedIndexJump,
    UsedLengthTooLong,
    UsedOutOfOrder,
)
from impl.layout import Descriptor, SplitLayout, align_up
from impl.memory import GuestMemory
from impl.spec import DESC_SIZE, DescFlag, Feature, feature_mask
from impl.split_device import SplitDevice
from impl.split_driver import SplitDriver

SIZE = 8
SEG = 16
IN_ORDER = feature_mask(Feature.IN_ORDER)
IN_ORDER_INDIRECT = feature_mask(Feature.IN_ORDER, Feature.INDIRECT_DESC)
NEAR_WRAP = 0xFFFE
FEATURE_SETS = [IN_ORDER, IN_ORDER_INDIRECT]


# --- a lying device against the in-order driver --------------------------------------------
def snapshot(pair: Pair) -> tuple[object, ...]:
    """Everything a rejected used element must leave as it was, batch state included."""
    assert isinstance(pair.driver, SplitDriver)
    return (*pair.snapshot(), pair.driver.pending_batch)


def assert_lying(pair: Pair, error: type[DeviceError], ids: tuple[str, ...]) -> None:
    """get_buf meets the lie: exact type and ids, nothing leaked, broken; then teardown
    after the device reset returns every outstanding token once, oldest first."""
    before = snapshot(pair)
    outstanding = [t for t in pair.tokens.values() if t in set(_outstanding(pair))]
    with pytest.raises(DeviceError) as info:
        pair.driver.get_buf()
    assert type(info.value) is error
    assert error.spec_ids == ids
    assert snapshot(pair) == before, "a rejected used element changed the driver's state"
    assert pair.driver.broken
    for call in (pair.driver.get_buf, pair.driver.kick_prepare):
        with pytest.raises(QueueBroken):
            call()
    assert snapshot(pair) == before
    returned = list(iter(pair.driver.detach_unused_buf, None))
    assert returned == outstanding, "teardown lost, repeated or reordered a buffer"
    assert pair.driver.num_free == SIZE and pair.driver.outstanding == 0
    assert len(pair.alloc.allocated) == pair.data_ranges, "an indirect table was not freed"


def _outstanding(pair: Pair) -> list[object]:
    return [pair.driver.token_of(h) for h in range(SIZE) if pair.driver.token_of(h) is not None]


def added(features: int, start: int, *tokens: str) -> tuple[Pair, list[int]]:
    """A pair negotiating `features`, with a two-part buffer added per token."""
    pair = Pair(features, start)
    return pair, [pair.add(token) for token in tokens]


@pytest.mark.spec("FEAT-DEV-009")
@pytest.mark.parametrize("start", [0, NEAR_WRAP])
@pytest.mark.parametrize("features", FEATURE_SETS)
def test_device_returning_a_later_buffer_first(features: int, start: int) -> None:
    """One element for the second buffer, used.idx one further: the first was skipped."""
    pair, heads = added(features, start, "a", "b", "c")
    pair.device.push(heads[1], 0)
    assert_lying(pair, UsedOutOfOrder, ("FEAT-DEV-009",))


@pytest.mark.spec("FEAT-DEV-009")
@pytest.mark.parametrize("start", [0, NEAR_WRAP])
def test_batch_longer_than_used_idx_advanced(start: int) -> None:
    """An element naming the third buffer with used.idx only two further."""
    pair, heads = added(IN_ORDER, start, "a", "b", "c")
    pair.device.put(pair.device.used_idx, heads[2], 0)
    pair.device.set_used_idx(start + 2)
    assert_lying(pair, UsedOutOfOrder, ("FEAT-DEV-009",))


@pytest.mark.parametrize("start", [0, NEAR_WRAP])
def test_batch_larger_than_what_is_outstanding(start: int) -> None:
    """used.idx moved by more than the buffers outstanding: a batch of buffers never added."""
    pair, heads = added(IN_ORDER, start, "a", "b")
    pair.device.put(pair.device.used_idx, heads[1], 0)
    pair.device.set_used_idx(start + 3)
    assert_lying(pair, UsedIndexJump, ())


def test_device_naming_an_earlier_head_already_reclaimed() -> None:
    """A batch of two reclaimed, then an element naming the first again."""
    pair, heads = added(IN_ORDER, 0, "a", "b", "c")
    pair.device.put(0, heads[1], SEG)
    pair.device.set_used_idx(2)
    assert [pair.driver.get_buf(), pair.driver.get_buf()] == [("a", SEG), ("b", SEG)]
    pair.device.push(heads[0], 0)
    assert_lying(pair, UsedIdNotOutstanding, ())


def test_earlier_head_while_a_batch_is_half_reclaimed() -> None:
    """Mid-batch the driver goes by what it read; the next element, naming a head of that
    batch again, is caught once the batch is done."""
    pair, heads = added(IN_ORDER, 0, "a", "b", "c")
    pair.device.put(0, heads[1], 3)
    pair.device.set_used_idx(2)
    assert pair.driver.get_buf() == ("a", SEG)
    pair.device.put(0, heads[2], 0)  # the device rewrites the element already read
    pair.device.push(heads[1], 0)
    assert pair.driver.get_buf() == ("b", 3)
    assert_lying(pair, UsedIdNotOutstanding, ())


@pytest.mark.parametrize("used_id", [SIZE - 1, SIZE, 0xFFFF_FFFF])
def test_device_naming_an_unknown_head(used_id: int) -> None:
    """A head never added (or beyond the table) cannot close a batch."""
    pair, _ = added(IN_ORDER, 0, "a", "b")
    pair.device.put(0, used_id, 0)
    pair.device.set_used_idx(2)
    error = UsedIdOutOfRange if used_id >= SIZE else UsedIdNotOutstanding
    assert_lying(pair, error, ())


def test_device_naming_a_non_head_descriptor() -> None:
    """The second descriptor of the first chain is outstanding but not a head."""
    pair, heads = added(IN_ORDER, 0, "a", "b")
    pair.device.put(0, heads[0] + 1, 0)
    pair.device.set_used_idx(2)
    assert_lying(pair, UsedIdNotOutstanding, ())


@pytest.mark.spec("SPLIT-DEV-014")
@pytest.mark.parametrize("features", FEATURE_SETS)
def test_batch_len_beyond_the_named_buffer(features: int) -> None:
    pair, heads = added(features, 0, "a", "b")
    pair.device.put(0, heads[1], SEG + 1)
    pair.device.set_used_idx(2)
    assert_lying(pair, UsedLengthTooLong, ("SPLIT-DEV-014",))


# --- a misused in-order device -------------------------------------------------------------
class Device:
    """The reference driver and device over one memory; the device is under test."""

    def __init__(self, features: int = IN_ORDER, start: int = 0) -> None:
        self.layout = SplitLayout.modern(SIZE)
        data = align_up(self.layout.end, DESC_SIZE)
        self.mem = GuestMemory(data + (1 << 14))
        alloc = GuestAllocator(data, self.mem.size)
        self.driver = SplitDriver(self.mem, self.layout, features, allocator=alloc,
                                  initial_index=start)
        self.device = SplitDevice(self.mem, self.layout, features, initial_index=start)
        self.heads: list[int] = []
        for token in range(3):
            addr = alloc.alloc(SEG, 8)
            assert addr is not None
            self.heads.append(self.driver.add_inbuf([Segment(addr, SEG)], token))

    def take_all(self) -> None:
        while self.device.pop() is not None:
            pass

    def state(self) -> tuple[object, ...]:
        """What a refused call must leave alone: the used ring and the device's books."""
        start, end = self.layout.used_area
        used = self.mem.read(start, end - start)
        return used, self.device.held_heads, self.device.next_used

    def break_head(self, head: int) -> None:
        addr = self.layout.desc_addr(head)
        raw = Descriptor.unpack(self.mem.read(addr, DESC_SIZE))
        bad = Descriptor(addr=raw.addr, len=raw.len, flags=raw.flags | DescFlag.NEXT, next=SIZE)
        self.mem.write(addr, bad.pack())


def assert_refused(rig: Device, call: Callable[[], object], error: type[UsageError],
                   ids: tuple[str, ...]) -> None:
    """The call raises exactly `error` with `ids` and writes nothing; the queue still works."""
    before = rig.state()
    with pytest.raises(UsageError) as info:
        call()
    assert type(info.value) is error and error.spec_ids == ids
    assert rig.state() == before, "a refused call changed the used ring or the device"
    assert not rig.device.broken
    held = rig.device.held_heads
    if held and rig.device.in_order:
        while rig.device.held_heads:
            rig.device.push_used(rig.device.held_heads[0], 0)
        assert [t for t, _ in iter(rig.driver.get_buf, None)] == list(range(len(held)))


@pytest.mark.spec("FEAT-DEV-009")
@pytest.mark.parametrize("start", [0, NEAR_WRAP])
@pytest.mark.parametrize("which", [1, 2])
def test_push_used_of_a_newer_buffer_is_refused(start: int, which: int) -> None:
    rig = Device(start=start)
    rig.take_all()
    assert_refused(rig, lambda: rig.device.push_used(rig.heads[which], 0), NotOldestHeld,
                   ("FEAT-DEV-009",))


@pytest.mark.parametrize("count", [0, -1, 4, SIZE + 1])
def test_batch_count_outside_what_is_held(count: int) -> None:
    rig = Device()
    rig.take_all()
    assert_refused(rig, lambda: rig.device.push_used_batch(count, 0), BadUsedBatch, ())


def test_batch_without_in_order_negotiated() -> None:
    rig = Device(features=0)
    rig.take_all()
    assert_refused(rig, lambda: rig.device.push_used_batch(1, 0), BadUsedBatch, ())


def test_batch_reaching_over_a_rejected_chain() -> None:
    """Buffer 1 is malformed: a batch of the first two would claim it was fully written."""
    rig = Device()
    rig.break_head(rig.heads[1])
    assert rig.device.pop() is not None
    with pytest.raises(NextOutOfRange):
        rig.device.pop()
    assert rig.device.pop() is not None
    assert_refused(rig, lambda: rig.device.push_used_batch(2, 0), BadUsedBatch, ())


def test_a_rejected_chain_is_not_the_callers_to_return() -> None:
    rig = Device()
    rig.break_head(rig.heads[1])
    assert rig.device.pop() is not None
    with pytest.raises(NextOutOfRange):
        rig.device.pop()
    assert_refused(rig, lambda: rig.device.push_used(rig.heads[1], 0), NotInFlight, ())


@pytest.mark.spec("SPLIT-DEV-003")
def test_batch_len_beyond_its_last_buffer() -> None:
    rig = Device()
    rig.take_all()
    assert_refused(rig, lambda: rig.device.push_used_batch(2, SEG + 1), PayloadTooLarge,
                   ("SPLIT-DEV-003",))


def test_reset_forgets_held_and_rejected_chains() -> None:
    """After a reset (and the driver's teardown) a fresh pair starts clean and in order."""
    rig = Device()
    rig.break_head(rig.heads[1])
    assert rig.device.pop() is not None
    with pytest.raises(NextOutOfRange):
        rig.device.pop()
    rig.device.reset()
    assert rig.device.held_heads == [] and rig.device.next_used == 0
    assert list(iter(rig.driver.detach_unused_buf, None)) == [0, 1, 2]
    fresh = Device()
    fresh.take_all()
    fresh.device.push_used_batch(3, 0)
    assert list(iter(fresh.driver.get_buf, None)) == [(0, SEG), (1, SEG), (2, 0)]
