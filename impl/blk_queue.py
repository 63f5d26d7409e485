"""A virtio-blk driver's request queue: requests on one ring, their backlog, their completion.

Rules:
- A `BlkOp` is what the caller waits on; it may travel as several `PendingRequest`s
  (the driver splits to the device's limits). A request becomes one allocation of
  guest memory, the header at 0, the status byte right after it and the data from
  `DATA_OFFSET` on, and one chain: header, data segments of at most `size_max` bytes,
  status.
- Back-pressure, never loss: a request that does not fit the ring (`NoSpace`), or
  whose buffer does not fit guest memory while others are in flight, waits in the
  backlog, which is refilled in order from the completion path.
- Completions are checked (§5.2.6): the status byte must be OK, IOERR or UNSUPP and
  the used length exactly data + status for OK, at least the status byte otherwise;
  a lie fails the request with a `DeviceError`. A `DeviceError` from the ring itself
  breaks the queue and fails everything on it.

Spec: §5.2.6 (request layout and status), §2.7.13 (supplying buffers), §2.7.14
(receiving used buffers).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .alloc import GuestAllocator
from .blk_layout import BlkReqHeader
from .chain import Segment
from .driver import DriverQueue
from .errors import (
    BlkBadRequest,
    BlkBadStatus,
    BlkBadUsedLength,
    BlkIOError,
    BlkUnsupported,
    DeviceError,
    NoSpace,
    QueueBroken,
    VirtioError,
)
from .memory import GuestMemory
from .spec import BLK_REQ_HEADER_SIZE, BLK_STATUS_SIZE, BlkStatus

DATA_OFFSET = 64
"""Where a request's data starts in its buffer block (after header and status; aligned)."""


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

    def complete(self, part: int, data: bytes, error: VirtioError | None) -> None:
        """Record one part's outcome."""
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
class PendingRequest:
    """One request of part `part` of `op`: its header and data, and where its buffer is."""

    op: BlkOp
    part: int
    header: BlkReqHeader
    out_data: bytes = b""
    in_len: int = 0
    base: int | None = None
    in_segments: list[Segment] = field(default_factory=list)

    @property
    def status_addr(self) -> int:
        """The status byte's guest address (the request must be placed)."""
        assert self.base is not None
        return self.base + BLK_REQ_HEADER_SIZE


