"""Packed rings over the transports: RING_PACKED negotiated, three areas programmed, buffers round.

A device core built with `packed=True` offers VIRTIO_F_RING_PACKED; a bus whose ring
features include `PACKED_RING` accepts it. Then discovery and probe (§3.1.1) reach
DRIVER_OK with every queue a packed ring of the device's maximum size (any size, not
only powers of two, §2.8), the transport carries the descriptor ring and the driver and
device event suppression addresses (QueueDesc/QueueDriver/QueueDevice on virtio-mmio
version 2, the queue record's desc/driver/device on the descriptor page), the device
core serves each enabled queue with a `PackedDevice`, and a buffer goes round through
kick, device, used descriptor, interrupt and callback. Without either side's consent,
or on legacy virtio-mmio, the split ring is used as before.
"""

from __future__ import annotations

import pytest
from transport_rig import PAGE_ADDR, Platform, round_trip

from impl.bus import BusDevice
from impl.device_core import DeviceCore
from impl.devpage_driver import scan_devpage
from impl.mmio_driver import scan_mmio
from impl.packed_device import PackedDevice
from impl.packed_driver import PackedDriver
from impl.packed_layout import PackedLayout
from impl.spec import DeviceId, Feature, Status, feature_mask, has_feature
from impl.split_device import SplitDevice
from impl.split_driver import SplitDriver
from impl.stubs import MODERN_FEATURES, EchoDevice, EchoDriver
from impl.transport import PACKED_RING, RING_FEATURES

LIVE = Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK
LEGACY_LIVE = Status.ACKNOWLEDGE | Status.DRIVER | Status.DRIVER_OK
QUEUE_MAX = (12, 5)
"""Neither a power of two: a packed queue takes them as they are."""
TRANSPORTS = ("mmio", "page")


def bring_up(
    kind: str,
    *,
    device_packed: bool = True,
    bus_packed: bool = True,
    features: int = MODERN_FEATURES,
    queues: tuple[int, ...] = QUEUE_MAX,
    driver_first: bool = True,
) -> tuple[Platform, DeviceCore, EchoDevice, EchoDriver, BusDevice]:
    """One echo device on `kind`, scanned and probed; return the pieces."""
    ring_features = RING_FEATURES | (PACKED_RING if bus_packed else 0)
    platform = Platform(ring_features=ring_features)
    backend = EchoDevice(DeviceId.NET, queues=queues, features=features)
    driver = EchoDriver("net", DeviceId.NET, queue_count=len(queues))
    if kind == "page":
        core = platform.add_page_device(backend, packed=device_packed)
    else:
        core = platform.add_mmio(backend, legacy=kind == "mmio-legacy", packed=device_packed)
    if driver_first:
        platform.bus.register_driver(driver)
    if kind == "page":
        found = scan_devpage(platform.mem, PAGE_ADDR, platform.host.hypercall, platform.bus)
        (device,) = found.registered
    else:
        (device,) = scan_mmio(platform.space, platform.windows, platform.bus).registered
    if not driver_first:
        platform.bus.register_driver(driver)
    assert device.driver is driver, device.probe_error
    return platform, core, backend, driver, device


def programmed(core: DeviceCore, index: int) -> tuple[int, int, int, int]:
    """What the device holds for queue `index`: size and the three area addresses."""
    queue = core.queues[index]
    return queue.size, queue.desc, queue.driver, queue.device


@pytest.mark.spec("FEAT-DRV-010", "FEAT-DRV-001", "FEAT-DEV-002", "PACKED-DRV-001", "MMIO-DRV-009")
@pytest.mark.parametrize("kind", TRANSPORTS)
@pytest.mark.parametrize("driver_first", [True, False])
@pytest.mark.parametrize("event_idx", [True, False])
def test_probe_negotiates_packed_programs_the_areas_and_round_trips(
    kind: str, driver_first: bool, event_idx: bool
) -> None:
    features = MODERN_FEATURES
    if not event_idx:
        features &= ~feature_mask(Feature.EVENT_IDX)
    platform, core, backend, driver, device = bring_up(
        kind, features=features, driver_first=driver_first
    )
    assert device.transport.get_status() == LIVE and core.status == LIVE
    assert has_feature(device.features, Feature.RING_PACKED)
    assert device.features & ~core.offered_features == 0
    assert core.driver_features == device.features
    assert has_feature(device.features, Feature.EVENT_IDX) == event_idx
    assert backend.context is not None
    for index, maximum in enumerate(QUEUE_MAX):
        ring = device.queues[index]
        assert isinstance(ring, PackedDriver)
        assert ring.size == maximum
        layout = ring.layout
        assert layout.desc % 16 == 0 and layout.driver % 4 == 0 and layout.device % 4 == 0
        assert programmed(core, index) == (maximum, layout.desc, layout.driver, layout.device)
        served = backend.context.queues[index]
        assert isinstance(served, PackedDevice)
        assert served.layout == layout
    for index in range(len(QUEUE_MAX)):
        round_trip(platform, device, index, bytes([index + 1]) * 7, f"t{index}")
    assert backend.served == 2
    platform.irqs.deliver_all()
    assert sorted(driver.received) == [("t0", 7), ("t1", 7)]
    assert device.transport.read_interrupt_status() == 0
    assert core.violations == [] and platform.host.violations == []


