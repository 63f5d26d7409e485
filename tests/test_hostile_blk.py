"""Hostile virtio-blk requests: answered IOERR/UNSUPP (or length 0); the disk is untouched.

One test per hostile request of issue 6. Each sends a raw chain through a bare driver
(`blk_support.RawBench`), then checks the used length, the status byte, that nothing
but the status byte was written, and that the disk saw no call and kept its bytes.
A final property test throws random chains at the device: it never raises, and it
only touches the disk when it answers OK. Every request runs on a split ring (the
direct bus) and on packed rings (virtio-mmio and the descriptor page). The ring
corruption tests at the end write ring structures, so each ring type has its own: a
split avail index jump or a packed Buffer ID beyond the queue (a reset is asked, nothing
served), and an element outside the table or guest memory (returned with length 0, the
queue goes on).
"""

from __future__ import annotations

from itertools import pairwise

import pytest
from blk_rig import PACKED_TRANSPORTS
from blk_support import SECTOR, Answer, RawBench
from hypothesis import given
from hypothesis import strategies as st

from impl.blk_driver import KNOWN_FEATURES
from impl.blk_layout import BlkReqHeader, DwzSegment
from impl.errors import (
    AvailIndexJump,
    BlkBadDataLength,
    BlkBadIdLength,
    BlkBadSegmentsLength,
    BlkBeyondCapacity,
    BlkFlushNotEmpty,
    BlkHeaderTooShort,
    BlkNoStatusByte,
    BlkRequestRejected,
    BlkSegmentTooLarge,
    BlkTooManySegments,
    BlkUnknownSegmentFlags,
    BlkUnmapOnDiscard,
    BlkUnsupportedType,
    BlkWriteToReadOnly,
    BlkWrongDirection,
    BufferIdOutOfRange,
)
from impl.layout import Descriptor
from impl.packed_driver import PackedDriver
from impl.spec import (
    BLK_DWZ_F_UNMAP,
    BLK_ID_BYTES,
    BLK_T_BARRIER,
    DESC_SIZE,
    BlkFeature,
    BlkReqType,
    BlkStatus,
    DescFlag,
    Feature,
    Status,
    feature_mask,
)

CAPACITY = 64
IOERR, UNSUPP, OK = BlkStatus.IOERR, BlkStatus.UNSUPP, BlkStatus.OK


def header(kind: int, sector: int = 0) -> bytes:
    return BlkReqHeader(type=kind, sector=sector).pack()


def segments(*items: tuple[int, int, int]) -> bytes:
    return b"".join(DwzSegment(sector=s, num_sectors=n, flags=f).pack() for s, n, f in items)


DIRECT_ONLY = KNOWN_FEATURES & ~feature_mask(Feature.INDIRECT_DESC)
"""Without indirect tables every element is a ring descriptor the tests can reach."""
BENCH_TRANSPORTS = ("direct", *PACKED_TRANSPORTS)
"""A split ring on the direct bus, packed rings over virtio-mmio and the descriptor page."""
LIMITS = {"max_discard_seg": 2, "max_write_zeroes_seg": 2, "max_discard_sectors": 8,
          "max_write_zeroes_sectors": 8}  # fmt: skip


@pytest.fixture(params=BENCH_TRANSPORTS)
def bench(request: pytest.FixtureRequest) -> RawBench:
    return RawBench.build(CAPACITY, transport=request.param, **LIMITS)


@pytest.fixture
def split_bench() -> RawBench:
    return RawBench.build(CAPACITY, **LIMITS)


def assert_rejected(
    bench: RawBench, answer: Answer, status: int, error: type[BlkRequestRejected], before: bytes
) -> None:
    """Status at the last writable byte, length 1, nothing else written, disk untouched."""
    assert answer.length == 1, f"used length {answer.length}, expected the status byte only"
    assert answer.status == status
    assert set(answer.written[:-1]) <= {0xEE}, "data was written for a rejected request"
    assert isinstance(bench.device.rejections[-1], error)
    assert bench.disk.calls == [], f"the disk was touched: {bench.disk.calls}"
    assert bench.image() == before


