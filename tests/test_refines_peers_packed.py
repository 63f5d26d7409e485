"""Linux's packed-ring driver against the model and the reference packed device.

The packed lockstep machine of tests/packed_machine.py runs with Linux 6.1's packed
driver (`virtio_ring.c`, through tests/peers/linux_packed.py) opposite the reference
`PackedDevice`, once for each EVENT_IDX x INDIRECT_DESC pair, with sizes from 1 to 32768
and both wrap counters flipping. Linux allocates the ring itself; the shim serves the
allocation from the machine's guest memory and the machine builds the reference device
on the three addresses Linux got. After every step memory decodes to the model's view and
every decision equals the model's; each Linux call is checked not to write the device's
event suppression area nor a descriptor it may no longer change (PACKED-DRV-002/003).

Linux's choices that the reference does not share are modelled, not hidden
(docs/oracle.md, "Linux's packed driver"), in `LinuxPackedModel`:
- its Driver Event Suppression flags in event-index mode: ENABLE from the start (the ring
  is zeroed and nothing else is written), DISABLE on `disable_cb`, DESC only when
  callbacks are re-enabled after a `disable_cb`. The event position counts only in DESC
  mode (§2.8.14), so it is compared only then, and the flags always;
- the Device Event Suppression area starts zeroed (ENABLE), as Linux allocates it; the
  reference device writes DESC there when it first enables notifications;
- `enable_cb_delayed` returns False as soon as one used buffer waits (the split ring's
  Linux and the reference wait for 3/4 of the outstanding ones);
- after more than `size` descriptors made available since its last kick decision, Linux
  may not kick where the model does (a disagreement, recorded in
  tests/test_peer_bytes_packed.py); the machine accepts that silence then, and only then.

Without the peer (VIRTIO_ORACLE_NO_PEERS=1) the test is skipped with that reason; if the
peer cannot be built it fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule, run_state_machine_as_test
from machines import DATA_BYTES, RING_BASE
from packed_machine import PACKED_SIZES, PackedQueueMachine, packed_device, run_fixed_program
from peers.linux import require_library
from peers.linux_packed import PAGE, LinuxPackedDriver, linux_packed_driver, placement

from impl.alloc import GuestAllocator
from impl.memory import GuestMemory
from impl.packed_layout import PackedLayout
from impl.spec import EVENT_SUPPRESS_SIZE, Feature, PackedEventFlag, feature_mask
from impl.wrap_math import gap
from model.queue import QueueView, VirtqueueModel

ENABLE, DISABLE, DESC = PackedEventFlag.ENABLE, PackedEventFlag.DISABLE, PackedEventFlag.DESC
WANTED: dict[int, bool] = {ENABLE: True, DISABLE: False}
"""What a flags word other than DESC asks for."""


@dataclass
class LinuxPackedModel(VirtqueueModel):
    """The model with Linux's packed notification policy: the flags of both areas.

    `driver_flags` is what Linux keeps in the Driver Event Suppression flags,
    `device_flags` what the Device Event Suppression area holds (zeroed by Linux, DESC
    once the reference device enables notifications in event-index mode). A position
    counts only while its area's flags say DESC (§2.8.14).
    """

    driver_flags: PackedEventFlag = ENABLE
    device_flags: PackedEventFlag = ENABLE

    def disable_cb(self) -> None:
        """Linux writes DISABLE, in either mode."""
        super().disable_cb()
        self.driver_flags = DISABLE

    def enable_cb(self) -> bool:
        """As the model; the flags leave DISABLE for DESC (event index) or ENABLE."""
        answer = super().enable_cb()
        self._rearm()
        return answer

    def enable_cb_delayed(self) -> bool:
        """As the model, but False as soon as one used buffer waits (Linux's re-check)."""
        super().enable_cb_delayed()
        self._rearm()
        return not self.used

    def _rearm(self) -> None:
        if self.driver_flags == DISABLE:
            self.driver_flags = DESC if self.event_idx else ENABLE

    def needs_notification(self) -> bool:
        """The model's decision in DESC mode; otherwise what ENABLE/DISABLE say."""
        want = super().needs_notification()
        return want if self.driver_flags == DESC else WANTED[self.driver_flags]

    def kick_prepare(self) -> bool:
        """The model's decision, except that a zeroed device area (ENABLE) wants every kick."""
        want = super().kick_prepare()
        return want if not self.event_idx or self.device_flags == DESC else True

    def enable_notification(self) -> bool:
        """As the model; in event-index mode the device area now says DESC."""
        answer = super().enable_notification()
        if self.event_idx:
            self.device_flags = DESC
        return answer

    def view(self) -> QueueView:
        """The model's view; in event-index mode a position not in DESC mode becomes its flag."""
        view = super().view()
        if not self.event_idx:
            return view
        if self.driver_flags != DESC:
            view = replace(view, used_event=None, interrupts_wanted=WANTED[self.driver_flags])
        if self.device_flags != DESC:
            view = replace(view, avail_event=None, kicks_wanted=WANTED[self.device_flags])
        return view


class GuardedDriver:
    """Linux's driver, each call checked not to change what it may no longer write.

    `locked()` gives the (address, length) ranges fixed for the driver at the moment of
    the call: the device's event suppression area, the descriptors the device can see as
    available and those of lists not yet reclaimed. C writes directly, so the check is a
    comparison of those bytes before and after.
    """

    def __init__(self, driver: LinuxPackedDriver, backing: bytearray,
                 locked: Callable[[], list[tuple[int, int]]]) -> None:
        self._driver, self._backing, self._locked = driver, backing, locked

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._driver, name)
        if not callable(attr):
            return attr

        def guarded(*args: Any, **kwargs: Any) -> Any:
            ranges = self._locked()
            before = [bytes(self._backing[lo : lo + n]) for lo, n in ranges]
            try:
                return attr(*args, **kwargs)
            finally:
                for (lo, n), old in zip(ranges, before, strict=True):
                    assert self._backing[lo : lo + n] == old, f"{name} wrote at {lo:#x}"

        return guarded


