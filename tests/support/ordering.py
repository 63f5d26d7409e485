"""The standard ordering scenarios: one driver operation against one device operation.

Queue size 2, two buffers in flight (other sizes through `Geometry`), in both
notification modes (flags and VIRTIO_F_EVENT_IDX) and both directions:

* `kick` (available buffers, §2.7.13, §2.7.10): the device is awake with kicks
  suppressed; it drains the ring, re-enables kicks, re-checks, and goes idle. The
  driver concurrently writes two buffers' data, publishes each and asks whether to
  kick after each.
* `interrupt` (used buffers, §2.7.14, §2.7.7): the driver is polling with interrupts
  suppressed; it reclaims, re-enables interrupts, re-checks, and goes idle. The device
  concurrently writes two buffers' data, returns each used and asks whether to
  interrupt after each.

A first round, run before the concurrent part, moves both indices to 1 and leaves the
other side's event field stale (avail_event / used_event at 0): so in event-index mode
too, only the re-enable write can make the other side notify, and the race is live.

`check` runs after each complete execution, once every buffered write has landed:
no side raised; every buffer the consumer took holds exactly what the producer wrote
(no buffer seen before its descriptors and data are complete); no lost wake-up (work
left in the ring while the consumer went idle and no notification was sent); and the
refinement: the memory decodes (`impl.observer.abstract`) to the view of the model
replayed with the operations each side made.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from impl.chain import Segment
from impl.interleave import Explorer, Finished, Report, Side
from impl.layout import SplitLayout, align_up
from impl.memory import GuestMemory
from impl.observer import abstract
from impl.ring_math import distance
from impl.spec import DESC_SIZE, Feature, feature_mask
from impl.split_device import SplitDevice
from impl.split_driver import SplitDriver
from impl.weak_memory import MemoryModel
from model.queue import Buffer, VirtqueueModel

SIZE = 2
LENGTH = 4
TOKENS = ("t0", "t1", "t2")
PAYLOAD = (b"\x10\x11\x12\x13", b"\xa1\xa2\xa3\xa4", b"\xb1\xb2\xb3\xb4")
"""The standard scenario's tokens and data: buffer 0 is the first round's."""

DriverFactory = Callable[[GuestMemory, SplitLayout, int, int], Any]
DeviceFactory = Callable[[GuestMemory, SplitLayout, int, int], Any]
"""(memory, layout, features, initial index) -> a driver or device."""


@dataclass(frozen=True)
class Geometry:
    """Where a scenario's ring and buffers live: queue `size`, `buffers` in flight."""

    size: int = SIZE
    buffers: int = 2
    start: int = 0

    @property
    def layout(self) -> SplitLayout:
        """The ring, from address 0."""
        return SplitLayout.modern(self.size)

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

    def payload(self, i: int) -> bytes:
        """Buffer `i`'s data."""
        return PAYLOAD[i] if i < len(PAYLOAD) else bytes([0xC0 + i]) * LENGTH


def reference_driver(
    mem: GuestMemory, layout: SplitLayout, features: int, start: int
) -> SplitDriver:
    """The reference driver."""
    return SplitDriver(mem, layout, features, initial_index=start)


def reference_device(
    mem: GuestMemory, layout: SplitLayout, features: int, start: int
) -> SplitDevice:
    """The reference device."""
    return SplitDevice(mem, layout, features, initial_index=start)


def features_for(event_idx: bool) -> int:
    """The negotiated features of a mode."""
    return feature_mask(Feature.EVENT_IDX) if event_idx else 0


def field_namer(geometry: Geometry) -> Callable[[int], str]:
    """Name an address as the ring layout (§2.7.5-§2.7.8) calls it."""
    lay, size = geometry.layout, geometry.size
    named = {
        lay.avail_flags: "avail.flags",
        lay.avail_idx: "avail.idx",
        lay.used_event: "used_event",
        lay.used_flags: "used.flags",
        lay.used_idx: "used.idx",
        lay.avail_event: "avail_event",
    }
    for i in range(size):
        named[lay.avail_ring(i)] = f"avail.ring[{i}]"
        named[lay.used_ring(i)] = f"used.ring[{i}].id"
        named[lay.used_ring(i) + 4] = f"used.ring[{i}].len"
        named[lay.desc_addr(i)] = f"desc[{i}]"
    for i in range(geometry.buffers + 1):
        named[geometry.data(i)] = f"data of buffer {i}"

    def name(addr: int) -> str:
        if addr in named:
            return named[addr]
        if lay.desc <= addr < lay.desc_addr(size):
            index, offset = divmod(addr - lay.desc, DESC_SIZE)
            return f"desc[{index}]+{offset}"
        return hex(addr)

    return name


