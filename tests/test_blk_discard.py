"""Discard and write zeroes (§5.2.6): what the device may do to the ranges, and what the
driver may not take for granted afterwards.

The device is free in what a discard leaves behind (BLK-DEV-023), so the disks here
differ: one zeroes (this project's `MemoryDisk`), one keeps the old data, one scribbles
a pattern. Whatever it is, the driver reads back what the device holds (BLK-DRV-025).
Expected images are computed here from the ranges, not by `impl`.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from blk_rig import PACKED_TRANSPORTS, TRANSPORTS, blk_side
from blk_support import SECTOR, RecordingDisk

from impl.blk_device import BlkDevice
from impl.disk import MemoryDisk
from impl.errors import BlkBackendFailed, BlkIOError
from impl.spec import BlkConfigOffset

SECTORS = 16
OLD = b"".join(bytes((0x40 + n,)) * SECTOR for n in range(SECTORS))
RANGES = [(2, 3), (9, 4)]


def image_with(ranges: list[tuple[int, int]], fill: bytes) -> bytes:
    """OLD with every sector of `ranges` replaced by `fill` (one sector's bytes)."""
    image = bytearray(OLD)
    for sector, count in ranges:
        image[sector * SECTOR : (sector + count) * SECTOR] = fill * count
    return bytes(image)


class KeepingDisk(RecordingDisk):
    """A disk on which a discard deallocates nothing and changes nothing."""

    def discard(self, sector: int, count: int) -> None:
        self.calls.append(("discard", (sector, count)))


SCRIBBLE = bytes((0xA5, 0x5A)) * (SECTOR // 2)


class ScribblingDisk(RecordingDisk):
    """A disk on which discarded sectors read back as a pattern (neither old data nor 0)."""

    def discard(self, sector: int, count: int) -> None:
        self.calls.append(("discard", (sector, count)))
        MemoryDisk.write(self, sector, SCRIBBLE * count)


class FailsSecondSegment(RecordingDisk):
    """A disk on which the second discard or write-zeroes range ever asked fails (after
    the first was done); every other range succeeds. Each range asked is recorded."""

    asked: int = 0

    def discard(self, sector: int, count: int) -> None:
        self._maybe_fail("discard", sector, count)
        self.calls.append(("discard", (sector, count)))
        MemoryDisk.write_zeroes(self, sector, count)  # not through the counting override

    def write_zeroes(self, sector: int, count: int) -> None:
        self._maybe_fail("write_zeroes", sector, count)
        super().write_zeroes(sector, count)

    def _maybe_fail(self, name: str, sector: int, count: int) -> None:
        self.asked += 1
        if self.asked == 2:
            self.calls.append((name + " failed", (sector, count)))
            raise OSError(5, "Input/output error")


@pytest.mark.spec("BLK-DRV-025")
@pytest.mark.parametrize("disk_class", [RecordingDisk, KeepingDisk, ScribblingDisk])
@pytest.mark.parametrize("transport", TRANSPORTS + PACKED_TRANSPORTS)
def test_reads_after_a_discard_return_what_the_device_holds(
    disk_class: type[RecordingDisk], transport: str
) -> None:
    disk = disk_class(SECTORS)
    driver = blk_side(BlkDevice(disk), transport=transport).driver
    driver.write(0, OLD)
    driver.discard(RANGES)
    assert driver.read(0, SECTORS) == disk.image()
    driver.write(3, b"n" * SECTOR)  # and the discarded sectors take new data as any other
    assert driver.read(3, 1) == b"n" * SECTOR


def test_the_three_disks_leave_discarded_sectors_differently() -> None:
    """The test above is only worth something if the disks disagree."""
    images = set()
    for disk_class in (RecordingDisk, KeepingDisk, ScribblingDisk):
        disk = disk_class(SECTORS)
        driver = blk_side(BlkDevice(disk)).driver
        driver.write(0, OLD)
        driver.discard(RANGES)
        images.add(disk.image())
    assert images == {image_with(RANGES, bytes(SECTOR)), OLD, image_with(RANGES, SCRIBBLE)}


@pytest.mark.spec("BLK-DEV-023")
@pytest.mark.parametrize("transport", TRANSPORTS + PACKED_TRANSPORTS)
def test_a_discard_reaches_only_its_ranges(transport: str) -> None:
    disk = RecordingDisk(SECTORS, writeback=False)
    driver = blk_side(BlkDevice(disk), transport=transport).driver
    driver.write(0, OLD)
    driver.discard(RANGES)
    assert [args for name, args in disk.calls if name == "discard"] == RANGES
    after = disk.image()
    for image in (after, disk.stable_image()):
        for sector in range(SECTORS):
            if not any(start <= sector < start + n for start, n in RANGES):
                piece = slice(sector * SECTOR, (sector + 1) * SECTOR)
                assert image[piece] == OLD[piece], sector


@pytest.mark.spec("BLK-DEV-024", "BLK-DEV-025")
@pytest.mark.parametrize("unmap", [False, True])
@pytest.mark.parametrize("transport", TRANSPORTS + PACKED_TRANSPORTS)
def test_write_zeroes_reads_zero_with_or_without_unmap(unmap: bool, transport: str) -> None:
    disk = RecordingDisk(SECTORS)
    driver = blk_side(BlkDevice(disk), transport=transport).driver
    driver.write(0, OLD)
    driver.write_zeroes(RANGES, unmap=unmap)
    expected = image_with(RANGES, bytes(SECTOR))
    assert driver.read(0, SECTORS) == expected
    assert disk.image() == expected == disk.stable_image()  # writethrough: stable at once
    zeroed = [args for name, args in disk.calls if name in ("write_zeroes", "discard")]
    assert zeroed == RANGES


@pytest.mark.spec("BLK-DRV-026")
@pytest.mark.parametrize("kind", ["discard", "write_zeroes"])
def test_a_multi_segment_request_that_failed_is_failed_as_a_whole(kind: str) -> None:
    disk = FailsSecondSegment(SECTORS)
    device = BlkDevice(disk)
    driver = blk_side(device).driver
    driver.write(0, OLD)
    ranges = [(0, 2), (4, 2), (8, 2)]
    with pytest.raises(BlkIOError):
        getattr(driver, kind)(ranges)
    assert isinstance(device.rejections[-1], BlkBackendFailed)
    tried = [(name, args) for name, args in disk.calls if name.startswith(kind)]
    assert tried == [(kind, (0, 2)), (kind + " failed", (4, 2))]
    assert disk.asked == 2, "no range was sent again, none was taken as done or failed"
    assert driver.read(0, SECTORS) == disk.image()  # the disk's state, whatever it is


@pytest.mark.spec("BLK-DEV-027")
@pytest.mark.parametrize("transport", TRANSPORTS + PACKED_TRANSPORTS)
def test_write_zeroes_may_unmap_never_changes_unannounced(transport: str) -> None:
    """The device keeps the field at 0 (it never deallocates, BLK-DEV-026); whatever the
    driver does, a change of the field would have to come with a config notification."""
    disk = MemoryDisk(SECTORS)
    device = BlkDevice(disk, writeback=True)
    side = blk_side(device, transport=transport)
    driver = side.driver

    def grow() -> None:
        disk.resize(2 * SECTORS)
        device.resize()

    steps: list[Callable[[], object]] = [
        lambda: driver.write(0, OLD),
        lambda: driver.write_zeroes(RANGES, unmap=True),
        lambda: driver.discard(RANGES),
        lambda: driver.set_writeback(False),
        grow,
        lambda: driver.write_zeroes([(SECTORS, SECTORS)], unmap=True),
    ]
    for step in steps:
        field = device.read_config(BlkConfigOffset.WRITE_ZEROES_MAY_UNMAP, 1)
        notified = side.config_changes()
        step()
        same = device.read_config(BlkConfigOffset.WRITE_ZEROES_MAY_UNMAP, 1) == field
        assert same or side.config_changes() > notified
    assert side.config_changes() == 1  # the resize was announced: notifications are seen
