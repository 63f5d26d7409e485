"""The standard ordering scenarios on the packed ring (§2.8): one driver operation against
one device operation, queue size 2, two buffers in flight, both notification modes.

* `packed_kick_scenario` (available buffers, §2.8.21, §2.8.10): the device is awake
  with kicks suppressed (flags: DISABLE; event index: its DESC position left stale);
  it drains the ring, marking each list used, re-enables kicks, re-checks the head's
  flags and goes idle. The driver concurrently writes two buffers' data and makes
  each list available (the body first, write barrier A, the head's flags last), then
  asks whether to kick (full barrier B, then the Device Event Suppression structure).
  The first round moved both positions to offset 1, so the second buffer goes to
  offset 0 under the flipped wrap counter: the race crosses the wrap, and the device
  overwrites the very descriptors the driver is still writing (ownership hand-over,
  checked by the explorer's `handover` mode at every write).
* `packed_interrupt_scenario` (used buffers, §2.8.22, §2.8.10): the driver polls with
  interrupts suppressed; it reclaims, re-enables interrupts, re-checks, goes idle. The
  device concurrently writes two buffers' data and marks each used (id and len,
  write barrier C, flags last), asking after each whether to interrupt (full barrier
  D, then the Driver Event Suppression structure).

`check` after each complete execution, once every write has landed: no side raised;
every buffer the consumer took holds exactly what the producer wrote (no list seen
before its descriptors and data are complete, no buffer lost or taken twice: the
consumer's log must replay on the model in order); no lost wake-up (work left in the
ring while the consumer went idle with notifications on, and no notification decision
made after publishing it said to notify); and the refinement: memory decodes
(`impl.packed_observer.abstract_packed`) to the model's view.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from support.geometry import LENGTH, PAYLOAD, TOKENS
from support.ordering import Scenario, _program, _raised

from impl.chain import Segment
from impl.errors import NotConforming
from impl.interleave import Finished, Side
from impl.layout import align_up
from impl.memory import GuestMemory
from impl.packed_device import PackedDevice
from impl.packed_driver import PackedDriver
from impl.packed_layout import PackedLayout
from impl.packed_observer import abstract_packed
from impl.spec import DESC_SIZE, Feature, feature_mask
from impl.wrap_math import advance, is_available, is_used, offset_of, wrap_of
from model.queue import Buffer, VirtqueueModel

SIZE = 2


@dataclass(frozen=True)
class PackedGeometry:
    """A packed ring of `size` descriptors from address 0, then the buffers' data.

    Buffers 1..`buffers` are lists of `segments` descriptors each (their data split
    evenly); buffer 0, the first round's, is one descriptor, so with lists the race
    starts at an odd offset and a list crosses the end of the ring.
    """

    size: int = SIZE
    buffers: int = 2
    segments: int = 1

    def parts(self, i: int) -> list[Segment]:
        """Buffer `i`'s segments: its data split into `segments` pieces (1 for buffer 0)."""
        count = 1 if i == 0 else self.segments
        piece = LENGTH // count
        return [Segment(self.data(i) + piece * k, piece) for k in range(count)]

    def pieces(self, i: int) -> tuple[bytes, ...]:
        """Buffer `i`'s data as its segments hold it."""
        return tuple(self.payload(i)[seg.addr - self.data(i) :][: seg.len] for seg in self.parts(i))

    @property
    def layout(self) -> PackedLayout:
        """The ring and both event suppression structures."""
        return PackedLayout.modern(self.size)

    def data(self, i: int) -> int:
        """Where buffer `i`'s data lives (buffer 0 is the first round's)."""
        return align_up(self.layout.end, 8) + 8 * i

    @property
    def memory_size(self) -> int:
        """The guest memory the scenario needs."""
        return self.data(self.buffers + 1)

    def token(self, i: int) -> str:
        """Buffer `i`'s token."""
        return TOKENS[i] if i < len(TOKENS) else f"t{i}"

    def buffer_of(self, token: str) -> int:
        """Which buffer carries `token`."""
        return next(i for i in range(self.buffers + 1) if self.token(i) == token)

    def payload(self, i: int) -> bytes:
        """Buffer `i`'s data."""
        return PAYLOAD[i] if i < len(PAYLOAD) else bytes([0xC0 + i]) * LENGTH


