"""The packed driver's writes: what it puts in an indirect table, and the order it exposes.

Spec: §2.8.19 (PACKED-DRV-013: only WRITE inside an indirect table), §2.8.21.1.1
(PACKED-DRV-016: a barrier before the flags update), §2.8.6 (the id in the last
descriptor, the head exposed last).
"""

from __future__ import annotations

import pytest

from impl.alloc import GuestAllocator
from impl.chain import Segment
from impl.memory import Barrier, GuestMemory
from impl.packed_driver import PackedDriver
from impl.packed_layout import PackedDescriptor, PackedLayout
from impl.spec import DESC_SIZE, Feature, PackedDescFlag, feature_mask
from impl.wrap_math import is_available

DATA = 0x4000


class RecordingMemory(GuestMemory):
    """Records each write's address and each barrier, in order."""

    __slots__ = ("log",)

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.log: list[tuple[str, object]] = []

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        self.log.append(("write", (addr, len(data))))
        super().write(addr, data)

    def write_u16(self, addr: int, value: int) -> None:
        self.log.append(("write", (addr, 2)))
        super().write_u16(addr, value)

    def barrier(self, kind: Barrier, label: str) -> None:
        self.log.append(("barrier", (kind, label)))


def segments(count: int) -> list[Segment]:
    return [Segment(DATA + 64 * i, 16) for i in range(count)]


@pytest.mark.spec("PACKED-DRV-013", "PACKED-DRV-012")
def test_indirect_table_entries_carry_only_write() -> None:
    layout = PackedLayout.modern(8, 0x1000)
    mem = GuestMemory(0x10000)
    driver = PackedDriver(mem, layout, feature_mask(Feature.INDIRECT_DESC),
                          allocator=GuestAllocator(0x8000, 0x10000))
    driver.add_sgs(segments(2), segments(3), "t")
    head = PackedDescriptor.unpack(mem.read(layout.desc_addr(0), DESC_SIZE))
    assert head.flags & PackedDescFlag.INDIRECT and not head.flags & PackedDescFlag.NEXT
    assert head.len == 5 * DESC_SIZE
    entries = [PackedDescriptor.unpack(mem.read(head.addr + DESC_SIZE * i, DESC_SIZE))
               for i in range(5)]
    assert [e.flags for e in entries] == [0, 0] + [int(PackedDescFlag.WRITE)] * 3


def test_indirect_is_not_used_without_the_feature() -> None:
    layout = PackedLayout.modern(4, 0x1000)
    mem = GuestMemory(0x10000)
    driver = PackedDriver(mem, layout, 0, allocator=GuestAllocator(0x8000, 0x10000))
    driver.add_sgs(segments(1), segments(1), "t")
    flags = [mem.read_u16(layout.desc_flags(i)) for i in range(2)]
    assert not any(f & PackedDescFlag.INDIRECT for f in flags)


@pytest.mark.spec("PACKED-DRV-016", "PACKED-DRV-011")
@pytest.mark.parametrize("start", [0, 2])
def test_head_flags_are_written_last_after_a_write_barrier(start: int) -> None:
    """A three-descriptor list (straddling the end when start=2): body first, barrier A,
    then the head's flags word, which is what makes the list available."""
    layout = PackedLayout.modern(4, 0x1000)
    mem = RecordingMemory(0x10000)
    driver = PackedDriver(mem, layout, initial_offset=start)
    mem.log.clear()
    ident = driver.add_sgs(segments(1), segments(2), "t")
    head_flags = layout.desc_flags(start)
    assert mem.log[-1] == ("write", (head_flags, 2))
    assert mem.log[-2] == ("barrier", (Barrier.WRITE, "A"))
    assert all(addr != head_flags for kind, (addr, _) in mem.log[:-1] if kind == "write")
    last = (start + 2) % 4
    assert mem.read_u16(layout.desc_id(last)) == ident
    tail_wrap = 1 if start + 2 < 4 else 0
    assert is_available(mem.read_u16(layout.desc_flags(last)), tail_wrap)
