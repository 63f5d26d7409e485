"""The bus on its own terms: matching, feature acceptance, held kicks, unregistering.

Runs over virtio-mmio (the bus does not know the transport; the stateful and discovery
tests cover the descriptor page with the same code).
"""

from __future__ import annotations

import pytest
from transport_rig import Platform, round_trip

from impl.bus import RING_FEATURES, accepted_features
from impl.chain import Segment
from impl.driver import ANY_VENDOR, DeviceMatch, VirtioDevice
from impl.errors import BusMisuse, NotifyNotLive, QueueUnavailable
from impl.mmio_driver import scan_mmio
from impl.spec import DeviceId, Feature, Status, feature_mask, has_feature
from impl.stubs import ECHO_VENDOR, MODERN_FEATURES, EchoDevice, EchoDriver

LIVE = Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK
NET_BIT = 5
UNKNOWN_BIT = 60


def one_device(features: int = MODERN_FEATURES, **bus: int) -> Platform:
    platform = Platform(**bus)
    platform.add_mmio(EchoDevice(DeviceId.NET, queues=(8, 8), features=features))
    return platform


@pytest.mark.parametrize(
    ("vendor", "binds"), [(ANY_VENDOR, True), (ECHO_VENDOR, True), (0x1234, False)]
)
def test_a_driver_binds_only_when_its_id_table_names_device_and_vendor(
    vendor: int, binds: bool
) -> None:
    platform = one_device()
    driver = EchoDriver("net", DeviceId.NET)
    driver.id_table = (DeviceMatch(DeviceId.NET, vendor),)
    platform.bus.register_driver(driver)
    (device,) = scan_mmio(platform.space, platform.windows, platform.bus).registered
    assert (device.driver is driver) is binds
    assert device.transport.get_status() == (LIVE if binds else 0)


def test_a_failed_probe_moves_on_to_the_next_matching_driver() -> None:
    platform = one_device()
    greedy = EchoDriver("greedy", DeviceId.NET, queue_count=3)  # the device has 2 queues
    modest = EchoDriver("modest", DeviceId.NET, queue_count=2)
    platform.bus.register_driver(greedy)
    platform.bus.register_driver(modest)
    (device,) = scan_mmio(platform.space, platform.windows, platform.bus).registered
    assert device.driver is modest and device.probe_error is None
    assert greedy.bound == [] and device.transport.get_status() == LIVE


def test_a_driver_wanting_a_missing_queue_leaves_the_device_failed() -> None:
    platform = one_device()
    platform.bus.register_driver(EchoDriver("greedy", DeviceId.NET, queue_count=3))
    (device,) = scan_mmio(platform.space, platform.windows, platform.bus).registered
    assert isinstance(device.probe_error, QueueUnavailable)
    assert device.transport.get_status() & Status.FAILED
    assert platform.allocator.allocated == {}


@pytest.mark.spec("FEAT-DRV-001", "FEAT-DRV-003", "FEAT-DRV-005", "FEAT-DRV-006")
def test_accepted_features_are_offered_and_known_and_never_reserved_bits_unasked() -> None:
    offered = feature_mask(
        Feature.VERSION_1, Feature.EVENT_IDX, Feature.RING_PACKED, NET_BIT, UNKNOWN_BIT
    )
    known = feature_mask(NET_BIT, 6, Feature.RING_PACKED)
    accepted = accepted_features(offered, known, RING_FEATURES, legacy=False)
    assert accepted == feature_mask(Feature.VERSION_1, Feature.EVENT_IDX, NET_BIT)
    legacy = accepted_features(offered, known, RING_FEATURES, legacy=True)
    assert legacy == feature_mask(Feature.EVENT_IDX, NET_BIT)


@pytest.mark.spec("FEAT-DRV-005")
def test_an_offered_feature_the_driver_does_not_know_does_not_fail_the_probe() -> None:
    platform = one_device(MODERN_FEATURES | feature_mask(UNKNOWN_BIT, NET_BIT))
    driver = EchoDriver("net", DeviceId.NET, feature_table=feature_mask(NET_BIT))
    platform.bus.register_driver(driver)
    (device,) = scan_mmio(platform.space, platform.windows, platform.bus).registered
    assert device.driver is driver
    assert has_feature(device.features, NET_BIT) and not has_feature(device.features, UNKNOWN_BIT)


def test_the_bus_can_decline_event_idx() -> None:
    platform = one_device(ring_features=feature_mask(Feature.VERSION_1))
    platform.bus.register_driver(EchoDriver("net", DeviceId.NET))
    (device,) = scan_mmio(platform.space, platform.windows, platform.bus).registered
    assert device.features == feature_mask(Feature.VERSION_1)


class KickingDriver(EchoDriver):
    """Fills and kicks its first queue inside probe, before the bus sets DRIVER_OK."""

    def probe(self, vdev: VirtioDevice) -> None:
        super().probe(vdev)
        queue = self.queues[id(vdev)][0]
        queue.add_sgs([Segment(0xF0000, 4)], [Segment(0xF0010, 4)], "early")
        assert queue.kick() is True


@pytest.mark.spec("INIT-DRV-006")
def test_kicks_made_during_probe_are_held_until_driver_ok() -> None:
    platform = one_device()
    driver = KickingDriver("net", DeviceId.NET)
    platform.bus.register_driver(driver)
    scan_mmio(platform.space, platform.windows, platform.bus)
    core = next(iter(platform.cores.values()))
    assert not any(isinstance(v, NotifyNotLive) for v in core.violations)
    platform.irqs.deliver_all()
    assert driver.received == [("early", 4)]


def test_unregistering_a_device_removes_its_driver_and_registering_again_rebinds() -> None:
    platform = one_device()
    driver = EchoDriver("net", DeviceId.NET)
    platform.bus.register_driver(driver)
    (device,) = scan_mmio(platform.space, platform.windows, platform.bus).registered
    round_trip(platform, device, 0, b"bye", "pending")
    platform.bus.unregister_virtio_device(device)
    assert driver.removed == 1 and driver.detached == ["pending"]
    assert device.transport.get_status() == 0 and platform.bus.devices == []
    with pytest.raises(BusMisuse):
        platform.bus.unregister_virtio_device(device)
    (again,) = scan_mmio(platform.space, platform.windows, platform.bus).registered
    assert again.driver is driver and again.transport.get_status() == LIVE


def test_registering_a_driver_twice_is_a_usage_error() -> None:
    platform = one_device()
    driver = EchoDriver("net", DeviceId.NET)
    platform.bus.register_driver(driver)
    with pytest.raises(BusMisuse):
        platform.bus.register_driver(driver)
    platform.bus.unregister_driver(driver)
    with pytest.raises(BusMisuse):
        platform.bus.unregister_driver(driver)