class RequestQueue:
    """The driver side of one request queue over `ring`, buffers from `allocator` in `mem`."""

    def __init__(
        self, ring: DriverQueue, mem: GuestMemory, allocator: GuestAllocator, size_max: int
    ) -> None:
        self.ring = ring
        self.mem = mem
        self.allocator = allocator
        self.size_max = size_max
        self.backlog: deque[PendingRequest] = deque()
        self.in_flight: set[PendingRequest] = set()
        self.broken: VirtioError | None = None
        self.plugged = False

    @property
    def outstanding(self) -> int:
        """Requests on the ring plus requests in the backlog."""
        return len(self.in_flight) + len(self.backlog)

    # --- sending (§2.7.13) --------------------------------------------------------------
    def send(self, request: PendingRequest) -> None:
        """Queue `request` behind the backlog and push what fits onto the ring."""
        if self.broken is not None:
            raise QueueBroken(f"the queue failed earlier: {self.broken}")
        self.backlog.append(request)
        self.push()

    def push(self) -> None:
        """Move backlog requests onto the ring while they fit, then kick once (unless plugged)."""
        added = False
        while self.backlog and self.broken is None:
            request = self.backlog[0]
            if not self._place(request):
                break
            try:
                self.ring.add_sgs(*self._segments(request), request)
            except NoSpace:
                self._release(request)
                break
            self.backlog.popleft()
            self.in_flight.add(request)
            added = True
        if added and not self.plugged:
            self.ring.kick()

    def _place(self, request: PendingRequest) -> bool:
        """Allocate and fill the request's buffer; False when guest memory is short."""
        base = self.allocator.alloc(DATA_OFFSET + max(len(request.out_data), request.in_len),
                                    DATA_OFFSET)  # fmt: skip
        if base is None:
            if not self.in_flight:
                raise BlkBadRequest("a request does not fit in the driver's guest memory")
            return False
        request.base = base
        self.mem.write(base, request.header.pack())
        self.mem.write_u8(request.status_addr, BlkStatus.IOERR)
        self.mem.write(base + DATA_OFFSET, request.out_data)
        if request.in_len:
            request.in_segments = self.data_segments(base + DATA_OFFSET, request.in_len)
        return True

    def data_segments(self, addr: int, length: int) -> list[Segment]:
        """Cut a data buffer into segments of at most size_max bytes (any size without it)."""
        step = self.size_max or length or 1
        return [Segment(a, min(step, addr + length - a)) for a in range(addr, addr + length, step)]

    def _segments(self, request: PendingRequest) -> tuple[list[Segment], list[Segment]]:
        assert request.base is not None
        out = [Segment(request.base, BLK_REQ_HEADER_SIZE)]
        if request.out_data:
            out += self.data_segments(request.base + DATA_OFFSET, len(request.out_data))
        return out, [*request.in_segments, Segment(request.status_addr, BLK_STATUS_SIZE)]

    def _release(self, request: PendingRequest) -> None:
        if request.base is not None:
            self.allocator.free(request.base)
            request.base = None

    # --- completing (§2.7.14, §5.2.6) ---------------------------------------------------
    def interrupt(self) -> None:
        """Reap used requests (Linux's virtblk_done), then refill the ring from the backlog."""
        if self.broken is not None:
            return
        try:
            while True:
                self.ring.disable_cb()
                while (used := self.ring.get_buf()) is not None:
                    token, length = used
                    if isinstance(token, PendingRequest):
                        self._complete(token, length)
                if self.ring.enable_cb():
                    break
        except DeviceError as error:
            self.fail_all(error)
            return
        self.push()

    def _complete(self, request: PendingRequest, length: int) -> None:
        """Check the status byte and used length, read the data, free the buffer."""
        self.in_flight.discard(request)
        status = self.mem.read_u8(request.status_addr)
        error: VirtioError | None = None
        data = b""
        kind, sector = request.header.type, request.header.sector
        if status not in (BlkStatus.OK, BlkStatus.IOERR, BlkStatus.UNSUPP):
            error = BlkBadStatus(f"status byte {status} is not OK, IOERR or UNSUPP")
        elif length < BLK_STATUS_SIZE:
            error = BlkBadUsedLength(f"used length {length} leaves no room for the status byte")
        elif status == BlkStatus.OK and length != request.in_len + BLK_STATUS_SIZE:
            error = BlkBadUsedLength(f"used length {length} for {request.in_len} data bytes")
        elif status == BlkStatus.IOERR:
            error = BlkIOError(f"request type {kind} at sector {sector} failed")
        elif status == BlkStatus.UNSUPP:
            error = BlkUnsupported(f"request type {kind} is not supported by the device")
        elif request.in_len:
            data = b"".join(self.mem.read(s.addr, s.len) for s in request.in_segments)
        self.finish(request, data, error)

    def finish(self, request: PendingRequest, data: bytes, error: VirtioError | None) -> None:
        """Free the request's buffer and report its outcome to its operation."""
        self.in_flight.discard(request)
        self._release(request)
        request.op.complete(request.part, data, error)

    def fail_all(self, error: VirtioError) -> None:
        """The queue is unusable: mark it broken and fail every request on it once."""
        self.broken = error
        for request in list(self.in_flight):
            self.finish(request, b"", error)
        while self.backlog:
            self.finish(self.backlog.popleft(), b"", error)

    def detach(self, error: VirtioError) -> None:
        """After a device reset: take back every buffer from the ring, fail it and the backlog."""
        while (token := self.ring.detach_unused_buf()) is not None:
            if isinstance(token, PendingRequest):
                self.finish(token, b"", error)
        self.fail_all(error)