def assert_dropped(bench: RawBench, answer: Answer, before: bytes) -> None:
    """Returned with length 0, nothing written, disk untouched."""
    assert answer.length == 0
    assert set(answer.written) <= {0xEE}
    assert isinstance(bench.device.rejections[-1], BlkNoStatusByte)
    assert bench.disk.calls == [] and bench.image() == before


# --- header and status framing ---------------------------------------------------------
def test_header_too_short(bench: RawBench) -> None:
    before = bench.image()
    answer = bench.send([header(BlkReqType.IN)[:15]], [SECTOR, 1])
    assert_rejected(bench, answer, IOERR, BlkHeaderTooShort, before)


@pytest.mark.spec("SPLIT-DEV-001")
@pytest.mark.parametrize("cuts", [(1,), (4, 8), (3, 5, 7, 11), tuple(range(1, 16))])
def test_header_split_oddly_is_still_served(bench: RawBench, cuts: tuple[int, ...]) -> None:
    """A header cut anywhere across descriptors is one header (no framing assumptions)."""
    raw = header(BlkReqType.IN, 3)
    bounds = (0, *cuts, len(raw))
    pieces = [raw[a:b] for a, b in pairwise(bounds)]
    before = bench.image()
    answer = bench.send(pieces, [SECTOR, 1])
    assert answer.length == SECTOR + 1 and answer.status == OK
    assert answer.written[:SECTOR] == before[3 * SECTOR : 4 * SECTOR]


@pytest.mark.spec("SPLIT-DEV-001")
def test_header_and_data_sharing_a_descriptor_is_served(bench: RawBench) -> None:
    """An OUT whose header and data share one descriptor, the data split oddly after it."""
    data = bytes(range(256)) * 4
    blob = header(BlkReqType.OUT, 5) + data
    answer = bench.send([blob[:20], blob[20:700], blob[700:]], [1])
    assert answer.length == 1 and answer.status == OK
    assert bench.image()[5 * SECTOR : 7 * SECTOR] == data


def test_status_descriptor_missing(bench: RawBench) -> None:
    before = bench.image()
    answer = bench.send([header(BlkReqType.OUT, 1), b"x" * SECTOR], [])
    assert_dropped(bench, answer, before)


def test_status_descriptor_not_writable(bench: RawBench) -> None:
    before = bench.image()
    answer = bench.send([header(BlkReqType.OUT, 1), b"x" * SECTOR, b"\0"], [])
    assert_dropped(bench, answer, before)


def test_status_descriptor_of_length_zero_alone(bench: RawBench) -> None:
    before = bench.image()
    answer = bench.send([header(BlkReqType.OUT, 1), b"x" * SECTOR], [0])
    assert_dropped(bench, answer, before)


@pytest.mark.spec("BLK-DRV-016")
def test_status_descriptor_of_length_zero_after_data(bench: RawBench) -> None:
    """The status byte is then the data's last byte: 511 data bytes, so IOERR there."""
    before = bench.image()
    answer = bench.send([header(BlkReqType.IN, 1)], [SECTOR, 0])
    assert_rejected(bench, answer, IOERR, BlkBadDataLength, before)


# --- data lengths and directions -------------------------------------------------------
@pytest.mark.spec("BLK-DRV-016")
def test_read_not_whole_sectors(bench: RawBench) -> None:
    before = bench.image()
    answer = bench.send([header(BlkReqType.IN, 0)], [SECTOR + 100, 1])
    assert_rejected(bench, answer, IOERR, BlkBadDataLength, before)


@pytest.mark.spec("BLK-DRV-016")
def test_write_not_whole_sectors(bench: RawBench) -> None:
    before = bench.image()
    answer = bench.send([header(BlkReqType.OUT, 0), b"y" * 100], [1])
    assert_rejected(bench, answer, IOERR, BlkBadDataLength, before)


