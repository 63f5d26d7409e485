"""The driver side of a packed virtqueue, with the same API as `split_driver.SplitDriver`.

Rules:
- The driver writes available descriptors into the ring and the Driver Event
  Suppression structure; it reads used descriptors and the Device Event Suppression
  structure and trusts neither: a lying device raises a `DeviceError` subclass and the
  queue is marked broken with no token handed out.
- Its private state never lives in shared memory: the position it makes descriptors
  available at (offset + Driver Ring Wrap Counter), the position it reads used
  descriptors at, the free Buffer IDs, and per id the token, the number of ring
  descriptors the list took (to skip them when its used descriptor comes back), the
  writable bytes, the segments and any indirect table.
- A list is written in ring order, the head without its flags (its body, then each
  later descriptor whole); the head's flags are written last, after a write barrier
  (publish A, PACKED-DRV-011, PACKED-DRV-016), so the device never sees part of a list.
  A descriptor is never changed after being made available (PACKED-DRV-003).
- Ordering labels match the device's (A-D, see packed_device).
- Before the queue is live the whole ring is the driver's memory: construction zeroes
  it (§2.8.13) and, with VIRTIO_F_EVENT_IDX, names the starting position in both event
  structures (DESC mode), as the split driver writes both event indices.

Spec: §2.8.21 (supplying buffers), §2.8.22 (receiving used buffers), §2.8.1 (wrap
counters), §2.8.6 and §2.8.7 (lists and indirect tables), §2.8.10 and §2.8.14 (event
suppression), §2.8.16 and §2.8.17 (driver requirements).
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
    PackedBadBuffer,
    PackedUsedIdNotOutstanding,
    PackedUsedIdOutOfRange,
    PackedUsedLengthTooLong,
)
from .layout import LE16_STRUCT
from .memory import MB, RMB, WMB, GuestMemory, HoldsAccessors, Reader, Writer
from .packed_layout import (
    DESC_BODY_STRUCT,
    LE32_STRUCT,
    PACKED_DESC_STRUCT,
    EventSuppress,
    PackedLayout,
    desc_ring_bytes,
)
from .spec import (
    DESC_SIZE,
    Feature,
    PackedDescFlag,
    PackedEventFlag,
    has_feature,
)
from .wrap_math import (
    advance,
    avail_bits,
    encode_event,
    gap,
    is_used,
    notify_decision,
    offset_of,
    wrap_of,
)

_NEXT = int(PackedDescFlag.NEXT)
_WRITE = int(PackedDescFlag.WRITE)
_INDIRECT = int(PackedDescFlag.INDIRECT)
"""Plain-int flag bits: `int | IntFlag` goes through enum code, too slow per descriptor."""


class _Outstanding(NamedTuple):
    """What the driver remembers about a Buffer ID it handed to the device."""

    token: Token
    descs: int
    writable: tuple[Segment, ...]
    writable_len: int
    table: int | None



class PackedDriver(DriverRing[_Outstanding], HoldsAccessors):
    """Driver half of one packed virtqueue over `mem` at `layout`.

    `features`, `allocator` and `notify` mean what they mean for `SplitDriver`.
    `initial_offset` starts both positions at that offset with wrap counters 1, as a
    restored queue would (the spec's reset value is offset 0).
    """

    _put_desc: Writer
    _put_body: Writer
    _put_ring16: Writer
    _get_ring16: Reader
    _get_ring32: Reader
    _put_driver16: Writer
    _get_device16: Reader

    def __init__(
        self,
        mem: GuestMemory,
        layout: PackedLayout,
        features: int = 0,
        *,
        allocator: GuestAllocator | None = None,
        notify: Callable[[], None] | None = None,
        initial_offset: int = 0,
    ) -> None:
        layout.validate(mem.size)
        self.mem = mem
        self.layout = layout
        self.size = layout.size
        self._desc_at = layout.desc_addrs  # the hot addresses, by ring offset
        self._len_at = layout.desc_len_addrs
        self._id_at = layout.desc_id_addrs
        self._flags_at = layout.desc_flags_addrs
        self._bind_accessors()
        self.event_idx = has_feature(features, Feature.EVENT_IDX)
        self.indirect = has_feature(features, Feature.INDIRECT_DESC) and allocator is not None
        self._allocator = allocator
        self._notify = notify
        self._free_ids = list(range(self.size - 1, -1, -1))
        self._state: list[_Outstanding | None] = [None] * self.size
        self.num_free = self.size
        self.outstanding = 0
        start = initial_offset % self.size
        self.next_avail = start
        self.last_used_idx = start
        self._num_added = 0
        self._kicked_at = start
        self.no_interrupt = False
        self.broken = False
        self._zero_ring(start)

    def _accessors(self) -> dict[str, Reader | Writer]:
        """The driver writes and reads the ring, writes the Driver Event Suppression
        structure and reads the Device one."""
        mem, lay = self.mem, self.layout
        ring = lay.desc_area
        return {
            "_put_desc": mem.writer(PACKED_DESC_STRUCT, *ring),
            "_put_body": mem.writer(DESC_BODY_STRUCT, *ring),
            "_put_ring16": mem.writer(LE16_STRUCT, *ring),
            "_get_ring16": mem.reader(LE16_STRUCT, *ring),
            "_get_ring32": mem.reader(LE32_STRUCT, *ring),
            "_put_driver16": mem.writer(LE16_STRUCT, *lay.driver_area),
            "_get_device16": mem.reader(LE16_STRUCT, *lay.device_area),
        }

    def _zero_ring(self, start: int) -> None:
        """Zero the ring and both event structures; in event-index mode name `start`."""
        lay, mem = self.layout, self.mem
        mem.fill(lay.desc, desc_ring_bytes(self.size))
        mem.write(lay.driver, EventSuppress().pack())
        mem.write(lay.device, EventSuppress().pack())
        if self.event_idx:
            named = EventSuppress(
                off_wrap=encode_event(start, self.size), flags=PackedEventFlag.DESC
            ).pack()
            mem.write(lay.driver, named)
            mem.write(lay.device, named)

    # --- adding buffers (§2.8.21) -----------------------------------------------------
    def add_sgs(self, out: Sequence[Segment], in_: Sequence[Segment], token: Token) -> int:
        """Expose a buffer: device-readable `out` then device-writable `in_` segments.

        Returns its Buffer ID. Raises `NoSpace` when the free ring descriptors do not
        suffice (nothing is written then) and `PackedBadBuffer` for a buffer no driver
        may add.
        """
        if self.broken:
            self._check_live()
        writable = check_buffer(self.mem, self.size, out, in_, token, PackedBadBuffer)
        parts = len(out) + len(in_)
        table = self._indirect_table(parts) if self.indirect else None
        needed = 1 if table is not None else parts
        if self.num_free < needed:
            if table is not None and self._allocator is not None:
                self._allocator.free(table)
            raise NoSpace(f"{needed} descriptors needed, {self.num_free} free")
        ident = self._free_ids.pop()
        elements: list[tuple[int, int, int]]
        if table is not None:
            self._write_table(table, out, in_)
            elements = [(table, DESC_SIZE * parts, _INDIRECT)]
        else:
            elements = []
            append = elements.append
            for addr, length in out:
                append((addr, length, 0))
            for addr, length in in_:
                append((addr, length, _WRITE))
        self._expose(ident, elements)
        self._state[ident] = new_tuple(_Outstanding, (token, needed, tuple(in_), writable, table))
        self.outstanding += 1
        return ident

    def _write_table(self, table: int, out: Sequence[Segment], in_: Sequence[Segment]) -> None:
        """Fill an indirect table: entries in order, WRITE the only flag (PACKED-DRV-013)."""
        write, i = self.mem.write_struct, 0
        for flags, segments in ((0, out), (_WRITE, in_)):
            for addr, length in segments:
                write(PACKED_DESC_STRUCT, table + DESC_SIZE * i, addr, length, 0, flags)
                i += 1

    def _expose(self, ident: int, elements: list[tuple[int, int, int]]) -> None:
        """Write a list of (addr, len, flags) elements at next_avail, the head's flags
        last (§2.8.21.1), then move on."""
        size, pos, at = self.size, self.next_avail, self._desc_at
        head_at, count = offset_of(pos, size), len(elements)
        addr, length, head_flags = elements[0]
        head_flags |= avail_bits(wrap_of(pos, size))
        if count > 1:
            head_flags |= _NEXT
        self._put_body(at[head_at], addr, length, ident)  # the head's flags wait for A
        pos = advance(pos, 1, size)
        if count > 1:
            put_desc, last = self._put_desc, count - 1
            for i in range(1, count):
                addr, length, flags = elements[i]
                flags |= avail_bits(wrap_of(pos, size))
                if i < last:
                    flags |= _NEXT
                put_desc(at[offset_of(pos, size)], addr, length, ident, flags)
                pos = advance(pos, 1, size)
        self.mem.barrier(WMB, "A")  # publish A (PACKED-DRV-016)
        self._put_ring16(self._flags_at[head_at], head_flags)
        self.next_avail = pos
        self.num_free -= count
        self._num_added += count

    # --- notifying the device (§2.8.21.2) ---------------------------------------------
    def kick_prepare(self) -> bool:
        """Decide whether the device asked to hear about what was added since last time.

        Device Event Suppression flags: ENABLE notifies, DISABLE does not, DESC (with
        VIRTIO_F_EVENT_IDX) notifies when its position lies among the descriptors made
        available since the previous call; a named offset beyond the ring, or a reserved
        value, notifies (PACKED-DRV-005 allows extra notifications). Records the point.
        """
        self._check_live()
        self.mem.barrier(MB, "B")  # publish B
        added, self._num_added = self._num_added, 0
        (flags,) = self._get_device16(self.layout.device_flags)
        (off_wrap,) = self._get_device16(self.layout.device_off_wrap)
        old, self._kicked_at = self._kicked_at, self.next_avail
        return bool(notify_decision(
            flags, off_wrap, added, old, self.next_avail, self.size, event_idx=self.event_idx
        ))

    # --- reclaiming used buffers (§2.8.22) --------------------------------------------
    def _used_at(self, pos: int) -> bool:
        """Whether the descriptor at `pos` is marked used for its lap (something is owed)."""
        if not self.outstanding:
            return False  # a zeroed slot looks used under counter 0: only owed slots count
        (flags,) = self._get_ring16(self._flags_at[offset_of(pos, self.size)])
        return bool(is_used(flags, wrap_of(pos, self.size)))

    def get_buf(self) -> tuple[Token, int] | None:
        """Return (token, written length) of the next used buffer, or None.

        Checks what the device wrote: the id must be one handed out, the length at most
        its writable bytes (len counts only with VIRTQ_DESC_F_WRITE set, §2.8.4). The
        poll is `_used_at`'s, on the offset the reads below use.
        """
        if self.broken:
            self._check_live()
        if not self.outstanding:
            return None  # as `_used_at`: a zeroed slot looks used under counter 0
        size, last, get16 = self.size, self.last_used_idx, self._get_ring16
        offset = offset_of(last, size)
        (flags,) = get16(self._flags_at[offset])
        if not is_used(flags, wrap_of(last, size)):
            return None
        self.mem.barrier(RMB, "C")  # observe C: flags, then id and len
        (ident,) = get16(self._id_at[offset])
        (flags,) = get16(self._flags_at[offset])
        (written,) = self._get_ring32(self._len_at[offset])
        written = written if flags & _WRITE else 0
        if ident >= size:
            self._fail(PackedUsedIdOutOfRange(f"used id {ident} >= queue size {size}"))
        record = self._state[ident]
        if record is None:
            self._fail(PackedUsedIdNotOutstanding(f"used id {ident} is not outstanding"))
        if written > record.writable_len:
            self._fail(PackedUsedLengthTooLong(
                f"used len {written} > {record.writable_len} writable bytes"
            ))
        self._detach(ident, record)
        self.last_used_idx = last = advance(last, record.descs, size)
        if self.event_idx and not self.no_interrupt:
            self._put_driver16(self.layout.driver_off_wrap, encode_event(last, size))
            self.mem.barrier(MB, "D")  # publish D
        return record.token, written

    def more_used(self) -> bool:
        """Whether the device has used buffers not yet reclaimed (Linux virtqueue_poll)."""
        self.mem.barrier(MB, "D")  # publish D
        return self._used_at(self.last_used_idx)

    def _detach(self, ident: int, record: _Outstanding) -> None:
        """Free the id, its ring descriptors and its indirect table."""
        self._state[ident] = None
        self._free_ids.append(ident)
        self.outstanding -= 1
        self.num_free += record.descs
        if record.table is not None and self._allocator is not None:
            self._allocator.free(record.table)

    # --- used buffer notifications (§2.8.10) ------------------------------------------
    def disable_cb(self) -> None:
        """Ask the device not to interrupt (flag mode: DISABLE).

        In event-index mode nothing is written: the named position stays, so the device
        may interrupt once more when it passes it, as with the split ring.
        """
        if not self.no_interrupt:
            self.no_interrupt = True
            if not self.event_idx:
                self._put_driver16(self.layout.driver_flags, PackedEventFlag.DISABLE)

    def enable_cb(self) -> bool:
        """Ask to be interrupted for the next used buffer; False if some are already there."""
        self._arm(self.last_used_idx)
        return not self._used_at(self.last_used_idx)

    def enable_cb_delayed(self) -> bool:
        """Ask to be interrupted once about 3/4 of the outstanding descriptors are used.

        False if that many are already used (the caller should poll instead).
        """
        bufs = gap(self.next_avail, self.last_used_idx, self.size) * 3 // 4
        self._arm(advance(self.last_used_idx, bufs, self.size))
        return not self._used_beyond(bufs)

    def _arm(self, event: int) -> None:
        """Name `event` (DESC mode) or write ENABLE, then fence (publish D)."""
        if self.no_interrupt:
            self.no_interrupt = False
            if not self.event_idx:
                self._put_driver16(self.layout.driver_flags, PackedEventFlag.ENABLE)
        if self.event_idx:
            self._put_driver16(self.layout.driver_off_wrap, encode_event(event, self.size))
        self.mem.barrier(MB, "D")  # publish D

    def _used_beyond(self, count: int) -> bool:
        """Whether the used descriptors from last_used cover more than `count` descriptors.

        Walks the used descriptors in ring order, skipping each list's length; stops at
        the first slot not marked used or naming an id not outstanding (bounded by the
        number outstanding).
        """
        pos, covered = self.last_used_idx, 0
        for _ in range(self.outstanding):
            if not self._used_at(pos):
                break
            (ident,) = self._get_ring16(self._id_at[offset_of(pos, self.size)])
            record = self._state[ident] if ident < self.size else None
            if record is None:
                break
            covered += record.descs
            if covered > count:
                return True
            pos = advance(pos, record.descs, self.size)
        return False

    # --- observation ------------------------------------------------------------------
    def descs_of(self, head: int) -> int:
        """How many ring descriptors the list of outstanding id `head` took (0 if none)."""
        record = self._state[head] if 0 <= head < self.size else None
        return 0 if record is None else record.descs

    def writable_of(self, head: int) -> tuple[Segment, ...]:
        """The device-writable segments of outstanding id `head` (for the observer)."""
        record = self._state[head] if 0 <= head < self.size else None
        return () if record is None else record.writable

    @property
    def free_ids(self) -> list[int]:
        """The Buffer IDs not handed out (a copy, for the invariants)."""
        return list(self._free_ids)
