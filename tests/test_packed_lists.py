"""How the packed driver places and sizes what it makes available (§2.8.11, §2.8.17, §2.8.19).

The reference device allows a list (and an indirect table) of at most the queue size;
the driver must never build a longer one, must place each ring part at its alignment,
and must never start a list it cannot finish without waiting for the device. Each rule
is checked on guest memory: what the driver refuses leaves the ring byte-identical.
"""

from __future__ import annotations

import pytest

from impl.alloc import GuestAllocator
from impl.chain import Segment
from impl.errors import BadBuffer, InvalidPackedLayout, NoSpace, PackedBadBuffer
from impl.memory import GuestMemory
from impl.packed_device import PackedDevice
from impl.packed_driver import PackedDriver
from impl.packed_layout import PackedLayout
from impl.spec import Feature, feature_mask

SIZE = 8
RING = 0x1000
DATA = 0x4000
TABLES = 0x8000
MEMORY = 0x10000
INDIRECT = feature_mask(Feature.INDIRECT_DESC)

PART_ALIGN = {"desc": 16, "driver": 4, "device": 4}
"""§2.8.11's table: descriptor ring 16 bytes, both event suppression areas 4."""


def pair(features: int = 0) -> tuple[PackedDriver, PackedDevice, GuestMemory]:
    mem = GuestMemory(MEMORY)
    layout = PackedLayout.modern(SIZE, RING)
    allocator = GuestAllocator(TABLES, MEMORY)
    driver = PackedDriver(mem, layout, features, allocator=allocator)
    return driver, PackedDevice(mem, layout, features), mem


def segments(count: int) -> list[Segment]:
    return [Segment(DATA + 16 * i, 8) for i in range(count)]


@pytest.mark.spec("PACKED-DRV-001")
@pytest.mark.parametrize("size", [1, 2, 3, 8, 100, 256])
@pytest.mark.parametrize("base", [0, 1, 2, 5, 0x1003, 0x100E])
def test_the_driver_places_each_ring_part_at_its_alignment(size: int, base: int) -> None:
    layout = PackedLayout.modern(size, base)
    for part, alignment in PART_ALIGN.items():
        assert getattr(layout, part) % alignment == 0, part
    PackedDriver(GuestMemory(MEMORY), layout)  # and the driver takes it


@pytest.mark.spec("PACKED-DRV-001")
@pytest.mark.parametrize("part", sorted(PART_ALIGN))
def test_the_driver_refuses_a_misaligned_ring_part_before_writing(part: str) -> None:
    good = PackedLayout.modern(SIZE, RING)
    fields = {"size": SIZE, "desc": good.desc, "driver": good.driver, "device": good.device}
    fields[part] += PART_ALIGN[part] // 2
    fields["driver"] += 0x100 if part == "desc" else 0  # keep the parts from overlapping
    fields["device"] += 0x100 if part == "desc" else 0
    mem = GuestMemory(MEMORY)
    mem.fill(0, MEMORY, 0xA5)
    with pytest.raises(InvalidPackedLayout, match="aligned"):
        PackedDriver(mem, PackedLayout(**fields))
    assert mem.read(0, MEMORY) == b"\xa5" * MEMORY


@pytest.mark.spec("PACKED-DRV-006", "PACKED-DRV-014")
@pytest.mark.parametrize("features", [0, INDIRECT], ids=["direct", "indirect"])
def test_no_list_or_table_longer_than_the_device_allows(features: int) -> None:
    driver, device, mem = pair(features)
    before = mem.read(0, MEMORY)
    with pytest.raises(PackedBadBuffer):
        driver.add_sgs(segments(SIZE - 2), segments(3), "too long")
    assert mem.read(0, MEMORY) == before and driver.num_free == SIZE
    driver.add_sgs(segments(SIZE - 2), segments(2), "longest")  # exactly the device's limit
    chain = device.pop()
    assert chain is not None and len(chain.readable) + len(chain.writable) == SIZE
    assert chain.indirect == bool(features)


REFUSED = {
    "longer than the queue": (segments(SIZE), segments(1), "t"),
    "no segments": ((), (), "t"),
    "no token": (segments(1), (), None),
    "outside memory": ([Segment(MEMORY - 4, 8)], (), "t"),
    "2^32 bytes": ([Segment(DATA, 8)] * 2, [Segment(DATA, (1 << 32) - 8)], "t"),
}
"""One buffer per reason `check_buffer` refuses one (the last is in memory only by
length: it is refused before any byte of it is looked at)."""


@pytest.mark.spec("PACKED-DRV-006", "PACKED-DRV-007", "PACKED-DRV-014")
@pytest.mark.parametrize("features", [0, INDIRECT], ids=["direct", "indirect"])
@pytest.mark.parametrize("reason", sorted(REFUSED))
def test_a_refused_buffer_cites_the_packed_rules_not_the_split_ones(
    reason: str, features: int
) -> None:
    """The packed driver's refusal is a `PackedBadBuffer` (still a `BadBuffer`), whose
    ids are the packed list-length rules, and nothing is written."""
    driver, _, mem = pair(features)
    before = mem.read(0, MEMORY)
    out, in_, token = REFUSED[reason]
    with pytest.raises(PackedBadBuffer) as caught:
        driver.add_sgs(out, in_, token)
    assert isinstance(caught.value, BadBuffer)
    assert caught.value.spec_ids == ("PACKED-DRV-006", "PACKED-DRV-007", "PACKED-DRV-014")
    assert mem.read(0, MEMORY) == before and driver.num_free == SIZE


@pytest.mark.spec("PACKED-DRV-009")
def test_a_list_is_not_started_until_the_ring_has_room_for_all_of_it() -> None:
    driver, device, mem = pair()
    first = driver.add_sgs(segments(3), (), "a")
    driver.add_sgs(segments(3), (), "b")
    before = mem.read(0, MEMORY)
    with pytest.raises(NoSpace):
        driver.add_sgs(segments(3), (), "c")  # 2 descriptors free: waiting would be needed
    assert mem.read(0, MEMORY) == before and driver.num_free == 2
    chain = device.pop()
    assert chain is not None and chain.head == first
    device.push_used(first, 0)
    assert driver.get_buf() == ("a", 0)
    driver.add_sgs(segments(3), (), "c")  # the device gave back room: now it fits whole
    device.pop()
    third = device.pop()
    assert third is not None and len(third.readable) == 3


@pytest.mark.spec("PACKED-DRV-005")
def test_a_notification_with_nothing_new_is_sent_and_is_harmless() -> None:
    driver, device, _mem = pair()
    driver.add_sgs(segments(2), (), "a")
    assert driver.kick_prepare() is True
    assert driver.kick_prepare() is True  # notifications enabled: it notifies again, 0 added
    chain = device.pop()
    assert chain is not None and chain.head == 0
    assert device.pop() is None and not device.broken  # the extra one finds nothing
    device.push_used(chain.head, 0)
    assert driver.get_buf() == ("a", 0)
