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
from impl.spec import DESC_SIZE, Feature, feature_mask
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
