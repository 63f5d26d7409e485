"""Hostile input to the packed ring: each packed-specific violation gets its typed error.

A hostile driver is played by writing raw descriptors into the ring, a hostile device by
writing raw used descriptors, both through `impl.testing.MockPackedRing`. The reference
device must raise the error that names the violation, keep the queue usable after a bad
list whose extent it knows (the id comes back used with length 0), and break the queue
(until reset) when the ring itself cannot be trusted. The reference driver must refuse a
lying device. Random rings never make either side raise anything but a typed error.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impl.alloc import GuestAllocator
from impl.chain import Segment
from impl.errors import (
    BadIndirectTable,
    BufferIdInFlight,
    BufferIdOutOfRange,
    ChainError,
    ChainLongerThanRing,
    ChainTooLong,
    DescriptorNotAvailable,
    DeviceError,
    DriverError,
    IndirectInList,
    PackedIndirectNotNegotiated,
    PackedReadableAfterWritable,
    PackedUsedIdNotOutstanding,
    PackedUsedIdOutOfRange,
    PackedUsedLengthTooLong,
    QueueBroken,
    VirtioError,
)
from impl.memory import GuestMemory
from impl.packed_device import PackedDevice
from impl.packed_driver import PackedDriver
from impl.packed_layout import EventSuppress, PackedDescriptor, PackedLayout
from impl.spec import DESC_SIZE, Feature, PackedDescFlag, PackedEventFlag, feature_mask
from impl.testing import MockPackedRing
from impl.wrap_math import used_bits

SIZE = 5
DATA = 0x4000
NEXT, WRITE, INDIRECT = PackedDescFlag.NEXT, PackedDescFlag.WRITE, PackedDescFlag.INDIRECT


class RawRing:
    """A reference device over a ring a `MockPackedRing` driver writes (8 bytes at DATA)."""

    def __init__(self, size: int = SIZE, features: int = 0) -> None:
        self.layout = PackedLayout.modern(size, 0x1000)
        self.mem = GuestMemory(0x10000)
        self.mock = MockPackedRing(self.mem, self.layout)
        self.device = PackedDevice(self.mem, self.layout, features)

    def put(self, offset: int, *, flags: int, id: int = 0, addr: int = DATA, len: int = 8,
            lap: int = 1) -> None:
        """Write one descriptor at `offset`, marked available for lap counter `lap`."""
        self.mock.put(offset, flags=flags, id=id, addr=addr, len=len, lap=lap)

    def table(self, addr: int, entries: list[tuple[int, int]]) -> None:
        """Write an indirect table of (len, flags) entries at `addr`, buffers at DATA."""
        self.mock.table(addr, [(DATA, length, flags) for length, flags in entries])


def used_flags_at(ring: RawRing, offset: int) -> int:
    return ring.mock.flags(offset)


# --- ring corruption: the queue breaks until reset ---------------------------------------
@pytest.mark.spec("PACKED-DEV-005", "PACKED-DRV-011")
def test_list_running_into_a_descriptor_of_the_wrong_lap() -> None:
    ring = RawRing()
    ring.put(0, flags=NEXT, id=0)
    ring.put(1, flags=0, id=0, lap=0)  # marked for the next lap: not available yet
    with pytest.raises(DescriptorNotAvailable):
        ring.device.pop()
    with pytest.raises(QueueBroken):
        ring.device.pop()
    ring.device.reset()
    ring.put(1, flags=0, id=0)  # the driver finishes the list properly
    chain = ring.device.pop()
    assert chain is not None and chain.head == 0 and len(chain.readable) == 2


@pytest.mark.spec("PACKED-DEV-005")
def test_head_marked_for_another_lap_is_not_used() -> None:
    ring = RawRing()
    ring.put(0, flags=0, id=0, lap=0)
    assert ring.device.pop() is None
    assert ring.device.next_avail == 0


def test_head_with_avail_and_used_equal_is_not_used() -> None:
    ring = RawRing()
    ring.mock.put(0, flags=used_bits(1), addr=DATA, len=8, lap=None)
    assert ring.device.pop() is None


def test_buffer_id_out_of_range() -> None:
    ring = RawRing()
    ring.put(0, flags=0, id=SIZE)
    with pytest.raises(BufferIdOutOfRange):
        ring.device.pop()
    assert ring.device.broken


def test_buffer_id_already_in_flight() -> None:
    ring = RawRing()
    ring.put(0, flags=0, id=3)
    ring.put(1, flags=0, id=3)
    chain = ring.device.pop()
    assert chain is not None and chain.head == 3
    with pytest.raises(BufferIdInFlight):
        ring.device.pop()
    assert ring.device.broken


def test_buffer_id_is_read_from_the_last_descriptor() -> None:
    ring = RawRing()
    ring.put(0, flags=NEXT, id=SIZE + 7)  # reserved in all but the last (§2.8.6)
    ring.put(1, flags=0, id=2)
    chain = ring.device.pop()
    assert chain is not None and chain.head == 2 and len(chain.readable) == 2


@pytest.mark.spec("PACKED-DRV-007")
def test_list_longer_than_the_ring() -> None:
    ring = RawRing()
    for offset in range(SIZE):
        ring.put(offset, flags=NEXT, id=0)
    with pytest.raises(ChainLongerThanRing):
        ring.device.pop()
    assert ring.device.broken


def test_list_wrapping_the_ring_end_needs_the_next_lap_bits() -> None:
    ring = RawRing()
    for offset in range(SIZE):
        ring.put(offset, flags=0, id=offset)
        assert ring.device.pop() is not None
    for ident in range(SIZE):
        ring.device.push_used(ident, 0)
    # second lap: a two-descriptor list at offsets 0-1 needs counter 0 bits
    ring.put(0, flags=NEXT, id=0, lap=0)
    ring.put(1, flags=0, id=0, lap=1)
    with pytest.raises(DescriptorNotAvailable):
        ring.device.pop()


# --- bad lists: returned used with length 0, the queue goes on ---------------------------
def expect_returned(ring: RawRing, error: type[ChainError], ident: int, descs: int) -> None:
    with pytest.raises(error) as info:
        ring.device.pop()
    assert info.value.head == ident
    assert not ring.device.broken
    assert ring.device.next_avail == descs and ring.device.next_used == descs
    assert used_flags_at(ring, 0) & used_bits(1) == used_bits(1)
    assert ring.mock.ident(0) == ident


@pytest.mark.spec("PACKED-DRV-015")
def test_indirect_with_next() -> None:
    ring = RawRing(features=feature_mask(Feature.INDIRECT_DESC))
    ring.table(0x8000, [(8, 0)])
    ring.put(0, flags=INDIRECT | NEXT, id=1, addr=0x8000, len=DESC_SIZE)
    ring.put(1, flags=0, id=1)
    expect_returned(ring, IndirectInList, 1, 2)


@pytest.mark.spec("PACKED-DRV-015")
def test_indirect_after_a_direct_descriptor() -> None:
    ring = RawRing(features=feature_mask(Feature.INDIRECT_DESC))
    ring.table(0x8000, [(8, 0)])
    ring.put(0, flags=NEXT, id=2)
    ring.put(1, flags=INDIRECT, id=2, addr=0x8000, len=DESC_SIZE)
    expect_returned(ring, IndirectInList, 2, 2)


@pytest.mark.spec("PACKED-DRV-012")
def test_indirect_without_the_feature() -> None:
    ring = RawRing()
    ring.table(0x8000, [(8, 0)])
    ring.put(0, flags=INDIRECT, id=4, addr=0x8000, len=DESC_SIZE)
    expect_returned(ring, PackedIndirectNotNegotiated, 4, 1)


def test_indirect_table_of_bad_length() -> None:
    ring = RawRing(features=feature_mask(Feature.INDIRECT_DESC))
    ring.put(0, flags=INDIRECT, id=0, addr=0x8000, len=DESC_SIZE + 3)
    expect_returned(ring, BadIndirectTable, 0, 1)


@pytest.mark.spec("PACKED-DEV-008")
def test_indirect_table_longer_than_the_queue_is_refused() -> None:
    fits = RawRing(features=feature_mask(Feature.INDIRECT_DESC))
    fits.table(0x8000, [(8, 0)] * SIZE)
    fits.put(0, flags=INDIRECT, id=3, addr=0x8000, len=DESC_SIZE * SIZE)
    chain = fits.device.pop()
    assert chain is not None and len(chain.readable) == SIZE
    ring = RawRing(features=feature_mask(Feature.INDIRECT_DESC))
    ring.table(0x8000, [(8, 0)] * (SIZE + 1))
    ring.put(0, flags=INDIRECT, id=3, addr=0x8000, len=DESC_SIZE * (SIZE + 1))
    expect_returned(ring, ChainTooLong, 3, 1)


def test_indirect_table_ignores_reserved_flags() -> None:
    ring = RawRing(features=feature_mask(Feature.INDIRECT_DESC))
    ring.table(0x8000, [(8, NEXT | INDIRECT), (4, WRITE | NEXT)])
    ring.put(0, flags=INDIRECT | WRITE, id=0, addr=0x8000, len=2 * DESC_SIZE)
    chain = ring.device.pop()
    assert chain is not None and chain.readable_len == 8 and chain.writable_len == 4


@pytest.mark.spec("PACKED-DRV-008")
def test_readable_after_writable() -> None:
    ring = RawRing()
    ring.put(0, flags=NEXT | WRITE, id=3)
    ring.put(1, flags=0, id=3)
    expect_returned(ring, PackedReadableAfterWritable, 3, 2)


# --- a lying device ---------------------------------------------------------------------
def driver_ring(features: int = 0) -> tuple[PackedDriver, GuestMemory, PackedLayout]:
    layout = PackedLayout.modern(SIZE, 0x1000)
    mem = GuestMemory(0x10000)
    driver = PackedDriver(mem, layout, features, allocator=GuestAllocator(0x8000, 0x10000))
    return driver, mem, layout


def write_used(mem: GuestMemory, layout: PackedLayout, offset: int, ident: int, length: int,
               flags: int = WRITE) -> None:
    MockPackedRing(mem, layout).put_used(offset, ident, length, flags=flags)


@pytest.mark.parametrize(
    ("ident", "length", "error"),
    [(SIZE, 0, PackedUsedIdOutOfRange), (3, 0, PackedUsedIdNotOutstanding),
     (0, 9, PackedUsedLengthTooLong)],
)
def test_driver_refuses_a_lying_used_descriptor(
    ident: int, length: int, error: type[DeviceError]
) -> None:
    driver, mem, layout = driver_ring()
    assert driver.add_inbuf([Segment(DATA, 8)], "t") == 0
    write_used(mem, layout, 0, ident, length)
    with pytest.raises(error):
        driver.get_buf()
    with pytest.raises(QueueBroken):
        driver.get_buf()
    assert driver.detach_unused_buf() == "t"


def test_used_length_without_write_flag_counts_as_zero() -> None:
    driver, mem, layout = driver_ring()
    driver.add_inbuf([Segment(DATA, 8)], "t")
    write_used(mem, layout, 0, 0, 1 << 20, flags=0)
    assert driver.get_buf() == ("t", 0)


def test_event_offset_beyond_the_ring_notifies() -> None:
    """A named offset no descriptor has: both sides notify (an extra one is harmless)."""
    features = feature_mask(Feature.EVENT_IDX)
    driver, mem, layout = driver_ring(features)
    device = PackedDevice(mem, layout, features)
    bogus = EventSuppress(off_wrap=SIZE + 1, flags=PackedEventFlag.DESC).pack()
    mem.write(layout.device, bogus)
    driver.add_outbuf([Segment(DATA, 8)], "t")
    assert driver.kick_prepare()
    chain = device.pop()
    assert chain is not None
    mem.write(layout.driver, bogus)
    device.push_used(chain.head, 0)
    assert device.needs_notification()


# --- random rings --------------------------------------------------------------------------
raw_desc = st.builds(
    PackedDescriptor,
    addr=st.one_of(st.integers(0, 0x10000), st.integers(0, (1 << 64) - 1)),
    len=st.one_of(st.integers(0, 64), st.integers(0, (1 << 32) - 1)),
    id=st.integers(0, (1 << 16) - 1),
    flags=st.integers(0, (1 << 16) - 1),
)


@settings(max_examples=200)
@given(
    size=st.integers(1, 9),
    descs=st.lists(raw_desc, min_size=9, max_size=9),
    indirect=st.booleans(),
    table=st.lists(raw_desc, max_size=4),
)
def test_random_ring_yields_only_typed_errors(
    size: int, descs: list[PackedDescriptor], indirect: bool, table: list[PackedDescriptor]
) -> None:
    layout = PackedLayout.modern(size, 0x1000)
    mem = GuestMemory(0x10000)
    for offset in range(size):
        mem.write(layout.desc_addr(offset), descs[offset].pack())
    for i, entry in enumerate(table):
        mem.write(0x8000 + DESC_SIZE * i, entry.pack())
    device = PackedDevice(mem, layout, feature_mask(Feature.INDIRECT_DESC) * indirect)
    taken = 0
    for _ in range(2 * size + 2):
        try:
            chain = device.pop()
        except (ChainError, QueueBroken):
            continue
        except DriverError:
            assert device.broken
            continue
        if chain is None:
            break
        taken += 1
    assert taken <= size, "the device took more lists than the ring has ids"


@settings(max_examples=200)
@given(descs=st.lists(raw_desc, min_size=SIZE, max_size=SIZE), adds=st.integers(1, SIZE))
def test_random_used_ring_yields_only_typed_errors(
    descs: list[PackedDescriptor], adds: int
) -> None:
    driver, mem, layout = driver_ring()
    for i in range(adds):
        driver.add_inbuf([Segment(DATA + 64 * i, 16)], i)
    for offset, desc in enumerate(descs):
        mem.write(layout.desc_addr(offset), desc.pack())
    seen = set()
    for _ in range(SIZE + 1):
        try:
            got = driver.get_buf()
        except VirtioError:
            break
        if got is None:
            break
        assert got[0] not in seen, "a token came back twice"
        seen.add(got[0])
        assert 0 <= got[1] <= 16
