"""How many descriptors the split driver spends on one buffer (§2.7.4).

One descriptor per segment the caller gives, never more; with VIRTIO_F_INDIRECT_DESC a
multi-part buffer takes one ring descriptor and a table of exactly its parts. The
device's walk sees the same segments, in order.
"""

from __future__ import annotations

import pytest

from impl.alloc import GuestAllocator
from impl.chain import Segment
from impl.layout import SplitLayout
from impl.memory import GuestMemory
from impl.spec import DESC_SIZE, DescFlag, Feature, feature_mask
from impl.split_device import SplitDevice
from impl.split_driver import SplitDriver

SIZE = 16
TABLES = 0x8000


@pytest.mark.spec("SPLIT-DRV-003")
@pytest.mark.parametrize("indirect", [False, True])
@pytest.mark.parametrize(("out", "in_"), [(1, 0), (0, 1), (2, 3), (5, 11)])
def test_a_buffer_takes_one_descriptor_per_segment_or_one_indirect(
    indirect: bool, out: int, in_: int
) -> None:
    features = feature_mask(Feature.INDIRECT_DESC) if indirect else 0
    mem = GuestMemory(0x10000)
    layout = SplitLayout.modern(SIZE, 0x1000)
    allocator = GuestAllocator(TABLES, 0x10000)
    driver = SplitDriver(mem, layout, features, allocator=allocator)
    readable = [Segment(0x4000 + 0x40 * i, 0x20) for i in range(out)]
    writable = [Segment(0x6000 + 0x40 * i, 0x20) for i in range(in_)]
    driver.add_sgs(readable, writable, "token")
    parts = out + in_
    ring_descs = 1 if indirect and parts > 1 else parts
    assert SIZE - driver.num_free == ring_descs
    tables = list(allocator.allocated.values())
    assert tables == ([DESC_SIZE * parts] if ring_descs < parts else [])
    chain = SplitDevice(mem, layout, features).pop()
    assert chain is not None
    assert (list(chain.readable), list(chain.writable)) == (readable, writable)


@pytest.mark.spec("SPLIT-DRV-009")
@pytest.mark.parametrize("parts", [2, 3, 16])
def test_an_indirect_table_is_written_in_order_with_next_counting_up(parts: int) -> None:
    """Entry i of an indirect table chains to entry i+1 and the last one ends the chain.

    The rule binds a driver once VIRTIO_F_IN_ORDER is negotiated; the reference driver
    writes every table this way, so it holds whatever was negotiated.
    """
    mem = GuestMemory(0x10000)
    layout = SplitLayout.modern(SIZE, 0x1000)
    allocator = GuestAllocator(TABLES, 0x10000)
    driver = SplitDriver(mem, layout, feature_mask(Feature.INDIRECT_DESC), allocator=allocator)
    segments = [Segment(0x4000 + 0x40 * i, 0x20) for i in range(parts)]
    head = driver.add_sgs(segments[:1], segments[1:], "token")
    table = mem.read_u64(layout.desc_addr(head))
    assert mem.read_u16(layout.desc_addr(head) + 12) & DescFlag.INDIRECT
    entries = [table + DESC_SIZE * i for i in range(parts)]
    addrs = [mem.read_u64(entry) for entry in entries]
    flags = [mem.read_u16(entry + 12) for entry in entries]
    nexts = [mem.read_u16(entry + 14) for entry in entries]
    assert addrs == [seg.addr for seg in segments]
    assert [bool(f & DescFlag.NEXT) for f in flags] == [True] * (parts - 1) + [False]
    assert nexts[:-1] == list(range(1, parts))