def _program(template: Any, base: GuestMemory, script: Callable[[Any, GuestMemory], Any]) -> Any:
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

    def explore(
        self,
        model: MemoryModel,
        dropped: frozenset[tuple[str, ...]] = frozenset(),
        *,
        stop_at_failure: bool = True,
    ) -> Report:
        """Explore every interleaving under `model` with the barriers in `dropped` removed."""
        return self.explorer(model, dropped).explore(stop_at_failure=stop_at_failure)

    def explorer(
        self, model: MemoryModel, dropped: frozenset[tuple[str, ...]] = frozenset()
    ) -> Explorer:
        """An explorer of this scenario (for a full exploration or sampled schedules)."""
        return Explorer(
            self.sides, self.memory, model, self.check, dropped=dropped, names=self.names
        )


def _raised(done: Finished) -> str | None:
    for side, name in enumerate(("driver", "device")):
        error = done.error(side)
        if error is not None:
            return f"the {name} raised {type(error).__name__}: {error}"
    return None


def _refines(
    done: Finished, layout: SplitLayout, driver: Any, device: Any, model: VirtqueueModel
) -> str | None:
    view = abstract(done.memory, layout, driver, device, event_idx=model.event_idx)
    expected = model.view()
    if view == expected:
        return None
    return f"refinement broken at quiescence: memory decodes to {view}, the model says {expected}"


# --- kick: available buffers, the device re-enables kicks (§2.7.10) -------------------
def kick_scenario(
    event_idx: bool,
    driver_factory: DriverFactory = reference_driver,
    device_factory: DeviceFactory = reference_device,
    geometry: Geometry = Geometry(),
) -> Scenario:
    """The driver publishes its buffers while the device drains and goes idle."""
    g, lay = geometry, geometry.layout
    features = features_for(event_idx)
    base = GuestMemory(g.memory_size)
    driver = driver_factory(base, lay, features, g.start)
    device = device_factory(base, lay, features, g.start)
    model = VirtqueueModel(g.size, event_idx, initial=g.start)
    base.write(g.data(0), g.payload(0))
    driver.add_outbuf([Segment(g.data(0), LENGTH)], g.token(0))
    model.add(g.token(0), Buffer((g.payload(0),), ()))
    driver.kick_prepare()
    model.kick_prepare()
    chain = device.pop()
    model.pop()
    device.push_used(chain.head, 0)
    model.push_used(g.token(0), b"")
    device.needs_notification()
    model.needs_notification()
    driver.get_buf()
    model.get_buf()
    device.disable_notification()
    model.disable_notification()
    numbers = range(1, g.buffers + 1)

    def driver_script(drv: Any, mem: GuestMemory) -> tuple[Any, list[bool]]:
        kicks = []
        for i in numbers:
            mem.write(g.data(i), g.payload(i))
            drv.add_outbuf([Segment(g.data(i), LENGTH)], g.token(i))
            kicks.append(drv.kick_prepare())
        return drv, kicks

    def device_script(dev: Any, mem: GuestMemory) -> tuple[Any, list[tuple[Any, ...]]]:
        log: list[tuple[Any, ...]] = []
        while True:
            while (taken := dev.pop()) is not None:
                log.append(("pop", taken.head, taken.read_payload(mem)))
                dev.push_used(taken.head, 0)
                log.append(("push", taken.head))
            if not dev.enable_notification():
                log.append(("enable",))
                return dev, log
            log.append(("enable",))
            dev.disable_notification()
            log.append(("disable",))

    def check(done: Finished) -> str | None:
        raised = _raised(done)
        if raised:
            return raised
        (drv, kicks), (dev, log) = done.result(0), done.result(1)
        replay = copy.deepcopy(model)
        for i in numbers:
            replay.add(g.token(i), Buffer((g.payload(i),), ()))
        for entry in log:
            if entry[0] == "pop":
                token, buffer = replay.pop() or (None, None)
                if buffer is None or entry[2] != buffer.out[0]:
                    return (
                        f"the device took a buffer whose data reads {entry[2].hex()}; "
                        f"the driver published {token} with {buffer and buffer.out[0].hex()}"
                    )
            elif entry[0] == "push":
                replay.push_used(drv.token_of(entry[1]), b"")
            elif entry[0] == "enable":
                replay.enable_notification()
            else:
                replay.disable_notification()
        pending = distance(done.memory.read_u16(lay.avail_idx), dev.next_avail)
        if pending and not any(kicks):
            return (
                f"lost wake-up: {pending} buffer(s) left available, the device went idle "
                "with notifications enabled, and the driver sent no kick"
            )
        return _refines(done, lay, drv, dev, replay)

    sides = (
        Side("driver", _program(driver, base, driver_script)),
        Side("device", _program(device, base, device_script)),
    )
    name = f"kick/{'event_idx' if event_idx else 'flags'}"
    return Scenario(name, sides, base.read(0, g.memory_size), check, field_namer(g))