def test_read_with_readable_data(bench: RawBench) -> None:
    before = bench.image()
    answer = bench.send([header(BlkReqType.IN, 0), b"z" * SECTOR], [SECTOR, 1])
    assert_rejected(bench, answer, IOERR, BlkWrongDirection, before)


def test_write_with_writable_data(bench: RawBench) -> None:
    before = bench.image()
    answer = bench.send([header(BlkReqType.OUT, 0), b"z" * SECTOR], [SECTOR, 1])
    assert_rejected(bench, answer, IOERR, BlkWrongDirection, before)


# --- ranges ----------------------------------------------------------------------------
@pytest.mark.spec("BLK-DRV-012")
@pytest.mark.parametrize("kind", [BlkReqType.IN, BlkReqType.OUT])
@pytest.mark.parametrize(
    ("sector", "count"),
    [
        (CAPACITY, 1),  # starts at capacity
        (CAPACITY - 1, 2),  # ends one past it
        (1 << 40, 1),  # far beyond
        ((1 << 64) // SECTOR - 1, 2),  # sector*512 + len wraps 2^64 to 512
        (1 << 63, 1),  # sector*512 wraps 2^64 to 0
        ((1 << 64) - 1, 1),  # the largest le64
    ],
)
def test_beyond_capacity(bench: RawBench, kind: BlkReqType, sector: int, count: int) -> None:
    before = bench.image()
    if kind is BlkReqType.IN:
        answer = bench.send([header(kind, sector)], [count * SECTOR, 1])
    else:
        answer = bench.send([header(kind, sector), b"w" * (count * SECTOR)], [1])
    assert_rejected(bench, answer, IOERR, BlkBeyondCapacity, before)


# --- request types -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "kind",
    [
        0x1234,
        BlkReqType.SCSI_CMD,
        BlkReqType.SCSI_CMD_OUT,
        BlkReqType.GET_LIFETIME,
        BlkReqType.SECURE_ERASE,
        BlkReqType.OUT | BLK_T_BARRIER,
        BlkReqType.IN | BLK_T_BARRIER,
        0xFFFFFFFF,
    ],
)
def test_unknown_or_legacy_type(bench: RawBench, kind: int) -> None:
    before = bench.image()
    answer = bench.send([header(kind, 0), b"q" * SECTOR], [1])
    assert_rejected(bench, answer, UNSUPP, BlkUnsupportedType, before)


@pytest.mark.spec("BLK-DRV-015")
def test_flush_with_data(bench: RawBench) -> None:
    before = bench.image()
    answer = bench.send([header(BlkReqType.FLUSH), b"d" * SECTOR], [1])
    assert_rejected(bench, answer, IOERR, BlkFlushNotEmpty, before)


@pytest.mark.spec("BLK-DRV-015")
def test_flush_with_writable_data(bench: RawBench) -> None:
    before = bench.image()
    answer = bench.send([header(BlkReqType.FLUSH)], [SECTOR, 1])
    assert_rejected(bench, answer, IOERR, BlkFlushNotEmpty, before)


@pytest.mark.spec("BLK-DRV-014")
def test_flush_with_nonzero_sector(bench: RawBench) -> None:
    before = bench.image()
    answer = bench.send([header(BlkReqType.FLUSH, 7)], [1])
    assert_rejected(bench, answer, IOERR, BlkFlushNotEmpty, before)


@pytest.mark.parametrize("transport", BENCH_TRANSPORTS)
def test_flush_not_negotiated(transport: str) -> None:
    table = KNOWN_FEATURES & ~feature_mask(BlkFeature.FLUSH, BlkFeature.CONFIG_WCE)
    bench = RawBench.build(CAPACITY, transport=transport, feature_table=table)
    before = bench.image()
    answer = bench.send([header(BlkReqType.FLUSH)], [1])
    assert_rejected(bench, answer, UNSUPP, BlkUnsupportedType, before)


