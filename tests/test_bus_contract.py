"""The driver/device contract around FEATURES_OK, on every transport.

* `VirtioDevice.mem` / `.allocator`: the handle a driver gets carries the guest memory
  and allocator of its platform (virtio-mmio v2 and v1, the descriptor page, the direct
  bus), so the net and blk drivers need nothing else.
* `VirtioDriver.validate`: runs after DRIVER and before any feature is written; what it
  clears is never accepted, what it refuses never sees FEATURES_OK (§3.1.1 steps 4-5).
* `DeviceBackend.features_accepted`: the device hears the accepted features once per
  initialization, when it grants FEATURES_OK, before DRIVER_OK (legacy: at DRIVER_OK,
  before `activate`).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from blk_rig import TRANSPORTS, blk_side, guest
from direct_bus import bind as direct_bind
from net_rig import MAC_A, net_side
from transport_rig import PAGE_ADDR, Platform

from impl.blk_device import BlkDevice
from impl.bus import BusDevice
from impl.device_core import DeviceCore
from impl.devpage_driver import scan_devpage
from impl.disk import MemoryDisk
from impl.driver import VirtioDevice
from impl.errors import ConfigWriteTooEarly, DeviceError, ValidateAddedFeatures
from impl.mmio_driver import scan_mmio
from impl.spec import DeviceId, Feature, Status, feature_mask, has_feature
from impl.stubs import MODERN_FEATURES, EchoDevice, EchoDriver

BUS_TRANSPORTS = ("mmio", "mmio-legacy", "page")
BIT_A, BIT_B = 0, 1
"""Two device-type bits the echo device offers and the echo drivers know."""
OFFER = MODERN_FEATURES | feature_mask(BIT_A, BIT_B)
KNOWN = feature_mask(BIT_A, BIT_B)


class Refused(DeviceError):
    """What a test driver's `validate` raises to refuse a device."""

    section = "3.1.1"


class StatusAtHook(EchoDevice):
    """An echo device remembering the status and context at each `features_accepted`."""

    def __init__(self) -> None:
        super().__init__(DeviceId.NET, features=OFFER)
        self.core: DeviceCore | None = None
        self.at_hook: list[tuple[int, int, bool]] = []
        self.config_writes = 0

    def features_accepted(self, features: int) -> None:
        status = -1 if self.core is None else self.core.status
        self.at_hook.append((status, features, self.context is not None))
        super().features_accepted(features)

    def write_config(self, offset: int, data: bytes) -> None:
        self.config_writes += 1


class Validating(EchoDriver):
    """An echo driver whose `validate` is the test's function; it records what it saw."""

    def __init__(self, check: Callable[[VirtioDevice, int], int], **options: int) -> None:
        super().__init__("net", DeviceId.NET, feature_table=KNOWN, **options)
        self.check = check
        self.seen: list[tuple[int, int, int]] = []

    def validate(self, vdev: VirtioDevice, features: int) -> int:
        status = vdev.transport.get_status() if isinstance(vdev, BusDevice) else -1
        self.seen.append((status, features, vdev.features))
        return self.check(vdev, features)


def bind(driver: EchoDriver, transport: str) -> tuple[BusDevice, StatusAtHook, DeviceCore]:
    """Register `driver`, then let the guest find a `StatusAtHook` on `transport`."""
    platform = Platform(immediate=True)
    platform.bus.register_driver(driver)
    backend = StatusAtHook()
    if transport == "page":
        backend.core = platform.add_page_device(backend)
        (device,) = scan_devpage(
            platform.mem, PAGE_ADDR, platform.host.hypercall, platform.bus
        ).registered
    else:
        backend.core = platform.add_mmio(backend, legacy=transport == "mmio-legacy")
        (device,) = scan_mmio(platform.space, platform.windows, platform.bus).registered
    return device, backend, backend.core


def keep(vdev: VirtioDevice, features: int) -> int:
    return features