# --- interrupt: used buffers, the driver re-enables callbacks (§2.7.7) ----------------
def interrupt_scenario(
    event_idx: bool,
    driver_factory: DriverFactory = reference_driver,
    device_factory: DeviceFactory = reference_device,
    geometry: Geometry = Geometry(),
) -> Scenario:
    """The device returns its buffers used while the driver reclaims and goes idle."""
    g, lay = geometry, geometry.layout
    features = features_for(event_idx)
    base = GuestMemory(g.memory_size)
    driver = driver_factory(base, lay, features, g.start)
    device = device_factory(base, lay, features, g.start)
    model = VirtqueueModel(g.size, event_idx, initial=g.start)
    driver.add_inbuf([Segment(g.data(0), LENGTH)], g.token(0))
    model.add(g.token(0), Buffer((), (LENGTH,)))
    driver.kick_prepare()
    model.kick_prepare()
    chain = device.pop()
    model.pop()
    chain.write_payload(base, g.payload(0))
    device.push_used(chain.head, LENGTH)
    model.push_used(g.token(0), g.payload(0))
    device.needs_notification()
    model.needs_notification()
    driver.disable_cb()
    model.disable_cb()
    driver.get_buf()
    model.get_buf()
    numbers = range(1, g.buffers + 1)
    for i in numbers:
        driver.add_inbuf([Segment(g.data(i), LENGTH)], g.token(i))
        model.add(g.token(i), Buffer((), (LENGTH,)))
    driver.kick_prepare()
    model.kick_prepare()
    heads = [device.pop().head for _ in numbers]
    for _ in numbers:
        model.pop()
    tokens = {g.token(i): i for i in numbers}

    def device_script(dev: Any, mem: GuestMemory) -> tuple[Any, list[bool]]:
        interrupts = []
        for i, head in zip(numbers, heads, strict=True):
            dev.in_flight[head].write_payload(mem, g.payload(i))
            dev.push_used(head, LENGTH)
            interrupts.append(dev.needs_notification())
        return dev, interrupts

    def driver_script(drv: Any, mem: GuestMemory) -> tuple[Any, list[tuple[Any, ...]]]:
        log: list[tuple[Any, ...]] = []
        while True:
            while (got := drv.get_buf()) is not None:
                token, length = got
                log.append(("get", token, mem.read(g.data(tokens[token]), length)))
            if drv.enable_cb():
                log.append(("enable",))
                return drv, log
            log.append(("enable",))
            drv.disable_cb()
            log.append(("disable",))

    def check(done: Finished) -> str | None:
        raised = _raised(done)
        if raised:
            return raised
        (drv, log), (dev, interrupts) = done.result(0), done.result(1)
        replay = copy.deepcopy(model)
        for i in numbers:
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
        pending = distance(done.memory.read_u16(lay.used_idx), drv.last_used_idx)
        if pending and not any(interrupts):
            return (
                f"lost wake-up: {pending} used buffer(s) not reclaimed, the driver went idle "
                "with interrupts enabled, and the device sent no interrupt"
            )
        return _refines(done, lay, drv, dev, replay)

    sides = (
        Side("driver", _program(driver, base, driver_script)),
        Side("device", _program(device, base, device_script)),
    )
    name = f"interrupt/{'event_idx' if event_idx else 'flags'}"
    return Scenario(name, sides, base.read(0, g.memory_size), check, field_namer(g))


