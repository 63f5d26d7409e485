"""The virtio-blk driver: probe, request queues, and a disk API over them, like Linux's virtio_blk.

Rules:
- `probe` reads config space only for negotiated features, checks what it reads
  (`BlkBadConfig` for values no device may offer) and finds one request queue, or
  `num_queues` with VIRTIO_BLK_F_MQ. It derives the cache mode: writeback when
  CONFIG_WCE says so, assumed writeback with FLUSH alone (BLK-DRV-003), writethrough
  with neither (BLK-DRV-002). `validate`, before FEATURES_OK, refuses a published
  config size that does not hold `capacity` and the fields of the features about to
  be accepted, and asks nothing more (CONFIG-DRV-004).
- The disk API (`read`, `write`, `flush`, `get_id`, `discard`, `write_zeroes`) checks
  each request against capacity, read-only and the negotiated features before it is
  sent (BLK-DRV-012, BLK-DRV-013) and splits it so no request has more than `seg_max`
  data segments of at most `size_max` bytes, nor more discard/write-zeroes segments or
  sectors than the device allows (BLK-DRV-019, BLK-DRV-021). `submit_*` return a
  `BlkOp` at once; many may be in flight on several queues and complete in any order.
- Each queue is a `blk_queue.RequestQueue`: it owns the backlog (a full ring is
  back-pressure, never a drop), the buffers in guest memory (from the driver's
  allocator, Linux's kmalloc) and the checks on each completion. IOERR and UNSUPP
  reach the caller as `BlkIOError`/`BlkUnsupported` from `BlkOp.result()`.

Spec: §5.2 (block device), §5.2.5 (initialization, cache mode), §5.2.6 (requests),
§3.1 (the bus calls probe), §2.7.13 (supplying buffers).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace

from .alloc import GuestAllocator
from .blk_layout import BlkConfig, BlkReqHeader, DwzSegment
from .blk_queue import BlkOp, PendingRequest, RequestQueue
from .driver import DeviceMatch, DriverQueue, VirtioDevice
from .errors import (
    BlkBadConfig,
    BlkBadRequest,
    BlkConfigTooSmall,
    BlkIOError,
    BlkOutOfRange,
    BlkReadOnly,
    BlkUnsupported,
)
from .memory import GuestMemory
from .spec import (
    BLK_CONFIG_SIZE,
    BLK_ID_BYTES,
    BLK_SECTOR_SIZE,
    MAX_CHAIN_BYTES,
    BlkConfigOffset,
    BlkFeature,
    BlkReqType,
    DeviceId,
    Feature,
    feature_mask,
    has_feature,
)

KNOWN_FEATURES = feature_mask(
    Feature.VERSION_1, Feature.INDIRECT_DESC, Feature.EVENT_IDX,
    BlkFeature.SIZE_MAX, BlkFeature.SEG_MAX, BlkFeature.BLK_SIZE, BlkFeature.TOPOLOGY,
    BlkFeature.RO, BlkFeature.FLUSH, BlkFeature.CONFIG_WCE, BlkFeature.MQ,
    BlkFeature.DISCARD, BlkFeature.WRITE_ZEROES,
)  # fmt: skip
"""Every feature bit this driver understands (the bus negotiates offered ∩ these)."""

HEADER_AND_STATUS_DESCS = 2
"""Descriptors a request needs beyond its data segments: the header and the status."""

MIN_RING_SIZE = HEADER_AND_STATUS_DESCS + 1
"""The smallest ring that holds a request: header, one data segment, status."""

CAPACITY_END = BlkConfigOffset.SIZE_MAX
"""`capacity`, read whatever was negotiated, ends where `size_max` begins (§5.2.4)."""

CONFIG_FIELD_ENDS = (
    (BlkFeature.SIZE_MAX, BlkConfigOffset.SEG_MAX),
    (BlkFeature.SEG_MAX, BlkConfigOffset.GEOMETRY),
    (BlkFeature.BLK_SIZE, BlkConfigOffset.PHYSICAL_BLOCK_EXP),
    (BlkFeature.CONFIG_WCE, BlkConfigOffset.UNUSED0),
    (BlkFeature.MQ, BlkConfigOffset.MAX_DISCARD_SECTORS),
    (BlkFeature.DISCARD, BlkConfigOffset.DISCARD_SECTOR_ALIGNMENT),
    (BlkFeature.WRITE_ZEROES, BlkConfigOffset.WRITE_ZEROES_MAY_UNMAP),
)
"""Where each config field the driver reads ends (the next field's offset, §5.2.4), by
the feature that makes the driver read it."""


class BlkDriver:
    """A virtio-blk driver using guest memory `mem` and allocating buffers from `allocator`.

    Without them it takes the ones the device handle offers (`VirtioDevice.mem`,
    `.allocator`), as Linux's driver takes the kernel's.
    """

    name = "virtio_blk"
    id_table: Sequence[DeviceMatch] = (DeviceMatch(DeviceId.BLOCK),)

    def __init__(
        self,
        mem: GuestMemory | None = None,
        allocator: GuestAllocator | None = None,
        *,
        feature_table: int = KNOWN_FEATURES,
        max_queues: int | None = None,
    ) -> None:
        self._given = (mem, allocator)
        self.mem = mem or GuestMemory(0)
        self.allocator = allocator or GuestAllocator(0, 0)
        self.feature_table = feature_table
        self.max_queues = max_queues
        self.vdev: VirtioDevice | None = None
        self.config = BlkConfig(capacity=0)
        self.queues: list[RequestQueue] = []
        self.writeback = False
        self._next_queue = 0

    # --- probe (§5.2.5) ---------------------------------------------------------------
    def validate(self, vdev: VirtioDevice, features: int) -> int:
        """Before FEATURES_OK: refuse a config space too small for `capacity` and the
        fields `features` make the driver read (CONFIG-DRV-004). Reads no config (so
        never `writeback`, BLK-DRV-004); keeps every proposed bit otherwise."""
        _check_config_size(vdev.config_size, features)
        return features

    def probe(self, vdev: VirtioDevice) -> None:
        """Read the config space, check it, derive limits and cache mode, find the queues."""
        mem, allocator = self._given
        self.mem = mem or vdev.mem
        self.allocator = allocator or vdev.allocator
        self.vdev = vdev
        self.config = self._read_config(vdev)
        count = self.config.num_queues if vdev.has_feature(BlkFeature.MQ) else 1
        if self.max_queues is not None:
            count = min(count, self.max_queues)
        names = [f"req.{i}" for i in range(count)]
        rings = vdev.find_vqs(names, [self._interrupt] * count)
        if any(ring.size < MIN_RING_SIZE for ring in rings):
            raise BlkBadConfig(f"a request queue smaller than {MIN_RING_SIZE} cannot carry one")
        size_max = self.config.size_max
        self.queues = [RequestQueue(ring, self.mem, self.allocator, size_max) for ring in rings]
        self.writeback = self._cache_mode(vdev)

    def _read_config(self, vdev: VirtioDevice) -> BlkConfig:
        """Read `struct virtio_blk_config`, keeping only fields of negotiated features.

        `validate` already checked that a published config size holds them.
        """
        raw = BlkConfig.unpack(vdev.read_config(0, BLK_CONFIG_SIZE))
        has = vdev.has_feature
        config = BlkConfig(
            capacity=raw.capacity,
            size_max=raw.size_max if has(BlkFeature.SIZE_MAX) else 0,
            seg_max=raw.seg_max if has(BlkFeature.SEG_MAX) else 1,
            blk_size=raw.blk_size if has(BlkFeature.BLK_SIZE) else BLK_SECTOR_SIZE,
            writeback=raw.writeback if has(BlkFeature.CONFIG_WCE) else 0,
            num_queues=raw.num_queues if has(BlkFeature.MQ) else 1,
            max_discard_sectors=raw.max_discard_sectors if has(BlkFeature.DISCARD) else 0,
            max_discard_seg=raw.max_discard_seg if has(BlkFeature.DISCARD) else 0,
            max_write_zeroes_sectors=raw.max_write_zeroes_sectors
            if has(BlkFeature.WRITE_ZEROES) else 0,
            max_write_zeroes_seg=raw.max_write_zeroes_seg if has(BlkFeature.WRITE_ZEROES) else 0,
        )  # fmt: skip
        _check_config(config, has(BlkFeature.DISCARD), has(BlkFeature.WRITE_ZEROES))
        return config

    def _cache_mode(self, vdev: VirtioDevice) -> bool:
        """Writeback per CONFIG_WCE; assumed with FLUSH alone; writethrough without both."""
        if vdev.has_feature(BlkFeature.CONFIG_WCE):
            return self.config.writeback == 1
        return vdev.has_feature(BlkFeature.FLUSH)

    def remove(self, vdev: VirtioDevice) -> None:
        """After the bus reset the device: take back every buffer and fail what was pending."""
        gone = BlkIOError("the device was removed")
        for queue in self.queues:
            queue.detach(gone)
        self.queues = []

    def config_changed(self, vdev: VirtioDevice) -> None:
        """Re-read capacity: the device may resize the disk (BLK-DRV-011)."""
        capacity = BlkConfig.unpack(vdev.read_config(0, BLK_CONFIG_SIZE)).capacity
        self.config = replace(self.config, capacity=capacity)

    # --- cache mode (BLK-DRV-022) ----------------------------------------------------
    def set_writeback(self, on: bool) -> None:
        """Switch the device's cache mode through `writeback` (needs CONFIG_WCE)."""
        vdev = self._vdev()
        if not vdev.has_feature(BlkFeature.CONFIG_WCE):
            raise BlkUnsupported("VIRTIO_BLK_F_CONFIG_WCE was not negotiated")
        vdev.write_config(BlkConfigOffset.WRITEBACK, bytes([int(on)]))
        self.writeback = vdev.read_config(BlkConfigOffset.WRITEBACK, 1)[0] == 1

    # --- the disk API -----------------------------------------------------------------
    @property
    def capacity(self) -> int:
        """Disk size in 512-byte sectors."""
        return self.config.capacity

    @property
    def read_only(self) -> bool:
        """Whether the device offered VIRTIO_BLK_F_RO."""
        return self._vdev().has_feature(BlkFeature.RO)

    def submit_read(self, sector: int, count: int, queue: int | None = None) -> BlkOp:
        """Start reading `count` sectors from `sector`."""
        self._check_range(sector, count)
        chunks = self._chunks(sector, count)
        op = BlkOp(len(chunks))
        for part, (start, n) in enumerate(chunks):
            header = BlkReqHeader(type=BlkReqType.IN, sector=start)
            self._send(PendingRequest(op, part, header, in_len=n * BLK_SECTOR_SIZE), queue)
        return op

    def submit_write(self, sector: int, data: bytes, queue: int | None = None) -> BlkOp:
        """Start writing `data` (whole sectors) from `sector` on."""
        if len(data) % BLK_SECTOR_SIZE:
            raise BlkBadRequest(f"{len(data)} bytes is not a whole number of sectors")
        self._check_writable()
        self._check_range(sector, len(data) // BLK_SECTOR_SIZE)
        chunks = self._chunks(sector, len(data) // BLK_SECTOR_SIZE)
        op = BlkOp(len(chunks))
        for part, (start, n) in enumerate(chunks):
            offset = (start - sector) * BLK_SECTOR_SIZE
            piece = data[offset : offset + n * BLK_SECTOR_SIZE]
            header = BlkReqHeader(type=BlkReqType.OUT, sector=start)
            self._send(PendingRequest(op, part, header, out_data=piece), queue)
        return op

    def submit_flush(self, queue: int | None = None) -> BlkOp:
        """Start a flush; without VIRTIO_BLK_F_FLUSH there is no cache and it completes at once."""
        if not self._vdev().has_feature(BlkFeature.FLUSH):
            op = BlkOp(1)
            op.complete(0, b"", None)
            return op
        op = BlkOp(1)
        self._send(PendingRequest(op, 0, BlkReqHeader(type=BlkReqType.FLUSH)), queue)
        return op

    def submit_get_id(self, queue: int | None = None) -> BlkOp:
        """Start fetching the 20-byte device id string."""
        op = BlkOp(1)
        header = BlkReqHeader(type=BlkReqType.GET_ID)
        self._send(PendingRequest(op, 0, header, in_len=BLK_ID_BYTES), queue)
        return op

    def submit_discard(self, ranges: Sequence[tuple[int, int]], queue: int | None = None) -> BlkOp:
        """Start discarding each (sector, count) range (needs VIRTIO_BLK_F_DISCARD)."""
        return self._submit_dwz(BlkReqType.DISCARD, ranges, 0, queue)

    def submit_write_zeroes(
        self, ranges: Sequence[tuple[int, int]], unmap: bool = False, queue: int | None = None
    ) -> BlkOp:
        """Start zeroing each (sector, count) range (needs VIRTIO_BLK_F_WRITE_ZEROES)."""
        return self._submit_dwz(BlkReqType.WRITE_ZEROES, ranges, int(unmap), queue)

    def submit_raw(
        self, header: BlkReqHeader, out_data: bytes = b"", in_len: int = 0, queue: int | None = None
    ) -> BlkOp:
        """Send one request exactly as given, with no check (for tests of the device)."""
        op = BlkOp(1)
        self._send(PendingRequest(op, 0, header, out_data=out_data, in_len=in_len), queue)
        return op

    def read(self, sector: int, count: int) -> bytes:
        """Read `count` sectors from `sector` and wait for them."""
        return self.wait(self.submit_read(sector, count))

    def write(self, sector: int, data: bytes) -> None:
        """Write `data` from `sector` on and wait for it."""
        self.wait(self.submit_write(sector, data))

    def flush(self) -> None:
        """Flush the device's cache and wait: every write completed before is stable after."""
        self.wait(self.submit_flush())

    def get_id(self) -> bytes:
        """The device id string, NUL padding stripped."""
        return self.wait(self.submit_get_id()).rstrip(b"\0")

    def discard(self, ranges: Sequence[tuple[int, int]]) -> None:
        """Discard (sector, count) ranges and wait."""
        self.wait(self.submit_discard(ranges))

    def write_zeroes(self, ranges: Sequence[tuple[int, int]], unmap: bool = False) -> None:
        """Zero (sector, count) ranges and wait."""
        self.wait(self.submit_write_zeroes(ranges, unmap))

    @contextmanager
    def plugged(self) -> Iterator[None]:
        """Queue requests without notifying, then kick every queue once (Linux's blk_plug)."""
        for queue in self.queues:
            queue.plugged = True
        try:
            yield
        finally:
            for queue in self.queues:
                queue.plugged = False
                if queue.broken is None:
                    queue.ring.kick()

    def wait(self, op: BlkOp) -> bytes:
        """Collect completions until `op` is done; a device that holds it is a usage error."""
        if not op.done:
            self.poll()
        return op.result()

    def poll(self) -> None:
        """Reap every queue's completions, as the interrupt handler would."""
        for queue in self.queues:
            queue.interrupt()

    @property
    def outstanding(self) -> int:
        """Requests on the rings plus requests waiting in backlogs."""
        return sum(queue.outstanding for queue in self.queues)

    @property
    def in_flight(self) -> set[PendingRequest]:
        """Requests on the rings (not those waiting in backlogs)."""
        return set().union(*(queue.in_flight for queue in self.queues))

    # --- building requests --------------------------------------------------------------
    def _submit_dwz(
        self, kind: BlkReqType, ranges: Sequence[tuple[int, int]], flags: int, queue: int | None
    ) -> BlkOp:
        discard = kind is BlkReqType.DISCARD
        feature = BlkFeature.DISCARD if discard else BlkFeature.WRITE_ZEROES
        if not self._vdev().has_feature(feature):
            raise BlkUnsupported(f"{feature.name} was not negotiated")
        self._check_writable()
        if not ranges:
            raise BlkBadRequest(f"{kind.name} needs at least one range")
        cfg = self.config
        max_sectors = cfg.max_discard_sectors if discard else cfg.max_write_zeroes_sectors
        max_seg = cfg.max_discard_seg if discard else cfg.max_write_zeroes_seg
        segments: list[DwzSegment] = []
        for sector, count in ranges:
            self._check_range(sector, count)
            for start in range(sector, sector + count, max_sectors):
                n = min(max_sectors, sector + count - start)
                segments.append(DwzSegment(sector=start, num_sectors=n, flags=flags))
        batches = [segments[i : i + max_seg] for i in range(0, len(segments), max_seg)]
        op = BlkOp(len(batches))
        for part, batch in enumerate(batches):
            body = b"".join(seg.pack() for seg in batch)
            self._send(PendingRequest(op, part, BlkReqHeader(type=kind), out_data=body), queue)
        return op

    def _chunks(self, sector: int, count: int) -> list[tuple[int, int]]:
        """Split a sector range into requests that fit seg_max x size_max (and 2^32 bytes)."""
        limit = self._max_request_bytes() // BLK_SECTOR_SIZE
        if count == 0:
            return [(sector, 0)]
        return [(s, min(limit, sector + count - s)) for s in range(sector, sector + count, limit)]

    def _max_request_bytes(self) -> int:
        """The most data one request may carry, a whole number of sectors, at least one."""
        ring_size = min(q.ring.size for q in self.queues)
        segs = max(1, min(self.config.seg_max, ring_size - HEADER_AND_STATUS_DESCS))
        per_seg = self.config.size_max or MAX_CHAIN_BYTES
        total = min(segs * per_seg, MAX_CHAIN_BYTES - BLK_SECTOR_SIZE)
        return max(BLK_SECTOR_SIZE, total - total % BLK_SECTOR_SIZE)

    def _check_range(self, sector: int, count: int) -> None:
        if sector < 0 or count < 0 or sector + count > self.config.capacity:
            raise BlkOutOfRange(f"sectors {sector}+{count} beyond capacity {self.capacity}")

    def _check_writable(self) -> None:
        if self.read_only:
            raise BlkReadOnly("the device is read-only (VIRTIO_BLK_F_RO)")

    def _vdev(self) -> VirtioDevice:
        if self.vdev is None:
            raise BlkBadRequest("the driver is not bound to a device")
        return self.vdev

    # --- sending and completing ---------------------------------------------------------
    def _send(self, request: PendingRequest, index: int | None) -> None:
        """Queue `request` on a queue (round robin unless `index`), behind its backlog."""
        if not self.queues:
            raise BlkBadRequest("the driver has no queues (not probed, or removed)")
        if index is None:
            index, self._next_queue = self._next_queue, (self._next_queue + 1) % len(self.queues)
        self.queues[index % len(self.queues)].send(request)

    def _interrupt(self, ring: DriverQueue) -> None:
        """The queue callback: reap the queue whose ring this is."""
        for queue in self.queues:
            if queue.ring is ring:
                queue.interrupt()


def _check_config_size(size: int | None, features: int) -> None:
    """Config space, when its size is published, must hold the fields this driver reads
    with `features` (CONFIG-DRV-004); a larger one is fine (CONFIG-DRV-003)."""
    ends = [end for bit, end in CONFIG_FIELD_ENDS if has_feature(features, bit)]
    needed = max([CAPACITY_END, *ends])
    if size is not None and size < needed:
        raise BlkConfigTooSmall(f"config space of {size} bytes, the fields need {needed}")


def _check_config(config: BlkConfig, discard: bool, write_zeroes: bool) -> None:
    """Refuse config values no device may offer (they would make requests impossible)."""
    if config.num_queues < 1:
        raise BlkBadConfig("VIRTIO_BLK_F_MQ with num_queues 0")
    if config.seg_max < 1:
        raise BlkBadConfig("VIRTIO_BLK_F_SEG_MAX with seg_max 0")
    if config.size_max and config.size_max < BLK_SECTOR_SIZE:
        raise BlkBadConfig(f"size_max {config.size_max} is below one sector")
    size = config.blk_size
    if size < BLK_SECTOR_SIZE or size & (size - 1):
        raise BlkBadConfig(f"blk_size {size} is not a power of two of at least 512")
    if discard and (config.max_discard_seg < 1 or config.max_discard_sectors < 1):
        raise BlkBadConfig("VIRTIO_BLK_F_DISCARD with a zero discard limit")
    if write_zeroes and (config.max_write_zeroes_seg < 1 or config.max_write_zeroes_sectors < 1):
        raise BlkBadConfig("VIRTIO_BLK_F_WRITE_ZEROES with a zero write-zeroes limit")
