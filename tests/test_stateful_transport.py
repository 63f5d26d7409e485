"""The whole path, on both transports, under a deterministic interrupt scheduler.

virtio-mmio runs as version 2 and as legacy version 1; virtio-mmio version 2 and the
descriptor page also run with packed rings (VIRTIO_F_RING_PACKED offered and accepted,
queue maxima that are not powers of two, so every ring is used at that odd size and
its wrap counters flip many times per run).

A Hypothesis machine interleaves: the scan and driver registration (either order),
unregistering and re-registering drivers (remove and probe again), buffers added and
kicked, a device that holds buffers and completes them later, interrupts delivered
immediately, one line at a time, all at once, or coalesced (a line raised twice
before delivery is delivered once), spurious interrupts, resets in flight, and
configuration changes racing the driver's reads (the generation moves during a read).

Checked after every step: each token handed to a queue is in exactly one place —
outstanding in a ring, returned through a callback, or detached after a reset — so
none is lost and none is returned twice; a bound device shows ACKNOWLEDGE | DRIVER |
FEATURES_OK | DRIVER_OK; a removed one shows 0; and the devices record no violation,
so the bus and driver keep every driver rule the devices check (status order, features,
queue setup, no kick before DRIVER_OK, defined acknowledgement bits). The interrupt
promise (model/status.py) is checked by `quiesce`: once every pending interrupt is
delivered, no queue holds a used buffer its driver was not called back for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence

import pytest
from hypothesis import note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from transport_rig import PAGE_ADDR, Platform

from impl.bus import BusDevice
from impl.chain import Chain, Segment
from impl.device import DeviceContext
from impl.device_core import DeviceCore
from impl.devpage_driver import scan_devpage
from impl.errors import ChainError, NoSpace
from impl.mmio_driver import scan_mmio
from impl.packed_driver import PackedDriver
from impl.spec import DeviceId, Feature, Status, feature_mask
from impl.split_driver import SplitDriver
from impl.stubs import EchoDriver
from impl.transport import PACKED_RING, RING_FEATURES
from impl.wrap_math import wrap_of

LIVE = Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK
LEGACY_LIVE = Status.ACKNOWLEDGE | Status.DRIVER | Status.DRIVER_OK
DATA_BASE = 0xF0000
SLOT_BYTES = 64
SLOTS = 512
IDS = (DeviceId.NET, DeviceId.BLOCK)
QUEUE_MAX = {DeviceId.NET: (8, 4), DeviceId.BLOCK: (4,)}
PACKED_QUEUE_MAX = {DeviceId.NET: (7, 3), DeviceId.BLOCK: (5,)}
"""Packed rings take any size (§2.8): these are used as they are."""
PACKED_SUFFIX = "-packed"


class HoldingDevice:
    """A backend that takes buffers on a kick and completes them when told to."""

    vendor_id = 0x1AF4
    config_size = 8

    def __init__(self, device_id: DeviceId, queues: Sequence[int], features: int) -> None:
        self.device_id = device_id
        self._queues = tuple(queues)
        self._features = features
        self.config = bytearray(8)
        self.context: DeviceContext | None = None
        self.held: list[tuple[int, Chain]] = []
        self.on_read: Callable[[], None] | None = None

    def offered_features(self) -> int:
        return self._features

    def queue_max_sizes(self) -> Sequence[int]:
        return self._queues

    def read_config(self, offset: int, length: int) -> bytes:
        if self.on_read is not None:
            self.on_read()
        return bytes(self.config[offset : offset + length]).ljust(length, b"\0")

    def write_config(self, offset: int, data: bytes) -> None:
        """Read-only."""

    def features_accepted(self, features: int) -> None:
        """Nothing depends on the accepted features."""

    def activate(self, context: DeviceContext) -> None:
        self.context = context

    def reset(self) -> None:
        self.context = None
        self.held = []

    def queue_notify(self, index: int) -> None:
        assert self.context is not None
        queue = self.context.queues[index]
        assert queue is not None
        while True:
            try:
                chain = queue.pop()
            except ChainError:
                continue
            if chain is None:
                return
            self.held.append((index, chain))

    def complete(self, count: int) -> int:
        """Use up to `count` held chains (oldest first); return how many."""
        context = self.context
        if context is None:
            return 0
        done = self.held[:count]
        self.held = self.held[count:]
        touched = set()
        for index, chain in done:
            queue = context.queues[index]
            assert queue is not None
            payload = chain.read_payload(context.mem)[: chain.writable_len]
            queue.push_used(chain.head, chain.write_payload(context.mem, payload))
            touched.add(index)
        for index in sorted(touched):
            context.signal_used(index)
        return len(done)


class TransportMachine(RuleBasedStateMachine):
    """Bus, drivers and two devices on one transport, with the interrupt schedule drawn."""

    reached: set[tuple[str, str]] = set()
    kind = "mmio"
    """Which transport this machine runs on (set per test)."""

    def __init__(self) -> None:
        super().__init__()
        self.issued: set[int] = set()
        self.next_token = 0
        self.free_slots = list(range(SLOTS))
        self.slot_of: dict[int, int] = {}
        self.scanned = False
        self.registered: set[DeviceId] = set()
        self.generations = dict.fromkeys(IDS, 0)

    @initialize(
        immediate=st.booleans(),
        event_idx=st.booleans(),
        order=st.sampled_from(["scan first", "drivers first", "by rules"]),
    )
    def build(self, immediate: bool, event_idx: bool, order: str) -> None:
        kind = self.kind
        note(f"{kind}, immediate={immediate}, event_idx={event_idx}, {order}")
        self.packed = kind.endswith(PACKED_SUFFIX)
        ring_features = RING_FEATURES | (PACKED_RING if self.packed else 0)
        self.platform = Platform(immediate=immediate, ring_features=ring_features)
        features = feature_mask(Feature.VERSION_1, Feature.INDIRECT_DESC)
        if event_idx:
            features |= feature_mask(Feature.EVENT_IDX)
        sizes = PACKED_QUEUE_MAX if self.packed else QUEUE_MAX
        self.backends = {
            device_id: HoldingDevice(device_id, sizes[device_id], features) for device_id in IDS
        }
        self.cores: dict[DeviceId, DeviceCore] = {}
        for device_id, backend in self.backends.items():
            if kind.startswith("mmio"):
                legacy = kind == "mmio-legacy"
                self.cores[device_id] = self.platform.add_mmio(
                    backend, legacy=legacy, packed=self.packed
                )
            else:
                self.cores[device_id] = self.platform.add_page_device(backend, packed=self.packed)
        self.drivers = {
            DeviceId.NET: EchoDriver("net", DeviceId.NET, queue_count=2),
            DeviceId.BLOCK: EchoDriver("blk", DeviceId.BLOCK, queue_count=1),
        }
        if order == "scan first":
            self.scan()
        if order != "by rules":
            self.bring_up()

    # --- discovery and registration -----------------------------------------------------
    @precondition(lambda self: not self.scanned)
    @rule()
    def scan(self) -> None:
        self.scanned = True
        if self.kind.startswith("mmio"):
            scan_mmio(self.platform.space, self.platform.windows, self.platform.bus)
        else:
            scan_devpage(self.platform.mem, PAGE_ADDR, self.platform.host.hypercall,
                         self.platform.bus)
        note("scan")

    @rule()
    def bring_up(self) -> None:
        """Scan (if not yet) and register both drivers."""
        if not self.scanned:
            self.scan()
        for device_id in IDS:
            self.register_driver(device_id)

    @rule(device_id=st.sampled_from(IDS))
    def register_driver(self, device_id: DeviceId) -> None:
        if device_id in self.registered:
            return
        self.registered.add(device_id)
        note(f"register driver {device_id.name}")
        self.platform.bus.register_driver(self.drivers[device_id])

    @rule(device_id=st.sampled_from(IDS))
    def unregister_driver(self, device_id: DeviceId) -> None:
        if device_id not in self.registered:
            return
        self.registered.discard(device_id)
        note(f"unregister driver {device_id.name} (reset in flight)")
        self.platform.bus.unregister_driver(self.drivers[device_id])
        self.reached.add((self.kind, "removed"))

    def _device(self, device_id: DeviceId) -> BusDevice | None:
        for device in self.platform.bus.devices:
            if device.device_id == device_id and device.driver is not None:
                return device
        return None

    # --- buffers -------------------------------------------------------------------------
    @rule(device_id=st.sampled_from(IDS), queue=st.integers(0, 1), size=st.integers(1, 48))
    def add_buffer(self, device_id: DeviceId, queue: int, size: int) -> None:
        device = self._device(device_id)
        if device is None or queue >= len(device.queues) or not self.free_slots:
            return
        token, slot = self.next_token, self.free_slots.pop()
        out = DATA_BASE + SLOT_BYTES * slot
        self.platform.mem.write(out, bytes([token % 256]) * size)
        ring = device.queues[queue]
        try:
            ring.add_sgs([Segment(out, size)], [Segment(out + size, SLOT_BYTES - size)], token)
        except NoSpace:
            self.free_slots.append(slot)
            return
        self.next_token += 1
        self.issued.add(token)
        self.slot_of[token] = slot
        note(f"add token {token} to {device_id.name} q{queue}, kick")
        ring.kick()
        if isinstance(ring, PackedDriver) and wrap_of(ring.next_avail, ring.size) == 0:
            self.reached.add((self.kind, "wrap counter flipped"))

    @rule(device_id=st.sampled_from(IDS), count=st.integers(1, 6))
    def device_completes(self, device_id: DeviceId, count: int) -> None:
        done = self.backends[device_id].complete(count)
        note(f"{device_id.name} completes {done}")

    # --- interrupts --------------------------------------------------------------------------
    @rule(data=st.data())
    def deliver_one(self, data: st.DataObject) -> None:
        pending = sorted(self.platform.irqs.pending)
        if not pending:
            return
        line = data.draw(st.sampled_from(pending))
        note(f"deliver line {line}")
        self.platform.irqs.deliver(line)

    @rule()
    def deliver_all(self) -> None:
        note(f"deliver all: {self.platform.irqs.deliver_all()}")

    @rule(device_id=st.sampled_from(IDS))
    def spurious_interrupt(self, device_id: DeviceId) -> None:
        device = self._device(device_id)
        if device is not None:
            note(f"spurious interrupt on {device_id.name}")
            device.interrupt()

    # --- configuration -------------------------------------------------------------------------
    @rule(device_id=st.sampled_from(IDS), races=st.integers(0, 3))
    def config_change(self, device_id: DeviceId, races: int) -> None:
        """Change config; the next `races` config reads each see the generation move."""
        backend, core = self.backends[device_id], self.cores[device_id]
        backend.config[0] = (backend.config[0] + 1) % 256
        remaining = [races]

        def race() -> None:
            if remaining[0] > 0:
                remaining[0] -= 1
                self.generations[device_id] += 1
                core.config_changed()

        backend.on_read = race
        note(f"config change on {device_id.name}, {races} racing reads")
        self.generations[device_id] += 1
        core.config_changed()

    @rule(device_id=st.sampled_from(IDS), races=st.integers(0, 3))
    def config_change_then_quiesce(self, device_id: DeviceId, races: int) -> None:
        """A change the driver must see once everything pending is delivered."""
        self.config_change(device_id, races)
        self.quiesce()

    @rule()
    def quiesce(self) -> None:
        """Deliver everything pending; then no queue may hold an unreported used buffer."""
        self.platform.irqs.deliver_all()
        for device in self.platform.bus.devices:
            if device.driver is None or not device.live:
                continue
            for queue in device.queues:
                assert isinstance(queue, PackedDriver if self.packed else SplitDriver)
                assert not queue.more_used(), "a used buffer without its callback"
            config = self.backends[DeviceId(device.device_id)].config
            seen = self.drivers[DeviceId(device.device_id)].config_seen.get(id(device))
            if self.drivers[DeviceId(device.device_id)].config_events:
                assert seen == bytes(config)
                self.reached.add((self.kind, "config delivered"))

    # --- invariants ------------------------------------------------------------------------------
    def _returned(self) -> Counter[Hashable]:
        returned: Counter[Hashable] = Counter()
        for driver in self.drivers.values():
            returned.update(token for token, _ in driver.received)
            returned.update(driver.detached)
        for device in self.platform.bus.devices:
            returned.update(device.detached)
        return returned

    def _outstanding(self) -> list[Hashable]:
        tokens: list[Hashable] = []
        for device in self.platform.bus.devices:
            for queue in device.queues:
                assert isinstance(queue, PackedDriver if self.packed else SplitDriver)
                tokens += [t for h in range(queue.size) if (t := queue.token_of(h)) is not None]
        return tokens

    @invariant()
    def every_token_in_exactly_one_place(self) -> None:
        if not hasattr(self, "platform"):
            return
        returned = self._returned()
        assert all(n == 1 for n in returned.values()), "a token came back twice"
        outstanding = self._outstanding()
        assert len(outstanding) == len(set(outstanding))
        assert not set(outstanding) & set(returned)
        assert set(outstanding) | set(returned) == self.issued, "a token was lost"
        for token in returned:
            slot = self.slot_of.pop(token, None)  # type: ignore[call-overload]
            if slot is not None:
                self.free_slots.append(slot)
        if returned:
            self.reached.add((self.kind, "returned"))

    @invariant()
    def the_reference_driver_breaks_no_rule(self) -> None:
        """Our bus and driver are a conforming driver: the devices record no violation."""
        if not hasattr(self, "platform"):
            return
        for device_id, core in self.cores.items():
            assert core.violations == [], (device_id, core.violations)
        assert self.platform.host.violations == []

    @invariant()
    def status_matches_binding(self) -> None:
        if not hasattr(self, "platform"):
            return
        for device in self.platform.bus.devices:
            status = device.transport.get_status()
            ready = [device.transport.queue_ready(i) for i in range(2)]
            generation = device.transport.config_generation()
            legacy = self.kind == "mmio-legacy"
            if legacy:
                assert generation is None
            else:
                assert generation == self.generations[DeviceId(device.device_id)]
            if device.driver is not None:
                assert status == (LEGACY_LIVE if legacy else LIVE)
                assert device.packed == self.packed
                assert ready[: len(device.queues)] == [True] * len(device.queues)
            elif DeviceId(device.device_id) in self.registered:
                assert status & Status.FAILED
            else:
                assert status == 0 or status & Status.FAILED
            if device.driver is None:
                assert ready == [False, False]

    def teardown(self) -> None:
        if not hasattr(self, "platform"):
            return
        for device_id in list(self.registered):
            self.unregister_driver(device_id)
        self.every_token_in_exactly_one_place()
        assert not self._outstanding()
        assert not self.platform.allocator.allocated, "a ring leaked"


COVERAGE_EXAMPLES = 60
"""Below this many examples the runs are too few to promise each outcome was reached."""


@pytest.mark.spec(
    "INIT-DRV-001", "INIT-DRV-006", "INIT-DRV-008", "STATUS-DRV-001", "STATUS-DRV-002",
    "FEAT-DRV-001", "FEAT-DRV-006", "MMIO-DRV-009", "MMIO-DRV-010", "MMIO-DRV-013",
    "CONFIG-DRV-001", "MMIO-DEV-006", "MMIO-DRV-021", "MMIO-DRV-022", "MMIO-DRV-023",
    "MMIO-DEV-003", "RESET-DRV-001", "VQ-DEV-002",
)
@pytest.mark.parametrize(
    "kind", ["mmio", "devpage", "mmio-legacy", "mmio" + PACKED_SUFFIX, "devpage" + PACKED_SUFFIX]
)
def test_bus_and_transport_lose_no_buffer_and_no_callback(kind: str) -> None:
    name = "TransportOn" + kind.title().replace("-", "")
    machine = type(name, (TransportMachine,), {"kind": kind})
    TransportMachine.reached.clear()
    run_state_machine_as_test(machine, settings=settings(derandomize=True))
    if settings.default.max_examples < COVERAGE_EXAMPLES:
        return  # a quick profile explores too little to promise every outcome was met
    wanted = ["returned", "removed", "config delivered"]
    if kind.endswith(PACKED_SUFFIX):
        wanted.append("wrap counter flipped")
    for what in wanted:
        assert (kind, what) in TransportMachine.reached, (kind, what)