# --- polling: callbacks stay on, the driver's get_buf publishes used_event (§2.7.7) ----
def polling_scenario(
    driver_factory: DriverFactory = reference_driver,
    device_factory: DeviceFactory = reference_device,
    geometry: Geometry = Geometry(),
) -> Scenario:
    """Event-index mode, callbacks left on: the driver's interrupt handler reclaims until
    `get_buf` finds nothing, while the device returns one more buffer.

    The handler was started by the interrupt for buffer 1. Each `get_buf` that reclaims
    moves used_event past what it took, then fences (publish D) before the next `get_buf`
    reads used.idx: the store-buffering pair with the device's `needs_notification`.
    """
    g, lay = geometry, geometry.layout
    features = features_for(True)
    base = GuestMemory(g.memory_size)
    driver = driver_factory(base, lay, features, g.start)
    device = device_factory(base, lay, features, g.start)
    model = VirtqueueModel(g.size, True, initial=g.start)
    driver.add_inbuf([Segment(g.data(0), LENGTH)], g.token(0))
    model.add(g.token(0), Buffer((), (LENGTH,)))
    driver.kick_prepare()
    model.kick_prepare()
    chain = device.pop()
    model.pop()
    chain.write_payload(base, g.payload(0))
    device.push_used(chain.head, LENGTH)
    model.push_used(g.token(0), g.payload(0))
    device.needs_notification()
    model.needs_notification()
    driver.get_buf()
    model.get_buf()
    numbers = range(1, g.buffers + 1)
    for i in numbers:
        driver.add_inbuf([Segment(g.data(i), LENGTH)], g.token(i))
        model.add(g.token(i), Buffer((), (LENGTH,)))
    driver.kick_prepare()
    model.kick_prepare()
    heads = [device.pop().head for _ in numbers]
    for _ in numbers:
        model.pop()
    device.in_flight[heads[0]].write_payload(base, g.payload(1))
    device.push_used(heads[0], LENGTH)
    model.push_used(g.token(1), g.payload(1))
    device.needs_notification()
    model.needs_notification()
    tokens = {g.token(i): i for i in numbers}
    later = list(zip(numbers, heads, strict=True))[1:]

    def device_script(dev: Any, mem: GuestMemory) -> tuple[Any, list[bool]]:
        interrupts = []
        for i, head in later:
            dev.in_flight[head].write_payload(mem, g.payload(i))
            dev.push_used(head, LENGTH)
            interrupts.append(dev.needs_notification())
        return dev, interrupts

    def driver_script(drv: Any, mem: GuestMemory) -> tuple[Any, list[tuple[Any, ...]]]:
        log: list[tuple[Any, ...]] = []
        while (got := drv.get_buf()) is not None:
            token, length = got
            log.append(("get", token, mem.read(g.data(tokens[token]), length)))
        return drv, log

    def check(done: Finished) -> str | None:
        raised = _raised(done)
        if raised:
            return raised
        (drv, log), (dev, interrupts) = done.result(0), done.result(1)
        replay = copy.deepcopy(model)
        for i, _ in later:
            replay.push_used(g.token(i), g.payload(i))
            replay.needs_notification()
        for _, token, data in log:
            expected = replay.get_buf()
            if expected != (token, data):
                return f"the driver reclaimed {token} reading {data.hex()}; expected {expected}"
        pending = distance(done.memory.read_u16(lay.used_idx), drv.last_used_idx)
        if pending and not any(interrupts):
            return (
                f"lost wake-up: {pending} used buffer(s) not reclaimed, the driver's handler "
                "returned with interrupts enabled, and the device sent no interrupt"
            )
        return _refines(done, lay, drv, dev, replay)

    sides = (
        Side("driver", _program(driver, base, driver_script)),
        Side("device", _program(device, base, device_script)),
    )
    return Scenario("polling/event_idx", sides, base.read(0, g.memory_size), check, field_namer(g))


def standard_scenarios(
    driver_factory: DriverFactory = reference_driver,
    device_factory: DeviceFactory = reference_device,
) -> list[Scenario]:
    """Both directions in both modes."""
    return [
        build(event_idx, driver_factory, device_factory)
        for build in (kick_scenario, interrupt_scenario)
        for event_idx in (False, True)
    ]