class LinuxPackedMachine(PackedQueueMachine):
    """The packed machine with Linux's driver, its ring where Linux allocated it."""

    def __init__(self) -> None:
        super().__init__(linux_packed_driver, packed_device)
        self.long_batches = 0

    @initialize(
        size=st.sampled_from(PACKED_SIZES),
        event_idx=st.booleans(),
        indirect=st.booleans(),
        behind=st.integers(min_value=1, max_value=6),
    )
    def setup(self, size: int, event_idx: bool, indirect: bool, behind: int) -> None:
        """As the packed machine, but the layout is where Linux puts a ring of `size`."""
        bits = [Feature.EVENT_IDX] * event_idx + [Feature.INDIRECT_DESC] * indirect
        self.features = feature_mask(*bits)
        self.event_idx = event_idx
        self.start = (size - behind) % size
        self.layout = placement(size, RING_BASE)
        data_start = self.layout.end + 0x1000
        self.backing = bytearray(data_start + DATA_BYTES)
        self.mem = GuestMemory(backing=self.backing)
        self.allocator = GuestAllocator(data_start, len(self.backing))
        note(f"Linux packed size={size} event_idx={event_idx} indirect={indirect} "
             f"start={self.start} layout={self.layout}")
        self._build()

    def _build(self) -> None:
        super()._build()
        linux = self.driver
        assert isinstance(linux, LinuxPackedDriver)
        self.linux = linux
        self.driver = GuardedDriver(linux, self.backing, self._fixed_for_driver)

    @precondition(lambda self: self.ready)
    @rule()
    def kick_prepare(self) -> None:
        """As the machine's, but after a batch longer than the ring (event-index mode,
        the device's area in DESC) Linux may stay silent where the model kicks."""
        model = self.model
        assert isinstance(model, LinuxPackedModel)
        batch = model.published - model.kicked_at
        if not (self.event_idx and model.device_flags == DESC and batch > self.layout.size):
            super().kick_prepare()
            return
        got, want = self.driver.kick_prepare(), model.kick_prepare()
        note(f"kick_prepare after {batch} descriptors -> {got} (the model: {want})")
        assert got == want or (want and not got), "Linux kicked where no kick was due"
        self.long_batches += 1

    def _fixed_for_driver(self) -> list[tuple[int, int]]:
        device_area = (self.layout.device, EVENT_SUPPRESS_SIZE)
        return [device_area, *self._driver_locked()]

    def _new_model(self) -> VirtqueueModel:
        base = super()._new_model()
        return LinuxPackedModel(base.size, base.event_idx, base.initial, positions=base.positions)

    def _abstract(self) -> Any:
        """The abstraction, a position shown only while its area's flags say DESC."""
        seen: QueueView = super()._abstract()
        if not self.event_idx:
            return seen
        driver_flags = self.mem.read_u16(self.layout.driver_flags)
        device_flags = self.mem.read_u16(self.layout.device_flags)
        assert driver_flags == self.linux.event_flags, "Linux's flags shadow is not in memory"
        if driver_flags != DESC:
            seen = replace(seen, used_event=None, interrupts_wanted=WANTED[driver_flags])
        if device_flags != DESC:
            seen = replace(seen, avail_event=None, kicks_wanted=WANTED[device_flags])
        return seen

    def _check_whole(self) -> None:
        """Linux takes one Buffer ID per ring descriptor: free ids and lists' ids partition."""
        linux, size = self.linux, self.layout.size
        live = set(self.heads.values())
        assert all(linux.token_of(i) == t for t, i in self.heads.items())
        owner: dict[int, str] = {}
        for ident in linux.free_ids:
            assert ident not in owner, f"id {ident} is twice in the free list"
            owner[ident] = "free"
        for head in sorted(live):
            for ident in linux.ids_of(head):
                assert ident not in owner, f"id {ident} is in two places"
                owner[ident] = f"list {head}"
        assert len(owner) == size, f"{size - len(owner)} ids are lost"
        in_lists = sum(linux.descs_of(i) for i in live)
        assert linux.num_free + in_lists == size, "ring descriptors are lost"
        assert gap(linux.next_avail, linux.last_used_idx, size) == in_lists


