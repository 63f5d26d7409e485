"""The virtio-blk driver: probe, request queues, and a disk API over them, like Linux's virtio_blk.

Rules:
- `probe` reads config space only for negotiated features, checks what it reads
  (`BlkBadConfig` for values no device may offer) and finds one request queue, or
  `num_queues` with VIRTIO_BLK_F_MQ. It derives the cache mode: writeback when
  CONFIG_WCE says so, assumed writeback with FLUSH alone (BLK-DRV-003), writethrough
  with neither (BLK-DRV-002).
- The disk API (`read`, `write`, `flush`, `get_id`, `discard`, `write_zeroes`) checks
  each request against capacity, read-only and the negotiated features before it is
  sent (BLK-DRV-012, BLK-DRV-013) and splits it so no request has more than `seg_max`
  data segments of at most `size_max` bytes, nor more discard/write-zeroes segments or
  sectors than the device allows (BLK-DRV-019, BLK-DRV-021). `submit_*` return a
  `BlkOp` at once; many may be in flight on several queues and complete in any order.
- A full ring is back-pressure, never a drop: a request that does not fit waits in the
  queue's backlog and is sent, in order, as completions free descriptors.
- Completions are checked: the status byte must be OK, IOERR or UNSUPP and the used
  length exactly data + status for OK, at least the status byte otherwise; a lie fails
  the request with a `DeviceError`, and a queue the ring layer finds broken fails
  everything outstanding on it. IOERR and UNSUPP become `BlkIOError`/`BlkUnsupported`.
- Buffers live in guest memory from the driver's allocator (Linux's kmalloc) and are
  freed when their request completes.

Spec: §5.2 (block device), §5.2.5 (initialization, cache mode), §5.2.6 (requests),
§3.1 (the bus calls probe), §2.7.13 (supplying buffers).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TypeVar

from .alloc import GuestAllocator
from .blk_layout import BlkConfig, BlkReqHeader, DwzSegment
from .chain import Segment
from .driver import DeviceMatch, DriverQueue, VirtioDevice
from .errors import (
    BlkBadConfig,
    BlkBadRequest,
    BlkBadStatus,
    BlkBadUsedLength,
    BlkIOError,
    BlkOutOfRange,
    BlkReadOnly,
    BlkUnsupported,
    DeviceError,
    NoSpace,
    QueueBroken,
    VirtioError,
)
from .memory import GuestMemory
from .spec import (
    BLK_CONFIG_SIZE,
    BLK_ID_BYTES,
    BLK_REQ_HEADER_SIZE,
    BLK_SECTOR_SIZE,
    BLK_STATUS_SIZE,
    MAX_CHAIN_BYTES,
    BlkConfigOffset,
    BlkFeature,
    BlkReqType,
    BlkStatus,
    DeviceId,
    Feature,
    feature_mask,
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

DATA_OFFSET = 64
"""Where a request's data starts in its buffer block (after header and status; aligned)."""

MIN_RING_SIZE = HEADER_AND_STATUS_DESCS + 1
"""The smallest ring that holds a request: header, one data segment, status."""


class BlkOp:
    """One disk operation as the caller sees it; it may travel as several requests.

    `done` once every part completed; `result()` then returns the data read (or the
    id string, or b"") or raises the first part's error.
    """

    __slots__ = ("_remaining", "data", "error")

    def __init__(self, parts: int) -> None:
        self._remaining = parts
        self.data: list[bytes] = [b""] * parts
        self.error: VirtioError | None = None

    @property
    def done(self) -> bool:
        """Whether every part has completed."""
        return self._remaining == 0

    @property
    def remaining(self) -> int:
        """Parts not yet completed (each is on a ring or in a backlog)."""
        return self._remaining

    def _complete(self, part: int, data: bytes, error: VirtioError | None) -> None:
        self.data[part] = data
        if error is not None and self.error is None:
            self.error = error
        self._remaining -= 1

    def result(self) -> bytes:
        """The data (parts joined in order), or the first error raised."""
        if not self.done:
            raise BlkBadRequest("the operation has not completed yet")
        if self.error is not None:
            raise self.error
        return b"".join(self.data)


@dataclass(eq=False)
class _Request:
    """One request on a ring: its bytes, where its buffers are, and what to report to."""

    op: BlkOp
    part: int
    header: BlkReqHeader
    out_data: bytes = b""
    in_len: int = 0
    buffers: list[int] = field(default_factory=list)
    status_addr: int = 0
    in_segments: list[Segment] = field(default_factory=list)