@pytest.mark.spec("BLK-DRV-018")
@pytest.mark.parametrize("size", [0, 1, BLK_ID_BYTES - 1])
def test_get_id_buffer_too_short(bench: RawBench, size: int) -> None:
    before = bench.image()
    answer = bench.send([header(BlkReqType.GET_ID)], [size, 1] if size else [1])
    assert_rejected(bench, answer, IOERR, BlkBadIdLength, before)


def test_get_id_is_always_answered(bench: RawBench) -> None:
    answer = bench.send([header(BlkReqType.GET_ID)], [BLK_ID_BYTES, 1])
    assert answer.length == BLK_ID_BYTES + 1 and answer.status == OK
    assert answer.written[:BLK_ID_BYTES] == b"virtio-oracle".ljust(BLK_ID_BYTES, b"\0")


# --- read-only -------------------------------------------------------------------------
@pytest.mark.spec("BLK-DEV-020")
@pytest.mark.parametrize(
    ("kind", "body"),
    [
        (BlkReqType.OUT, b"r" * SECTOR),
        (BlkReqType.WRITE_ZEROES, segments((0, 1, 0))),
        (BlkReqType.DISCARD, segments((0, 1, 0))),
    ],
)
@pytest.mark.parametrize("transport", BENCH_TRANSPORTS)
def test_write_to_read_only_disk(kind: BlkReqType, body: bytes, transport: str) -> None:
    bench = RawBench.build(CAPACITY, read_only=True, transport=transport)
    before = bench.image()
    answer = bench.send([header(kind, 0), body], [1])
    assert_rejected(bench, answer, IOERR, BlkWriteToReadOnly, before)


# --- discard and write zeroes ----------------------------------------------------------
DWZ = [BlkReqType.DISCARD, BlkReqType.WRITE_ZEROES]


@pytest.mark.spec("BLK-DRV-012")
@pytest.mark.parametrize("kind", DWZ)
@pytest.mark.parametrize("bad", [(CAPACITY, 1, 0), (CAPACITY - 1, 2, 0), ((1 << 64) - 1, 1, 0)])
def test_segment_out_of_range(bench: RawBench, kind: BlkReqType, bad: tuple[int, int, int]) -> None:
    """A bad second segment: the first, good one is not carried out either."""
    before = bench.image()
    answer = bench.send([header(kind), segments((0, 4, 0), bad)], [1])
    assert_rejected(bench, answer, IOERR, BlkBeyondCapacity, before)


@pytest.mark.spec("BLK-DRV-019", "BLK-DRV-021")
@pytest.mark.parametrize("kind", DWZ)
def test_too_many_segments(bench: RawBench, kind: BlkReqType) -> None:
    before = bench.image()
    answer = bench.send([header(kind), segments((0, 1, 0), (2, 1, 0), (4, 1, 0))], [1])
    assert_rejected(bench, answer, IOERR, BlkTooManySegments, before)


@pytest.mark.parametrize("kind", DWZ)
def test_segment_larger_than_maximum(bench: RawBench, kind: BlkReqType) -> None:
    before = bench.image()
    answer = bench.send([header(kind), segments((0, 9, 0))], [1])
    assert_rejected(bench, answer, IOERR, BlkSegmentTooLarge, before)


@pytest.mark.spec("BLK-DRV-017")
@pytest.mark.parametrize("kind", DWZ)
@pytest.mark.parametrize("length", [0, 15, 17])
def test_segments_not_whole(bench: RawBench, kind: BlkReqType, length: int) -> None:
    before = bench.image()
    body = segments((0, 1, 0), (2, 1, 0))[:length]
    answer = bench.send([header(kind), body] if body else [header(kind)], [1])
    assert_rejected(bench, answer, IOERR, BlkBadSegmentsLength, before)