def fixed_features(event_idx: bool, indirect: bool) -> type[LinuxPackedMachine]:
    """The Linux packed machine with EVENT_IDX and INDIRECT_DESC fixed."""

    class Fixed(LinuxPackedMachine):
        @initialize(
            size=st.sampled_from(PACKED_SIZES),
            behind=st.integers(min_value=1, max_value=6),
        )
        def setup(self, size: int, behind: int) -> None:  # type: ignore[override]
            """Lay out the queue with this class's feature pair."""
            LinuxPackedMachine.setup(self, size=size, event_idx=event_idx, indirect=indirect,
                                     behind=behind)

    return Fixed


FEATURE_PAIRS = [(e, i) for e in (False, True) for i in (False, True)]
MIN_EXAMPLES = 10
REFINEMENT_IDS = (
    "PACKED-DRV-002", "PACKED-DRV-003", "PACKED-DRV-008", "PACKED-DRV-010",
    "PACKED-DRV-011", "PACKED-DRV-012", "PACKED-DRV-015",
)


def _need_peer() -> None:
    if require_library() is None:
        pytest.skip("VIRTIO_ORACLE_NO_PEERS=1: Linux packed driver not run")


@pytest.mark.spec(*REFINEMENT_IDS)
@pytest.mark.parametrize(("event_idx", "indirect"), FEATURE_PAIRS,
                         ids=[f"event_idx={e}-indirect={i}" for e, i in FEATURE_PAIRS])
def test_linux_packed_driver_refines_the_model(event_idx: bool, indirect: bool) -> None:
    _need_peer()
    machine_class = fixed_features(event_idx, indirect)
    machines: list[LinuxPackedMachine] = []

    def build() -> Any:
        machine = machine_class()
        machines.append(machine)
        return machine

    share = max(MIN_EXAMPLES, settings.default.max_examples // len(FEATURE_PAIRS))
    run_state_machine_as_test(build, settings=settings(settings.default, max_examples=share))
    assert any(m.crossed_avail for m in machines), "no run flipped the driver's wrap counter"
    assert any(m.crossed_used for m in machines), "no run flipped the device's wrap counter"


@pytest.mark.spec("PACKED-DRV-008", "PACKED-DRV-011")
@pytest.mark.parametrize(("size", "steps", "flips"), [(1, 10, 4), (3, 18, 4), (7, 34, 4),
                                                     (32768, 6, 1)])
@pytest.mark.parametrize(("event_idx", "indirect"), [(False, False), (True, True), (True, False)])
@settings(max_examples=1, database=None)
@given(st.none())
def test_linux_packed_driver_across_many_wrap_flips(
    size: int, steps: int, flips: int, event_idx: bool, indirect: bool, nothing: None
) -> None:
    """The packed machine's fixed program, Linux's driver making every list cross the ring."""
    _need_peer()
    machine = LinuxPackedMachine()
    machine.setup(size=size, event_idx=event_idx, indirect=indirect, behind=1)
    run_fixed_program(machine, steps)
    assert machine.avail_laps >= flips and machine.used_laps >= flips


def test_linux_places_the_ring_in_the_region_it_was_given() -> None:
    """The allocation hook: three page-aligned parts in order, and a full region refused."""
    _need_peer()
    for size in (1, 5, 256, 32768):
        layout = placement(size, RING_BASE)
        assert isinstance(layout, PackedLayout) and layout.desc == RING_BASE
        assert layout.driver >= layout.desc + 16 * size and layout.device > layout.driver
        assert all(addr % PAGE == 0 for addr in (layout.desc, layout.driver, layout.device))
    mem = GuestMemory(backing=bytearray(0x10000))
    with pytest.raises(RuntimeError):
        LinuxPackedDriver(mem, (RING_BASE, RING_BASE + PAGE), 8)