@pytest.mark.spec("FEAT-DRV-010")
@pytest.mark.parametrize("kind", TRANSPORTS)
def test_packed_rings_wrap_many_times_through_the_transport(kind: str) -> None:
    """Sizes 5 and 12 wrap their counters several times; every token comes back once."""
    platform, _core, _backend, driver, device = bring_up(kind)
    tokens = []
    for n in range(40):
        index = n % 2
        round_trip(platform, device, index, bytes([n]) * (1 + n % 9), n)
        tokens.append((n, 1 + n % 9))
        platform.irqs.deliver_all()
    assert sorted(driver.received) == tokens
    for ring in device.queues:
        assert isinstance(ring, PackedDriver) and ring.outstanding == 0


@pytest.mark.spec("INIT-DRV-008")
@pytest.mark.parametrize("kind", TRANSPORTS)
def test_remove_detaches_outstanding_packed_buffers_and_frees_the_rings(kind: str) -> None:
    platform, core, backend, driver, device = bring_up(kind)
    rings = len(platform.allocator.allocated)
    backend.context = None  # the device takes nothing: the buffer stays outstanding
    round_trip(platform, device, 0, b"kept", "pending")
    platform.bus.unregister_driver(driver)
    assert driver.detached == ["pending"]
    assert core.status == 0 and not device.queues
    assert len(platform.allocator.allocated) == rings - len(QUEUE_MAX) + 2
    platform.bus.register_driver(driver)
    assert device.driver is driver and core.status == LIVE
    assert all(isinstance(ring, PackedDriver) for ring in device.queues)


@pytest.mark.spec("FEAT-DRV-005")
@pytest.mark.parametrize("kind", TRANSPORTS)
def test_a_bus_that_does_not_know_packed_takes_split_rings_from_a_packed_device(
    kind: str,
) -> None:
    platform, core, backend, driver, device = bring_up(kind, bus_packed=False)
    assert has_feature(core.offered_features, Feature.RING_PACKED)
    assert not has_feature(device.features, Feature.RING_PACKED)
    assert [ring.size for ring in device.queues] == [8, 4]
    assert all(isinstance(ring, SplitDriver) for ring in device.queues)
    assert backend.context is not None
    assert all(isinstance(q, SplitDevice) for q in backend.context.queues)
    round_trip(platform, device, 1, b"split", "s")
    platform.irqs.deliver_all()
    assert driver.received == [("s", 5)]


@pytest.mark.spec("FEAT-DEV-003", "FEAT-DRV-001")
@pytest.mark.parametrize("kind", TRANSPORTS)
def test_a_device_that_does_not_offer_packed_gets_split_rings_from_a_packed_bus(
    kind: str,
) -> None:
    greedy = MODERN_FEATURES | feature_mask(Feature.RING_PACKED)
    platform, core, _backend, driver, device = bring_up(kind, device_packed=False, features=greedy)
    assert not has_feature(core.offered_features, Feature.RING_PACKED)
    assert not has_feature(device.features, Feature.RING_PACKED)
    assert all(isinstance(ring, SplitDriver) for ring in device.queues)
    round_trip(platform, device, 0, b"plain", "p")
    platform.irqs.deliver_all()
    assert driver.received == [("p", 5)]


@pytest.mark.spec("FEAT-DEV-003")
def test_legacy_mmio_never_offers_or_negotiates_packed() -> None:
    """RING_PACKED is bit 34; a legacy device carries 32 bits and no VERSION_1."""
    platform, core, _backend, driver, device = bring_up(
        "mmio-legacy", features=0, queues=(8,)
    )
    assert core.offered_features == 0
    assert device.transport.get_features() == 0
    assert device.transport.get_status() == LEGACY_LIVE
    assert not has_feature(device.features, Feature.RING_PACKED)
    (ring,) = device.queues
    assert isinstance(ring, SplitDriver)
    round_trip(platform, device, 0, b"legacy", "l")
    platform.irqs.deliver_all()
    assert driver.received == [("l", 6)]


def test_packed_and_split_devices_share_one_bus() -> None:
    """Per device: the packed-offering one gets packed rings, the other split ones."""
    platform = Platform(ring_features=RING_FEATURES | PACKED_RING)
    drivers = {
        DeviceId.NET: EchoDriver("net", DeviceId.NET, queue_count=2),
        DeviceId.BLOCK: EchoDriver("blk", DeviceId.BLOCK, queue_count=1),
    }
    for driver in drivers.values():
        platform.bus.register_driver(driver)
    platform.add_mmio(EchoDevice(DeviceId.NET, queues=(6, 6)), packed=True)
    platform.add_mmio(EchoDevice(DeviceId.BLOCK, queues=(8,)))
    platform.add_page_device(EchoDevice(DeviceId.BLOCK, queues=(3,)), packed=True)
    scan_mmio(platform.space, platform.windows, platform.bus)
    scan_devpage(platform.mem, PAGE_ADDR, platform.host.hypercall, platform.bus)
    kinds = [type(device.queues[0]) for device in platform.bus.devices]
    assert kinds == [PackedDriver, SplitDriver, PackedDriver]
    for n, device in enumerate(platform.bus.devices):
        round_trip(platform, device, 0, bytes([n]) * 4, n)
    platform.irqs.deliver_all()
    received = drivers[DeviceId.NET].received + drivers[DeviceId.BLOCK].received
    assert sorted(received) == [(0, 4), (1, 4), (2, 4)]


def test_a_packed_layout_is_what_the_bus_programs() -> None:
    """The bus's ring shape for a packed queue is the §2.8.10.1 table's, back to back."""
    _platform, _core, _backend, _driver, device = bring_up("mmio")
    ring = device.queues[1]
    assert isinstance(ring, PackedDriver)
    layout = ring.layout
    assert layout == PackedLayout(5, layout.desc, layout.desc + 16 * 5, layout.desc + 16 * 5 + 4)