PACKED_STANDARD = PackedGeometry()


def packed_namer(g: PackedGeometry) -> Callable[[int], str]:
    """Name an address as §2.8 lays the ring out (descriptor fields, event structures)."""
    lay = g.layout
    named = {
        lay.driver_off_wrap: "driver_event.off_wrap",
        lay.driver_flags: "driver_event.flags",
        lay.device_off_wrap: "device_event.off_wrap",
        lay.device_flags: "device_event.flags",
    }
    for i in range(g.size):
        named[lay.desc_addr(i)] = f"desc[{i}].addr"
        named[lay.desc_len(i)] = f"desc[{i}].len"
        named[lay.desc_id(i)] = f"desc[{i}].id"
        named[lay.desc_flags(i)] = f"desc[{i}].flags"
    for i in range(g.buffers + 1):
        named[g.data(i)] = f"data of buffer {i}"

    def name(addr: int) -> str:
        if addr in named:
            return named[addr]
        if lay.desc <= addr < lay.desc_addr(g.size):
            index, offset = divmod(addr - lay.desc, DESC_SIZE)
            return f"desc[{index}]+{offset}"
        return hex(addr)

    return name


@dataclass
class _PackedPair:
    """A packed driver and device and the model beside them, in lockstep before the race."""

    g: PackedGeometry
    event_idx: bool
    base: GuestMemory
    driver: PackedDriver
    device: PackedDevice
    model: VirtqueueModel

    def add(self, i: int, *, writable: bool) -> None:
        segments = self.g.parts(i)
        if writable:
            self.driver.add_inbuf(segments, self.g.token(i))
            room = tuple(seg.len for seg in segments)
            self.model.add(self.g.token(i), Buffer((), room), len(segments))
        else:
            self.base.write(self.g.data(i), self.g.payload(i))
            self.driver.add_outbuf(segments, self.g.token(i))
            self.model.add(self.g.token(i), Buffer(self.g.pieces(i), ()), len(segments))

    def kick(self) -> None:
        self.driver.kick_prepare()
        self.model.kick_prepare()

    def pop(self) -> int:
        chain = self.device.pop()
        assert chain is not None
        self.model.pop()
        return int(chain.head)

    def complete(self, i: int, head: int, *, writable: bool) -> None:
        if writable:
            self.device.held_chain(head).write_payload(self.base, self.g.payload(i))
        self.device.push_used(head, LENGTH if writable else 0)
        self.model.push_used(self.g.token(i), self.g.payload(i) if writable else b"")
        self.device.needs_notification()
        self.model.needs_notification()

    def reclaim(self) -> None:
        self.driver.get_buf()
        self.model.get_buf()

    def scenario(
        self,
        name: str,
        driver_script: Callable[[Any, GuestMemory], Any],
        device_script: Callable[[Any, GuestMemory], Any],
        check: Callable[[Finished], str | None],
    ) -> Scenario:
        sides = (
            Side("driver", _program(self.driver, self.base, driver_script)),
            Side("device", _program(self.device, self.base, device_script)),
        )
        mode = "event_idx" if self.event_idx else "flags"
        memory = self.base.read(0, self.g.memory_size)
        return Scenario(
            f"packed-{name}/{mode}", sides, memory, check, packed_namer(self.g), handover=True
        )


DriverClass = type[PackedDriver]
DeviceClass = type[PackedDevice]


def _pair(
    event_idx: bool, g: PackedGeometry, driver_cls: DriverClass, device_cls: DeviceClass
) -> _PackedPair:
    features = feature_mask(Feature.EVENT_IDX) if event_idx else 0
    base = GuestMemory(g.memory_size)
    driver = driver_cls(base, g.layout, features)
    device = device_cls(base, g.layout, features)
    model = VirtqueueModel(g.size, event_idx, 0, positions=2 * g.size)
    return _PackedPair(g, event_idx, base, driver, device, model)


