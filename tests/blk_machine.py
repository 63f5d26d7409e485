"""A Hypothesis state machine: the virtio-blk driver and device against the disk model.

`BlkDiskMachine` binds a `BlkDriver` to a `BlkDevice` in deferred mode over a
`MemoryDisk` (through a bus factory: the direct bus now, the transports later) and keeps
a `model.disk.DiskModel` beside them. Rules submit reads, writes, flushes, discards,
write-zeroes, GET_ID and out-of-range requests, many in flight on small rings (so the
driver's backlog is exercised), and the test picks which held request the device
serves next. When a request is served, the model computes its outcome; when an
operation completes, the driver's answer must be the model's. After every step the
disk equals the model (undefined sectors aside) and the crash image is one the model
allows. Each served chain is also checked for the driver's limits: at most `seg_max`
data segments of at most `size_max` bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from blk_rig import PACKED_SUFFIX, blk_side
from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from impl.blk_device import BlkDevice
from impl.blk_driver import KNOWN_FEATURES, BlkDriver, BlkOp
from impl.blk_layout import BlkReqHeader
from impl.disk import MemoryDisk
from impl.errors import (
    BlkIOError,
    BlkOutOfRange,
    BlkReadOnly,
    BlkUnsupported,
    VirtioError,
)
from impl.spec import BlkFeature, BlkReqType, Feature, feature_mask
from model.disk import DiskModel, Outcome, Status

SECTOR = 512
CAPACITY = 48

ERROR_OF = {Status.IOERR: BlkIOError, Status.UNSUPP: BlkUnsupported}


@dataclass
class Pending:
    """An operation in flight: what the test asked, and each part's outcome as served."""

    op: BlkOp
    kind: str
    sector: int = 0
    count: int = 0
    data: bytes = b""
    flush_ticket: int = 0
    outcomes: list[tuple[int, Outcome]] = field(default_factory=list)


def _segment(raw: bytes) -> tuple[int, int]:
    """(sector, num_sectors) of a 16-byte discard/write-zeroes segment, decoded independently."""
    return int.from_bytes(raw[0:8], "little"), int.from_bytes(raw[8:12], "little")


sectors = st.integers(min_value=0, max_value=CAPACITY + 4)
counts = st.integers(min_value=0, max_value=12)


