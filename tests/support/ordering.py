"""The standard ordering scenarios: one driver operation against one device operation.

Queue size 2, two buffers in flight (other shapes through `Geometry`), on either ring
type (the geometry's `ring`: split §2.7 or packed §2.8, `support.ring_types`), in both
notification modes (flags and VIRTIO_F_EVENT_IDX) and both directions:

* `kick` (available buffers; split §2.7.13, §2.7.10; packed §2.8.21, §2.8.10): the
  device is awake with kicks suppressed; it drains the ring, re-enables kicks,
  re-checks, and goes idle. The driver concurrently writes two buffers' data, makes
  each available and asks whether to kick after each. On the packed ring the first
  round moved both positions to offset 1, so the second buffer goes to offset 0 under
  the flipped wrap counter: the race crosses the wrap, and the device overwrites the
  very descriptors the driver is still writing (the explorer's hand-over mode checks
  that at every write).
* `interrupt` (used buffers; split §2.7.14, §2.7.7; packed §2.8.22, §2.8.10): the
  driver is polling with interrupts suppressed; it reclaims, re-enables interrupts,
  re-checks, and goes idle. The device concurrently writes two buffers' data, returns
  each used and asks whether to interrupt after each.
* `polling` (event index; split §2.7.7, packed §2.8.10): callbacks stay on; the
  driver's interrupt handler reclaims until `get_buf` finds nothing while the device
  returns the last buffer.

A first round, run before the concurrent part, moves both positions to 1 and leaves
the other side's event field stale (split: avail_event / used_event at 0; packed: the
event structures naming position 0): so in event-index mode too, only the re-enable
write can make the other side notify, and the race is live.

`check` runs after each complete execution, once every buffered write has landed:
no side raised; every buffer the consumer took holds exactly what the producer wrote
(no buffer seen before its descriptors and data are complete, none lost or taken
twice: the consumer's log must replay on the model in order); no lost wake-up (work
left in the ring while the consumer went idle, and none of the producer's
notification decisions made after publishing that work said to notify: a
notification is latched until the consumer looks again, as an eventfd or a pending
interrupt is); and the refinement: the memory decodes (`RingType.view`) to the view
of the model replayed with the operations each side made.

Each side script marks the points between its operations (`_mark`); with
`Scenario.explore(..., between=True)` the refinement is also checked at every
explored state where both sides are at such a point (`_between_kick`,
`_between_used`; docs/ordering.md, "Refinement between operations").
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from support.geometry import LENGTH, STANDARD, Geometry

from impl.errors import NotConforming
from impl.interleave import BetweenCheck, Explorer, Finished, Report, Side
from impl.memory import GuestMemory
from impl.weak_memory import MemoryModel
from model.queue import Buffer, VirtqueueModel

Script = Callable[[Any, GuestMemory], Any]
"""One side's part of the race: (its driver or device, the memory) -> what it saw."""


def _mark(mem: GuestMemory, *state: Any) -> None:
    """The side is between operations: let the explorer snapshot `state` (a copy, the
    memory kept) when it checks those points (`replay.ScriptedMemory.mark`)."""
    mark = getattr(mem, "mark", None)
    if mark is not None:
        mark(lambda: copy.deepcopy(state, memo={id(mem): mem}))


def _program(template: Any, base: GuestMemory, script: Script) -> Any:
    """A side program: a fresh copy of the side (its memory swapped in), then its script."""

    def program(mem: GuestMemory) -> Any:
        side = copy.deepcopy(template, memo={id(base): mem})
        return script(side, mem)

    return program


@dataclass(frozen=True)
class Scenario:
    """One standard scenario, ready to explore: the sides, the memory, the check."""

    name: str
    sides: tuple[Side, Side]
    memory: bytes
    check: Callable[[Finished], str | None]
    names: Callable[[int], str] = hex
    handover: bool = False
    between: BetweenCheck | None = None

    def explore(
        self,
        model: MemoryModel,
        dropped: frozenset[tuple[str, ...]] = frozenset(),
        *,
        stop_at_failure: bool = True,
        between: bool = False,
    ) -> Report:
        """Explore every interleaving under `model` with the barriers in `dropped` removed
        (with `between`, also check the refinement where both sides are between
        operations)."""
        explorer = self.explorer(model, dropped, between=between)
        return explorer.explore(stop_at_failure=stop_at_failure)

    def explorer(
        self,
        model: MemoryModel,
        dropped: frozenset[tuple[str, ...]] = frozenset(),
        *,
        between: bool = False,
    ) -> Explorer:
        """An explorer of this scenario (for a full exploration or sampled schedules)."""
        return Explorer(
            self.sides,
            self.memory,
            model,
            self.check,
            dropped=dropped,
            names=self.names,
            handover=self.handover,
            between=self.between if between else None,
        )


