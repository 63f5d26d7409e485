"""GuestMemory: little-endian scalars, bounds on every access, no 64-bit wrap, mmap backing."""

from __future__ import annotations

import mmap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impl.errors import MemoryFault
from impl.memory import Barrier, GuestMemory

SIZE = 64
ADDR_LIMIT = 1 << 64
WIDTHS = [(1, "u8"), (2, "u16"), (4, "u32"), (8, "u64")]


@pytest.mark.parametrize(("width", "name"), WIDTHS)
def test_scalars_are_little_endian(width: int, name: str) -> None:
    mem = GuestMemory(SIZE)
    value = int.from_bytes(bytes(range(1, width + 1)), "little")
    getattr(mem, f"write_{name}")(8, value)
    assert mem.read(8, width) == bytes(range(1, width + 1))
    assert getattr(mem, f"read_{name}")(8) == value


@pytest.mark.parametrize(("width", "name"), WIDTHS)
def test_scalar_at_the_last_fitting_address(width: int, name: str) -> None:
    mem = GuestMemory(SIZE)
    top = (1 << (8 * width)) - 1
    getattr(mem, f"write_{name}")(SIZE - width, top)
    assert getattr(mem, f"read_{name}")(SIZE - width) == top


@pytest.mark.parametrize(("width", "name"), WIDTHS)
@pytest.mark.parametrize("addr", [-1, SIZE, ADDR_LIMIT - 1, ADDR_LIMIT])
def test_scalar_outside_the_region_faults(width: int, name: str, addr: int) -> None:
    mem = GuestMemory(SIZE)
    for where in (addr, SIZE - width + 1):
        with pytest.raises(MemoryFault) as info:
            getattr(mem, f"read_{name}")(where)
        assert (info.value.addr, info.value.length) == (where, width)
        with pytest.raises(MemoryFault):
            getattr(mem, f"write_{name}")(where, 0)
    assert mem.read(0, SIZE) == bytes(SIZE)


@pytest.mark.parametrize(
    ("addr", "length"),
    [(ADDR_LIMIT - 8, 16), (ADDR_LIMIT - 1, 2), (ADDR_LIMIT - SIZE, SIZE + 1), (ADDR_LIMIT, 0)],
)
def test_range_wrapping_64_bits_faults(addr: int, length: int) -> None:
    """addr + len modulo 2^64 lands inside the region; it must fault, not wrap."""
    mem = GuestMemory(SIZE)
    assert not mem.contains(addr, length)
    with pytest.raises(MemoryFault):
        mem.check(addr, length)
    with pytest.raises(MemoryFault):
        mem.read(addr, length)
    with pytest.raises(MemoryFault):
        mem.write(addr, bytes(length % 64))
    with pytest.raises(MemoryFault):
        mem.fill(addr, length)


@given(
    addr=st.one_of(st.integers(-8, SIZE + 8), st.integers(ADDR_LIMIT - 80, ADDR_LIMIT + 8)),
    length=st.integers(-2, 80),
)
def test_range_checks_agree_with_plain_arithmetic(addr: int, length: int) -> None:
    mem = GuestMemory(SIZE)
    inside = 0 <= addr and 0 <= length and addr + length <= SIZE
    assert mem.contains(addr, length) == inside
    if inside:
        mem.check(addr, length)
        assert mem.read(addr, length) == bytes(length)
    else:
        with pytest.raises(MemoryFault):
            mem.check(addr, length)
        with pytest.raises(MemoryFault):
            mem.read(addr, length)


def test_a_refused_write_changes_nothing() -> None:
    mem = GuestMemory(SIZE)
    with pytest.raises(MemoryFault):
        mem.write(SIZE - 2, b"abcd")
    with pytest.raises(MemoryFault):
        mem.fill(SIZE - 2, 4, 0xFF)
    assert mem.read(0, SIZE) == bytes(SIZE)


def test_write_read_fill_round_trip() -> None:
    mem = GuestMemory(SIZE)
    mem.write(10, b"hello")
    mem.fill(20, 3, 0xAB)
    assert mem.read(10, 5) == b"hello"
    assert mem.read(19, 5) == b"\x00\xab\xab\xab\x00"
    mem.write(SIZE, b"")
    assert mem.read(SIZE, 0) == b""


def test_mmap_backing_shares_the_bytes() -> None:
    region = mmap.mmap(-1, 4096)
    mem = GuestMemory(backing=region)
    assert mem.size == 4096
    mem.write_u32(100, 0xDEADBEEF)
    mem.fill(200, 4, 7)
    assert region[100:104] == b"\xef\xbe\xad\xde"
    assert region[200:204] == b"\x07" * 4
    region[300:302] = b"\x34\x12"
    assert mem.read_u16(300) == 0x1234
    with pytest.raises(MemoryFault):
        mem.read_u64(4096 - 7)
    with pytest.raises(MemoryFault):
        mem.write(4095, b"ab")
    region.close()


def test_bytearray_backing_is_used_in_place() -> None:
    backing = bytearray(16)
    mem = GuestMemory(backing=backing)
    mem.write_u16(0, 0xBEEF)
    assert backing[:2] == b"\xef\xbe"


def test_memory_fault_says_where() -> None:
    mem = GuestMemory(SIZE)
    with pytest.raises(MemoryFault, match="0x40"):
        mem.read(SIZE, 1)


@pytest.mark.parametrize("kind", list(Barrier))
def test_barrier_is_a_no_op_here(kind: Barrier) -> None:
    mem = GuestMemory(SIZE)
    mem.write(0, b"x")
    mem.barrier(kind, "A")
    assert mem.read(0, 1) == b"x"
