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
from impl.spec import Feature, feature_mask
from impl.split_device import SplitDevice
from impl.split_driver import SplitDriver
from proofs.notification import device_notifies, driver_kicks
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


COUNTS = st.one_of(st.integers(0, 40), st.sampled_from([0xFFFF, 0x10000, 0x10001, 70000]))
FLAGS = st.one_of(st.sampled_from([0, 1, 2, 3, 0xFFFF]), st.integers(0, 0xFFFF))


@pytest.mark.spec(
    "SPLIT-DRV-018", "SPLIT-DRV-019", "SPLIT-DRV-020", "SPLIT-DRV-021", "SPLIT-DRV-022",
    "SPLIT-DRV-023",
)
@given(event_idx=st.booleans(), added=COUNTS, new=INDEX, event=INDEX, flags=FLAGS)
@example(event_idx=True, added=1, new=0, event=0xFFFF, flags=1)
@example(event_idx=True, added=1, new=0, event=0, flags=0)
@example(event_idx=True, added=0x10000, new=5, event=9, flags=0)
def test_driver_kick_decision_matches_encoding(
    event_idx: bool, added: int, new: int, event: int, flags: int
) -> None:
    mem, layout = _pair(4)
    features = feature_mask(Feature.EVENT_IDX) if event_idx else 0
    driver = SplitDriver(mem, layout, features)
    driver._num_added, driver.avail_idx = added, new
    mem.write_u16(layout.avail_event, event)
    mem.write_u16(layout.used_flags, flags)
    assert driver.kick_prepare() == driver_kicks(event_idx, added, new, event, flags)


@pytest.mark.spec(
    "SPLIT-DEV-007", "SPLIT-DEV-008", "SPLIT-DEV-009", "SPLIT-DEV-010", "SPLIT-DEV-011",
    "SPLIT-DEV-012",
)
@given(event_idx=st.booleans(), used=COUNTS, old=INDEX, event=INDEX, flags=FLAGS)
@example(event_idx=True, used=1, old=0xFFFF, event=0xFFFF, flags=1)
@example(event_idx=True, used=2, old=0xFFFF, event=1, flags=0)
@example(event_idx=True, used=0x10000, old=3, event=2, flags=0)
def test_device_notify_decision_matches_encoding(
    event_idx: bool, used: int, old: int, event: int, flags: int
) -> None:
    mem, layout = _pair(4)
    features = feature_mask(Feature.EVENT_IDX) if event_idx else 0
    device = SplitDevice(mem, layout, features)
    new = (old + used) & 0xFFFF
    device._unsignalled, device._signalled_used, device.next_used = used, old, new
    mem.write_u16(layout.used_event, event)
    mem.write_u16(layout.avail_flags, flags)
    expected = device_notifies(event_idx, used, old, new, event, flags)
    assert device.needs_notification() == expected
    assert device._signalled_used == new