@dataclass
class _Pair:
    """A driver, a device and the model beside them, driven in lockstep before the race."""

    geometry: Geometry
    event_idx: bool
    base: GuestMemory
    driver: Any
    device: Any
    model: VirtqueueModel

    def add(self, i: int, *, writable: bool) -> None:
        """The driver exposes buffer `i` (an out-buffer's data written first)."""
        g = self.geometry
        segments = g.parts(i)
        if writable:
            self.driver.add_inbuf(segments, g.token(i))
            room = tuple(seg.len for seg in segments)
            self.model.add(g.token(i), Buffer((), room), g.slots(i))
        else:
            self.base.write(g.data(i), g.payload(i))
            self.driver.add_outbuf(segments, g.token(i))
            self.model.add(g.token(i), Buffer(g.pieces(i), ()), g.slots(i))

    def kick(self) -> None:
        """The driver decides whether to kick."""
        self.driver.kick_prepare()
        self.model.kick_prepare()

    def pop(self) -> int:
        """The device takes the next buffer; returns its head."""
        chain = self.device.pop()
        assert chain is not None
        self.model.pop()
        return int(chain.head)

    def complete(self, i: int, head: int, *, writable: bool) -> None:
        """The device returns buffer `i` (writing its data if writable), then decides."""
        g = self.geometry
        if writable:
            g.ring.held(self.device, head).write_payload(self.base, g.payload(i))
        self.device.push_used(head, LENGTH if writable else 0)
        self.model.push_used(g.token(i), g.payload(i) if writable else b"")
        self.device.needs_notification()
        self.model.needs_notification()

    def first_round(self, *, writable: bool) -> None:
        """Buffer 0 made available, taken and returned used (not yet reclaimed)."""
        self.add(0, writable=writable)
        self.kick()
        self.complete(0, self.pop(), writable=writable)

    def reclaim(self) -> None:
        """The driver takes back the next used buffer."""
        self.driver.get_buf()
        self.model.get_buf()

    def in_flight(self) -> list[tuple[int, int]]:
        """The driver exposes buffers 1..n and the device takes them all: (i, head) pairs."""
        numbers = range(1, self.geometry.buffers + 1)
        for i in numbers:
            self.add(i, writable=True)
        self.kick()
        return [(i, self.pop()) for i in numbers]

    def scenario(
        self,
        name: str,
        driver_script: Script,
        device_script: Script,
        check: Callable[[Finished], str | None],
        between: BetweenCheck,
    ) -> Scenario:
        """The race from here: each side a fresh copy of its current state."""
        g = self.geometry
        sides = (
            Side("driver", _program(self.driver, self.base, driver_script)),
            Side("device", _program(self.device, self.base, device_script)),
        )
        mode = "event_idx" if self.event_idx else "flags"
        shape = "" if g.is_standard else f" ({g.shape})"
        memory = self.base.read(0, g.memory_size)
        return Scenario(
            f"{g.ring.prefix}{name}/{mode}{shape}",
            sides,
            memory,
            lambda done: _raised(done) or check(done),
            g.ring.names(g),
            handover=g.ring.handover,
            between=between,
        )


def _pair(
    event_idx: bool, g: Geometry, driver_cls: type[Any] | None, device_cls: type[Any] | None
) -> _Pair:
    """The driver (of `driver_cls`, by default the ring's reference), device and model."""
    ring, features = g.ring, g.features(event_idx)
    base = GuestMemory(g.memory_size)
    allocator = g.allocator()
    extra = {"allocator": allocator} if allocator is not None else {}
    driver = ring.build(driver_cls or ring.reference_driver, base, g, features, **extra)
    device = ring.build(device_cls or ring.reference_device, base, g, features)
    return _Pair(g, event_idx, base, driver, device, ring.model(g, event_idx))


def _raised(done: Finished) -> str | None:
    for side, name in enumerate(("driver", "device")):
        error = done.error(side)
        if error is not None:
            return f"the {name} raised {type(error).__name__}: {error}"
    return None


def _refines(
    memory: GuestMemory,
    pair: _Pair,
    driver: Any,
    device: Any,
    model: VirtqueueModel | str,
    when: str = "at quiescence",
) -> str | None:
    """`model` (or what went wrong replaying it) against the memory's decoded view."""
    if isinstance(model, str):
        return model
    g = pair.geometry
    try:
        view = g.ring.view(memory, g, driver, device, event_idx=model.event_idx)
    except NotConforming as error:
        return f"refinement broken {when}: memory does not decode ({error})"
    expected = model.view()
    if view == expected:
        return None
    return f"refinement broken {when}: memory decodes to {view}, the model says {expected}"