def _refines(
    done: Finished, pair: _PackedPair, drv: Any, dev: Any, model: VirtqueueModel
) -> str | None:
    try:
        view = abstract_packed(done.memory, pair.g.layout, drv, dev, event_idx=pair.event_idx)
    except NotConforming as error:
        return f"refinement broken at quiescence: memory does not decode ({error})"
    expected = model.view()
    if view == expected:
        return None
    return f"refinement broken at quiescence: memory decodes to {view}, the model says {expected}"


def _run_of(
    mem: GuestMemory, g: PackedGeometry, pos: int, marked: Callable[[int, int], Any]
) -> int:
    """How many of the race's lists from `pos` on have their head marked for its lap."""
    layout, count = g.layout, 0
    while count < g.buffers:
        flags = mem.read_u16(layout.desc_flags(offset_of(pos, g.size)))
        if not marked(flags, wrap_of(pos, g.size)):
            break
        pos, count = advance(pos, g.segments, g.size), count + 1
    return count


# --- kick: available lists, the device re-enables kicks -------------------------------
def _publish_and_kick(g: PackedGeometry, drv: Any, mem: GuestMemory) -> tuple[Any, list[bool]]:
    """The driver writes, makes available and asks whether to kick, buffer after buffer."""
    kicks = []
    for i in range(1, g.buffers + 1):
        mem.write(g.data(i), g.payload(i))
        drv.add_outbuf(g.parts(i), g.token(i))
        kicks.append(drv.kick_prepare())
    return drv, kicks


def _drain_then_idle(dev: Any, mem: GuestMemory) -> tuple[Any, list[tuple[Any, ...]]]:
    """The device serves the ring, re-enables kicks, re-checks, and idles when empty."""
    log: list[tuple[Any, ...]] = []
    while True:
        while (taken := dev.pop()) is not None:
            log.append(("pop", taken.head, taken.read_payload(mem)))
            dev.push_used(taken.head, 0)
            log.append(("push", taken.head))
        again = dev.enable_notification()
        log.append(("enable",))
        if not again:
            return dev, log
        dev.disable_notification()
        log.append(("disable",))


def _check_kick(pair: _PackedPair, done: Finished) -> str | None:
    g = pair.g
    results: Any = (done.result(0), done.result(1))
    (drv, kicks), (dev, log) = results
    replay = copy.deepcopy(pair.model)
    for i in range(1, g.buffers + 1):
        replay.add(g.token(i), Buffer(g.pieces(i), ()), len(g.parts(i)))
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
    pending = _run_of(done.memory, g, dev.next_avail, is_available)
    if pending and not any(kicks[-pending:]):
        return (
            f"lost wake-up: {pending} list(s) left available, the device went idle "
            "with notifications enabled, and the driver sent no kick after making them available"
        )
    return _refines(done, pair, drv, dev, replay)


def packed_kick_scenario(
    event_idx: bool,
    driver_cls: DriverClass = PackedDriver,
    device_cls: DeviceClass = PackedDevice,
    geometry: PackedGeometry = PACKED_STANDARD,
) -> Scenario:
    """The driver makes its lists available while the device drains and goes idle."""
    pair = _pair(event_idx, geometry, driver_cls, device_cls)
    pair.add(0, writable=False)
    pair.kick()
    pair.complete(0, pair.pop(), writable=False)
    pair.reclaim()
    pair.device.disable_notification()
    pair.model.disable_notification()
    return pair.scenario(
        "kick",
        partial(_publish_and_kick, geometry),
        _drain_then_idle,
        lambda done: _raised(done) or _check_kick(pair, done),
    )


# --- interrupt: used descriptors, the driver re-enables interrupts --------------------
def _complete_and_notify(
    g: PackedGeometry, returns: list[tuple[int, int]], dev: Any, mem: GuestMemory
) -> tuple[Any, list[bool]]:
    """The device writes, marks used and asks whether to interrupt, buffer after buffer."""
    interrupts = []
    for i, head in returns:
        dev.held_chain(head).write_payload(mem, g.payload(i))
        dev.push_used(head, LENGTH)
        interrupts.append(dev.needs_notification())
    return dev, interrupts