class BlkDiskMachine(RuleBasedStateMachine):
    """Lockstep refinement of the virtio-blk driver+device against `DiskModel`."""

    def __init__(
        self,
        transport: str = "direct",
        disk_class: type[MemoryDisk] = MemoryDisk,
        device_class: type[BlkDevice] = BlkDevice,
        driver_class: type[BlkDriver] = BlkDriver,
    ) -> None:
        super().__init__()
        self.transport = transport
        self.classes = (disk_class, device_class, driver_class)
        self.ready = False

    @initialize(
        num_queues=st.sampled_from([1, 2]),
        queue_size=st.sampled_from([4, 8]),
        size_max=st.sampled_from([512, 1024, 4096]),
        seg_max=st.sampled_from([1, 2, 3]),
        writeback=st.booleans(),
        ring_bits=st.sampled_from([0, 1, 2, 3]),
        read_only=st.sampled_from([False] * 5 + [True]),
        odd_size=st.booleans(),
    )
    def setup(
        self, num_queues: int, queue_size: int, size_max: int, seg_max: int,
        writeback: bool, ring_bits: int, read_only: bool, odd_size: bool,
    ) -> None:  # fmt: skip
        """A device on a small disk with small rings; the driver negotiates what it knows.

        On a packed transport `odd_size` takes a queue size that is no power of two
        (3 or 7: a packed ring may have any size, §2.8.10.1)."""
        if odd_size and self.transport.endswith(PACKED_SUFFIX):
            queue_size -= 1
        table = KNOWN_FEATURES
        if not ring_bits & 1:
            table &= ~feature_mask(Feature.INDIRECT_DESC)
        if not ring_bits & 2:
            table &= ~feature_mask(Feature.EVENT_IDX)
        disk_class, device_class, driver_class = self.classes
        self.disk = disk_class(CAPACITY, read_only=read_only)
        self.device = device_class(
            self.disk, num_queues=num_queues, queue_size=queue_size, size_max=size_max,
            seg_max=seg_max, writeback=writeback, defer=True, max_discard_seg=2,
            max_discard_sectors=5, max_write_zeroes_seg=2, max_write_zeroes_sectors=5,
            serial=b"model-disk",
        )  # fmt: skip
        self.side = blk_side(
            self.device, transport=self.transport, known=table, driver_class=driver_class
        )
        self.driver = self.side.driver
        self.wce = self.driver._vdev().has_feature(BlkFeature.CONFIG_WCE)
        self.size_max, self.seg_max = size_max, seg_max
        self.raw_sectors = min(2, (queue_size - 2) * size_max // SECTOR)
        self.model = DiskModel(
            CAPACITY, read_only=read_only, writeback=writeback, serial=b"model-disk"
        )
        self.pending: dict[int, Pending] = {}
        self.next_id = 0
        self.ready = True
        note(f"transport={self.transport} queues={num_queues} size={queue_size} "
             f"size_max={size_max} seg_max={seg_max} writeback={writeback} "
             f"ring_bits={ring_bits} ro={read_only}")  # fmt: skip

    def _track(self, pending: Pending) -> None:
        self.pending[self.next_id] = pending
        note(f"#{self.next_id} {pending.kind} sector={pending.sector} count={pending.count}")
        self.next_id += 1

    def _refused(self, error: VirtioError, fits: bool, writes: bool) -> None:
        """The driver refused a request before sending it; the model must agree it is bad."""
        note(f"driver refused: {type(error).__name__}")
        if isinstance(error, BlkOutOfRange):
            assert not fits, "the driver refused an in-range request"
        else:
            assert isinstance(error, BlkReadOnly) and writes and self.model.read_only

    # --- submissions -----------------------------------------------------------------
    @precondition(lambda self: self.ready)
    @rule(sector=sectors, count=counts)
    def read(self, sector: int, count: int) -> None:
        """Submit a read (out of range ones are refused by the driver)."""
        try:
            op = self.driver.submit_read(sector, count)
        except (BlkOutOfRange, BlkReadOnly) as error:
            self._refused(error, sector + count <= self.model.capacity, False)
            return
        assert sector + count <= self.model.capacity, "the driver read beyond capacity"
        self._track(Pending(op, "read", sector, count))

    @precondition(lambda self: self.ready)
    @rule(sector=sectors, count=counts, fill=st.integers(min_value=1, max_value=255))
    def write(self, sector: int, count: int, fill: int) -> None:
        """Submit a write of a recognisable pattern."""
        data = bytes((fill + i) & 0xFF for i in range(count * SECTOR))
        try:
            op = self.driver.submit_write(sector, data)
        except (BlkOutOfRange, BlkReadOnly) as error:
            self._refused(error, sector + count <= self.model.capacity, True)
            return
        assert sector + count <= self.model.capacity and not self.model.read_only
        self._track(Pending(op, "write", sector, count, data))

    @precondition(lambda self: self.ready)
    @rule()
    def flush(self) -> None:
        """Submit a flush: it will cover the writes completed so far."""
        op = self.driver.submit_flush()
        self._track(Pending(op, "flush", flush_ticket=self.model.flush_issued()))

    @precondition(lambda self: self.ready)
    @rule(sector=sectors, count=counts.filter(bool), data=st.data())
    def synced_write(self, sector: int, count: int, data: st.DataObject) -> None:
        """Write, let the device finish everything, flush, finish again (an fsync)."""
        self.write(sector, count, 0x5A)
        if self._held():
            self.drain(data)
        self.flush()
        self.drain(data)

    @precondition(lambda self: self.ready)
    @rule()
    def get_id(self) -> None:
        """Submit GET_ID."""
        self._track(Pending(self.driver.submit_get_id(), "get_id"))

    @precondition(lambda self: self.ready)
    @rule(
        kind=st.sampled_from(["discard", "write_zeroes"]),
        ranges=st.lists(st.tuples(sectors, counts.filter(bool)), min_size=1, max_size=3),
        unmap=st.booleans(),
    )
    def discard_or_zero(self, kind: str, ranges: list[tuple[int, int]], unmap: bool) -> None:
        """Submit a discard or write-zeroes of a few ranges (split by the driver's limits)."""
        fits = all(s + n <= self.model.capacity for s, n in ranges)
        try:
            if kind == "discard":
                op = self.driver.submit_discard(ranges)
            else:
                op = self.driver.submit_write_zeroes(ranges, unmap)
        except (BlkOutOfRange, BlkReadOnly) as error:
            self._refused(error, fits, True)
            return
        assert fits and not self.model.read_only
        self._track(Pending(op, kind))

    @precondition(lambda self: self.ready)
    @rule(kind=st.sampled_from([BlkReqType.IN, BlkReqType.OUT]), past=st.integers(0, 3))
    def out_of_range(self, kind: BlkReqType, past: int) -> None:
        """Send a request reaching past capacity without the driver's check: IOERR.

        Two sectors, or one where two would need more descriptors than the ring has
        (a 3-entry packed ring with size_max 512: header, two data segments, status)."""
        count = self.raw_sectors
        sector = self.model.capacity - count + 1 + past
        header = BlkReqHeader(type=kind, sector=sector)
        size = count * SECTOR
        op = (self.driver.submit_raw(header, in_len=size) if kind is BlkReqType.IN
              else self.driver.submit_raw(header, out_data=bytes(size)))  # fmt: skip
        self._track(Pending(op, "raw", sector, count))

    @precondition(lambda self: self.ready and self.wce)
    @rule(on=st.booleans())
    def set_writeback(self, on: bool) -> None:
        """Switch the cache mode through config space."""
        self.driver.set_writeback(on)
        self.model.writeback = on
        note(f"writeback={on}")

    @precondition(lambda self: self.ready)
    @rule(capacity=st.integers(min_value=CAPACITY - 8, max_value=CAPACITY + 4))
    def resize(self, capacity: int) -> None:
        """The disk changes size; the device tells the driver through a config change."""
        self.disk.resize(capacity)
        self.device.resize()
        self.model.resize(capacity)
        note(f"resize to {capacity}")
        assert self.driver.capacity == capacity, "the driver did not re-read capacity"

    # --- the device serves one request of its choosing ----------------------------------
    def _held(self) -> list[tuple[int, int]]:
        return [(q, h) for q in range(len(self.driver.queues)) for h in self.device.held(q)]

    @precondition(lambda self: self.ready and self._held())
    @rule(data=st.data())
    def serve(self, data: st.DataObject) -> None:
        """Serve any held request; the model decides its outcome; check finished operations."""
        queue, head = data.draw(st.sampled_from(sorted(self._held())), label="request")
        chain = self.device.held(queue)[head]
        request = self.side.rings[queue].token_of(head)
        pending = next(p for p in self.pending.values() if p.op is request.op)
        if pending.kind != "raw":
            self._check_limits(chain, request.in_len)
        outcome = self._model_outcome(pending, request)
        note(f"serve q{queue} head {head}: {pending.kind} part {request.part} -> "
             f"{outcome.status.name}")  # fmt: skip
        pending.outcomes.append((request.part, outcome))
        self.device.serve(queue, head)
        self._check_finished()

    @precondition(lambda self: self.ready and self._held())
    @rule(data=st.data())
    def drain(self, data: st.DataObject) -> None:
        """Serve everything held (and what the backlog refills), in an order the test draws."""
        for _ in range(4 * CAPACITY):
            if not self._held():
                return
            self.serve(data)

    def _check_limits(self, chain: object, in_len: int) -> None:
        """No more than seg_max data segments, none longer than size_max."""
        readable, writable = chain.readable, chain.writable  # type: ignore[attr-defined]
        data = writable[:-1] if in_len else readable[1:]
        assert len(data) <= self.seg_max, f"{len(data)} data segments > seg_max {self.seg_max}"
        assert all(seg.len <= self.size_max for seg in data), "a segment exceeds size_max"

    def _model_outcome(self, pending: Pending, request: object) -> Outcome:
        header, out_data = request.header, request.out_data  # type: ignore[attr-defined]
        in_len: int = request.in_len  # type: ignore[attr-defined]
        kind = pending.kind
        if kind in ("read", "raw") and header.type == BlkReqType.IN:
            self._check_part(pending, header.sector, in_len // SECTOR)
            return self.model.read(header.sector, in_len // SECTOR)
        if kind in ("write", "raw"):
            offset = (header.sector - pending.sector) * SECTOR
            if kind == "write":
                self._check_part(pending, header.sector, len(out_data) // SECTOR)
                want = pending.data[offset : offset + len(out_data)]
                assert out_data == want, "the driver sent other bytes than asked"
            return self.model.write(header.sector, out_data)
        if kind == "flush":
            return self.model.flush_completed(pending.flush_ticket)
        if kind == "get_id":
            return self.model.get_id()
        ranges = [_segment(out_data[i : i + 16]) for i in range(0, len(out_data), 16)]
        if kind == "discard":
            return self.model.discard_ranges(ranges)
        return self.model.write_zeroes_ranges(ranges)

    def _check_part(self, pending: Pending, sector: int, count: int) -> None:
        assert pending.sector <= sector and sector + count <= pending.sector + pending.count

    def _check_finished(self) -> None:
        """Every completed operation answers what the model said, part by part."""
        for key, pending in list(self.pending.items()):
            if not pending.op.done:
                continue
            del self.pending[key]
            failed = [o for _, o in pending.outcomes if o.status is not Status.OK]
            if failed:
                error = ERROR_OF[failed[0].status]
                try:
                    pending.op.result()
                except error:
                    continue
                raise AssertionError(f"#{key} {pending.kind} should fail with {error.__name__}")
            result = pending.op.result()
            self._check_result(key, pending, result)

    def _check_result(self, key: int, pending: Pending, result: bytes) -> None:
        parts = sorted(pending.outcomes, key=lambda item: item[0])
        if pending.kind == "read" or any(outcome.sectors for _, outcome in parts):
            total = sum(len(o.sectors) for _, o in parts)
            assert total == pending.count, f"#{key}: parts cover {total} of {pending.count}"
            offset = 0
            for _, outcome in parts:
                size = len(outcome.sectors) * SECTOR
                assert outcome.accepts(result[offset : offset + size]), f"#{key}: wrong data"
                offset += size
        elif pending.kind == "get_id":
            assert parts[0][1].accepts(result), f"#{key}: wrong id {result!r}"
        else:
            assert result == b"", f"#{key}: {pending.kind} returned data"

    # --- invariants --------------------------------------------------------------------
    @invariant()
    def disk_matches_model(self) -> None:
        """The disk holds what the model says (undefined sectors aside)."""
        if self.ready:
            bad = self.model.differences(self.disk.image())
            assert not bad, f"sectors {bad} differ from the model"

    @invariant()
    def crash_image_allowed(self) -> None:
        """What a crash would leave now is something the model allows."""
        if self.ready:
            bad = self.model.differences(self.disk.stable_image(), after_crash=True)
            assert not bad, f"after a crash, sectors {bad} could hold what no rule allows"

    @invariant()
    def nothing_lost(self) -> None:
        """Every unfinished part is on a ring or in a backlog; the device holds only those."""
        if self.ready:
            parts = sum(p.op.remaining for p in self.pending.values())
            assert parts == self.driver.outstanding, f"{parts} parts unfinished, driver has "\
                f"{self.driver.outstanding}"
            assert len(self._held()) <= len(self.driver.in_flight)
