"""Discovery end to end: a scan finds a net and a blk device, the right drivers bind.

The "Done when" of issue 5 for virtio-mmio: MMIO windows (one empty, one with
DeviceID 0, a net and a blk stub, modern and legacy) are scanned; each device is probed
by the driver whose id table names it, reaches DRIVER_OK with its queues live, and a
buffer goes round: driver kick → QueueNotify → device → used ring → interrupt →
handler → the queue's callback.
"""

from __future__ import annotations

import pytest
from transport_rig import PAGE_ADDR, Platform, round_trip

from impl.devpage_driver import scan_devpage
from impl.mmio_driver import scan_mmio
from impl.spec import DeviceId, Feature, Status, has_feature
from impl.stubs import EchoDevice, EchoDriver

LIVE = Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK
LEGACY_LIVE = Status.ACKNOWLEDGE | Status.DRIVER | Status.DRIVER_OK


def build(driver_first: bool, legacy: bool = False) -> tuple[Platform, EchoDriver, EchoDriver]:
    platform = Platform()
    net_driver = EchoDriver("net", DeviceId.NET, queue_count=2)
    blk_driver = EchoDriver("blk", DeviceId.BLOCK, queue_count=1)
    platform.add_window()
    platform.add_mmio(EchoDevice(DeviceId.RESERVED))
    offer = {"features": 0} if legacy else {}
    net = EchoDevice(DeviceId.NET, queues=(16, 16), **offer)
    blk = EchoDevice(DeviceId.BLOCK, queues=(8,), **offer)
    platform.add_mmio(net, legacy=legacy)
    platform.add_mmio(blk, legacy=legacy)
    if driver_first:
        platform.bus.register_driver(net_driver)
        platform.bus.register_driver(blk_driver)
    result = scan_mmio(platform.space, platform.windows, platform.bus)
    assert len(result.registered) == 2
    assert [error is None for _, error in result.skipped] == [False, True]
    if not driver_first:
        platform.bus.register_driver(blk_driver)
        platform.bus.register_driver(net_driver)
    return platform, net_driver, blk_driver


@pytest.mark.spec(
    "MMIO-DEV-001", "MMIO-DEV-002", "MMIO-DRV-004", "MMIO-DRV-006", "MMIO-DRV-017",
    "MMIO-DRV-018", "MMIO-DRV-020", "INIT-DRV-001", "STATUS-DRV-001", "FEAT-DRV-006",
    "MMIO-DRV-021", "MMIO-DRV-023", "MMIO-DEV-003",
)
@pytest.mark.parametrize("driver_first", [True, False])
def test_mmio_scan_binds_net_and_blk_and_buffers_round_trip(driver_first: bool) -> None:
    platform, net_driver, blk_driver = build(driver_first)
    devices = {dev.device_id: dev for dev in platform.bus.devices}
    net, blk = devices[DeviceId.NET], devices[DeviceId.BLOCK]
    assert net.driver is net_driver and blk.driver is blk_driver
    for dev in (net, blk):
        assert dev.probe_error is None
        assert dev.transport.get_status() == LIVE
        assert has_feature(dev.features, Feature.VERSION_1)
    assert len(net.queues) == 2 and len(blk.queues) == 1
    assert net_driver.config_seen[id(net)] == bytes(range(1, 9))
    round_trip(platform, net, 1, b"ping", "net-token")
    round_trip(platform, blk, 0, b"sector", "blk-token")
    assert not net_driver.received and not blk_driver.received
    assert platform.irqs.deliver_all() == 2
    assert net_driver.received == [("net-token", 4)]
    assert blk_driver.received == [("blk-token", 6)]
    for dev in (net, blk):
        assert dev.transport.read_interrupt_status() == 0


@pytest.mark.spec("FEAT-DRV-006")
def test_legacy_mmio_devices_bind_without_features_ok() -> None:
    platform, net_driver, _ = build(driver_first=True, legacy=True)
    for dev in platform.bus.devices:
        assert dev.transport.legacy
        assert dev.probe_error is None
        assert dev.transport.get_status() == LEGACY_LIVE
        assert not has_feature(dev.features, Feature.VERSION_1)
    net = next(d for d in platform.bus.devices if d.device_id == DeviceId.NET)
    round_trip(platform, net, 0, b"legacy", "tok")
    platform.irqs.deliver_all()
    assert net_driver.received == [("tok", 6)]


