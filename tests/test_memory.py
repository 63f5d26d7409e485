"""GuestMemory: little-endian scalars, bounds on every access, no 64-bit wrap, mmap backing."""

from __future__ import annotations

import copy
import mmap
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impl.errors import MemoryFault
from impl.memory import Barrier, GuestMemory, HoldsAccessors, Reader, Writer

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


# --- structures and accessors ------------------------------------------------------------
PAIR = struct.Struct("<IH")


class _LoggingMemory(GuestMemory):
    """Redefines only the byte-range primitives, as the recording memories do."""

    __slots__ = ("log",)

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.log: list[tuple[str, int, int]] = []

    def read(self, addr: int, length: int) -> bytes:
        self.log.append(("read", addr, length))
        return super().read(addr, length)

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        self.log.append(("write", addr, len(data)))
        super().write(addr, data)


@pytest.mark.parametrize("memory", [GuestMemory, _LoggingMemory])
def test_structures_round_trip_little_endian(memory: type[GuestMemory]) -> None:
    mem = memory(SIZE)
    mem.write_struct(PAIR, 10, 0x01020304, 0x0506)
    assert mem.read(10, PAIR.size) == bytes([4, 3, 2, 1, 6, 5])
    assert mem.read_struct(PAIR, 10) == (0x01020304, 0x0506)
    write, read = mem.writer(PAIR, 0, SIZE), mem.reader(PAIR, 0, SIZE)
    write(20, 7, 8)
    assert read(20) == (7, 8)
    assert mem.read(20, PAIR.size) == bytes([7, 0, 0, 0, 8, 0])


@pytest.mark.parametrize("memory", [GuestMemory, _LoggingMemory])
@pytest.mark.parametrize("addr", [-1, SIZE - PAIR.size + 1, ADDR_LIMIT])
def test_structure_outside_the_region_faults(memory: type[GuestMemory], addr: int) -> None:
    mem = memory(SIZE)
    with pytest.raises(MemoryFault):
        mem.read_struct(PAIR, addr)
    with pytest.raises(MemoryFault):
        mem.write_struct(PAIR, addr, 1, 2)
    assert mem.read(0, SIZE) == bytes(SIZE)


def test_an_accessor_area_is_checked_when_it_is_made() -> None:
    mem = GuestMemory(SIZE)
    with pytest.raises(MemoryFault):
        mem.reader(PAIR, SIZE - 4, SIZE + 4)
    with pytest.raises(MemoryFault):
        mem.writer(PAIR, -8, 8)


def test_a_subclass_sees_every_structure_access_as_one_access() -> None:
    mem = _LoggingMemory(SIZE)
    mem.write_struct(PAIR, 0, 1, 2)
    mem.read_struct(PAIR, 0)
    mem.writer(PAIR, 0, SIZE)(8, 3, 4)
    mem.reader(PAIR, 0, SIZE)(8)
    assert mem.log == [("write", 0, 6), ("read", 0, 6), ("write", 8, 6), ("read", 8, 6)]


class _Holder(HoldsAccessors):
    def __init__(self, mem: GuestMemory) -> None:
        self.mem = mem
        self._bind_accessors()

    def _accessors(self) -> dict[str, Reader | Writer]:
        return {"put": self.mem.writer(PAIR, 0, SIZE)}


def test_a_copy_binds_its_accessors_to_its_own_memory() -> None:
    base, other = GuestMemory(SIZE), GuestMemory(SIZE)
    swapped = copy.deepcopy(_Holder(base), memo={id(base): other})
    swapped.put(0, 9, 9)  # type: ignore[attr-defined]
    assert other.read_struct(PAIR, 0) == (9, 9)
    assert base.read(0, SIZE) == bytes(SIZE)
    twin = copy.deepcopy(_Holder(base))
    twin.put(0, 5, 5)  # type: ignore[attr-defined]
    assert twin.mem.read_struct(PAIR, 0) == (5, 5)
    assert base.read(0, SIZE) == bytes(SIZE)
