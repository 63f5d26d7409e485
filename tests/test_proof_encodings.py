"""The proofs' encodings of memory-reading `impl` code agree with that code.

Where an obligation cannot evaluate an `impl` function on Z3 terms (the function reads
guest memory), it uses an encoding kept beside the proof. Each test here runs the real
code and the encoding on the same concrete inputs (the edges of the 16-bit wrap plus
Hypothesis inputs) and asserts they decide the same, so a change to either side that
makes them drift fails here.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from impl.errors import AvailIndexDecrement, AvailIndexJump, DeviceError, UsedIndexJump
from impl.layout import SplitLayout
from impl.memory import GuestMemory
from impl.split_device import SplitDevice
from impl.split_driver import SplitDriver
from proofs.ring_index import device_accepts_avail, driver_accepts_used

SIZES = st.sampled_from([1, 2, 8, 256, 32768])
INDEX = st.one_of(st.integers(0, 0xFFFF), st.sampled_from([0, 1, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF]))


def _pair(size: int) -> tuple[GuestMemory, SplitLayout]:
    layout = SplitLayout.modern(size)
    return GuestMemory(layout.end), layout


@pytest.mark.spec("SPLIT-DRV-010", "INIT-DRV-007")
@given(size=SIZES, next_avail=INDEX, seen_ahead=st.integers(0, 32768), avail=INDEX)
@example(size=8, next_avail=0xFFFE, seen_ahead=0, avail=6)
@example(size=8, next_avail=0xFFFE, seen_ahead=3, avail=0)
@example(size=8, next_avail=0xFFFE, seen_ahead=0, avail=7)
def test_device_avail_check_matches_encoding(
    size: int, next_avail: int, seen_ahead: int, avail: int
) -> None:
    seen = (next_avail + min(seen_ahead, size)) & 0xFFFF
    mem, layout = _pair(size)
    device = SplitDevice(mem, layout)
    device.next_avail, device._avail_seen = next_avail, seen
    mem.write_u16(layout.avail_idx, avail)
    try:
        pending = device._pending()
        accepted = True
    except (AvailIndexJump, AvailIndexDecrement):
        accepted = False
    assert accepted == device_accepts_avail(avail, next_avail, seen, size)
    if accepted:
        assert pending == (avail - next_avail) % 65536


@given(size=SIZES, last_used=INDEX, outstanding=st.integers(0, 32768), used=INDEX)
@example(size=4, last_used=0xFFFF, outstanding=2, used=1)
@example(size=4, last_used=0xFFFF, outstanding=2, used=2)
def test_driver_used_check_matches_encoding(
    size: int, last_used: int, outstanding: int, used: int
) -> None:
    outstanding = min(outstanding, size)
    mem, layout = _pair(size)
    driver = SplitDriver(mem, layout)
    driver.last_used_idx, driver.outstanding = last_used, outstanding
    mem.write_u16(layout.used_idx, used)
    try:
        driver.get_buf()
        jumped = False
    except UsedIndexJump:
        jumped = True
    except DeviceError:  # a later check (id, len) failing means the index check passed
        jumped = False
    assert (not jumped) == driver_accepts_used(used, last_used, outstanding)