@pytest.mark.spec("BLK-DEV-021")
@pytest.mark.parametrize("kind", DWZ)
@pytest.mark.parametrize("flags", [2, 1 << 31, 0xFFFFFFFF])
def test_segment_unknown_flags(bench: RawBench, kind: BlkReqType, flags: int) -> None:
    before = bench.image()
    answer = bench.send([header(kind), segments((0, 1, 0), (1, 1, flags))], [1])
    assert_rejected(bench, answer, UNSUPP, BlkUnknownSegmentFlags, before)


@pytest.mark.spec("BLK-DEV-022", "BLK-DRV-024")
def test_discard_with_unmap(bench: RawBench) -> None:
    before = bench.image()
    answer = bench.send([header(BlkReqType.DISCARD), segments((0, 1, BLK_DWZ_F_UNMAP))], [1])
    assert_rejected(bench, answer, UNSUPP, BlkUnmapOnDiscard, before)


@pytest.mark.spec("BLK-DEV-025")
def test_write_zeroes_with_unmap_zeroes(bench: RawBench) -> None:
    answer = bench.send(
        [header(BlkReqType.WRITE_ZEROES), segments((2, 3, BLK_DWZ_F_UNMAP))], [1]
    )
    assert answer.length == 1 and answer.status == OK
    assert bench.image()[2 * SECTOR : 5 * SECTOR] == bytes(3 * SECTOR)


@pytest.mark.parametrize("kind", DWZ)
@pytest.mark.parametrize("transport", BENCH_TRANSPORTS)
def test_dwz_not_negotiated(kind: BlkReqType, transport: str) -> None:
    table = KNOWN_FEATURES & ~feature_mask(BlkFeature.DISCARD, BlkFeature.WRITE_ZEROES)
    bench = RawBench.build(CAPACITY, transport=transport, feature_table=table)
    before = bench.image()
    answer = bench.send([header(kind), segments((0, 1, 0))], [1])
    assert_rejected(bench, answer, UNSUPP, BlkUnsupportedType, before)


# --- malformed rings do not stop the device ---------------------------------------------
def test_device_keeps_serving_after_a_rejection(bench: RawBench) -> None:
    bench.send([header(0x99)], [1])
    answer = bench.send([header(BlkReqType.IN, 2)], [SECTOR, 1])
    assert answer.status == OK and answer.length == SECTOR + 1


# --- any chain at all --------------------------------------------------------------------
pieces = st.lists(st.binary(max_size=40), min_size=0, max_size=4)


@pytest.mark.parametrize("transport", BENCH_TRANSPORTS)
@given(
    kind=st.sampled_from([*BlkReqType, 0x77, BLK_T_BARRIER]),
    sector=st.sampled_from([0, 1, CAPACITY - 1, CAPACITY, 1 << 55, (1 << 64) - 1]),
    tail=pieces,
    cut=st.integers(min_value=0, max_value=16),
    in_sizes=st.lists(st.sampled_from([0, 1, 19, 20, 21, 511, 512, 513]), max_size=3),
)
def test_random_requests_never_crash(
    transport: str, kind: int, sector: int, tail: list[bytes], cut: int, in_sizes: list[int]
) -> None:
    """Any framing of any header: the device answers; the disk changes only on OK."""
    bench = RawBench.build(16, transport=transport)
    raw = header(kind, sector)
    out = [p for p in (raw[:cut], raw[cut:], *tail) if p]
    before = bench.image()
    answer = bench.send(out, in_sizes)
    writable = sum(in_sizes)
    if writable == 0:
        assert answer.length == 0
    else:
        assert answer.status in (OK, IOERR, UNSUPP)
        assert 1 <= answer.length <= writable
    if answer.status != OK or answer.length == 0:
        assert bench.disk.calls == [] and bench.image() == before


