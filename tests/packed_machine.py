"""The lockstep refinement machine on the packed ring: same rules, same invariants.

`PackedQueueMachine` is `SplitQueueMachine` with the ring-type hooks filled in for the
packed ring (§2.8): the packed layout and abstraction function, a model that counts
ring descriptors as positions modulo 2 * size, a bad list the packed device must hand
back used, and the packed bookkeeping check (every Buffer ID free or outstanding once,
every ring descriptor free or in one outstanding list). Sizes include 1, sizes that
are not powers of two, and 32768; runs start a few descriptors short of the ring's end
so that even the largest ring flips its wrap counters, and the small ones flip them
many times per run.

Each side writes through a view that also enforces the packed ownership rules at the
instruction that breaks them: the driver never changes a descriptor the device can
already see as available (PACKED-DRV-003, and so a list's head is made available last,
PACKED-DRV-011), nor one of a list it has not reclaimed (PACKED-DRV-002); the device
never changes a descriptor the driver can already see as used (PACKED-DEV-006); and
neither writes the other's event suppression structure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import initialize
from machines import DATA_BYTES, RING_BASE, SplitQueueMachine
from ownership import OwnedView, OwnershipViolation

from impl.alloc import GuestAllocator
from impl.errors import BufferOutOfBounds, ChainError
from impl.memory import GuestMemory
from impl.packed_device import PackedDevice
from impl.packed_driver import PackedDriver
from impl.packed_layout import PackedDescriptor, PackedLayout
from impl.packed_observer import abstract_packed
from impl.spec import DESC_SIZE, EVENT_SUPPRESS_SIZE, Feature, PackedDescFlag, feature_mask
from impl.wrap_math import advance, gap, is_available, is_used, offset_of, wrap_of
from model.queue import VirtqueueModel

PACKED_SIZES = (1, 2, 3, 5, 8, 13, 100, 32768)


def packed_driver(
    mem: GuestMemory, layout: PackedLayout, features: int, allocator: GuestAllocator, start: int
) -> PackedDriver:
    """The reference packed driver, as the machine builds it."""
    return PackedDriver(mem, layout, features, allocator=allocator, initial_offset=start)


def packed_device(
    mem: GuestMemory, layout: PackedLayout, features: int, start: int
) -> PackedDevice:
    """The reference packed device, as the machine builds it."""
    return PackedDevice(mem, layout, features, initial_offset=start)


class PackedView(OwnedView):
    """An `OwnedView` that also refuses writes into descriptors the other side can see.

    `visible()` returns the (address, length) ranges of the descriptors this side may
    no longer change: for the driver the lists available to the device, for the device
    the descriptors it marked used and the driver has not reclaimed.
    """

    __slots__ = ("visible",)

    def __init__(
        self, backing: bytearray, side: str, forbidden: list[tuple[str, int, int]],
        visible: Callable[[], list[tuple[int, int]]],
    ) -> None:
        super().__init__(backing, side, forbidden)
        self.visible = visible

    def _guard(self, addr: int, length: int) -> None:
        super()._guard(addr, length)
        if not self.armed:
            return
        for lo, span in self.visible():
            if addr < lo + span and addr + length > lo:
                raise OwnershipViolation(
                    f"the {self.side} changed a descriptor at {lo:#x} the other side can see"
                )


class PackedQueueMachine(SplitQueueMachine):
    """Lockstep refinement of a packed-ring driver/device pair against the same model."""

    def __init__(
        self,
        driver_factory: Callable[..., Any] = packed_driver,
        device_factory: Callable[..., Any] = packed_device,
    ) -> None:
        super().__init__(driver_factory, device_factory)
        self.flips_before_avail = self.flips_before_used = 0

    @initialize(
        size=st.sampled_from(PACKED_SIZES),
        event_idx=st.booleans(),
        indirect=st.booleans(),
        behind=st.integers(min_value=1, max_value=6),
    )
    def setup(  # type: ignore[override]
        self, size: int, event_idx: bool, indirect: bool, behind: int
    ) -> None:
        """Lay out a packed queue whose positions start `behind` short of the ring's end."""
        bits = [Feature.EVENT_IDX] * event_idx + [Feature.INDIRECT_DESC] * indirect
        self.features = feature_mask(*bits)
        self.event_idx = event_idx
        self.start = (size - behind) % size
        self.layout = PackedLayout.modern(size, RING_BASE)
        data_start = self.layout.end + 0x1000
        self.backing = bytearray(data_start + DATA_BYTES)
        self.mem = GuestMemory(backing=self.backing)
        self.allocator = GuestAllocator(data_start, len(self.backing))
        note(f"packed size={size} event_idx={event_idx} indirect={indirect} start={self.start}")
        self._build()

    # --- the packed ring's hooks ------------------------------------------------------
    def _views(self) -> tuple[GuestMemory, GuestMemory]:
        lay = self.layout
        driver_area = ("driver event suppression", lay.driver, lay.driver + EVENT_SUPPRESS_SIZE)
        device_area = ("device event suppression", lay.device, lay.device + EVENT_SUPPRESS_SIZE)
        return (
            PackedView(self.backing, "driver", [device_area], self._driver_locked),
            PackedView(self.backing, "device", [driver_area], self._used_ranges),
        )

    def _new_model(self) -> VirtqueueModel:
        """Positions modulo 2 * size; a reset starts a new model, the flips run on."""
        if hasattr(self, "model"):
            self.flips_before_avail = self.avail_laps
            self.flips_before_used = self.used_laps
        size = self.layout.size
        return VirtqueueModel(size, self.event_idx, self.start, positions=2 * size)

    def _footprint(self) -> int:
        """Ring descriptors of the list just made available, counted from memory."""
        pos = self.model.published % (2 * self.layout.size)
        count = 1
        while self._ring_desc(pos).flags & PackedDescFlag.NEXT and count < self.layout.size:
            pos, count = advance(pos, 1, self.layout.size), count + 1
        return count

    def _laps(self) -> tuple[int, int]:
        """Wrap counter flips of each side so far in this run (a reset restarts the ring)."""
        size = self.layout.size
        return (
            self.flips_before_avail + self.model.published // size,
            self.flips_before_used + self.model.used_count // size,
        )

    def _abstract(self) -> Any:
        return abstract_packed(
            self.mem, self.layout, self.driver, self.device, event_idx=self.event_idx
        )

    def _break_head(self, head: int) -> tuple[type[ChainError], Callable[[], None]]:
        """Point the (single-descriptor) list at the device's position outside memory."""
        offset = offset_of(self.model.taken % (2 * self.layout.size), self.layout.size)
        addr = self.layout.desc_addr(offset)
        raw = self.mem.read(addr, DESC_SIZE)
        desc = PackedDescriptor.unpack(raw)
        assert desc.id == head, "the bad list is the next one the device reads"
        self.mem.write(addr, PackedDescriptor(
            addr=self.mem.size, len=desc.len, id=desc.id, flags=desc.flags
        ).pack())
        # the device overwrites id, len and flags with its used descriptor: undo addr only
        return BufferOutOfBounds, lambda: self.mem.write(addr, raw[:8])

    def _check_whole(self) -> None:
        """Every Buffer ID is free or outstanding exactly once; ring descriptors add up."""
        driver = self.driver
        if not isinstance(driver, PackedDriver):
            return
        live = set(self.heads.values())
        assert all(driver.token_of(i) == t for t, i in self.heads.items())
        free = driver.free_ids
        assert len(free) == len(set(free)), "a Buffer ID is twice in the free list"
        assert not live & set(free), "an outstanding Buffer ID is also free"
        assert len(free) + len(live) == self.layout.size, "a Buffer ID is lost"
        in_lists = sum(driver.descs_of(i) for i in live)
        assert driver.num_free + in_lists == self.layout.size, "ring descriptors are lost"
        assert gap(driver.next_avail, driver.last_used_idx, self.layout.size) == in_lists

    # --- what each side can already see ------------------------------------------------
    def _ring_desc(self, pos: int) -> PackedDescriptor:
        offset = offset_of(pos, self.layout.size)
        return PackedDescriptor.unpack(self.mem.read(self.layout.desc_addr(offset), DESC_SIZE))

    def _driver_locked(self) -> list[tuple[int, int]]:
        """Descriptors the driver may not change: what the device can see as available
        (PACKED-DRV-003) and every descriptor of a list not yet reclaimed, by the model's
        positions (PACKED-DRV-002: only a USED mark hands a descriptor back)."""
        size = self.layout.size
        pos = self.model.reclaimed % (2 * size)
        owed = [
            (self.layout.desc_addr(offset_of(advance(pos, k, size), size)), DESC_SIZE)
            for k in range(min(self.model.published - self.model.reclaimed, size))
        ]
        return self._available_ranges() + owed

    def _available_ranges(self) -> list[tuple[int, int]]:
        """Descriptors of every list the device can see as available from its position."""
        size, ranges = self.layout.size, []
        pos, seen = self.device.next_avail, 0
        while seen < size and is_available(self._ring_desc(pos).flags, wrap_of(pos, size)):
            while True:
                ranges.append((self.layout.desc_addr(offset_of(pos, size)), DESC_SIZE))
                more = self._ring_desc(pos).flags & PackedDescFlag.NEXT
                pos, seen = advance(pos, 1, size), seen + 1
                if not more or seen >= size:
                    break
        return ranges

    def _used_ranges(self) -> list[tuple[int, int]]:
        """Used descriptors the driver can see from its position and has not reclaimed."""
        size, ranges = self.layout.size, []
        pos = self.driver.last_used_idx
        limit = gap(self.device.next_avail, pos, size)
        seen = 0
        while seen < limit and is_used(self._ring_desc(pos).flags, wrap_of(pos, size)):
            ranges.append((self.layout.desc_addr(offset_of(pos, size)), DESC_SIZE))
            descs = self.driver.descs_of(self._ring_desc(pos).id)
            if not descs:
                break
            pos, seen = advance(pos, descs, size), seen + descs
        return ranges


def run_fixed_program(machine: PackedQueueMachine, steps: int) -> None:
    """A fixed program of the machine's own rules that makes every list cross the ring.

    Each step adds a list of one to three descriptors, kicks, pops, completes one held
    buffer (with the lost-interrupt check), re-arms callbacks (plain or delayed, in
    turn) and reclaims one buffer, with the machine's invariants after each step. Call
    `machine.setup(...)` first; run it under a Hypothesis test (the rules `note()`).
    """
    for step in range(steps):
        parts = 1 + step % min(3, machine.layout.size)
        machine.add([b"d" * (step % 5 + 1)] * (parts - 1), [8])
        machine.kick_prepare()
        machine.pop(count=2)
        if machine.held:
            machine.no_lost_interrupt()
        machine.enable_cb(delayed=bool(step % 2))
        machine.get_buf()
        machine.refines_model()
        machine.ring_is_whole()