# --- kick: available buffers, the device re-enables kicks -----------------------------
def _publish_and_kick(g: Geometry, drv: Any, mem: GuestMemory) -> tuple[Any, list[bool]]:
    """The driver writes, makes available and asks whether to kick, buffer after buffer."""
    kicks: list[bool] = []
    _mark(mem, drv, kicks)
    for i in range(1, g.buffers + 1):
        mem.write(g.data(i), g.payload(i))
        drv.add_outbuf(g.parts(i), g.token(i))
        kicks.append(drv.kick_prepare())
        _mark(mem, drv, kicks)
    return drv, kicks


def _drain_then_idle(dev: Any, mem: GuestMemory) -> tuple[Any, list[tuple[Any, ...]]]:
    """The device serves the ring, re-enables kicks, re-checks, and idles when empty."""
    log: list[tuple[Any, ...]] = []
    _mark(mem, dev, log)
    while True:
        while (taken := dev.pop()) is not None:
            log.append(("pop", taken.head, taken.read_payload(mem)))
            _mark(mem, dev, log)
            dev.push_used(taken.head, 0)
            log.append(("push", taken.head))
            _mark(mem, dev, log)
        again = dev.enable_notification()
        log.append(("enable",))
        _mark(mem, dev, log)
        if not again:
            return dev, log
        dev.disable_notification()
        log.append(("disable",))
        _mark(mem, dev, log)


def _kick_replay(
    pair: _Pair, added: int, drv: Any, log: list[tuple[Any, ...]]
) -> VirtqueueModel | str:
    """The model after the driver's first `added` buffers and the device's `log`, or how
    the device's log disagrees with it (a buffer taken with the wrong data)."""
    g = pair.geometry
    replay = copy.deepcopy(pair.model)
    for i in range(1, added + 1):
        replay.add(g.token(i), Buffer(g.pieces(i), ()), g.slots(i))
    for entry in log:
        if entry[0] == "pop":
            token, buffer = replay.pop() or (None, None)
            wrote = b"".join(buffer.out) if buffer is not None else b""
            if buffer is None or entry[2] != wrote:
                return (
                    f"the device took a buffer whose data reads {entry[2].hex()}; "
                    f"the driver made {token} available with {wrote.hex()}"
                )
        elif entry[0] == "push":
            replay.push_used(drv.token_of(entry[1]), b"")
        elif entry[0] == "enable":
            replay.enable_notification()
        else:
            replay.disable_notification()
    return replay


def _check_kick(pair: _Pair, done: Finished) -> str | None:
    """Data intact, no lost kick, refinement (module docstring)."""
    g = pair.geometry
    results: Any = (done.result(0), done.result(1))
    (drv, kicks), (dev, log) = results
    replay = _kick_replay(pair, len(kicks), drv, log)
    if isinstance(replay, str):
        return replay
    pending = g.ring.available(done.memory, g, dev)
    if pending and not any(kicks[-pending:]):
        return (
            f"lost wake-up: {pending} buffer(s) left available, the device went idle "
            "with notifications enabled, and the driver sent no kick after making them available"
        )
    return _refines(done.memory, pair, drv, dev, replay)


def _between_kick(pair: _Pair, memory: GuestMemory, snapshots: tuple[Any, ...]) -> str | None:
    """Between operations: the refinement for what each side has done so far."""
    (drv, kicks), (dev, log) = snapshots
    replay = _kick_replay(pair, len(kicks), drv, log)
    return _refines(memory, pair, drv, dev, replay, "here")


def kick_scenario(
    event_idx: bool,
    driver_cls: type[Any] | None = None,
    device_cls: type[Any] | None = None,
    geometry: Geometry = STANDARD,
) -> Scenario:
    """The driver makes its buffers available while the device drains and goes idle."""
    pair = _pair(event_idx, geometry, driver_cls, device_cls)
    pair.first_round(writable=False)
    pair.reclaim()
    pair.device.disable_notification()
    pair.model.disable_notification()
    return pair.scenario(
        "kick",
        partial(_publish_and_kick, geometry),
        _drain_then_idle,
        partial(_check_kick, pair),
        partial(_between_kick, pair),
    )