@pytest.mark.spec("STATUS-DEV-002")
def test_ring_corruption_asks_for_reset_and_touches_nothing(split_bench: RawBench) -> None:
    """avail.idx jumping past the queue size: DEVICE_NEEDS_RESET, no request served."""
    before = split_bench.image()
    layout = split_bench.handle.queues[0].ring.layout
    split_bench.handle.mem.write_u16(layout.avail_idx, layout.size + 5)
    split_bench.device.queue_notify(0)
    assert len(split_bench.handle.reset_requests) == 1
    assert isinstance(split_bench.handle.reset_requests[0], AvailIndexJump)
    assert split_bench.disk.calls == [] and split_bench.image() == before


def test_malformed_chain_is_returned_empty_and_the_queue_goes_on(split_bench: RawBench) -> None:
    """A `next` pointing outside the table: used with length 0, disk untouched, next served."""
    before = split_bench.image()
    ring = split_bench.handle.queues[0].ring
    out, status = split_bench.place(header(BlkReqType.OUT, 1)), split_bench.place(b"\0")
    head = ring.add_sgs([out], [status], "bad")
    raw = Descriptor.unpack(split_bench.handle.mem.read(ring.layout.desc_addr(head), DESC_SIZE))
    broken = Descriptor(addr=raw.addr, len=raw.len, flags=raw.flags | DescFlag.NEXT,
                        next=ring.size)  # fmt: skip
    split_bench.handle.mem.write(ring.layout.desc_addr(head), broken.pack())
    split_bench.ring.kick()
    assert split_bench.ring.get_buf() == ("bad", 0)
    assert split_bench.disk.calls == [] and split_bench.image() == before
    answer = split_bench.send([header(BlkReqType.IN, 2)], [SECTOR, 1])
    assert answer.status == OK and answer.length == SECTOR + 1


@pytest.mark.spec("STATUS-DEV-002")
@pytest.mark.parametrize("transport", PACKED_TRANSPORTS)
def test_packed_ring_corruption_asks_for_reset_and_touches_nothing(transport: str) -> None:
    """A Buffer ID beyond the queue size: DEVICE_NEEDS_RESET, no request served."""
    bench = RawBench.build(CAPACITY, transport=transport, feature_table=DIRECT_ONLY)
    assert isinstance(bench.ring, PackedDriver) and bench.core is not None
    before = bench.image()
    out, status = bench.place(header(BlkReqType.OUT, 1) + b"w" * SECTOR), bench.place(b"\0")
    bench.ring.add_sgs([out], [status], "bad")
    bench.mem.write_u16(bench.ring.layout.desc_id(1), bench.ring.size + 5)  # the list's last
    bench.ring.kick()
    assert bench.core.status & Status.DEVICE_NEEDS_RESET
    assert isinstance(bench.core.violations[-1], BufferIdOutOfRange)
    assert bench.ring.get_buf() is None
    assert bench.disk.calls == [] and bench.image() == before


@pytest.mark.parametrize("transport", PACKED_TRANSPORTS)
def test_packed_malformed_list_is_returned_empty_and_the_queue_goes_on(transport: str) -> None:
    """A list element outside guest memory: used with length 0, disk untouched, next served."""
    bench = RawBench.build(CAPACITY, transport=transport, feature_table=DIRECT_ONLY)
    assert isinstance(bench.ring, PackedDriver)
    before = bench.image()
    out, status = bench.place(header(BlkReqType.OUT, 1) + b"w" * SECTOR), bench.place(b"\0")
    bench.ring.add_sgs([out], [status], "bad")
    bench.mem.write_u64(bench.ring.layout.desc_addr(0), bench.mem.size)
    bench.ring.kick()
    assert bench.ring.get_buf() == ("bad", 0)
    assert bench.disk.calls == [] and bench.image() == before
    answer = bench.send([header(BlkReqType.IN, 2)], [SECTOR, 1])
    assert answer.status == OK and answer.length == SECTOR + 1