@pytest.mark.spec("INIT-DRV-008")
def test_remove_resets_then_frees_every_ring() -> None:
    platform, net_driver, _ = build(driver_first=True)
    net = next(d for d in platform.bus.devices if d.device_id == DeviceId.NET)
    before = len(platform.allocator.allocated)
    round_trip(platform, net, 0, b"x", "pending")
    core = platform.cores[platform.windows[2].base]
    backend = core.backend
    assert isinstance(backend, EchoDevice)
    platform.bus.unregister_driver(net_driver)
    assert core.status == 0 and net.driver is None and not net.queues
    assert len(platform.allocator.allocated) == before - 2 + 2  # two rings gone, two buffers kept
    platform.bus.register_driver(net_driver)
    assert net.driver is net_driver and core.status == LIVE


@pytest.mark.spec("INIT-DRV-001", "STATUS-DRV-001", "FEAT-DRV-006")
@pytest.mark.parametrize("driver_first", [True, False])
def test_descriptor_page_scan_binds_net_and_blk_and_buffers_round_trip(driver_first: bool) -> None:
    platform = Platform()
    net_driver = EchoDriver("net", DeviceId.NET, queue_count=2)
    blk_driver = EchoDriver("blk", DeviceId.BLOCK, queue_count=1)
    platform.add_page_device(EchoDevice(DeviceId.NET, queues=(16, 16)))
    platform.add_page_device(EchoDevice(DeviceId.BLOCK, queues=(8,)))
    if driver_first:
        platform.bus.register_driver(net_driver)
        platform.bus.register_driver(blk_driver)
    scan = scan_devpage(platform.mem, PAGE_ADDR, platform.host.hypercall, platform.bus)
    assert scan.error is None and len(scan.registered) == 2
    if not driver_first:
        platform.bus.register_driver(blk_driver)
        platform.bus.register_driver(net_driver)
    net, blk = scan.registered
    assert net.driver is net_driver and blk.driver is blk_driver
    for dev in (net, blk):
        assert dev.probe_error is None
        assert dev.transport.get_status() == LIVE
    assert net_driver.config_seen[id(net)] == bytes(range(1, 9))
    round_trip(platform, net, 0, b"hello", "n")
    round_trip(platform, blk, 0, b"blk!", "b")
    assert platform.irqs.deliver_all() == 2
    assert net_driver.received == [("n", 5)] and blk_driver.received == [("b", 4)]
    assert not platform.host.violations
    for _, core in platform.page_cores:
        assert not core.violations


@pytest.mark.spec("MMIO-DRV-006", "MMIO-DRV-018")
def test_one_scan_over_mmio_windows_and_a_page_holding_the_same_devices() -> None:
    """The issue's scene: MMIO windows with net and blk, and a page with the same."""
    platform = Platform()
    drivers = {
        DeviceId.NET: EchoDriver("net", DeviceId.NET, queue_count=2),
        DeviceId.BLOCK: EchoDriver("blk", DeviceId.BLOCK, queue_count=1),
    }
    for driver in drivers.values():
        platform.bus.register_driver(driver)
    for device_id, queues in ((DeviceId.NET, (16, 16)), (DeviceId.BLOCK, (8,))):
        platform.add_mmio(EchoDevice(device_id, queues=queues))
        platform.add_page_device(EchoDevice(device_id, queues=queues))
    platform.add_mmio(EchoDevice(DeviceId.RESERVED))
    scan_mmio(platform.space, platform.windows, platform.bus)
    scan_devpage(platform.mem, PAGE_ADDR, platform.host.hypercall, platform.bus)
    assert len(platform.bus.devices) == 4
    for n, dev in enumerate(platform.bus.devices):
        assert dev.driver is drivers[DeviceId(dev.device_id)]
        assert dev.transport.get_status() == LIVE
        round_trip(platform, dev, 0, bytes([n]) * 3, n)
    platform.irqs.deliver_all()
    got = sorted(drivers[DeviceId.NET].received + drivers[DeviceId.BLOCK].received)
    assert got == [(0, 3), (1, 3), (2, 3), (3, 3)]
