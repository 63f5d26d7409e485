"""Device configuration space from the driver's side (§2.5.1, §3.1.1).

The device records every config access the driver makes (offset, length and the status
at that moment), so each rule is checked on what the driver did, not on what it says:
optional fields are read only when their feature is offered, config space of any
size at least the driver's fields is accepted (and one smaller refused, where the
transport publishes its size), and nothing is written before FEATURES_OK.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from net_rig import MAC_A, NetSide, net_side
from transport_rig import PAGE_ADDR, Platform

from impl.blk_device import BlkDevice
from impl.blk_driver import BlkDriver
from impl.bus import BusDevice
from impl.device_core import DeviceCore
from impl.devpage_driver import scan_devpage
from impl.disk import MemoryDisk
from impl.driver import VirtioDevice
from impl.errors import BlkConfigTooSmall, NetConfigTooSmall
from impl.mmio_driver import scan_mmio
from impl.net_device import NetDevice
from impl.net_driver import NetDriver
from impl.spec import (
    BlkFeature,
    DeviceId,
    Feature,
    NetDuplex,
    NetFeature,
    Status,
    feature_mask,
    has_feature,
)
from impl.stubs import EchoDevice, EchoDriver

LIVE = Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK

NET_FIELDS = (
    (0, 6, NetFeature.MAC),
    (6, 8, NetFeature.STATUS),
    (8, 10, NetFeature.MQ),
    (10, 12, NetFeature.MTU),
)
"""§5.1.4: `virtio_net_config` byte ranges and the feature that makes each exist."""

OPTIONAL = (NetFeature.MAC, NetFeature.STATUS, NetFeature.MTU)


class RecordingNet(NetDevice):
    """A virtio-net device that offers only some optional fields and logs config reads."""

    withheld = 0

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.reads: list[tuple[int, int]] = []

    def offered_features(self) -> int:
        return super().offered_features() & ~self.withheld

    def read_config(self, offset: int, length: int) -> bytes:
        self.reads.append((offset, length))
        return super().read_config(offset, length)


def withholding(bits: tuple[int, ...]) -> type[RecordingNet]:
    return type("Withholding", (RecordingNet,), {"withheld": feature_mask(*bits)})


def config_interrupts(side: NetSide) -> int:
    handle = side.handle
    return handle.config_changes if isinstance(handle, BusDevice) else handle.config_interrupts


@pytest.mark.spec("CONFIG-DRV-002")
@pytest.mark.parametrize("transport", ["direct", "mmio"])
@pytest.mark.parametrize(
    "withheld", [bits for n in range(4) for bits in itertools.combinations(OPTIONAL, n)]
)
def test_optional_config_fields_are_read_only_when_their_feature_is_offered(
    transport: str, withheld: tuple[int, ...]
) -> None:
    side = net_side(MAC_A, None, transport=transport, device_class=withholding(withheld), mtu=1500)
    device = side.device
    assert isinstance(device, RecordingNet) and device.context is not None
    device.context.config_changed()  # the host says config changed: the driver re-reads
    side.deliver()
    assert config_interrupts(side) == 1
    offered = device.offered_features()
    for offset, length in device.reads:
        for start, end, feature in NET_FIELDS:
            if offset < end and start < offset + length:
                assert has_feature(offered, feature), f"read {offset}+{length} without {feature}"
    read_starts = {offset for offset, _ in device.reads}
    for start, _end, feature in NET_FIELDS:
        if feature in OPTIONAL and feature not in withheld:
            assert start in read_starts, f"{feature.name} offered but never read"
    assert (side.driver.mac == MAC_A) == (NetFeature.MAC not in withheld)


def echo_platform(transport: str, backend: EchoDevice, driver: EchoDriver) -> BusDevice:
    platform = Platform()
    platform.bus.register_driver(driver)
    if transport == "mmio":
        platform.add_mmio(backend)
        (device,) = scan_mmio(platform.space, platform.windows, platform.bus).registered
    else:
        platform.add_page_device(backend)
        scan = scan_devpage(platform.mem, PAGE_ADDR, platform.host.hypercall, platform.bus)
        (device,) = scan.registered
    return device


@pytest.mark.spec("CONFIG-DRV-003")
@pytest.mark.parametrize(
    ("transport", "size"), [("mmio", 8), ("mmio", 256), ("page", 8), ("page", 300), ("page", 2048)]
)
def test_config_space_larger_than_the_drivers_fields_is_accepted(transport: str, size: int) -> None:
    config = bytes((i * 7 + 1) % 256 for i in range(size))
    driver = EchoDriver("net", DeviceId.NET, config_bytes=8)
    device = echo_platform(transport, EchoDevice(DeviceId.NET, config=config), driver)
    assert device.driver is driver and device.probe_error is None
    assert device.transport.get_status() == LIVE
    assert driver.config_seen[id(device)] == config[:8]
    assert device.read_config(size - 4, 4) == config[-4:]  # the tail is there to read


class PaddedNet(NetDevice):
    """A virtio-net device publishing 1 KiB of config space (tail padding, §2.5)."""

    config_size = 1024


@pytest.mark.spec("CONFIG-DRV-003")
def test_the_net_driver_binds_to_a_device_with_padded_config_space() -> None:
    side = net_side(MAC_A, None, transport="page", device_class=PaddedNet)
    assert isinstance(side.handle, BusDevice)
    assert side.handle.transport.get_status() == LIVE
    assert side.driver.mac == MAC_A


class StatusAtConfigWrite(EchoDevice):
    """An echo device that records the device status at each config write it receives."""

    def __init__(self) -> None:
        super().__init__(DeviceId.NET)
        self.core: DeviceCore | None = None
        self.status_of: list[int] = []

    def write_config(self, offset: int, data: bytes) -> None:
        assert self.core is not None
        self.status_of.append(self.core.status)


class ConfigWritingDriver(EchoDriver):
    """A driver whose probe reads config, then writes a byte of it back."""

    def probe(self, vdev: VirtioDevice) -> None:
        vdev.write_config(0, vdev.read_config(0, 1))
        super().probe(vdev)


@pytest.mark.spec("INIT-DRV-002")
@pytest.mark.parametrize("transport", ["mmio", "page"])
def test_no_config_write_reaches_the_device_before_features_ok(transport: str) -> None:
    backend = StatusAtConfigWrite()
    platform = Platform()
    if transport == "mmio":
        backend.core = platform.add_mmio(backend)
        (device,) = scan_mmio(platform.space, platform.windows, platform.bus).registered
    else:
        backend.core = platform.add_page_device(backend)
        scan = scan_devpage(platform.mem, PAGE_ADDR, platform.host.hypercall, platform.bus)
        (device,) = scan.registered
    driver = ConfigWritingDriver("net", DeviceId.NET)
    platform.bus.register_driver(driver)
    assert device.driver is driver and backend.status_of != []
    for status in backend.status_of:
        assert status & Status.FEATURES_OK, f"config written at status {status:#x}"


def net_on_page(config_size: int, **options: Any) -> tuple[BusDevice, NetDriver]:
    """A virtio-net device on the descriptor page publishing `config_size` config bytes."""
    sized = type("Sized", (NetDevice,), {"config_size": config_size})
    platform = Platform()
    driver = NetDriver()
    platform.bus.register_driver(driver)
    platform.add_page_device(sized(MAC_A, None, **options))
    scan = scan_devpage(platform.mem, PAGE_ADDR, platform.host.hypercall, platform.bus)
    (device,) = scan.registered
    assert device.config_size == config_size
    return device, driver


@pytest.mark.spec("CONFIG-DRV-004")
@pytest.mark.parametrize(
    ("options", "needed"),
    [
        ({}, 8),  # mac, status
        ({"mtu": 1500}, 12),  # ... max_virtqueue_pairs (skipped over), mtu
        ({"speed": 1000, "duplex": NetDuplex.FULL}, 17),  # ... speed, duplex
    ],
)
def test_the_net_driver_checks_config_space_holds_the_fields_it_reads(
    options: dict[str, Any], needed: int
) -> None:
    """Exactly the fields of the negotiated features binds (less than the whole struct);
    one byte short is refused by `validate`, before FEATURES_OK, with a typed error, and
    the device is left unbound."""
    device, driver = net_on_page(needed, **options)
    assert device.driver is driver and device.probe_error is None
    assert device.transport.get_status() == LIVE and driver.mac == MAC_A
    device, driver = net_on_page(needed - 1, **options)
    assert device.driver is None and isinstance(device.probe_error, NetConfigTooSmall)
    status = device.transport.get_status()
    assert status & Status.FAILED and not status & Status.FEATURES_OK, "refused in validate"


def blk_on_page(config_size: int, features: int) -> tuple[BusDevice, BlkDriver]:
    """A virtio-blk device on the descriptor page publishing `config_size` config bytes."""
    backend = BlkDevice(MemoryDisk(64), features=features)
    backend.config_size = config_size
    platform = Platform()
    driver = BlkDriver()
    platform.bus.register_driver(driver)
    platform.add_page_device(backend)
    scan = scan_devpage(platform.mem, PAGE_ADDR, platform.host.hypercall, platform.bus)
    (device,) = scan.registered
    assert device.config_size == config_size
    return device, driver


@pytest.mark.spec("CONFIG-DRV-004")
@pytest.mark.parametrize(
    ("bits", "needed"),
    [
        ((), 8),  # capacity
        ((BlkFeature.SIZE_MAX, BlkFeature.SEG_MAX), 16),
        ((BlkFeature.BLK_SIZE,), 24),
        ((BlkFeature.FLUSH, BlkFeature.CONFIG_WCE), 33),
        ((BlkFeature.DISCARD,), 44),
        ((BlkFeature.WRITE_ZEROES,), 56),
    ],
)
def test_the_blk_driver_checks_config_space_holds_the_fields_it_reads(
    bits: tuple[int, ...], needed: int
) -> None:
    features = feature_mask(Feature.VERSION_1, *bits)
    device, driver = blk_on_page(needed, features)
    assert device.driver is driver and device.probe_error is None
    assert driver.capacity == 64
    device, driver = blk_on_page(needed - 1, features)
    assert device.driver is None and isinstance(device.probe_error, BlkConfigTooSmall)
    status = device.transport.get_status()
    assert status & Status.FAILED and not status & Status.FEATURES_OK, "refused in validate"
