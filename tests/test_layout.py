"""Wire structures and split-ring layouts: byte-exact encodings, part sizes, addresses, checks."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impl.errors import InvalidLayout
from impl.layout import (
    DESC_STRUCT,
    LE16_STRUCT,
    USED_ELEM_STRUCT,
    Descriptor,
    SplitLayout,
    UsedElem,
    align_up,
    avail_ring_bytes,
    desc_table_bytes,
    is_valid_queue_size,
    used_ring_bytes,
)

POWERS = [1 << n for n in range(16)]
u16, u32, u64 = (st.integers(0, (1 << bits) - 1) for bits in (16, 32, 64))


def test_descriptor_bytes() -> None:
    desc = Descriptor(addr=0x1122334455667788, len=0x99AABBCC, flags=0x0102, next=0x0304)
    assert desc.pack() == bytes.fromhex("8877665544332211" "ccbbaa99" "0201" "0403")
    assert Descriptor.SIZE == len(desc.pack()) == 16


def test_used_elem_bytes() -> None:
    elem = UsedElem(id=0x01020304, len=0x0A0B0C0D)
    assert elem.pack() == bytes.fromhex("04030201" "0d0c0b0a")
    assert UsedElem.SIZE == 8


@given(addr=u64, length=u32, flags=u16, nxt=u16)
def test_descriptor_round_trip(addr: int, length: int, flags: int, nxt: int) -> None:
    desc = Descriptor(addr=addr, len=length, flags=flags, next=nxt)
    assert Descriptor.unpack(desc.pack()) == desc


@given(raw=st.binary(min_size=16, max_size=16))
def test_any_16_bytes_decode_and_encode_back(raw: bytes) -> None:
    assert Descriptor.unpack(raw).pack() == raw


@given(ident=u32, length=u32)
def test_used_elem_round_trip(ident: int, length: int) -> None:
    elem = UsedElem(id=ident, len=length)
    assert UsedElem.unpack(elem.pack()) == elem


def test_queue_sizes() -> None:
    assert all(is_valid_queue_size(n) for n in POWERS)
    for bad in (0, 3, 6, 100, 32767, 65536, 1 << 20, -1):
        assert not is_valid_queue_size(bad)


@pytest.mark.parametrize("size", [1, 2, 256, 32768])
def test_part_sizes(size: int) -> None:
    """§2.7 table: 16 * size; 6 + 2 * size; 6 + 8 * size."""
    assert desc_table_bytes(size) == 16 * size
    assert avail_ring_bytes(size) == 6 + 2 * size
    assert used_ring_bytes(size) == 6 + 8 * size


@given(value=st.integers(0, 1 << 20), shift=st.integers(0, 12))
def test_align_up(value: int, shift: int) -> None:
    alignment = 1 << shift
    got = align_up(value, alignment)
    assert got % alignment == 0 and value <= got < value + alignment


@pytest.mark.spec("SPLIT-DRV-001")
@pytest.mark.parametrize("size", POWERS)
@pytest.mark.parametrize("base", [0, 1, 0x1003])
def test_modern_layout_is_aligned_packed_and_valid(size: int, base: int) -> None:
    lay = SplitLayout.modern(size, base)
    assert (lay.desc % 16, lay.avail % 2, lay.used % 4) == (0, 0, 0)
    assert base <= lay.desc < base + 16
    assert lay.avail == lay.desc + 16 * size
    assert lay.avail + 6 + 2 * size <= lay.used < lay.avail + 6 + 2 * size + 4
    assert lay.end == lay.used + 6 + 8 * size
    lay.validate(lay.end)


@pytest.mark.parametrize("size", [1, 256, 1024, 32768])
def test_legacy_layout_matches_the_legacy_formula(size: int) -> None:
    """§2.7.2: ALIGN(16 * qsz + 2 * (3 + qsz)) + ALIGN(2 * 3 + 8 * qsz), ALIGN to 4096."""
    lay = SplitLayout.legacy(size)

    def align(x: int) -> int:
        return (x + 4095) // 4096 * 4096

    assert (lay.desc, lay.avail) == (0, 16 * size)
    assert lay.used == align(16 * size + 2 * (3 + size))
    assert align(lay.end) == lay.used + align(2 * 3 + 8 * size)
    lay.validate(lay.end)


def test_field_addresses() -> None:
    lay = SplitLayout(size=4, desc=0x100, avail=0x200, used=0x300)
    assert [lay.desc_addr(i) for i in (0, 3)] == [0x100, 0x130]
    assert (lay.avail_flags, lay.avail_idx) == (0x200, 0x202)
    assert [lay.avail_ring(i) for i in (0, 3)] == [0x204, 0x20A]
    assert lay.used_event == 0x20C
    assert (lay.used_flags, lay.used_idx) == (0x300, 0x302)
    assert [lay.used_ring(i) for i in (0, 3)] == [0x304, 0x31C]
    assert lay.avail_event == 0x324
    assert lay.end == 0x326


@pytest.mark.spec("SPLIT-DRV-001")
@pytest.mark.parametrize(
    ("desc", "avail", "used"),
    [(0x108, 0x200, 0x300), (0x100, 0x201, 0x300), (0x100, 0x200, 0x302)],
)
def test_misaligned_part_is_refused(desc: int, avail: int, used: int) -> None:
    with pytest.raises(InvalidLayout, match="aligned") as info:
        SplitLayout(4, desc, avail, used).validate(0x1000)
    assert info.value.spec_ids == ("SPLIT-DRV-001",)


@pytest.mark.parametrize("size", [0, 3, 65536])
def test_bad_queue_size_is_refused(size: int) -> None:
    with pytest.raises(InvalidLayout, match="power of two"):
        SplitLayout(size, 0, 0x100000, 0x200000).validate(1 << 24)


@pytest.mark.parametrize(
    ("desc", "avail", "used", "memory"),
    [(0x100, 0x200, 0x300, 0x325), (-16, 0x200, 0x300, 0x1000), (0x100, 0x200, 0x300, 0)],
)
def test_part_outside_memory_is_refused(desc: int, avail: int, used: int, memory: int) -> None:
    with pytest.raises(InvalidLayout, match="outside"):
        SplitLayout(4, desc, avail, used).validate(memory)


@pytest.mark.parametrize(
    ("desc", "avail", "used"),
    [(0x100, 0x130, 0x300), (0x100, 0x200, 0x208), (0x300, 0x110, 0x100), (0x100, 0x100, 0x300)],
)
def test_overlapping_parts_are_refused(desc: int, avail: int, used: int) -> None:
    with pytest.raises(InvalidLayout, match="overlap"):
        SplitLayout(4, desc, avail, used).validate(0x1000)


@pytest.mark.parametrize("size", [1, 2, 256, 32768])
@pytest.mark.parametrize("build", [SplitLayout.modern, SplitLayout.legacy])
def test_slot_address_ranges_are_the_field_addresses(size: int, build: object) -> None:
    """The ranges the rings index by slot give `avail_ring(slot)` / `used_ring(slot)`."""
    lay = build(size, 0x1000)  # type: ignore[operator]
    assert len(lay.avail_ring_addrs) == len(lay.used_ring_addrs) == size
    assert list(lay.avail_ring_addrs) == [lay.avail_ring(s) for s in range(size)]
    assert list(lay.used_ring_addrs) == [lay.used_ring(s) for s in range(size)]
    assert lay.avail_area == (lay.avail, lay.used_event + 2)
    assert lay.used_area == (lay.used, lay.avail_event + 2)
    assert lay.desc_area == (lay.desc, lay.desc_addr(size))


@pytest.mark.parametrize("fmt", [DESC_STRUCT, USED_ELEM_STRUCT, LE16_STRUCT])
def test_structure_formats_match_the_wire_sizes(fmt: struct.Struct) -> None:
    sizes = {DESC_STRUCT: Descriptor.SIZE, USED_ELEM_STRUCT: UsedElem.SIZE, LE16_STRUCT: 2}
    assert fmt.size == sizes[fmt]
    assert fmt.format.startswith("<")