# --- interrupt and polling: used buffers, the driver re-enables interrupts -------------
def _complete_and_notify(
    g: Geometry, returns: list[tuple[int, int]], dev: Any, mem: GuestMemory
) -> tuple[Any, list[bool]]:
    """The device writes, returns used and asks whether to interrupt, buffer after buffer."""
    interrupts: list[bool] = []
    _mark(mem, dev, interrupts)
    for i, head in returns:
        g.ring.held(dev, head).write_payload(mem, g.payload(i))
        dev.push_used(head, LENGTH)
        interrupts.append(dev.needs_notification())
        _mark(mem, dev, interrupts)
    return dev, interrupts


def _reclaim(g: Geometry, drv: Any, mem: GuestMemory, log: list[tuple[Any, ...]]) -> None:
    """The driver takes back every used buffer it sees, reading its data."""
    while (got := drv.get_buf()) is not None:
        token, length = got
        log.append(("get", token, mem.read(g.data(g.buffer_of(token)), length)))
        _mark(mem, drv, log)


def _reclaim_then_idle(
    g: Geometry, drv: Any, mem: GuestMemory, *, delayed: bool = False
) -> tuple[Any, list[Any]]:
    """NAPI style: reclaim with interrupts off, re-arm, re-check, idle when it says so.

    The re-arm is `enable_cb` (idle when nothing is used), or with `delayed`
    `enable_cb_delayed` (an interrupt only once about 3/4 of what is outstanding is
    used; idle when not that many are yet).
    """
    log: list[tuple[Any, ...]] = []
    _mark(mem, drv, log)
    while True:
        _reclaim(g, drv, mem, log)
        idle = drv.enable_cb_delayed() if delayed else drv.enable_cb()
        log.append(("delayed",) if delayed else ("enable",))
        _mark(mem, drv, log)
        if idle:
            return drv, log
        drv.disable_cb()
        log.append(("disable",))
        _mark(mem, drv, log)


def _poll_then_idle(g: Geometry, drv: Any, mem: GuestMemory) -> tuple[Any, list[Any]]:
    """Reclaim while `more_used`, re-arm, re-check with `more_used`, idle when it says no."""
    log: list[tuple[Any, ...]] = []
    _mark(mem, drv, log)
    while True:
        while drv.more_used():
            _reclaim(g, drv, mem, log)
        drv.enable_cb()
        log.append(("enable",))
        _mark(mem, drv, log)
        if not drv.more_used():
            return drv, log
        drv.disable_cb()
        log.append(("disable",))
        _mark(mem, drv, log)


def _reclaim_until_empty(g: Geometry, drv: Any, mem: GuestMemory) -> tuple[Any, list[Any]]:
    """An interrupt handler with callbacks left on: reclaim until get_buf finds nothing."""
    log: list[tuple[Any, ...]] = []
    _mark(mem, drv, log)
    _reclaim(g, drv, mem, log)
    return drv, log


def _used_replay(
    pair: _Pair, returned: list[int], log: list[tuple[Any, ...]]
) -> VirtqueueModel | str:
    """The model after the device returned `returned` and the driver did `log`, or how
    the driver's log disagrees with it (a buffer reclaimed with the wrong data)."""
    g = pair.geometry
    replay = copy.deepcopy(pair.model)
    for i in returned:
        replay.push_used(g.token(i), g.payload(i))
        replay.needs_notification()
    for entry in log:
        if entry[0] == "get":
            expected = replay.get_buf()
            if expected != (entry[1], entry[2]):
                return (
                    f"the driver reclaimed {entry[1]} reading "
                    f"{entry[2].hex() or 'no bytes'}; the device returned {expected}"
                )
        elif entry[0] == "enable":
            replay.enable_cb()
        elif entry[0] == "delayed":
            replay.enable_cb_delayed()
        else:
            replay.disable_cb()
    return replay


def _check_used(pair: _Pair, returned: list[int], done: Finished) -> str | None:
    """Data intact, no lost interrupt, refinement (module docstring)."""
    g = pair.geometry
    results: Any = (done.result(0), done.result(1))
    (drv, log), (dev, interrupts) = results
    replay = _used_replay(pair, returned, log)
    if isinstance(replay, str):
        return replay
    pending = g.ring.unreclaimed(done.memory, g, drv)
    if pending and not any(interrupts[-pending:]):
        return (
            f"lost wake-up: {pending} used buffer(s) not reclaimed, the driver went idle "
            "with interrupts enabled, and the device sent no interrupt after returning them"
        )
    return _refines(done.memory, pair, drv, dev, replay)


def _between_used(
    pair: _Pair, returned: list[int], memory: GuestMemory, snapshots: tuple[Any, ...]
) -> str | None:
    """Between operations: the refinement for what each side has done so far."""
    (drv, log), (dev, interrupts) = snapshots
    replay = _used_replay(pair, returned[: len(interrupts)], log)
    return _refines(memory, pair, drv, dev, replay, "here")


