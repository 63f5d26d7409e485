"""GuestAllocator: aligned, disjoint ranges inside its window; frees coalesce; None when full."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impl.alloc import GuestAllocator

LO, HI = 0x1000, 0x2000


def test_first_fit_and_alignment() -> None:
    alloc = GuestAllocator(LO + 1, HI)
    first = alloc.alloc(10, 16)
    second = alloc.alloc(10, 16)
    assert (first, second) == (LO + 16, LO + 32)
    assert alloc.allocated == {LO + 16: 10, LO + 32: 10}


def test_exhaustion_is_none_and_free_gives_room_back() -> None:
    alloc = GuestAllocator(LO, HI)
    whole = alloc.alloc(HI - LO)
    assert whole == LO
    assert alloc.alloc(1) is None
    alloc.free(LO)
    assert alloc.alloc(HI - LO) == LO


def test_neighbours_coalesce() -> None:
    alloc = GuestAllocator(LO, HI)
    parts = [alloc.alloc(0x400) for _ in range(4)]
    assert parts == [LO, LO + 0x400, LO + 0x800, LO + 0xC00]
    for addr in (LO + 0x400, LO + 0xC00, LO, LO + 0x800):  # out of order
        alloc.free(addr)
    assert alloc.allocated == {}
    assert alloc.alloc(HI - LO) == LO


def test_zero_length_takes_one_byte() -> None:
    alloc = GuestAllocator(LO, LO + 2)
    assert alloc.alloc(0) == LO
    assert alloc.alloc(0) == LO + 1
    assert alloc.alloc(0) is None


def test_double_free_and_unknown_free_raise() -> None:
    alloc = GuestAllocator(LO, HI)
    addr = alloc.alloc(8)
    assert addr is not None
    alloc.free(addr)
    with pytest.raises(KeyError):
        alloc.free(addr)
    with pytest.raises(KeyError):
        alloc.free(LO + 1)


def test_empty_window() -> None:
    assert GuestAllocator(HI, LO).alloc(1) is None
    assert GuestAllocator(LO, LO).alloc(1) is None


ops = st.lists(
    st.one_of(
        st.tuples(st.just("alloc"), st.integers(0, 0x600), st.sampled_from([1, 2, 8, 16, 4096])),
        st.tuples(st.just("free"), st.integers(0, 31), st.just(0)),
    ),
    max_size=40,
)


@given(ops)
def test_live_ranges_stay_disjoint_aligned_and_inside(program: list[tuple[str, int, int]]) -> None:
    alloc = GuestAllocator(LO, HI)
    live: dict[int, int] = {}
    for op, arg, align in program:
        if op == "alloc":
            addr = alloc.alloc(arg, align)
            if addr is None:
                continue
            assert addr % align == 0 and LO <= addr and addr + max(arg, 1) <= HI
            assert all(addr + max(arg, 1) <= a or a + n <= addr for a, n in live.items())
            live[addr] = max(arg, 1)
        elif live:
            addr = sorted(live)[arg % len(live)]
            alloc.free(addr)
            del live[addr]
        assert alloc.allocated == live
    for addr in list(live):
        alloc.free(addr)
    assert alloc.alloc(HI - LO) == LO, "freed ranges did not coalesce back into the window"
