"""virtio-blk device config space and features, and the driver's probe, limits and checks.

Config space layout and padding (§5.2.4), the feature rules of §5.2.5, the driver's
derived cache mode, multiqueue, capacity changes, back-pressure on a full ring, and a
lying device caught by the driver (bad status byte, wrong used length, bad config).
What runs over the transports runs on split and on packed rings.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from blk_rig import PACKED_TRANSPORTS, TRANSPORTS, BlkSide, blk_side
from blk_support import SECTOR, RecordingDisk

from impl.blk_device import BlkDevice
from impl.blk_driver import KNOWN_FEATURES, BlkDriver
from impl.blk_layout import BlkConfig, BlkReqHeader, DwzSegment
from impl.blk_request import scatter
from impl.chain import Chain
from impl.device import DeviceQueue
from impl.device_core import DeviceCore
from impl.disk import MemoryDisk
from impl.errors import (
    BlkBackendFailed,
    BlkBadConfig,
    BlkBadRequest,
    BlkBadStatus,
    BlkBadUsedLength,
    BlkIOError,
    BlkOutOfRange,
    BlkReadOnly,
    BlkUnsupported,
)
from impl.packed_driver import PackedDriver
from impl.spec import (
    BLK_CONFIG_SIZE,
    BlkConfigOffset,
    BlkFeature,
    BlkReqType,
    Feature,
    Status,
    feature_mask,
    has_feature,
)


def bind(
    device: BlkDevice,
    feature_table: int = KNOWN_FEATURES,
    transport: str = "direct",
    max_queues: int | None = None,
) -> tuple[BlkDriver, BlkSide]:
    side = blk_side(device, transport=transport, known=feature_table, max_queues=max_queues)
    return side.driver, side


# --- wire structures -----------------------------------------------------------------
def test_wire_structures_round_trip() -> None:
    header = BlkReqHeader(type=BlkReqType.OUT, sector=(1 << 64) - 1, reserved=7)
    assert len(header.pack()) == BlkReqHeader.SIZE == 16
    assert BlkReqHeader.unpack(header.pack()) == header
    seg = DwzSegment(sector=1 << 40, num_sectors=9, flags=1)
    assert len(seg.pack()) == 16 and DwzSegment.unpack(seg.pack()) == seg
    config = BlkConfig(capacity=5, num_queues=3, writeback=1, max_write_zeroes_seg=2)
    assert len(config.pack()) == BLK_CONFIG_SIZE and BlkConfig.unpack(config.pack()) == config


# --- config space (§5.2.4) -----------------------------------------------------------
@pytest.mark.spec("BLK-DEV-003", "BLK-DEV-017")
def test_config_layout_and_padding() -> None:
    device = BlkDevice(MemoryDisk(1000), num_queues=3, size_max=4096, seg_max=7)
    image = device.read_config(0, BLK_CONFIG_SIZE)
    assert int.from_bytes(image[0:8], "little") == 1000
    assert int.from_bytes(image[8:12], "little") == 4096
    assert int.from_bytes(image[12:16], "little") == 7
    assert int.from_bytes(image[34:36], "little") == 3
    assert image[BlkConfigOffset.UNUSED0] == 0
    assert image[BlkConfigOffset.UNUSED1 : BlkConfigOffset.UNUSED1 + 3] == bytes(3)
    assert image[60:] == bytes(BLK_CONFIG_SIZE - 60), "secure erase and zoned are not offered"
    assert device.read_config(BLK_CONFIG_SIZE - 2, 8) == bytes(8)
    assert device.read_config(4, 4) == image[4:8]


@pytest.mark.spec("BLK-DEV-001")
def test_config_wce_is_never_offered_without_flush() -> None:
    full = BlkDevice(MemoryDisk(8))
    assert has_feature(full.offered_features(), BlkFeature.FLUSH)
    assert has_feature(full.offered_features(), BlkFeature.CONFIG_WCE)
    bare = BlkDevice(MemoryDisk(8), features=feature_mask(Feature.VERSION_1, BlkFeature.CONFIG_WCE))
    assert not has_feature(bare.offered_features(), BlkFeature.CONFIG_WCE)


@pytest.mark.spec("BLK-DEV-002")
def test_writeback_reads_zero_when_wce_without_flush() -> None:
    device = BlkDevice(MemoryDisk(8), writeback=True)
    driver, _ = bind(device, KNOWN_FEATURES & ~feature_mask(BlkFeature.FLUSH))
    vdev = driver._vdev()
    assert vdev.has_feature(BlkFeature.CONFIG_WCE) and not vdev.has_feature(BlkFeature.FLUSH)
    assert device.read_config(BlkConfigOffset.WRITEBACK, 1) == b"\0"
    assert not device.disk.writeback


@pytest.mark.spec("BLK-DRV-002", "BLK-DRV-003")
@pytest.mark.parametrize(
    ("dropped", "writeback"),
    [((), True), ((BlkFeature.CONFIG_WCE,), True), ((BlkFeature.CONFIG_WCE, BlkFeature.FLUSH),
                                                    False)],
)
def test_driver_derives_the_cache_mode(dropped: tuple[int, ...], writeback: bool) -> None:
    device = BlkDevice(MemoryDisk(8), writeback=True)
    driver, _ = bind(device, KNOWN_FEATURES & ~feature_mask(*dropped))
    assert driver.writeback is writeback
    assert device.disk.writeback is writeback


def test_config_writes_only_reach_writeback() -> None:
    device = BlkDevice(MemoryDisk(8))
    device.write_config(0, bytes(8))
    device.write_config(BlkConfigOffset.WRITEBACK, b"\x05")
    assert device.config.capacity == 8 and device.config.writeback == 0
    device.write_config(BlkConfigOffset.WRITEBACK, b"\x01")
    assert device.config.writeback == 1


# --- probe --------------------------------------------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS + PACKED_TRANSPORTS)
def test_multiqueue_probe_and_requests_on_every_queue(transport: str) -> None:
    disk = MemoryDisk(64)
    driver, _ = bind(BlkDevice(disk, num_queues=3), transport=transport)
    assert len(driver.queues) == 3
    for queue in range(3):
        op = driver.submit_write(queue, bytes([queue + 1]) * SECTOR, queue=queue)
        assert op.done
        op.result()
    assert [driver.read(q, 1)[0] for q in range(3)] == [1, 2, 3]
    few, _ = bind(BlkDevice(MemoryDisk(8), num_queues=3), max_queues=1)
    assert len(few.queues) == 1


@pytest.mark.parametrize(
    "setting",
    [{"num_queues": 0}, {"seg_max": 0}, {"blk_size": 1000}, {"size_max": 100},
     {"max_discard_seg": 0}],
)  # fmt: skip
def test_probe_refuses_impossible_config(setting: dict[str, int]) -> None:
    device = BlkDevice(MemoryDisk(8), num_queues=2)
    device.config = replace(device.config, **setting)
    with pytest.raises(BlkBadConfig):
        bind(device)


@pytest.mark.spec("BLK-DRV-011", "BLK-DEV-018", "BLK-DEV-019")
@pytest.mark.parametrize("transport", TRANSPORTS + PACKED_TRANSPORTS)
def test_capacity_change_reaches_the_driver(transport: str) -> None:
    disk = MemoryDisk(8)
    device = BlkDevice(disk)
    driver, side = bind(device, transport=transport)
    with pytest.raises(BlkOutOfRange):
        driver.read(8, 1)
    disk.resize(16)
    device.resize()
    assert side.config_changes() == 1 and driver.capacity == 16
    assert driver.read(15, 1) == bytes(SECTOR)


# --- driver-side checks -------------------------------------------------------------------
@pytest.mark.spec("BLK-DRV-013", "BLK-DRV-012", "BLK-DRV-016")
def test_driver_refuses_bad_requests_before_sending() -> None:
    disk = RecordingDisk(8, read_only=True)
    driver, _ = bind(BlkDevice(disk))
    assert driver.read_only
    with pytest.raises(BlkReadOnly):
        driver.write(0, bytes(SECTOR))
    with pytest.raises(BlkOutOfRange):
        driver.read(7, 2)
    with pytest.raises(BlkBadRequest):
        driver.submit_write(0, b"x")
    assert disk.calls == []
    assert driver.read(7, 1) == bytes(SECTOR)


def test_unnegotiated_requests_are_refused_or_trivial() -> None:
    disk = RecordingDisk(8)
    table = KNOWN_FEATURES & ~feature_mask(
        BlkFeature.FLUSH, BlkFeature.CONFIG_WCE, BlkFeature.DISCARD, BlkFeature.WRITE_ZEROES
    )
    driver, _ = bind(BlkDevice(disk), table)
    driver.flush()
    assert disk.calls == [], "no FLUSH is sent when no cache was negotiated"
    with pytest.raises(BlkUnsupported):
        driver.discard([(0, 1)])
    with pytest.raises(BlkUnsupported):
        driver.write_zeroes([(0, 1)])


def test_large_requests_are_split_to_the_limits() -> None:
    disk = RecordingDisk(256)
    driver, _ = bind(BlkDevice(disk, size_max=1024, seg_max=3, max_write_zeroes_sectors=5,
                               max_write_zeroes_seg=2))  # fmt: skip
    data = bytes(range(256)) * 2 * 100
    driver.write(10, data)
    writes = [args for name, args in disk.calls if name == "write"]
    assert all(n <= 3 * 1024 for _, n in writes) and len(writes) == 17
    assert driver.read(10, 100) == data
    disk.calls.clear()
    driver.write_zeroes([(0, 12), (40, 1)])
    zeroed = [a for n, a in disk.calls if n == "write_zeroes"]
    assert zeroed == [(0, 5), (5, 5), (10, 2), (40, 1)]
    assert driver.read(0, 12) == bytes(12 * SECTOR)


@pytest.mark.parametrize("transport", TRANSPORTS + PACKED_TRANSPORTS)
def test_full_ring_is_back_pressure_not_loss(transport: str) -> None:
    disk = MemoryDisk(64)
    device = BlkDevice(disk, queue_size=4, defer=True)
    driver, _ = bind(device, KNOWN_FEATURES & ~feature_mask(Feature.INDIRECT_DESC), transport)
    ops = [driver.submit_write(i, bytes([i + 1]) * SECTOR) for i in range(10)]
    assert len(device.held(0)) == 1 and driver.outstanding == 10
    for _ in range(10):
        (head,) = device.held(0)
        device.serve(0, head)
    assert all(op.done for op in ops) and driver.outstanding == 0
    assert [disk.read(i, 1)[0] for i in range(10)] == list(range(1, 11))


def serve_newest_first(device: BlkDevice, queues: int) -> int:
    """Serve every held request, always the one taken last first; return how many."""
    served = 0
    while held := [(q, list(device.held(q))[-1]) for q in range(queues) if device.held(q)]:
        for queue, head in held:
            device.serve(queue, head)
            served += 1
    return served


@pytest.mark.spec("FEAT-DRV-010")
@pytest.mark.parametrize("transport", PACKED_TRANSPORTS)
def test_odd_sized_packed_rings_carry_requests_completed_out_of_order(transport: str) -> None:
    """Two packed request queues of 5 entries (no power of two), many requests completed
    newest first: each ring wraps several times and every answer is right."""
    device = BlkDevice(MemoryDisk(64), num_queues=2, queue_size=5, defer=True)
    driver, side = bind(device, transport=transport)
    assert driver._vdev().has_feature(Feature.RING_PACKED)
    assert all(isinstance(ring, PackedDriver) and ring.size == 5 for ring in side.rings)
    writes = [driver.submit_write(i, bytes([i + 1]) * SECTOR) for i in range(24)]
    assert serve_newest_first(device, 2) == 24
    assert all(op.done for op in writes) and driver.outstanding == 0
    reads = [driver.submit_read(i, 1) for i in range(24)]
    assert serve_newest_first(device, 2) == 24
    assert [op.result() for op in reads] == [bytes([i + 1]) * SECTOR for i in range(24)]


def test_get_id() -> None:
    driver, _ = bind(BlkDevice(MemoryDisk(8), serial=b"0123456789abcdefghijXYZ"))
    assert driver.get_id() == b"0123456789abcdefghij"


# --- a lying device -----------------------------------------------------------------------
class LyingDevice(BlkDevice):
    """Answers every request with `status` and used length `length` (None: the honest one)."""

    def __init__(self, status: int, length: int | None) -> None:
        super().__init__(MemoryDisk(8))
        self.lie = (status, length)

    def _serve_chain(self, index: int, queue: DeviceQueue, chain: Chain) -> None:
        assert self._context is not None
        status, length = self.lie
        scatter(self._context.mem, chain.writable, chain.writable_len - 1, bytes([status]))
        queue.push_used(chain.head, chain.writable_len if length is None else length)


@pytest.mark.parametrize(
    ("status", "length", "error"),
    [(7, None, BlkBadStatus), (0, 0, BlkBadUsedLength), (0, 1, BlkBadUsedLength),
     (1, None, BlkIOError), (2, 1, BlkUnsupported)],
)  # fmt: skip
@pytest.mark.parametrize("transport", ["direct", *PACKED_TRANSPORTS])
def test_driver_checks_what_the_device_returns(
    status: int, length: int | None, error: type[Exception], transport: str
) -> None:
    driver, _ = bind(LyingDevice(status, length), transport=transport)
    with pytest.raises(error):
        driver.read(0, 2)


def test_plugged_requests_are_sent_with_one_kick() -> None:
    device = BlkDevice(MemoryDisk(64), defer=True)
    driver, _ = bind(device)
    with driver.plugged():
        ops = [driver.submit_read(i, 1) for i in range(5)]
        assert device.held(0) == {}, "the device was notified while plugged"
    assert len(device.held(0)) == 5
    for head in list(device.held(0))[::-1]:
        device.serve(0, head)
    assert all(op.done for op in ops)


@pytest.mark.spec("BLK-DRV-004")
def test_writeback_is_read_only_after_features_ok() -> None:
    """Over virtio-mmio every config read covering `writeback` comes after FEATURES_OK.

    (The descriptor page is not checked this way: its host copies the whole config
    space into the page on its own, so backend reads there are not the driver's.)
    """
    seen: list[int] = []

    class Watched(BlkDevice):
        core: Any = None

        def read_config(self, offset: int, length: int) -> bytes:
            if offset <= BlkConfigOffset.WRITEBACK < offset + length and self.core is not None:
                seen.append(self.core.status)
            return super().read_config(offset, length)

    device = Watched(MemoryDisk(8))
    original = DeviceCore.__init__

    def remember(core: DeviceCore, backend: Any, *args: Any, **kwargs: Any) -> None:
        original(core, backend, *args, **kwargs)
        backend.core = core

    DeviceCore.__init__ = remember  # type: ignore[method-assign]
    try:
        driver, _ = bind(device, transport="mmio")
    finally:
        DeviceCore.__init__ = original  # type: ignore[method-assign]
    assert seen, "the driver never read writeback"
    assert all(status & Status.FEATURES_OK for status in seen)
    assert driver.writeback is False


@pytest.mark.spec("BLK-DEV-026")
def test_write_zeroes_may_unmap_is_clear_as_nothing_is_deallocated() -> None:
    disk = MemoryDisk(8)
    driver, _ = bind(BlkDevice(disk))
    assert driver._vdev().read_config(BlkConfigOffset.WRITE_ZEROES_MAY_UNMAP, 1) == b"\0"
    driver.write(0, b"\xff" * 8 * SECTOR)
    driver.write_zeroes([(0, 8)], unmap=True)
    assert disk.image() == bytes(8 * SECTOR)


def test_remove_fails_every_pending_request_once() -> None:
    device = BlkDevice(MemoryDisk(64), queue_size=4, defer=True)
    driver, side = bind(device, KNOWN_FEATURES & ~feature_mask(Feature.INDIRECT_DESC))
    ops = [driver.submit_read(i, 1) for i in range(5)]
    assert len(device.held(0)) == 1 and driver.outstanding == 5
    device.reset()
    driver.remove(side.handle)
    assert all(op.done for op in ops) and driver.outstanding == 0
    for op in ops:
        with pytest.raises(BlkIOError):
            op.result()


class FailingDisk(MemoryDisk):
    """A disk whose writes fail as a dying drive's would."""

    def write(self, sector: int, data: bytes) -> None:
        raise OSError(5, "Input/output error")


def test_backend_failure_is_ioerr_and_the_device_goes_on() -> None:
    disk = FailingDisk(8)
    device = BlkDevice(disk)
    driver, _ = bind(device)
    with pytest.raises(BlkIOError):
        driver.write(1, b"x" * SECTOR)
    assert isinstance(device.rejections[-1], BlkBackendFailed)
    assert driver.read(1, 1) == bytes(SECTOR)


@pytest.mark.spec("BLK-DEV-004", "BLK-DRV-005")
@pytest.mark.parametrize("transport", TRANSPORTS + PACKED_TRANSPORTS)
def test_zoned_is_neither_offered_nor_accepted(transport: str) -> None:
    """The device is not zoned and does not offer ZONED; the driver never accepts it."""
    assert not has_feature(BlkDevice(MemoryDisk(8)).offered_features(), BlkFeature.ZONED)
    everything = BlkDevice(MemoryDisk(8)).offered_features() | feature_mask(BlkFeature.ZONED)
    driver, _ = bind(BlkDevice(MemoryDisk(8), features=everything), transport=transport)
    assert not driver._vdev().has_feature(BlkFeature.ZONED)


@pytest.mark.spec("BLK-DRV-023")
def test_switching_to_writethrough_still_flushes_earlier_writes() -> None:
    """Writes made in writeback mode are not assumed stable after writeback is set to 0."""
    disk = RecordingDisk(8)
    driver, _ = bind(BlkDevice(disk, writeback=True))
    driver.write(2, b"w" * SECTOR)
    driver.set_writeback(False)
    assert disk.stable_image()[2 * SECTOR : 3 * SECTOR] == bytes(SECTOR)
    driver.flush()
    assert ("flush", ()) in disk.calls
    assert disk.stable_image()[2 * SECTOR : 3 * SECTOR] == b"w" * SECTOR


def test_fields_of_features_not_offered_read_zero() -> None:
    device = BlkDevice(MemoryDisk(8), writeback=True, features=feature_mask(Feature.VERSION_1))
    image = device.read_config(0, BLK_CONFIG_SIZE)
    assert int.from_bytes(image[0:8], "little") == 8
    assert image[8:] == bytes(BLK_CONFIG_SIZE - 8), "only capacity exists without features"


@pytest.mark.parametrize("transport", ["mmio", "page", *PACKED_TRANSPORTS])
def test_unplugging_the_device_fails_pending_requests_once(transport: str) -> None:
    """The bus resets the device and removes the driver: every request ends, with IOERR."""
    device = BlkDevice(MemoryDisk(64), queue_size=4, defer=True)
    driver, side = bind(device, KNOWN_FEATURES & ~feature_mask(Feature.INDIRECT_DESC), transport)
    ops = [driver.submit_write(i, b"u" * SECTOR) for i in range(6)]
    assert side.bus is not None and driver.outstanding == 6
    side.bus.unregister_virtio_device(side.handle)
    assert all(op.done for op in ops) and driver.outstanding == 0
    for op in ops:
        with pytest.raises(BlkIOError):
            op.result()
    assert device.held(0) == {}
    assert device.disk.image() == bytes(64 * SECTOR)