# --- 1. guest memory and allocator on the handle ------------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_transports_handle_gives_the_driver_guest_memory(transport: str) -> None:
    """The blk and net drivers built without memory take the handle's, on every transport."""
    blk = blk_side(BlkDevice(MemoryDisk(16)), transport=transport)
    assert blk.handle.mem is blk.mem and blk.handle.allocator is blk.allocator
    assert blk.driver.mem is blk.mem and blk.driver.allocator is blk.allocator
    blk.driver.write(0, bytes(range(256)) * 2)
    assert blk.driver.read(0, 1) == bytes(range(256)) * 2
    net = net_side(MAC_A, None, transport=transport, give_memory=False)
    assert net.driver.mem is net.mem and net.driver.allocator is net.handle.allocator
    assert net.driver.rx_posted > 0


# --- 2. the driver's validate step ----------------------------------------------------
@pytest.mark.spec("FEAT-DRV-002")
@pytest.mark.parametrize("transport", BUS_TRANSPORTS)
def test_validate_runs_after_driver_and_before_features_ok(transport: str) -> None:
    driver = Validating(keep)
    device, backend, _core = bind(driver, transport)
    assert device.driver is driver
    [(status, proposed, seen)] = driver.seen
    assert status == Status.ACKNOWLEDGE | Status.DRIVER
    assert proposed == seen == device.features
    assert backend.at_hook and backend.at_hook[0][1] == device.features


@pytest.mark.spec("FEAT-DRV-002", "FEAT-DRV-001")
@pytest.mark.parametrize("transport", BUS_TRANSPORTS)
def test_a_bit_validate_clears_is_never_accepted(transport: str) -> None:
    driver = Validating(lambda vdev, features: features & ~feature_mask(BIT_B))
    device, backend, core = bind(driver, transport)
    assert device.driver is driver
    assert has_feature(device.features, BIT_A) and not has_feature(device.features, BIT_B)
    assert not has_feature(core.driver_features, BIT_B)
    assert [features for _, features, _ in backend.at_hook] == [core.driver_features]


@pytest.mark.spec("FEAT-DRV-001")
def test_clearing_a_prerequisite_drops_what_requires_it() -> None:
    driver = Validating(lambda vdev, features: features & ~feature_mask(BIT_A))
    driver.feature_requires = {BIT_B: (BIT_A,)}  # type: ignore[attr-defined]
    device, _backend, core = bind(driver, "mmio")
    assert device.driver is driver
    assert not core.driver_features & feature_mask(BIT_A, BIT_B)


@pytest.mark.spec("FEAT-DRV-006")
def test_validate_cannot_drop_version_1() -> None:
    driver = Validating(lambda vdev, features: features & ~feature_mask(Feature.VERSION_1))
    device, _backend, core = bind(driver, "page")
    assert device.driver is driver and has_feature(core.driver_features, Feature.VERSION_1)


@pytest.mark.spec("INIT-DRV-004", "INIT-DRV-005")
@pytest.mark.parametrize("transport", BUS_TRANSPORTS)
def test_a_device_validate_refuses_never_sees_features_ok(transport: str) -> None:
    def refuse(vdev: VirtioDevice, features: int) -> int:
        raise Refused("this device will not do")

    driver = Validating(refuse)
    device, backend, core = bind(driver, transport)
    assert device.driver is None and isinstance(device.probe_error, Refused)
    assert core.status & Status.FAILED and not core.status & Status.FEATURES_OK
    assert core.driver_features == 0 and backend.at_hook == [] and not device.queues
    assert driver.bound == []


@pytest.mark.spec("FEAT-DRV-001")
def test_validate_adding_a_bit_fails_the_probe_before_features_ok() -> None:
    driver = Validating(lambda vdev, features: features | feature_mask(7))
    device, backend, core = bind(driver, "mmio")
    assert isinstance(device.probe_error, ValidateAddedFeatures)
    assert not core.status & Status.FEATURES_OK and backend.at_hook == []