def _driver_goes_idle(
    name: str,
    driver_script: Callable[[Geometry, Any, GuestMemory], Any],
    event_idx: bool,
    driver_cls: type[Any] | None,
    device_cls: type[Any] | None,
    geometry: Geometry,
) -> Scenario:
    """The driver, interrupts off, runs `driver_script` to reclaim and go idle, while the
    device returns buffers 1..n used and decides after each whether to interrupt."""
    pair = _pair(event_idx, geometry, driver_cls, device_cls)
    pair.first_round(writable=True)
    pair.driver.disable_cb()
    pair.model.disable_cb()
    pair.reclaim()
    returns = pair.in_flight()
    return pair.scenario(
        name,
        partial(driver_script, geometry),
        partial(_complete_and_notify, geometry, returns),
        partial(_check_used, pair, [i for i, _ in returns]),
        partial(_between_used, pair, [i for i, _ in returns]),
    )


def interrupt_scenario(
    event_idx: bool,
    driver_cls: type[Any] | None = None,
    device_cls: type[Any] | None = None,
    geometry: Geometry = STANDARD,
) -> Scenario:
    """The device returns its buffers used while the driver reclaims and goes idle."""
    return _driver_goes_idle(
        "interrupt", _reclaim_then_idle, event_idx, driver_cls, device_cls, geometry
    )


def more_used_scenario(
    event_idx: bool,
    driver_cls: type[Any] | None = None,
    device_cls: type[Any] | None = None,
    geometry: Geometry = STANDARD,
) -> Scenario:
    """The interrupt race with a driver that asks `more_used` instead: it reclaims while
    `more_used` says there is work, re-arms with `enable_cb` (not using its answer),
    asks `more_used` again, and goes idle when that says no.

    This is the arm-then-poll shape of a driver whose re-arm and re-check are separate
    calls: `more_used` fences (publish D) before it reads, so the re-check is ordered
    after the re-arm's write even if the re-arm itself did not fence.
    """
    return _driver_goes_idle(
        "more_used", _poll_then_idle, event_idx, driver_cls, device_cls, geometry
    )


def delayed_scenario(
    event_idx: bool,
    driver_cls: type[Any] | None = None,
    device_cls: type[Any] | None = None,
    geometry: Geometry = STANDARD,
) -> Scenario:
    """The interrupt race with a driver that re-arms with `enable_cb_delayed` (split
    §2.7.7, packed §2.8.10): it names a position about 3/4 of the way through what is
    outstanding, fences (publish D, in `_arm`), re-checks whether that many are used
    already, and idles if not, while the device returns every buffer and decides after
    each. The device completes them all, so the interrupt the driver asked for must come:
    the lost wake-up check applies unchanged. In flags mode the re-arm is `enable_cb`'s.
    """
    return _driver_goes_idle(
        "delayed", partial(_reclaim_then_idle, delayed=True), event_idx, driver_cls,
        device_cls, geometry,
    )


def polling_scenario(
    driver_cls: type[Any] | None = None,
    device_cls: type[Any] | None = None,
    geometry: Geometry = STANDARD,
) -> Scenario:
    """Event-index mode, callbacks left on: the driver's interrupt handler reclaims until
    `get_buf` finds nothing, while the device returns the other buffers.

    The handler was started by the interrupt for buffer 1. Each `get_buf` that reclaims
    moves the driver's event position past what it took (split: used_event; packed: the
    Driver structure names the next position), then fences (publish D) before the next
    `get_buf` looks for a used buffer: the store-buffering pair with the device's
    `needs_notification`. In flags mode callbacks left on mean the device always
    interrupts: no race.
    """
    pair = _pair(True, geometry, driver_cls, device_cls)
    pair.first_round(writable=True)
    pair.reclaim()
    returns = pair.in_flight()
    first, head = returns[0]
    pair.complete(first, head, writable=True)
    later = returns[1:]
    return pair.scenario(
        "polling",
        partial(_reclaim_until_empty, geometry),
        partial(_complete_and_notify, geometry, later),
        partial(_check_used, pair, [i for i, _ in later]),
        partial(_between_used, pair, [i for i, _ in later]),
    )


def standard_scenarios(geometry: Geometry = STANDARD) -> list[Scenario]:
    """Both directions in both modes, on the geometry's ring type."""
    return [
        build(event_idx, geometry=geometry)
        for build in (kick_scenario, interrupt_scenario)
        for event_idx in (False, True)
    ]