class _Queue:
    """A driver-side request queue: the ring and the backlog waiting for room on it."""

    __slots__ = ("backlog", "broken", "ring")

    def __init__(self, ring: DriverQueue) -> None:
        self.ring = ring
        self.backlog: deque[_Request] = deque()
        self.broken: VirtioError | None = None


_Part = TypeVar("_Part")


def _guest_part(vdev: VirtioDevice, name: str, kind: type[_Part]) -> _Part:
    """The guest memory or allocator the bus offers on its device handle."""
    part = getattr(vdev, name, None)
    if not isinstance(part, kind):
        raise BlkBadRequest(f"no {name} given and the device handle offers none")
    return part


class BlkDriver:
    """A virtio-blk driver using guest memory `mem` and allocating buffers from `allocator`.

    Without them it takes the ones the bus's device handle offers (`BusDevice.mem`,
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
        self.queues: list[_Queue] = []
        self.writeback = False
        self._next_queue = 0
        self._plugged = False
        self.in_flight: dict[_Request, _Queue] = {}

    # --- probe (§5.2.5) ---------------------------------------------------------------
    def probe(self, vdev: VirtioDevice) -> None:
        """Read the config space, check it, derive limits and cache mode, find the queues."""
        mem, allocator = self._given
        self.mem = mem or _guest_part(vdev, "mem", GuestMemory)
        self.allocator = allocator or _guest_part(vdev, "allocator", GuestAllocator)
        self.vdev = vdev
        self.config = self._read_config(vdev)
        count = self.config.num_queues if vdev.has_feature(BlkFeature.MQ) else 1
        if self.max_queues is not None:
            count = min(count, self.max_queues)
        names = [f"req.{i}" for i in range(count)]
        rings = vdev.find_vqs(names, [self._interrupt] * count)
        if any(ring.size < MIN_RING_SIZE for ring in rings):
            raise BlkBadConfig(f"a request queue smaller than {MIN_RING_SIZE} cannot carry one")
        self.queues = [_Queue(ring) for ring in rings]
        self.writeback = self._cache_mode(vdev)

    def _read_config(self, vdev: VirtioDevice) -> BlkConfig:
        """Read `struct virtio_blk_config`, keeping only fields of negotiated features."""
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
            while (token := queue.ring.detach_unused_buf()) is not None:
                if isinstance(token, _Request):
                    self.in_flight.pop(token, None)
                    self._finish(token, b"", gone)
            while queue.backlog:
                self._finish(queue.backlog.popleft(), b"", gone)
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
            self._send(_Request(op, part, header, in_len=n * BLK_SECTOR_SIZE), queue)
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
            self._send(_Request(op, part, header, out_data=piece), queue)
        return op

    def submit_flush(self, queue: int | None = None) -> BlkOp:
        """Start a flush; without VIRTIO_BLK_F_FLUSH there is no cache and it completes at once."""
        if not self._vdev().has_feature(BlkFeature.FLUSH):
            op = BlkOp(1)
            op._complete(0, b"", None)
            return op
        op = BlkOp(1)
        self._send(_Request(op, 0, BlkReqHeader(type=BlkReqType.FLUSH)), queue)
        return op

    def submit_get_id(self, queue: int | None = None) -> BlkOp:
        """Start fetching the 20-byte device id string."""
        op = BlkOp(1)
        header = BlkReqHeader(type=BlkReqType.GET_ID)
        self._send(_Request(op, 0, header, in_len=BLK_ID_BYTES), queue)
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
        self._send(_Request(op, 0, header, out_data=out_data, in_len=in_len), queue)
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
        self._plugged = True
        try:
            yield
        finally:
            self._plugged = False
            for queue in self.queues:
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
            self._interrupt(queue.ring)

    @property
    def outstanding(self) -> int:
        """Requests on the rings plus requests waiting in backlogs."""
        return len(self.in_flight) + sum(len(q.backlog) for q in self.queues)

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
            self._send(_Request(op, part, BlkReqHeader(type=kind), out_data=body), queue)
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

    def _data_segments(self, addr: int, length: int) -> list[Segment]:
        """Cut a data buffer into segments of at most size_max bytes."""
        step = self.config.size_max or length or 1
        return [Segment(a, min(step, addr + length - a)) for a in range(addr, addr + length, step)]

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

    # --- sending (§2.7.13) --------------------------------------------------------------
    def _send(self, request: _Request, index: int | None) -> None:
        """Queue `request` on a ring (round robin unless `index`), behind any backlog."""
        if not self.queues:
            raise BlkBadRequest("the driver has no queues (not probed, or removed)")
        if index is None:
            index, self._next_queue = self._next_queue, (self._next_queue + 1) % len(self.queues)
        queue = self.queues[index % len(self.queues)]
        if queue.broken is not None:
            raise QueueBroken(f"queue {index} failed earlier: {queue.broken}")
        queue.backlog.append(request)
        self._push(queue)

    def _push(self, queue: _Queue) -> None:
        """Move backlog requests onto the ring while they fit, then kick once."""
        added = False
        while queue.backlog and queue.broken is None:
            request = queue.backlog[0]
            if not self._place(request):
                break
            out, in_ = self._segments(request)
            try:
                queue.ring.add_sgs(out, in_, request)
            except NoSpace:
                self._release(request)
                break
            queue.backlog.popleft()
            self.in_flight[request] = queue
            added = True
        if added and not self._plugged:
            queue.ring.kick()

    def _place(self, request: _Request) -> bool:
        """Allocate one block for header, status and data and fill it; False when memory is short.

        Layout of the block: the header at 0, the status byte right after it, the data
        from `DATA_OFFSET` on; one allocation per request keeps the allocator's free
        list short however requests complete.
        """
        length = max(len(request.out_data), request.in_len)
        base = self.allocator.alloc(DATA_OFFSET + length, DATA_OFFSET)
        if base is None:
            if not self.in_flight:
                raise BlkBadRequest("a request does not fit in the driver's guest memory")
            return False
        request.buffers = [base]
        request.status_addr = base + BLK_REQ_HEADER_SIZE
        self.mem.write(base, request.header.pack())
        self.mem.write_u8(request.status_addr, BlkStatus.IOERR)
        self.mem.write(base + DATA_OFFSET, request.out_data)
        if request.in_len:
            request.in_segments = self._data_segments(base + DATA_OFFSET, request.in_len)
        return True

    def _segments(self, request: _Request) -> tuple[list[Segment], list[Segment]]:
        base = request.buffers[0]
        out = [Segment(base, BLK_REQ_HEADER_SIZE)]
        if request.out_data:
            out += self._data_segments(base + DATA_OFFSET, len(request.out_data))
        return out, [*request.in_segments, Segment(request.status_addr, BLK_STATUS_SIZE)]

    def _release(self, request: _Request) -> None:
        for addr in request.buffers:
            self.allocator.free(addr)
        request.buffers = []

    # --- completing (§2.7.14, §5.2.6) ---------------------------------------------------
    def _interrupt(self, ring: DriverQueue) -> None:
        """Reap used requests (Linux's virtblk_done), then refill the ring from the backlog."""
        queue = next((q for q in self.queues if q.ring is ring), None)
        if queue is None or queue.broken is not None:
            return
        try:
            while True:
                ring.disable_cb()
                while (used := ring.get_buf()) is not None:
                    token, length = used
                    if isinstance(token, _Request):
                        self._complete(token, length)
                if ring.enable_cb():
                    break
        except DeviceError as error:
            self._break(queue, error)
            return
        self._push(queue)

    def _complete(self, request: _Request, length: int) -> None:
        """Check the status and used length, read the data, free the buffers."""
        self.in_flight.pop(request, None)
        status = self.mem.read_u8(request.status_addr)
        error: VirtioError | None = None
        data = b""
        if status not in (BlkStatus.OK, BlkStatus.IOERR, BlkStatus.UNSUPP):
            error = BlkBadStatus(f"status byte {status} is not OK, IOERR or UNSUPP")
        elif length < BLK_STATUS_SIZE:
            error = BlkBadUsedLength(f"used length {length} leaves no room for the status byte")
        elif status == BlkStatus.OK and length != request.in_len + BLK_STATUS_SIZE:
            error = BlkBadUsedLength(
                f"used length {length} for a request of {request.in_len} data bytes"
            )
        elif status == BlkStatus.IOERR:
            error = BlkIOError(f"{BlkReqType(request.header.type).name} at {request.header.sector}")
        elif status == BlkStatus.UNSUPP:
            error = BlkUnsupported(f"type {request.header.type} not supported by the device")
        elif request.in_len:
            data = b"".join(self.mem.read(s.addr, s.len) for s in request.in_segments)
        self._finish(request, data, error)

    def _finish(self, request: _Request, data: bytes, error: VirtioError | None) -> None:
        self._release(request)
        request.op._complete(request.part, data, error)

    def _break(self, queue: _Queue, error: VirtioError) -> None:
        """The ring layer found the device lying: fail everything outstanding on this queue."""
        queue.broken = error
        for request, owner in list(self.in_flight.items()):
            if owner is queue:
                del self.in_flight[request]
                self._finish(request, b"", error)
        while queue.backlog:
            self._finish(queue.backlog.popleft(), b"", error)


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
