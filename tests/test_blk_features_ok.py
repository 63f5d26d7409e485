"""virtio-blk's `writeback` is settled when the device grants FEATURES_OK (§5.2.5).

The driver reads `writeback` in probe: after FEATURES_OK (BLK-DRV-004), before DRIVER_OK.
With CONFIG_WCE negotiated and FLUSH not, that read must already find 0 (BLK-DEV-002):
the device applies the rule in `features_accepted`, not at DRIVER_OK. Over the legacy
interface the device leaves `writeback` alone at every status write when the driver
accepted CONFIG_WCE (§5.2.5.1), including a value the driver wrote before DRIVER_OK.
"""

from __future__ import annotations

import pytest
from blk_rig import PACKED_TRANSPORTS, blk_side

from impl.blk_device import BlkDevice
from impl.blk_driver import KNOWN_FEATURES, BlkDriver
from impl.bus import BusDevice
from impl.disk import MemoryDisk
from impl.driver import VirtioDevice
from impl.spec import BlkConfigOffset, BlkFeature, Status, feature_mask

MODERN = ("direct", "mmio", "page", *PACKED_TRANSPORTS)
NO_FLUSH = KNOWN_FEATURES & ~feature_mask(BlkFeature.FLUSH)


class ReadsWriteback(BlkDriver):
    """Records `writeback` (and, on a bus, the status) as probe first reads it."""

    seen: tuple[int, int | None] | None = None

    def probe(self, vdev: VirtioDevice) -> None:
        status = vdev.transport.get_status() if isinstance(vdev, BusDevice) else None
        self.seen = (vdev.read_config(BlkConfigOffset.WRITEBACK, 1)[0], status)
        super().probe(vdev)


@pytest.mark.spec("BLK-DEV-002", "BLK-DRV-004")
@pytest.mark.parametrize("transport", MODERN)
def test_writeback_is_zero_between_features_ok_and_driver_ok(transport: str) -> None:
    device = BlkDevice(MemoryDisk(8), writeback=True)
    side = blk_side(device, transport=transport, known=NO_FLUSH, driver_class=ReadsWriteback)
    driver = side.driver
    assert isinstance(driver, ReadsWriteback) and driver.seen is not None
    writeback, status = driver.seen
    assert writeback == 0
    if status is not None:
        assert status & Status.FEATURES_OK and not status & Status.DRIVER_OK
    assert driver.writeback is False and device.disk.writeback is False
    assert device.config.writeback == 0


@pytest.mark.parametrize("transport", MODERN)
def test_writeback_keeps_the_devices_setting_when_flush_is_negotiated(transport: str) -> None:
    device = BlkDevice(MemoryDisk(8), writeback=True)
    side = blk_side(device, transport=transport, driver_class=ReadsWriteback)
    assert isinstance(side.driver, ReadsWriteback) and side.driver.seen is not None
    assert side.driver.seen[0] == 1
    assert side.driver.writeback is True and device.disk.writeback is True


class WritesWriteback(BlkDriver):
    """A legacy driver that sets `writeback` to 0 before DRIVER_OK (§5.2.5.1 allows it)."""

    def probe(self, vdev: VirtioDevice) -> None:
        vdev.write_config(BlkConfigOffset.WRITEBACK, b"\0")
        super().probe(vdev)


@pytest.mark.parametrize("driver_class", [BlkDriver, WritesWriteback])
def test_legacy_writeback_is_not_changed_at_driver_ok(driver_class: type[BlkDriver]) -> None:
    """CONFIG_WCE accepted without FLUSH over virtio-mmio v1: `writeback` stays what it
    was (the device's 1, or the driver's 0 written before DRIVER_OK)."""
    device = BlkDevice(MemoryDisk(8), writeback=True)
    side = blk_side(device, transport="mmio-legacy", known=NO_FLUSH, driver_class=driver_class)
    kept = 0 if driver_class is WritesWriteback else 1
    assert side.handle.has_feature(BlkFeature.CONFIG_WCE)
    assert not side.handle.has_feature(BlkFeature.FLUSH)
    assert device.config.writeback == kept
    assert side.driver.writeback is bool(kept) and device.disk.writeback is bool(kept)
