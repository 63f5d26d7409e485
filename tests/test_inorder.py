"""VIRTIO_F_IN_ORDER on the split ring, honest sides (docs/inorder.md).

The driver hands out descriptors in ring order, wrapping, and links a chain's
descriptors by successor (0 after the last table entry); its indirect tables count up;
it reclaims a batch (one used element naming the last buffer of several) buffer by
buffer, oldest first, the skipped ones with their whole writable length. The reference
device returns buffers in the order it took them, on their own elements or in batches,
and sends a rejected chain back only once every older buffer is back. Without the
feature nothing of this applies: the device may still return in any order.

Spec: §2.7.5 (descriptor table), §2.7.5.3 (indirect), §2.7.9 (in-order use), §6.
"""

from __future__ import annotations

from collections.abc import Hashable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impl.alloc import GuestAllocator
from impl.chain import Segment
from impl.errors import NextOutOfRange
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


class Queue:
    """A reference driver and device over one memory, with the feature word given."""

    def __init__(self, features: int = IN_ORDER, start: int = 0, size: int = SIZE) -> None:
        self.layout = SplitLayout.modern(size)
        data = align_up(self.layout.end, DESC_SIZE)
        self.mem = GuestMemory(data + (1 << 15))
        self.alloc = GuestAllocator(data, self.mem.size)
        self.driver = SplitDriver(
            self.mem, self.layout, features, allocator=self.alloc, initial_index=start
        )
        self.device = SplitDevice(self.mem, self.layout, features, initial_index=start)

    def add(self, token: Hashable, readable: int = 0, writable: int = 1) -> int:
        """Add a buffer of `readable` + `writable` segments of SEG bytes; return its head."""
        segments = []
        for _ in range(readable + writable):
            addr = self.alloc.alloc(SEG, 8)
            assert addr is not None
            segments.append(Segment(addr, SEG))
        return self.driver.add_sgs(segments[:readable], segments[readable:], token)

    def desc(self, index: int) -> Descriptor:
        return Descriptor.unpack(self.mem.read(self.layout.desc_addr(index), DESC_SIZE))

    def complete_all(self, batch: int) -> None:
        """The device takes everything and returns it in batches of `batch`; driver reclaims."""
        while self.device.pop() is not None:
            pass
        while self.device.held_heads:
            self.device.push_used_batch(min(batch, len(self.device.held_heads)), 0)
        assert len(self.drain()) > 0

    def drain(self) -> list[tuple[Hashable, int]]:
        """Every buffer the driver can reclaim now, in the order it hands them out."""
        return list(iter(self.driver.get_buf, None))


# --- the driver's descriptor order (§2.7.5) ---------------------------------------------
@pytest.mark.spec("SPLIT-DRV-004")
@given(
    lengths=st.lists(st.integers(min_value=1, max_value=SIZE), min_size=1, max_size=40),
    batch=st.integers(min_value=1, max_value=SIZE),
)
def test_descriptors_go_in_ring_order_and_chain_to_their_successor(
    lengths: list[int], batch: int
) -> None:
    """Each head follows the previous chain's last descriptor; a chained `next` is x + 1,
    or 0 for the table's last entry; returning in batches keeps the order."""
    queue = Queue()
    expected_head = 0
    for i, parts in enumerate(lengths):
        if queue.driver.num_free < parts:
            queue.complete_all(batch)
        head = queue.add(i, readable=parts - 1, writable=1)
        assert head == expected_head, "in-order: the chain starts after the previous one"
        index = head
        for _ in range(parts - 1):
            desc = queue.desc(index)
            assert desc.flags & DescFlag.NEXT
            assert desc.next == (index + 1) % SIZE, f"descriptor {index} chains to {desc.next}"
            index = desc.next
        assert not queue.desc(index).flags & DescFlag.NEXT
        expected_head = (index + 1) % SIZE


@pytest.mark.spec("SPLIT-DRV-009")
@pytest.mark.parametrize("start", [0, NEAR_WRAP])
@pytest.mark.parametrize("parts", [2, 3, SIZE])
def test_indirect_tables_count_up_under_in_order(start: int, parts: int) -> None:
    """With VIRTIO_F_IN_ORDER and indirect descriptors, entry i of every table links to
    i + 1 and the last one ends the chain, buffer after buffer, across the index wrap."""
    queue = Queue(IN_ORDER_INDIRECT, start)
    for round_ in range(3 * SIZE):
        head = queue.add(round_, readable=1, writable=parts - 1)
        ring = queue.desc(head)
        assert ring.flags & DescFlag.INDIRECT and not ring.flags & DescFlag.NEXT
        entries = [
            Descriptor.unpack(queue.mem.read(ring.addr + DESC_SIZE * i, DESC_SIZE))
            for i in range(parts)
        ]
        assert [e.next for e in entries[:-1]] == list(range(1, parts))
        assert [bool(e.flags & DescFlag.NEXT) for e in entries] == [True] * (parts - 1) + [False]
        chain = queue.device.pop()
        assert chain is not None and chain.indirect
        queue.device.push_used(head, 0)
        assert queue.drain() == [(round_, 0)]


