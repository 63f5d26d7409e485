"""The driver side of a split virtqueue, with the API Linux's virtio_ring offers.

Rules:
- The driver owns, and is the only writer of: the descriptor table, the available
  ring (flags, idx, ring) and used_event. It reads the used ring and avail_event and
  trusts neither: a lying device raises a `DeviceError` subclass and the queue is
  marked broken (Linux's BAD_RING) with no token handed out.
- Its private state (free list, per-head records, shadow indices) never lives in
  shared memory, so a device cannot corrupt it (Linux keeps `desc_extra` for this).
- Ordering points are explicit and labelled; the device's matching barrier carries the
  same label (docs/ordering.md):
  A: descriptors and ring entry, then avail.idx          (device: avail.idx, then entry)
  B: avail.idx, then avail_event / used.flags            (device: its event, then avail.idx)
  C: used.idx, then the used element                     (device: element, then used.idx)
  D: used_event / avail.flags, then used.idx             (device: used.idx, then its event)
- Before the queue is live the whole ring is the driver's memory: construction zeroes
  it (SPLIT-DRV-017) and writes the starting indices.
- With VIRTIO_F_IN_ORDER (§2.7.9, docs/inorder.md) descriptors are handed out in ring
  order, wrapping (each chained `next` is its successor, 0 after the last entry,
  SPLIT-DRV-004), so the free descriptors are always one consecutive run and the
  oldest outstanding buffer starts right after it. A used element may then stand for
  a batch: every outstanding buffer up to the one it names, the skipped ones counted
  as completely written (their writable length).

Spec: §2.7.13 (supplying buffers), §2.7.14 (receiving used buffers), §2.7.7 and
§2.7.10 (notification suppression), §2.7.5.3 (indirect descriptors), §2.7.9 (in-order).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from .alloc import GuestAllocator
from .buffer import check_buffer
from .chain import Segment, new_tuple
from .driver_ring import DriverRing, Token
from .errors import (
    NoSpace,
    UsedIdNotOutstanding,
    UsedIdOutOfRange,
    UsedIndexJump,
    UsedLengthTooLong,
    UsedOutOfOrder,
)
from .layout import (
    DESC_STRUCT,
    LE16_STRUCT,
    USED_ELEM_STRUCT,
    SplitLayout,
    avail_ring_bytes,
    desc_table_bytes,
    used_ring_bytes,
)
from .memory import MB, RMB, WMB, GuestMemory, HoldsAccessors, Reader, Writer
from .ring_math import advance, distance, need_event, slot, wrap
from .spec import (
    DESC_SIZE,
    INDEX_MODULUS,
    AvailFlag,
    DescFlag,
    Feature,
    UsedFlag,
    has_feature,
)

_NEXT = int(DescFlag.NEXT)
_WRITE = int(DescFlag.WRITE)
_INDIRECT = int(DescFlag.INDIRECT)
"""Plain-int flag bits: `int | IntFlag` goes through enum code, too slow per descriptor."""


class _Outstanding(NamedTuple):
    """What the driver remembers about a head it handed to the device."""

    token: Token
    descs: int
    writable: int
    table: int | None



class SplitDriver(DriverRing[_Outstanding], HoldsAccessors):
    """Driver half of one split virtqueue over `mem` at `layout`.

    `features` is the negotiated feature word; VIRTIO_F_EVENT_IDX,
    VIRTIO_F_INDIRECT_DESC and VIRTIO_F_IN_ORDER change behaviour. `allocator`
    supplies indirect tables (without one, every buffer is direct). `notify` is the
    transport's doorbell, called by `notify()`/`kick()`. `initial_index` starts both
    ring indices somewhere other than 0, as a queue restored after migration would
    (the spec's reset value is 0).
    """

    _put_desc: Writer
    _put_avail: Writer
    _get_used: Reader
    _get_used_elem: Reader

    def __init__(
        self,
        mem: GuestMemory,
        layout: SplitLayout,
        features: int = 0,
        *,
        allocator: GuestAllocator | None = None,
        notify: Callable[[], None] | None = None,
        initial_index: int = 0,
    ) -> None:
        layout.validate(mem.size)
        self.mem = mem
        self.layout = layout
        self.size = layout.size
        self._desc_at = layout.desc  # the hot addresses, looked up once
        self._avail_idx_at = layout.avail_idx
        self._used_idx_at = layout.used_idx
        self._avail_slot_at = layout.avail_ring_addrs
        self._used_slot_at = layout.used_ring_addrs
        self._bind_accessors()
        self.event_idx = has_feature(features, Feature.EVENT_IDX)
        self.indirect = has_feature(features, Feature.INDIRECT_DESC) and allocator is not None
        self._allocator = allocator
        self._notify = notify
        self.in_order = has_feature(features, Feature.IN_ORDER)
        size = self.size
        self._next = [(i + 1) % size if self.in_order else i + 1 for i in range(size)]
        self._batch: tuple[int, int] | None = None
        self._state: list[_Outstanding | None] = [None] * self.size
        self.free_head = 0
        self.num_free = self.size
        self.outstanding = 0
        self.avail_idx = wrap(initial_index)
        self.last_used_idx = wrap(initial_index)
        self._num_added = 0
        self.no_interrupt = False
        self.broken = False
        self._zero_ring(initial_index)

    def _accessors(self) -> dict[str, Reader | Writer]:
        """The driver writes the descriptor table and Driver Area, reads the Device Area."""
        mem, lay = self.mem, self.layout
        return {
            "_put_desc": mem.writer(DESC_STRUCT, *lay.desc_area),
            "_put_avail": mem.writer(LE16_STRUCT, *lay.avail_area),
            "_get_used": mem.reader(LE16_STRUCT, *lay.used_area),
            "_get_used_elem": mem.reader(USED_ELEM_STRUCT, *lay.used_area),
        }

    def _zero_ring(self, initial_index: int) -> None:
        """Zero all three parts and write the starting indices (SPLIT-DRV-017)."""
        lay, mem = self.layout, self.mem
        mem.fill(lay.desc, desc_table_bytes(self.size))
        mem.fill(lay.avail, avail_ring_bytes(self.size))
        mem.fill(lay.used, used_ring_bytes(self.size))
        mem.write_u16(lay.avail_idx, wrap(initial_index))
        mem.write_u16(lay.used_idx, wrap(initial_index))
        mem.write_u16(lay.used_event, wrap(initial_index))
        mem.write_u16(lay.avail_event, wrap(initial_index))

    # --- adding buffers (§2.7.13) -----------------------------------------------------
    def add_sgs(self, out: Sequence[Segment], in_: Sequence[Segment], token: Token) -> int:
        """Expose a buffer: device-readable `out` then device-writable `in_` segments.

        Returns the head descriptor index. Raises `NoSpace` when the free descriptors
        do not suffice (nothing is written then) and `BadBuffer` for a buffer no
        driver may add (no segments, 2^32 bytes or more, more parts than the queue
        size, a segment outside memory, or a None token).
        """
        if self.broken:
            self._check_live()
        writable = check_buffer(self.mem, self.size, out, in_, token)
        parts = len(out) + len(in_)
        table = self._indirect_table(parts) if self.indirect else None
        needed = 1 if table is not None else parts
        if self.num_free < needed:
            if table is not None and self._allocator is not None:
                self._allocator.free(table)
            raise NoSpace(f"{needed} descriptors needed, {self.num_free} free")
        if table is not None:
            head = self._write_indirect(table, out, in_)
        else:
            head = self._write_direct(out, in_, parts)
        self._state[head] = new_tuple(_Outstanding, (token, needed, writable, table))
        self.outstanding += 1
        self._publish(head)
        return head

    def _write_indirect(self, table: int, out: Sequence[Segment], in_: Sequence[Segment]) -> int:
        """Fill the table (entry i links to i + 1), then take one ring descriptor for it."""
        write, last = self.mem.write_struct, len(out) + len(in_) - 1
        i = 0
        for flags, segments in ((0, out), (_WRITE, in_)):
            for addr, length in segments:
                chained = flags | _NEXT if i < last else flags
                write(DESC_STRUCT, table + DESC_SIZE * i, addr, length, chained, i + 1)
                i += 1
        head = self.free_head
        self._put_desc(self._desc_at + DESC_SIZE * head,
                       table, DESC_SIZE * (last + 1), _INDIRECT, self._next[head])
        self.free_head = self._next[head]
        self.num_free -= 1
        return head

    def _write_direct(self, out: Sequence[Segment], in_: Sequence[Segment], parts: int) -> int:
        """Write `parts` descriptors from the free list; each keeps its link as `next`."""
        write, desc, links = self._put_desc, self._desc_at, self._next
        head = index = self.free_head
        left = parts
        for flags, segments in ((0, out), (_WRITE, in_)):
            for addr, length in segments:
                left -= 1
                link = links[index]
                chained = flags | _NEXT if left else flags
                write(desc + DESC_SIZE * index, addr, length, chained, link)
                if left:
                    index = link
        self.free_head = links[index]
        self.num_free -= parts
        return head

    def _publish(self, head: int) -> None:
        """Place `head` in the available ring, then move avail.idx (§2.7.13.2-3)."""
        put = self._put_avail
        put(self._avail_slot_at[slot(self.avail_idx, self.size)], head)
        self.mem.barrier(WMB, "A")  # publish A (SPLIT-DRV-024)
        self.avail_idx = advance(self.avail_idx)
        put(self._avail_idx_at, self.avail_idx)
        self._num_added += 1

    # --- notifying the device (§2.7.13.4, §2.7.10) ----------------------------------
    def kick_prepare(self) -> bool:
        """Decide whether the device asked to be notified of what was added since last time.

        Event-index mode: notify when avail_event lies among the entries published
        since the previous call (SPLIT-DRV-022). Flags mode: notify unless the device
        set VIRTQ_USED_F_NO_NOTIFY (SPLIT-DRV-020). Records the point it decided at.
        """
        self._check_live()
        self.mem.barrier(MB, "B")  # publish B (SPLIT-DRV-025)
        added, self._num_added = self._num_added, 0
        new = self.avail_idx
        old = wrap(new - added)
        if self.event_idx:
            event = self.mem.read_u16(self.layout.avail_event)
            return added >= INDEX_MODULUS or bool(need_event(event, new, old))
        return not self.mem.read_u16(self.layout.used_flags) & UsedFlag.NO_NOTIFY

    # --- reclaiming used buffers (§2.7.14) --------------------------------------------
    def get_buf(self) -> tuple[Token, int] | None:
        """Return (token, written length) of the next used buffer, or None.

        Checks everything the device wrote: used.idx may not run past what is
        outstanding, the id must be an outstanding head, len at most its writable bytes.
        With VIRTIO_F_IN_ORDER an element may close a batch (`_get_buf_in_order`).
        """
        if self.broken:
            self._check_live()
        if self.in_order:
            return self._get_buf_in_order()
        used = self._next_used()
        if used is None:
            return None
        head, written, record, _ = used
        return self._hand_back(head, record, written)

    # --- in-order reclaiming (§2.7.9) -------------------------------------------------
    def _get_buf_in_order(self) -> tuple[Token, int] | None:
        """`get_buf` under VIRTIO_F_IN_ORDER: the oldest outstanding buffer, batch-aware.

        A used element naming a later buffer than the oldest closes a batch: the buffers
        before it come back first, one per call, each with its whole writable length
        (§2.7.9 counts a skipped buffer as completely used); the named one comes last
        with the element's len. The element is checked as a whole before the first of
        them is handed out.
        """
        batch = self._batch if self._batch is not None else self._read_batch()
        if batch is None:
            return None
        end, end_written = batch
        head = self._oldest()
        record = self._state[head]
        assert record is not None, "the oldest outstanding head has a record"
        if head == end:
            self._batch, written = None, end_written
        else:
            self._batch, written = batch, record.writable
        return self._hand_back(head, record, written)

    def _hand_back(self, head: int, record: _Outstanding, written: int) -> tuple[Token, int]:
        """Free the buffer's descriptors, step past its used entry, and in event-index
        mode with callbacks on publish the new used_event (publish D)."""
        self._detach(head, record)
        self.last_used_idx = last = advance(self.last_used_idx)
        if self.event_idx and not self.no_interrupt:
            self._put_avail(self.layout.used_event, last)
            self.mem.barrier(MB, "D")  # publish D
        return record.token, written

    def _read_batch(self) -> tuple[int, int] | None:
        """Read and check the next used element: (head it names, its len), or None.

        Beyond the checks of every used element, the batch it closes (the outstanding
        buffers from the oldest to the named one) must fit in the used.idx advance; a
        longer one means the device used a buffer before an older one (FEAT-DEV-009).
        """
        used = self._next_used()
        if used is None:
            return None
        head, written, _, pending = used
        count = self._batch_length(head)
        if count > pending:
            self._fail(
                UsedOutOfOrder(
                    f"used id {head} closes a batch of {count} buffers, used.idx advanced "
                    f"{pending}"
                )
            )
        return head, written

    def _next_used(self) -> tuple[int, int, _Outstanding, int] | None:
        """Read and check the used element at last_used_idx (§2.7.14).

        Returns (head, len, the head's record, how far used.idx is ahead), or None
        when the device has used nothing new. used.idx may not run past what is
        outstanding, the id must be an outstanding head, len at most its writable
        bytes; a violation breaks the queue.
        """
        last = self.last_used_idx
        (used_idx,) = self._get_used(self._used_idx_at)
        pending = distance(used_idx, last)
        if pending == 0:
            return None
        if pending > self.outstanding:
            self._fail(
                UsedIndexJump(f"used.idx is {pending} ahead, {self.outstanding} outstanding")
            )
        self.mem.barrier(RMB, "C")  # observe C
        head, written = self._get_used_elem(self._used_slot_at[slot(last, self.size)])
        if head >= self.size:
            self._fail(UsedIdOutOfRange(f"used id {head} >= queue size {self.size}"))
        record = self._state[head]
        if record is None:
            self._fail(UsedIdNotOutstanding(f"used id {head} is not an outstanding head"))
        if written > record.writable:
            self._fail(
                UsedLengthTooLong(f"used len {written} > {record.writable} writable bytes")
            )
        return head, written, record, pending

    def _oldest(self) -> int:
        """The head of the oldest outstanding buffer: the descriptor after the free run."""
        return (self.free_head + self.num_free) % self.size

    def _batch_length(self, end: int) -> int:
        """How many outstanding buffers, oldest first, up to and including head `end`.

        Outstanding chains lie back to back in ring order, so each head follows from
        the previous one's descriptor count; at most `outstanding` steps.
        """
        head, state, size = self._oldest(), self._state, self.size
        for count in range(1, self.outstanding + 1):
            if head == end:
                return count
            record = state[head]
            assert record is not None, "outstanding chains lie back to back"
            head = (head + record.descs) % size
        raise AssertionError(f"outstanding head {end} is not among the outstanding chains")

    @property
    def pending_batch(self) -> tuple[int, int] | None:
        """(named head, len) of a used element whose batch is partly reclaimed (observer)."""
        return self._batch

    def detach_unused_buf(self) -> Token | None:
        """As `DriverRing.detach_unused_buf`; in-order, oldest first so the free run stays whole."""
        if not self.in_order:
            return super().detach_unused_buf()
        self._batch = None
        if not self.outstanding:
            return None
        head = self._oldest()
        record = self._state[head]
        assert record is not None, "the oldest outstanding head has a record"
        self._detach(head, record)
        return record.token

    def more_used(self) -> bool:
        """Whether the device has used buffers not yet reclaimed (Linux virtqueue_poll)."""
        self.mem.barrier(MB, "D")  # publish D
        return self.mem.read_u16(self.layout.used_idx) != self.last_used_idx

    def _detach(self, head: int, record: _Outstanding) -> None:
        """Return a head's descriptors (and indirect table) to the free lists."""
        self._state[head] = None
        self.outstanding -= 1
        if self.in_order:  # the oldest chain: it joins the end of the free run as it lies
            self.num_free += record.descs
            if record.table is not None and self._allocator is not None:
                self._allocator.free(record.table)
            return
        last = head
        for _ in range(record.descs - 1):
            last = self._next[last]
        self._next[last] = self.free_head
        self.free_head = head
        self.num_free += record.descs
        if record.table is not None and self._allocator is not None:
            self._allocator.free(record.table)

    # --- used buffer notifications (§2.7.7) ------------------------------------------
    def disable_cb(self) -> None:
        """Ask the device not to interrupt (flags mode: VIRTQ_AVAIL_F_NO_INTERRUPT).

        In event-index mode nothing is written: used_event stays where it was, so the
        device may interrupt once more when it passes it (spurious, SPLIT-DRV-015).
        """
        if not self.no_interrupt:
            self.no_interrupt = True
            if not self.event_idx:
                self.mem.write_u16(self.layout.avail_flags, AvailFlag.NO_INTERRUPT)

    def enable_cb(self) -> bool:
        """Ask to be interrupted for the next used buffer; False if some are already there."""
        self._arm(self.last_used_idx)
        return not self._used_beyond(0)

    def enable_cb_delayed(self) -> bool:
        """Ask to be interrupted once about 3/4 of the outstanding buffers are used.

        False if that many are already used (the caller should poll instead).
        """
        bufs = distance(self.avail_idx, self.last_used_idx) * 3 // 4
        self._arm(advance(self.last_used_idx, bufs))
        return not self._used_beyond(bufs)

    def _arm(self, event: int) -> None:
        """Clear the suppression flag / publish used_event, then fence (publish D)."""
        if self.no_interrupt:
            self.no_interrupt = False
            if not self.event_idx:
                self.mem.write_u16(self.layout.avail_flags, 0)
        if self.event_idx:
            self.mem.write_u16(self.layout.used_event, event)
        self.mem.barrier(MB, "D")  # publish D

    def _used_beyond(self, count: int) -> bool:
        used_idx = self.mem.read_u16(self.layout.used_idx)
        return bool(distance(used_idx, self.last_used_idx) > count)
