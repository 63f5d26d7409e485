"""Tests of the tests for the packed ring: the same machine must catch each broken variant.

Each variant changes one thing in the reference packed driver or device the way real
bugs look: a wrap counter that never flips, a list's head exposed before its body, a
used descriptor's flags written before its id, a Buffer ID handed out twice, an event
position compared without its wrap bit or one off, a device that forgets to skip the
rest of a list. `PackedQueueMachine` must report a failure for each (its fixed program
or its Hypothesis hunt), and pass the reference pair under both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test
from packed_machine import PackedQueueMachine, packed_device, packed_driver, run_fixed_program
from support.verdict import fails

import impl.packed_device as device_module
import impl.packed_driver as driver_module
import impl.wrap_math as wrap_math
from impl.memory import Barrier
from impl.packed_chain import RingList
from impl.packed_device import PackedDevice
from impl.packed_driver import PackedDriver
from impl.packed_layout import PackedDescriptor
from impl.spec import PackedDescFlag
from impl.wrap_math import (
    advance,
    avail_bits,
    event_offset,
    gap,
    need_event,
    offset_of,
    used_bits,
    wrap_of,
)
from impl.wrap_math import below as _ult

HUNT = settings(
    max_examples=300,
    stateful_step_count=60,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)
"""Detection only, with a fixed seed, as tests/test_broken_variants.py hunts."""


def machine_fails(driver_factory: Callable[..., Any] = packed_driver,
                  device_factory: Callable[..., Any] = packed_device) -> bool:
    """Run the packed machine on a pair; True if it reports a failure.

    First the machine's fixed program (`run_fixed_program`: every list crosses the
    ring's end, both modes, sizes 1, 3 and 7), then the Hypothesis hunt.
    """
    return fixed_program_fails(driver_factory, device_factory) or hunt_fails(
        driver_factory, device_factory
    )


def hunt_fails(driver_factory: Callable[..., Any], device_factory: Callable[..., Any]) -> bool:
    """True if Hypothesis finds a failing program of the packed machine."""
    return fails(lambda: run_state_machine_as_test(
        lambda: PackedQueueMachine(driver_factory, device_factory), settings=HUNT
    ))


def fixed_program_fails(
    driver_factory: Callable[..., Any], device_factory: Callable[..., Any]
) -> bool:
    """True if the machine's fixed program fails on some size and feature set."""

    @settings(max_examples=1, database=None, deadline=None)
    @given(st.none())
    def program(nothing: None) -> None:
        for size in (1, 3, 7):
            for event_idx, indirect in ((False, False), (True, False), (True, True)):
                machine = PackedQueueMachine(driver_factory, device_factory)
                machine.setup(size=size, event_idx=event_idx, indirect=indirect, behind=1)
                run_fixed_program(machine, 4 * size + 6)

    return fails(program)


def driver_of(cls: type[PackedDriver]) -> Callable[..., PackedDriver]:
    def build(mem: Any, layout: Any, features: int, allocator: Any, start: int) -> PackedDriver:
        return cls(mem, layout, features, allocator=allocator, initial_offset=start)

    return build


def device_of(cls: type[PackedDevice]) -> Callable[..., PackedDevice]:
    def build(mem: Any, layout: Any, features: int, start: int) -> PackedDevice:
        return cls(mem, layout, features, initial_offset=start)

    return build


class HeadFirst(PackedDriver):
    """Writes each descriptor whole, head first: the head is exposed before its list."""

    def _expose(self, ident: int, elements: list[tuple[int, int, int]]) -> None:
        pos, last = self.next_avail, len(elements) - 1
        self.mem.barrier(Barrier.WRITE, "A")
        for i, (addr, length, element_flags) in enumerate(elements):
            flags = element_flags | avail_bits(wrap_of(pos, self.size))
            flags |= PackedDescFlag.NEXT if i < last else 0
            desc = PackedDescriptor(addr=addr, len=length, id=ident, flags=flags)
            self.mem.write(self.layout.desc_addr(offset_of(pos, self.size)), desc.pack())
            pos = advance(pos, 1, self.size)
        self.next_avail = pos
        self.num_free -= len(elements)
        self._num_added += len(elements)


