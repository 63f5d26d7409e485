"""The virtio-blk device: a `DeviceBackend` that serves requests from a `Disk`.

Rules:
- Config space is `struct virtio_blk_config` (§5.2.4) built from the device's settings;
  padding reads as zero (BLK-DEV-003) and so does every field of a feature not offered.
  The only writable field is `writeback`, and only when VIRTIO_BLK_F_CONFIG_WCE is
  offered; the device never offers CONFIG_WCE without FLUSH (BLK-DEV-001).
- `writeback` is settled when the device grants FEATURES_OK (`features_accepted`),
  before the driver may read it (BLK-DRV-004): with CONFIG_WCE negotiated but not
  FLUSH it becomes 0 (BLK-DEV-002). Over the legacy interface (no VERSION_1, no
  FEATURES_OK; the hook runs at DRIVER_OK) the field is left as it is: a legacy
  driver may have written it before DRIVER_OK, and a device may change the cache
  mode at DRIVER_OK only when the driver did not accept CONFIG_WCE (§5.2.5.1,
  legacy); without CONFIG_WCE the cache mode follows the device's own setting and
  FLUSH, as below.
- Every request is decoded and checked by `blk_request.decode_request` before the
  disk is touched. A rejected request is answered with its status byte and a used
  length of 1, or, when it has no status byte, returned with length 0. A served
  request reports exactly the bytes it wrote: its data (IN, GET_ID) plus the status.
- Cache mode (§5.2.6.2): writes are stable on completion unless the driver may have
  a writeback cache, which is when FLUSH or CONFIG_WCE was negotiated and `writeback`
  is 1 (cases 1 and 2 of "stable writes"); a FLUSH makes every write completed before
  it stable (case 3), through `Disk.flush`.
- Hostile rings follow the architecture's recovery policy: a malformed chain has
  already been returned with length 0 by the queue and is skipped; ring corruption
  stops the queue and asks the transport for DEVICE_NEEDS_RESET. Nothing a driver
  writes makes `queue_notify` raise.
- `defer=True` makes the device take requests on a notification and serve them only
  when `serve(queue, head)` is called, in any order: tests use it to choose the
  completion order (§5.2: requests complete in any order).

Spec: §5.2 (block device), §2.5 (config space), §2.6 (virtqueues).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import replace

from .blk_layout import BlkConfig
from .blk_request import BlkRequest, DeviceLimits, decode_request, gather, scatter
from .chain import Chain
from .device import DeviceContext, DeviceQueue
from .disk import Disk
from .errors import (
    BlkBackendFailed,
    BlkRequestRejected,
    ChainError,
    QueueBroken,
    RingCorruption,
)
from .spec import (
    BLK_CONFIG_SIZE,
    BLK_ID_BYTES,
    BLK_REQ_HEADER_SIZE,
    BLK_SECTOR_SIZE,
    BLK_STATUS_SIZE,
    BlkConfigOffset,
    BlkFeature,
    BlkReqType,
    BlkStatus,
    DeviceId,
    Feature,
    feature_mask,
    has_feature,
)

DEFAULT_FEATURES = feature_mask(
    Feature.VERSION_1, Feature.INDIRECT_DESC, Feature.EVENT_IDX,
    BlkFeature.SIZE_MAX, BlkFeature.SEG_MAX, BlkFeature.BLK_SIZE, BlkFeature.TOPOLOGY,
    BlkFeature.FLUSH, BlkFeature.CONFIG_WCE, BlkFeature.DISCARD, BlkFeature.WRITE_ZEROES,
)  # fmt: skip
"""What the device offers unless told otherwise (RO and MQ are added from its settings)."""

VENDOR_ID = 0x554D4551
"""The vendor id the device publishes (the value QEMU's devices use, "QEMU" in ASCII)."""

REJECTIONS_KEPT = 256
"""How many recent rejections `BlkDevice.rejections` remembers."""


class BlkDevice:
    """A virtio-blk device over `disk` with `num_queues` request queues of `queue_size`."""

    def __init__(
        self,
        disk: Disk,
        *,
        num_queues: int = 1,
        queue_size: int = 256,
        features: int | None = None,
        size_max: int = 1 << 16,
        seg_max: int = 126,
        blk_size: int = BLK_SECTOR_SIZE,
        max_discard_sectors: int = 1 << 16,
        max_discard_seg: int = 4,
        max_write_zeroes_sectors: int = 1 << 16,
        max_write_zeroes_seg: int = 4,
        serial: bytes = b"virtio-oracle",
        writeback: bool = False,
        defer: bool = False,
    ) -> None:
        self.disk = disk
        self.config_size = BLK_CONFIG_SIZE
        self.num_queues = num_queues
        self.queue_size = queue_size
        self._offered = self._offer(DEFAULT_FEATURES if features is None else features)
        self._writeback = writeback
        self.config = _offered_fields(BlkConfig(
            capacity=disk.capacity, size_max=size_max, seg_max=seg_max, blk_size=blk_size,
            min_io_size=1, opt_io_size=0, writeback=int(writeback), num_queues=num_queues,
            max_discard_sectors=max_discard_sectors, max_discard_seg=max_discard_seg,
            discard_sector_alignment=1, max_write_zeroes_sectors=max_write_zeroes_sectors,
            max_write_zeroes_seg=max_write_zeroes_seg, write_zeroes_may_unmap=0,
        ), self._offered)  # fmt: skip
        self.serial = serial[:BLK_ID_BYTES].ljust(BLK_ID_BYTES, b"\0")
        self.defer = defer
        self.rejections: deque[BlkRequestRejected] = deque(maxlen=REJECTIONS_KEPT)
        self._context: DeviceContext | None = None
        self._limits = DeviceLimits(capacity=disk.capacity)
        self._held: list[dict[int, Chain]] = []
        self._busy: set[int] = set()
        self._again: set[int] = set()

    def _offer(self, features: int) -> int:
        """Add RO and MQ from the settings; drop CONFIG_WCE without FLUSH (BLK-DEV-001)."""
        features &= ~feature_mask(BlkFeature.RO, BlkFeature.MQ)
        if self.disk.read_only:
            features |= feature_mask(BlkFeature.RO)
        if self.num_queues > 1:
            features |= feature_mask(BlkFeature.MQ)
        if not has_feature(features, BlkFeature.FLUSH):
            features &= ~feature_mask(BlkFeature.CONFIG_WCE)
        return features

    # --- what the transport asks (DeviceBackend) --------------------------------------
    @property
    def device_id(self) -> DeviceId:
        """Block device (§5.2.1)."""
        return DeviceId.BLOCK

    @property
    def vendor_id(self) -> int:
        """The vendor id published by the transport."""
        return VENDOR_ID

    def offered_features(self) -> int:
        """The feature bits this device offers (§5.2.3)."""
        return self._offered

    def queue_max_sizes(self) -> Sequence[int]:
        """One request queue per `num_queues` (§5.2.2), each up to `queue_size`."""
        return [self.queue_size] * self.num_queues

    def read_config(self, offset: int, length: int) -> bytes:
        """Bytes of `struct virtio_blk_config`; reads past its end return zeros."""
        image = self.config.pack()
        if offset < 0 or length < 0:
            return b""
        return image[offset : offset + length].ljust(length, b"\0")

    def write_config(self, offset: int, data: bytes) -> None:
        """Only `writeback` (0 or 1) is writable, and only when CONFIG_WCE is offered (§5.2.5)."""
        if not has_feature(self._offered, BlkFeature.CONFIG_WCE):
            return
        if offset != BlkConfigOffset.WRITEBACK or len(data) != 1 or data[0] > 1:
            return
        self.config = _with_writeback(self.config, data[0])
        self._apply_cache_mode()

    def features_accepted(self, features: int) -> None:
        """FEATURES_OK granted: CONFIG_WCE without FLUSH starts writethrough (BLK-DEV-002).

        Legacy (no VERSION_1; called at DRIVER_OK): `writeback` is not touched, since
        a legacy device changes it on a status write only at DRIVER_OK and only when
        the driver did not accept CONFIG_WCE, when the field means nothing to it.
        """
        if not has_feature(features, Feature.VERSION_1):
            return
        if has_feature(features, BlkFeature.CONFIG_WCE) and not has_feature(
            features, BlkFeature.FLUSH
        ):
            self.config = _with_writeback(self.config, 0)

    def activate(self, context: DeviceContext) -> None:
        """Start serving: fix the negotiated limits and the cache mode (§5.2.5)."""
        features = context.features
        self._context = context
        self._limits = DeviceLimits(
            capacity=self.config.capacity,
            read_only=has_feature(self._offered, BlkFeature.RO),
            flush=has_feature(features, BlkFeature.FLUSH),
            discard=has_feature(features, BlkFeature.DISCARD),
            write_zeroes=has_feature(features, BlkFeature.WRITE_ZEROES),
            max_discard_sectors=self.config.max_discard_sectors,
            max_discard_seg=self.config.max_discard_seg,
            max_write_zeroes_sectors=self.config.max_write_zeroes_sectors,
            max_write_zeroes_seg=self.config.max_write_zeroes_seg,
        )
        self._held = [{} for _ in context.queues]
        self._apply_cache_mode()

    def resize(self) -> None:
        """Publish the disk's current capacity and raise a config change (BLK-DEV-018/019)."""
        self.config = replace(self.config, capacity=self.disk.capacity)
        self._limits = replace(self._limits, capacity=self.disk.capacity)
        if self._context is not None:
            self._context.config_changed()

    def _apply_cache_mode(self) -> None:
        """Writeback only when the driver knows of a cache and `writeback` is 1 (§5.2.6.2)."""
        if self._context is None:
            return
        features = self._context.features
        knows = has_feature(features, BlkFeature.FLUSH) or has_feature(
            features, BlkFeature.CONFIG_WCE
        )
        if has_feature(self._offered, BlkFeature.CONFIG_WCE):
            wanted = self.config.writeback == 1
        else:
            wanted = self._writeback  # no writeback field: the device's own choice
        self.disk.writeback = knows and wanted

    def reset(self) -> None:
        """Forget the queues and every request taken but not served (§2.1)."""
        self._context = None
        self._held = []
        self._busy.clear()
        self._again.clear()

    # --- serving requests -------------------------------------------------------------
    def queue_notify(self, index: int) -> None:
        """Take every available request of queue `index`; serve them unless deferring.

        A notification arriving while this queue is being served (the driver resubmits
        from its interrupt handler) is remembered and handled by the outer call.
        """
        queue = self._queue(index)
        if queue is None:
            return
        if index in self._busy:
            self._again.add(index)
            return
        self._busy.add(index)
        try:
            while True:
                self._again.discard(index)
                self._drain(index, queue)
                if index not in self._again:
                    break
        finally:
            self._busy.discard(index)

    def _drain(self, index: int, queue: DeviceQueue) -> None:
        """Pop until the ring is empty and the re-check after re-enabling kicks finds nothing."""
        context = self._context
        assert context is not None
        try:
            while True:
                queue.disable_notification()
                self._pop_all(index, queue)
                if not queue.enable_notification():
                    return
        except RingCorruption as error:
            context.needs_reset(error)  # the queue is broken until reset (§2.1)
        except QueueBroken:
            return  # reported when it broke

    def _pop_all(self, index: int, queue: DeviceQueue) -> None:
        """Pop chains until none is left, at most `size` per pass (bounded work).

        The driver is signalled once per pass for everything used in it, as vhost does.
        """
        context = self._context
        assert context is not None
        used = 0
        try:
            for _ in range(queue.size):
                try:
                    chain = queue.pop()
                except ChainError:
                    used += 1  # the queue returned it with length 0
                    continue
                if chain is None:
                    return
                if self.defer:
                    self._held[index][chain.head] = chain
                else:
                    self._serve_chain(index, queue, chain)
                    used += 1
        finally:
            if used:
                context.signal_used(index)

    def held(self, index: int) -> dict[int, Chain]:
        """Requests of queue `index` taken and not yet served (deferred mode), by head."""
        return dict(self._held[index]) if 0 <= index < len(self._held) else {}

    def serve(self, index: int, head: int) -> None:
        """Serve the held request `head` of queue `index` now, and signal the driver."""
        queue = self._queue(index)
        context = self._context
        if queue is None or context is None:
            return
        chain = self._held[index].pop(head)
        self._serve_chain(index, queue, chain)
        context.signal_used(index)

    def _queue(self, index: int) -> DeviceQueue | None:
        context = self._context
        if context is None or not 0 <= index < len(context.queues):
            return None
        return context.queues[index]

    def _serve_chain(self, index: int, queue: DeviceQueue, chain: Chain) -> None:
        """Execute one request and return it with its exact written length."""
        context = self._context
        assert context is not None
        mem = context.mem
        try:
            request = decode_request(mem, chain, self._limits)
            data = self._execute(request, chain)
            status = BlkStatus.OK
        except BlkRequestRejected as error:
            self.rejections.append(error)
            if chain.writable_len < BLK_STATUS_SIZE:
                queue.push_used(chain.head, 0)
                return
            data, status = b"", BlkStatus(error.status)
        scatter(mem, chain.writable, 0, data)
        scatter(mem, chain.writable, chain.writable_len - BLK_STATUS_SIZE, bytes([status]))
        queue.push_used(chain.head, len(data) + BLK_STATUS_SIZE)

    def _execute(self, request: BlkRequest, chain: Chain) -> bytes:
        """Carry out a checked request on the disk; return the data to write back."""
        try:
            return self._on_disk(request, chain)
        except OSError as error:
            raise BlkBackendFailed(f"{request.type.name}: {error}") from error

    def _on_disk(self, request: BlkRequest, chain: Chain) -> bytes:
        assert self._context is not None
        disk, kind = self.disk, request.type
        if kind is BlkReqType.IN:
            return disk.read(request.sector, request.in_len // BLK_SECTOR_SIZE)
        if kind is BlkReqType.OUT:
            data = gather(self._context.mem, chain.readable, BLK_REQ_HEADER_SIZE, request.out_len)
            disk.write(request.sector, data)
        elif kind is BlkReqType.FLUSH:
            disk.flush()
        elif kind is BlkReqType.GET_ID:
            return self.serial
        elif kind is BlkReqType.DISCARD:
            for seg in request.segments:
                disk.discard(seg.sector, seg.num_sectors)
        else:
            for seg in request.segments:
                disk.write_zeroes(seg.sector, seg.num_sectors)
        return b""


_FIELDS_OF = {
    BlkFeature.SIZE_MAX: ("size_max",),
    BlkFeature.SEG_MAX: ("seg_max",),
    BlkFeature.BLK_SIZE: ("blk_size",),
    BlkFeature.TOPOLOGY: ("physical_block_exp", "alignment_offset", "min_io_size",
                          "opt_io_size"),
    BlkFeature.CONFIG_WCE: ("writeback",),
    BlkFeature.MQ: ("num_queues",),
    BlkFeature.DISCARD: ("max_discard_sectors", "max_discard_seg", "discard_sector_alignment"),
    BlkFeature.WRITE_ZEROES: ("max_write_zeroes_sectors", "max_write_zeroes_seg",
                              "write_zeroes_may_unmap"),
}  # fmt: skip
"""The config fields that exist only when their feature is offered (§5.2.4)."""


def _offered_fields(config: BlkConfig, offered: int) -> BlkConfig:
    """`config` with every field of a feature not offered set to zero."""
    absent = {
        name: 0
        for feature, names in _FIELDS_OF.items()
        if not has_feature(offered, feature)
        for name in names
    }
    return replace(config, **absent)


def _with_writeback(config: BlkConfig, value: int) -> BlkConfig:
    """`config` with its `writeback` field replaced."""
    return replace(config, writeback=value)