@pytest.mark.spec("INIT-DRV-002")
@pytest.mark.parametrize("transport", BUS_TRANSPORTS)
def test_validate_may_read_config_but_not_write_it(transport: str) -> None:
    read: list[bytes] = []

    def reads(vdev: VirtioDevice, features: int) -> int:
        read.append(vdev.read_config(0, 4))
        return features

    def writes(vdev: VirtioDevice, features: int) -> int:
        vdev.write_config(0, b"\0")
        return features

    device, _backend, _core = bind(Validating(reads), transport)
    assert device.probe_error is None and read == [b"\x01\x02\x03\x04"]
    device, backend, core = bind(Validating(writes), transport)
    assert isinstance(device.probe_error, ConfigWriteTooEarly)
    assert backend.config_writes == 0 and not core.status & Status.FEATURES_OK


@pytest.mark.spec("INIT-DRV-002")
def test_the_direct_bus_validates_and_refuses_config_writes_too() -> None:
    def writes(vdev: VirtioDevice, features: int) -> int:
        vdev.write_config(0, b"\0")
        return features

    backend = StatusAtHook()
    mem, allocator = guest()
    with pytest.raises(ConfigWriteTooEarly):
        direct_bind(Validating(writes), backend, mem, allocator)
    assert backend.config_writes == 0 and backend.accepted == []
    driver = Validating(lambda vdev, features: features & ~feature_mask(BIT_B))
    handle = direct_bind(driver, StatusAtHook(), mem, allocator)
    assert has_feature(handle.features, BIT_A) and not has_feature(handle.features, BIT_B)
    assert handle.backend.accepted == [handle.features]


# --- 3. the device's features_accepted hook --------------------------------------------
@pytest.mark.parametrize("transport", ["mmio", "page"])
def test_the_device_hears_the_features_at_features_ok_before_driver_ok(transport: str) -> None:
    device, backend, core = bind(Validating(keep), transport)
    [(status, features, active)] = backend.at_hook
    assert status & Status.FEATURES_OK and not status & Status.DRIVER_OK and not active
    assert features == core.driver_features == device.features
    assert core.status & Status.DRIVER_OK


def test_the_legacy_device_hears_the_features_at_driver_ok_before_activate() -> None:
    device, backend, core = bind(Validating(keep), "mmio-legacy")
    [(status, features, active)] = backend.at_hook
    assert status & Status.DRIVER_OK and not active
    assert features == core.driver_features == device.features
    assert not has_feature(features, Feature.VERSION_1)


@pytest.mark.spec("FEAT-DEV-002")
def test_no_hook_when_features_ok_is_refused_and_one_per_initialization() -> None:
    backend = StatusAtHook()
    core = Platform().add_mmio(backend)
    backend.core = core
    ready = Status.ACKNOWLEDGE | Status.DRIVER
    core.write_status(ready)
    core.write_driver_features_word(0, feature_mask(7))  # never offered
    core.write_status(ready | Status.FEATURES_OK)
    assert not core.status & Status.FEATURES_OK and backend.at_hook == []
    for _ in range(2):
        core.write_status(0)
        core.write_status(ready)
        core.write_driver_features_word(1, 1)  # VERSION_1
        core.write_status(ready | Status.FEATURES_OK)
        core.write_status(ready | Status.FEATURES_OK)
        core.write_status(ready | Status.FEATURES_OK | Status.DRIVER_OK)
    assert [(status, active) for status, _, active in backend.at_hook] == [
        (ready | Status.FEATURES_OK, False)
    ] * 2
    core.write_status(0)
    core.write_status(ready)
    core.write_driver_features_word(1, 1)
    core.write_status(ready | Status.FEATURES_OK | Status.DRIVER_OK)  # both in one write
    assert len(backend.at_hook) == 3 and backend.at_hook[2][2] is False and core.active