def _reclaim_then_idle(g: PackedGeometry, drv: Any, mem: GuestMemory) -> tuple[Any, list[Any]]:
    """Reclaim with interrupts off, re-enable, re-check, idle when empty."""
    log: list[tuple[Any, ...]] = []
    while True:
        while (got := drv.get_buf()) is not None:
            token, length = got
            log.append(("get", token, mem.read(g.data(g.buffer_of(token)), length)))
        idle = drv.enable_cb()
        log.append(("enable",))
        if idle:
            return drv, log
        drv.disable_cb()
        log.append(("disable",))


def _check_used(pair: _PackedPair, returned: list[int], done: Finished) -> str | None:
    g = pair.g
    results: Any = (done.result(0), done.result(1))
    (drv, log), (dev, interrupts) = results
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
        else:
            replay.disable_cb()
    pending = _run_of(done.memory, g, drv.last_used_idx, is_used) if drv.outstanding else 0
    if pending and not any(interrupts[-pending:]):
        return (
            f"lost wake-up: {pending} used descriptor(s) not reclaimed, the driver went idle "
            "with interrupts enabled, and the device sent no interrupt after marking them used"
        )
    return _refines(done, pair, drv, dev, replay)


def packed_interrupt_scenario(
    event_idx: bool,
    driver_cls: DriverClass = PackedDriver,
    device_cls: DeviceClass = PackedDevice,
    geometry: PackedGeometry = PACKED_STANDARD,
) -> Scenario:
    """The device marks its buffers used while the driver reclaims and goes idle."""
    pair = _pair(event_idx, geometry, driver_cls, device_cls)
    pair.add(0, writable=True)
    pair.kick()
    pair.complete(0, pair.pop(), writable=True)
    pair.driver.disable_cb()
    pair.model.disable_cb()
    pair.reclaim()
    numbers = range(1, geometry.buffers + 1)
    for i in numbers:
        pair.add(i, writable=True)
    pair.kick()
    returns = [(i, pair.pop()) for i in numbers]
    return pair.scenario(
        "interrupt",
        partial(_reclaim_then_idle, geometry),
        partial(_complete_and_notify, geometry, returns),
        lambda done: _raised(done) or _check_used(pair, list(numbers), done),
    )


def _reclaim_until_empty(g: PackedGeometry, drv: Any, mem: GuestMemory) -> tuple[Any, list[Any]]:
    """An interrupt handler with callbacks left on: reclaim until get_buf finds nothing."""
    log: list[tuple[Any, ...]] = []
    while (got := drv.get_buf()) is not None:
        token, length = got
        log.append(("get", token, mem.read(g.data(g.buffer_of(token)), length)))
    return drv, log


def packed_polling_scenario(
    driver_cls: DriverClass = PackedDriver,
    device_cls: DeviceClass = PackedDevice,
    geometry: PackedGeometry = PACKED_STANDARD,
) -> Scenario:
    """Event-index mode, callbacks left on: the driver's interrupt handler (started by
    buffer 1's interrupt) reclaims until `get_buf` finds nothing, while the device marks
    the other buffers used. Each `get_buf` that reclaims names the next position in the
    Driver structure and fences (driver D in `get_buf`) before the next one reads the
    flags: the store-buffering pair with the device's `needs_notification`."""
    pair = _pair(True, geometry, driver_cls, device_cls)
    pair.add(0, writable=True)
    pair.kick()
    pair.complete(0, pair.pop(), writable=True)
    pair.reclaim()
    numbers = range(1, geometry.buffers + 1)
    for i in numbers:
        pair.add(i, writable=True)
    pair.kick()
    returns = [(i, pair.pop()) for i in numbers]
    first, head = returns[0]
    pair.complete(first, head, writable=True)
    later = returns[1:]
    return pair.scenario(
        "polling",
        partial(_reclaim_until_empty, geometry),
        partial(_complete_and_notify, geometry, later),
        lambda done: _raised(done) or _check_used(pair, [i for i, _ in later], done),
    )


LISTS = PackedGeometry(size=4, segments=2)
"""Two lists of two descriptors in a ring of 4, the second crossing the ring's end."""


def packed_scenarios() -> list[Scenario]:
    """Both directions in both modes."""
    return [
        build(event_idx)
        for build in (packed_kick_scenario, packed_interrupt_scenario)
        for event_idx in (False, True)
    ]
