"""Packed-ring wire structures and layout: round trips, sizes, alignment, field places.

Spec: §2.8.10.1 (size and alignment table), §2.8.11 (PACKED-DRV-001), §2.8.13
`struct pvirtq_desc`, §2.8.14 `struct pvirtq_event_suppress`.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impl.errors import InvalidPackedLayout
from impl.packed_layout import (
    DESC_BODY_STRUCT,
    DESC_FLAGS_OFFSET,
    DESC_ID_OFFSET,
    DESC_LEN_OFFSET,
    LE32_STRUCT,
    PACKED_DESC_STRUCT,
    EventSuppress,
    PackedDescriptor,
    PackedLayout,
    desc_ring_bytes,
)
from impl.spec import DESC_SIZE, EVENT_SUPPRESS_SIZE

u16 = st.integers(0, (1 << 16) - 1)


@given(addr=st.integers(0, (1 << 64) - 1), length=st.integers(0, (1 << 32) - 1), ident=u16,
       flags=u16)
def test_descriptor_round_trip(addr: int, length: int, ident: int, flags: int) -> None:
    desc = PackedDescriptor(addr=addr, len=length, id=ident, flags=flags)
    raw = desc.pack()
    assert len(raw) == DESC_SIZE == PackedDescriptor.SIZE
    assert PackedDescriptor.unpack(raw) == desc
    assert raw[12:14] == ident.to_bytes(2, "little") and raw[14:] == flags.to_bytes(2, "little")


@given(off_wrap=u16, flags=u16)
def test_event_suppress_round_trip(off_wrap: int, flags: int) -> None:
    event = EventSuppress(off_wrap=off_wrap, flags=flags)
    assert len(event.pack()) == EVENT_SUPPRESS_SIZE
    assert EventSuppress.unpack(event.pack()) == event


@pytest.mark.spec("PACKED-DRV-001")
@pytest.mark.parametrize("size", [1, 3, 5, 100, 257, 32768])
def test_modern_layout_is_aligned_disjoint_and_valid(size: int) -> None:
    layout = PackedLayout.modern(size, 0x1003)
    assert layout.desc % 16 == 0 and layout.driver % 4 == 0 and layout.device % 4 == 0
    assert layout.driver >= layout.desc + desc_ring_bytes(size)
    assert layout.device >= layout.driver + EVENT_SUPPRESS_SIZE
    layout.validate(layout.end)
    assert layout.desc_flags(size - 1) + 2 == layout.desc + desc_ring_bytes(size)


@pytest.mark.spec("PACKED-DRV-001")
@pytest.mark.parametrize(
    "layout",
    [
        PackedLayout(4, 0x1008, 0x2000, 0x2004),  # ring not 16-aligned
        PackedLayout(4, 0x1000, 0x2002, 0x2008),  # driver area not 4-aligned
        PackedLayout(4, 0x1000, 0x2000, 0x2006),  # device area not 4-aligned
        PackedLayout(4, 0x1000, 0x1030, 0x2000),  # driver area inside the ring
        PackedLayout(0, 0x1000, 0x2000, 0x2004),  # size 0
        PackedLayout(32769, 0x1000, 0x200000, 0x200004),  # size above 32768
        PackedLayout(4, 0x1000, 0x2000, 0xFFFE),  # device area past the end
    ],
)
def test_invalid_layouts_are_refused(layout: PackedLayout) -> None:
    with pytest.raises(InvalidPackedLayout):
        layout.validate(0x10000)


@pytest.mark.parametrize("size", [1, 3, 256, 32768])
def test_offset_address_ranges_are_the_field_addresses(size: int) -> None:
    """The ranges the rings index by offset give `desc_addr` and its fields, and the
    accessor areas are exactly the three parts `validate` checks."""
    lay = PackedLayout.modern(size, 0x1003)
    ranges = (lay.desc_addrs, lay.desc_len_addrs, lay.desc_id_addrs, lay.desc_flags_addrs)
    fields = (lay.desc_addr, lay.desc_len, lay.desc_id, lay.desc_flags)
    for addrs, field in zip(ranges, fields, strict=True):
        assert len(addrs) == size
        assert list(addrs) == [field(offset) for offset in range(size)]
    areas = (lay.desc_area, lay.driver_area, lay.device_area)
    assert areas == tuple((addr, addr + length) for _, addr, length, _ in lay.parts())


@given(addr=st.integers(0, (1 << 64) - 1), length=st.integers(0, (1 << 32) - 1), ident=u16,
       flags=u16)
def test_structure_formats_are_the_descriptor_bytes(
    addr: int, length: int, ident: int, flags: int
) -> None:
    """`PACKED_DESC_STRUCT` writes what `PackedDescriptor.pack` does; the body is every
    byte before `flags`; a `len` is one le32."""
    raw = PackedDescriptor(addr=addr, len=length, id=ident, flags=flags).pack()
    assert PACKED_DESC_STRUCT.pack(addr, length, ident, flags) == raw
    assert DESC_BODY_STRUCT.pack(addr, length, ident) == raw[:DESC_FLAGS_OFFSET]
    assert LE32_STRUCT.pack(length) == raw[DESC_LEN_OFFSET:DESC_ID_OFFSET]
    assert PACKED_DESC_STRUCT.unpack(raw) == (addr, length, ident, flags)