# --- batches: the driver's side (§2.7.9) -------------------------------------------------
@pytest.mark.parametrize("start", [0, NEAR_WRAP])
@pytest.mark.parametrize("indirect", [False, True])
def test_a_batch_comes_back_buffer_by_buffer_skipped_ones_full(start: int, indirect: bool) -> None:
    """One element naming the third of three buffers: the driver returns all three, in
    order, the first two with their whole writable length, the third with the len."""
    queue = Queue(IN_ORDER_INDIRECT if indirect else IN_ORDER, start)
    queue.add("a", readable=1, writable=2)
    queue.add("b", readable=0, writable=1)
    queue.add("c", readable=1, writable=2)
    for _ in range(3):
        assert queue.device.pop() is not None
    queue.device.push_used_batch(3, 5)
    assert queue.mem.read_u16(queue.layout.used_idx) == (start + 3) & 0xFFFF
    assert queue.driver.get_buf() == ("a", 2 * SEG)
    assert queue.driver.pending_batch is not None, "the batch is half reclaimed"
    assert queue.driver.get_buf() == ("b", SEG)
    assert queue.driver.get_buf() == ("c", 5)
    assert queue.driver.get_buf() is None and queue.driver.pending_batch is None
    assert queue.driver.num_free == SIZE and queue.driver.last_used_idx == (start + 3) & 0xFFFF


def test_batches_and_single_returns_interleave() -> None:
    """Batches of 2, then 1, then 3: the driver reads each element where its batch starts."""
    queue = Queue()
    for token in range(6):
        queue.add(token)
    while queue.device.pop() is not None:
        pass
    queue.device.push_used_batch(2, 1)
    queue.device.push_used(2, 3)
    queue.device.push_used_batch(3, 4)
    assert queue.drain() == [(0, SEG), (1, 1), (2, 3), (3, SEG), (4, SEG), (5, 4)]


# --- the device's order (§2.7.9, FEAT-DEV-009) --------------------------------------------
@pytest.mark.spec("FEAT-DEV-009")
def test_the_device_returns_buffers_in_the_order_it_took_them() -> None:
    """Only the oldest held buffer may go back; then the next; the driver sees that order."""
    queue = Queue()
    for token in "abc":
        queue.add(token)
    heads = [chain.head for chain in iter(queue.device.pop, None)]
    assert queue.device.held_heads == heads
    for head in heads:
        queue.device.push_used(head, 0)
    assert queue.drain() == [("a", 0), ("b", 0), ("c", 0)]


@pytest.mark.spec("FEAT-DEV-009")
@pytest.mark.parametrize("start", [0, NEAR_WRAP])
def test_a_rejected_chain_waits_for_the_older_buffers(start: int) -> None:
    """A malformed chain taken while an older buffer is held goes back after that buffer,
    on its own element with length 0, and the queue keeps working."""
    queue = Queue(start=start)
    queue.add("good")
    bad = queue.add("bad")
    raw = queue.desc(bad)
    broken = Descriptor(addr=raw.addr, len=raw.len, flags=raw.flags | DescFlag.NEXT, next=SIZE)
    queue.mem.write(queue.layout.desc_addr(bad), broken.pack())
    queue.add("after")
    assert queue.device.pop() is not None
    with pytest.raises(NextOutOfRange) as info:
        queue.device.pop()
    assert info.value.head == bad
    used_idx = queue.mem.read_u16(queue.layout.used_idx)
    assert used_idx == start & 0xFFFF, "the rejected chain may not overtake the older buffer"
    assert queue.device.pop() is not None
    queue.device.push_used(0, 7)
    assert queue.drain() == [("good", 7), ("bad", 0)]
    queue.device.push_used(queue.device.held_heads[0], 1)
    assert queue.drain() == [("after", 1)]


def test_a_rejected_chain_with_nothing_older_goes_back_at_once() -> None:
    """Nothing held before it: the rejected chain is used at once, as without the feature."""
    queue = Queue()
    head = queue.add("bad")
    raw = queue.desc(head)
    broken = Descriptor(addr=raw.addr, len=raw.len, flags=raw.flags | DescFlag.NEXT, next=SIZE)
    queue.mem.write(queue.layout.desc_addr(head), broken.pack())
    with pytest.raises(NextOutOfRange):
        queue.device.pop()
    assert queue.drain() == [("bad", 0)]
    assert queue.device.held_heads == []


def test_without_in_order_the_device_may_still_return_any_held_buffer() -> None:
    """The feature not negotiated: returning the newer buffer first is fine, as before."""
    queue = Queue(features=0)
    queue.add("a")
    newer = queue.add("b")
    while queue.device.pop() is not None:
        pass
    queue.device.push_used(newer, 2)
    assert queue.drain() == [("b", 2)]