class FlagsBeforeId(PackedDevice):
    """Marks a descriptor used before writing its id and length."""

    def _write_used(self, ring_list: RingList, written: int, descs: int | None = None) -> None:
        offset = offset_of(self.next_used, self.size)
        flags = used_bits(wrap_of(self.next_used, self.size))
        flags |= PackedDescFlag.WRITE if written else 0
        self.mem.write_u16(self.layout.desc_flags(offset), flags)
        self.mem.write_u16(self.layout.desc_id(offset), ring_list.id)
        self.mem.write_u32(self.layout.desc_len(offset), written)
        count = len(ring_list.descs) if descs is None else descs
        self.next_used = advance(self.next_used, count, self.size)
        self._unsignalled += count


class ReusesId(PackedDriver):
    """Puts every Buffer ID it hands out straight back on the free list."""

    def add_sgs(self, out: Any, in_: Any, token: Any) -> int:
        ident = super().add_sgs(out, in_, token)
        self._free_ids.append(ident)
        return ident


class IgnoresRingFull(PackedDriver):
    """Counts free ring descriptors wrongly: gives each list's descriptors back at once."""

    def _expose(self, ident: int, elements: list[PackedDescriptor]) -> None:
        super()._expose(ident, elements)
        self.num_free += len(elements) - 1


class NoSkip(PackedDevice):
    """Advances its used position by one descriptor, whatever the list's length."""

    def push_used(self, head: int, written: int) -> None:
        chain, _ = self.in_flight[head]
        self.in_flight[head] = (chain, 1)
        super().push_used(head, written)


def stuck_wrap(pos: Any, size: int) -> Any:
    """A wrap counter that never flips."""
    return 1


def wrapless_event(off_wrap: int, size: int) -> int:
    """An event position read without its wrap bit."""
    return event_offset(off_wrap)


def off_by_one_need_event(event: Any, new: Any, old: Any, size: int) -> Any:
    """need_event testing `new - event` instead of `new - event - 1`."""
    return _ult(gap(new, event, size), gap(new, old, size))


def side_with(**mutants: Callable[..., Any]) -> Callable[..., Any]:
    """`notify_decision` running with some `wrap_math` functions swapped for mutants."""

    def decision(*args: Any, **kwargs: Any) -> Any:
        saved = {name: getattr(wrap_math, name) for name in mutants}
        try:
            for name, mutant in mutants.items():
                setattr(wrap_math, name, mutant)
            return wrap_math.notify_decision(*args, **kwargs)
        finally:
            for name, original in saved.items():
                setattr(wrap_math, name, original)

    return decision


def test_reference_pair_passes_the_same_hunt() -> None:
    assert not fixed_program_fails(packed_driver, packed_device)
    assert not hunt_fails(packed_driver, packed_device)


def test_catches_driver_wrap_counter_not_flipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver_module, "wrap_of", stuck_wrap)
    assert machine_fails()


def test_catches_device_wrap_counter_not_flipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_module, "wrap_of", stuck_wrap)
    assert machine_fails()


@pytest.mark.spec("PACKED-DRV-011", "PACKED-DRV-003")
def test_catches_head_flags_written_first() -> None:
    assert machine_fails(driver_factory=driver_of(HeadFirst))


@pytest.mark.spec("PACKED-DEV-006")
def test_catches_used_flags_written_before_the_id() -> None:
    assert machine_fails(device_factory=device_of(FlagsBeforeId))


def test_catches_buffer_id_reuse() -> None:
    assert machine_fails(driver_factory=driver_of(ReusesId))


@pytest.mark.spec("PACKED-DRV-002", "PACKED-DRV-010")
def test_catches_driver_overwriting_outstanding_descriptors() -> None:
    assert machine_fails(driver_factory=driver_of(IgnoresRingFull))


def test_catches_device_not_skipping_the_list() -> None:
    assert machine_fails(device_factory=device_of(NoSkip))


def test_catches_device_event_compare_without_wrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_module, "notify_decision", side_with(decode_event=wrapless_event))
    assert machine_fails()


def test_catches_driver_event_compare_without_wrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver_module, "notify_decision", side_with(decode_event=wrapless_event))
    assert machine_fails()


def test_catches_off_by_one_in_device_need_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        device_module, "notify_decision", side_with(need_event=off_by_one_need_event)
    )
    assert machine_fails()


def test_catches_off_by_one_in_driver_need_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        driver_module, "notify_decision", side_with(need_event=off_by_one_need_event)
    )
    assert machine_fails()


def test_mutants_really_differ() -> None:
    """Each arithmetic mutant disagrees with the real function somewhere."""
    size = 5
    positions = range(2 * size)
    assert any(
        off_by_one_need_event(e, n, o, size) != need_event(e, n, o, size)
        for e in positions for n in positions for o in positions
    )
    assert any(stuck_wrap(p, size) != wrap_of(p, size) for p in positions)
