"""The test doubles of impl/testing.py write exactly the bytes they are told to."""

from __future__ import annotations

from hypothesis import given

from impl.layout import Descriptor
from impl.memory import GuestMemory
from impl.spec import DESC_SIZE
from impl.testing import CountingMemory, MockDeviceRing, MockDriverRing, hostile_descriptors

SIZE = 4


def test_set_desc_writes_the_packed_descriptor() -> None:
    drv = MockDriverRing(GuestMemory(MockDriverRing.memory_for(SIZE)), SIZE)
    drv.set_desc(3, 2**64 - 1, 2**32 - 1, 0xFFFF, 0xFFFF)
    raw = drv.mem.read(drv.layout.desc_addr(3), DESC_SIZE)
    assert raw == Descriptor(addr=2**64 - 1, len=2**32 - 1, flags=0xFFFF, next=0xFFFF).pack()


def test_publish_and_avail_idx_wrap() -> None:
    mem = GuestMemory(MockDriverRing.memory_for(SIZE))
    drv = MockDriverRing(mem, SIZE, initial_index=0xFFFF)
    drv.publish(2, 7)
    assert mem.read_u16(drv.layout.avail_idx) == 1
    assert mem.read_u16(drv.layout.avail_ring(3)) == 2
    assert mem.read_u16(drv.layout.avail_ring(0)) == 7
    device = MockDeviceRing(mem, drv.layout, initial_index=0xFFFF)
    assert device.avail_heads(0xFFFF) == [2, 7]
    drv.set_avail_idx(0x1_0005)
    assert mem.read_u16(drv.layout.avail_idx) == 5


def test_device_ring_pushes_and_driver_ring_reads_back() -> None:
    mem = GuestMemory(MockDriverRing.memory_for(SIZE))
    drv = MockDriverRing(mem, SIZE, initial_index=0xFFFE)
    device = MockDeviceRing(mem, drv.layout, initial_index=0xFFFE)
    for head, written in ((1, 10), (0, 0), (3, 2**32 - 1)):
        device.push(head, written)
    assert drv.used_idx() == 1
    assert drv.used_elems() == [(1, 10), (0, 0), (3, 2**32 - 1)]
    drv.reset()
    assert drv.used_elems() == [] and mem.read_u16(drv.layout.avail_idx) == 0xFFFE


def test_counting_memory_counts_reads_only() -> None:
    mem = CountingMemory(256)
    mem.write(16, b"x" * 32)
    mem.read(16, DESC_SIZE)
    mem.read(32, DESC_SIZE)
    mem.read_u16(0)
    mem.uncounted().read(0, DESC_SIZE)
    assert mem.reads == [(16, 16), (32, 16), (0, 2)]
    assert mem.descriptor_reads(0, 32) == 1
    assert mem.descriptor_reads(0, 256) == 2
    mem.clear()
    assert mem.reads == []


@given(hostile_descriptors(SIZE, 1024, tables=(512,)))
def test_hostile_descriptors_fit_the_wire_fields(desc: tuple[int, int, int, int]) -> None:
    addr, length, flags, nxt = desc
    raw = Descriptor(addr=addr, len=length, flags=flags, next=nxt).pack()
    assert len(raw) == DESC_SIZE


def test_mock_packed_ring_writes_what_the_packed_rules_read() -> None:
    """The packed double marks descriptors available or used exactly as asked (§2.8.1)."""
    from impl.packed_layout import PackedDescriptor, PackedLayout
    from impl.testing import MockPackedRing
    from impl.wrap_math import is_available, is_used

    layout = PackedLayout.modern(3, 0x100)
    mem = GuestMemory(0x1000)
    ring = MockPackedRing(mem, layout)
    ring.put(0, flags=1, id=7, addr=0x800, len=5, lap=0)
    desc = PackedDescriptor.unpack(mem.read(layout.desc_addr(0), DESC_SIZE))
    assert (desc.addr, desc.len, desc.id, desc.flags & 1) == (0x800, 5, 7, 1)
    assert is_available(desc.flags, 0) and not is_available(desc.flags, 1)
    ring.put_used(1, 2, 9, lap=1)
    assert is_used(ring.flags(1), 1) and not is_used(ring.flags(1), 0)
    assert ring.ident(1) == 2 and mem.read_u32(layout.desc_len(1)) == 9
    ring.put(2, flags=0x1234, lap=None)
    assert ring.flags(2) == 0x1234
