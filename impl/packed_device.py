"""The device side of a packed virtqueue, with the same API as `split_device.SplitDevice`.

Rules:
- The device writes only used descriptors into the ring (id, len, then flags) and the
  Device Event Suppression structure; it never writes the Driver Event Suppression
  area and never changes a descriptor after marking it used (PACKED-DEV-006).
  Everything it reads is hostile until checked.
- Its private state is a position (offset + Device Ring Wrap Counter, `wrap_math`) to
  read available lists from, a position to write used descriptors at, and the lists it
  holds, by Buffer ID, with how many ring descriptors each took.
- Recovery mirrors the split device (docs/architecture.md): a bad list whose extent is
  known (`ChainError`) is consumed and handed back used with length 0; a ring whose
  extent or ids cannot be trusted (`RingCorruption`) breaks the queue until `reset()`.
- Ordering points carry the split ring's labels (A-D): A observes a head's flags
  before the rest of its list; C publishes a used descriptor's id and len before its
  flags; B and D are the full fences around the event suppression re-checks.

Spec: §2.8.1 (wrap counters), §2.8.6 (one used descriptor per list, skip its length),
§2.8.12 (PACKED-DEV-001/002: in ring order), §2.8.10 and §2.8.14 (event suppression),
§2.8.15 (PACKED-DEV-004..006).
"""

from __future__ import annotations

from typing import NoReturn

from .chain import Chain, new_tuple
from .errors import ChainError, NotInFlight, PayloadTooLarge, QueueBroken, RingCorruption
from .layout import LE16_STRUCT
from .memory import MB, RMB, WMB, GuestMemory, HoldsAccessors, Reader, Writer
from .packed_chain import RingList, read_list, to_chain
from .packed_layout import LE32_STRUCT, PACKED_DESC_STRUCT, PackedLayout
from .spec import Feature, PackedDescFlag, PackedEventFlag, has_feature
from .wrap_math import (
    advance,
    encode_event,
    is_available,
    notify_decision,
    offset_of,
    used_bits,
    wrap_of,
)

_WRITE = int(PackedDescFlag.WRITE)
"""A plain-int flag bit: `int | IntFlag` goes through enum code, too slow per descriptor."""


class PackedDevice(HoldsAccessors):
    """Device half of one packed virtqueue over `mem` at `layout`.

    `features` is the negotiated feature word. `initial_offset` must match the driver's
    (0 after a reset; other values model a queue restored at that offset, counter 1).
    """

    _get_desc: Reader
    _get_ring16: Reader
    _put_ring16: Writer
    _put_ring32: Writer
    _get_driver16: Reader
    _put_device16: Writer

    def __init__(
        self, mem: GuestMemory, layout: PackedLayout, features: int = 0, *,
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
        self.indirect = has_feature(features, Feature.INDIRECT_DESC)
        self._initial = initial_offset % self.size
        self.reset()

    def _accessors(self) -> dict[str, Reader | Writer]:
        """The device reads and writes the ring, reads the Driver Event Suppression
        structure and writes the Device one."""
        mem, lay = self.mem, self.layout
        ring = lay.desc_area
        return {
            "_get_desc": mem.reader(PACKED_DESC_STRUCT, *ring),
            "_get_ring16": mem.reader(LE16_STRUCT, *ring),
            "_put_ring16": mem.writer(LE16_STRUCT, *ring),
            "_put_ring32": mem.writer(LE32_STRUCT, *ring),
            "_get_driver16": mem.reader(LE16_STRUCT, *lay.driver_area),
            "_put_device16": mem.writer(LE16_STRUCT, *lay.device_area),
        }

    def reset(self) -> None:
        """Forget all queue state (VQ-DEV-002); ring memory is the driver's to re-initialize."""
        self.next_avail = self._initial
        self.next_used = self._initial
        self._signalled_used = self._initial
        self._unsignalled = 0
        self.in_flight: dict[int, tuple[Chain, int]] = {}
        self.broken = False

    # --- taking buffers (§2.8.12, §2.8.6) ---------------------------------------------
    def pop(self) -> Chain | None:
        """Take the next available list, or None if its head is not available yet.

        Raises `RingCorruption` (queue now broken) or `ChainError` (the id is returned
        used with length 0, the queue stays usable). The returned chain's `head` is the
        Buffer ID, the handle `push_used` takes. The poll is `_head_available`'s, on the
        offset the head is then read at.
        """
        if self.broken:
            self._check_live()
        size, pos = self.size, self.next_avail
        offset = offset_of(pos, size)
        (flags,) = self._get_ring16(self._flags_at[offset])
        if not is_available(flags, wrap_of(pos, size)):
            return None
        self.mem.barrier(RMB, "A")  # observe A: the head's flags, then the list
        head = self._get_desc(self._desc_at[offset])
        try:
            ring_list = read_list(self._get_desc, self._desc_at, size, head, pos, self.in_flight)
        except RingCorruption as error:
            self._fail(error)
        self.next_avail = advance(pos, len(ring_list.descs), size)
        try:
            chain = to_chain(self.mem, ring_list, self.size, indirect_ok=self.indirect)
        except ChainError as error:
            error.head = ring_list.id
            self._write_used(ring_list, 0)
            raise
        self.in_flight[ring_list.id] = (chain, len(ring_list.descs))
        return chain

    # --- returning buffers (§2.8.6, §2.8.22) ------------------------------------------
    def push_used(self, head: int, written: int) -> None:
        """Return the list with Buffer ID `head`, reporting `written` bytes.

        The caller must already have written those bytes (e.g. `Chain.write_payload`).
        """
        if self.broken:
            self._check_live()
        in_flight = self.in_flight
        held = in_flight.get(head)
        if held is None:
            raise NotInFlight(f"buffer id {head} is not held by the device")
        chain, descs = held
        if not 0 <= written <= chain.writable_len:
            raise PayloadTooLarge(f"written {written} outside 0..{chain.writable_len}")
        del in_flight[head]
        self._write_used(new_tuple(RingList, (head, ())), written, descs)

    def _write_used(self, ring_list: RingList, written: int, descs: int | None = None) -> None:
        """Write one used descriptor at next_used (flags last, publish C), then skip the list."""
        size, pos, put16 = self.size, self.next_used, self._put_ring16
        offset = offset_of(pos, size)
        flags = used_bits(wrap_of(pos, size))
        if written:
            flags |= _WRITE
        put16(self._id_at[offset], ring_list.id)
        self._put_ring32(self._len_at[offset], written)
        self.mem.barrier(WMB, "C")  # publish C: id and len before the flags
        put16(self._flags_at[offset], flags)
        count = len(ring_list.descs) if descs is None else descs
        self.next_used = advance(pos, count, size)
        self._unsignalled += count

    # --- used buffer notifications (§2.8.10) -----------------------------------------
    def needs_notification(self) -> bool:
        """Whether the driver asked to be interrupted for what was used since the last call.

        Driver Event Suppression flags: ENABLE always, DISABLE never, DESC (with
        VIRTIO_F_EVENT_IDX) when its position lies among the descriptors used since the
        last call; an offset beyond the ring, or a reserved value, interrupts
        (a spurious interrupt is harmless). Records the point it decided at.
        """
        self.mem.barrier(MB, "D")  # observe D
        used, self._unsignalled = self._unsignalled, 0
        old, self._signalled_used = self._signalled_used, self.next_used
        (flags,) = self._get_driver16(self.layout.driver_flags)
        (off_wrap,) = self._get_driver16(self.layout.driver_off_wrap)
        return bool(notify_decision(
            flags, off_wrap, used, old, self.next_used, self.size, event_idx=self.event_idx
        ))

    # --- available buffer notifications (§2.8.10) -------------------------------------
    def enable_notification(self) -> bool:
        """Ask for kicks again, then re-check the ring; True means a list arrived meanwhile.

        Event-index mode names next_avail (offset and wrap) in DESC mode; flag mode
        writes ENABLE. The re-check after the fence prevents a lost wake-up.
        """
        self._check_live()
        if self.event_idx:
            event = encode_event(self.next_avail, self.size)
            self._put_device16(self.layout.device_off_wrap, event)
            self._put_device16(self.layout.device_flags, PackedEventFlag.DESC)
        else:
            self._put_device16(self.layout.device_flags, PackedEventFlag.ENABLE)
        self.mem.barrier(MB, "B")  # observe B
        return self._head_available()

    def _head_available(self) -> bool:
        """Whether the descriptor at next_avail is available for its lap (its flags only)."""
        (flags,) = self._get_ring16(self._flags_at[offset_of(self.next_avail, self.size)])
        return bool(is_available(flags, wrap_of(self.next_avail, self.size)))

    def disable_notification(self) -> None:
        """Ask the driver not to kick (flag mode: DISABLE); a no-op with event indices.

        With VIRTIO_F_EVENT_IDX the device leaves its event position where it was, so
        the driver kicks at most once more, as the split device does.
        """
        self._check_live()
        if not self.event_idx:
            self._put_device16(self.layout.device_flags, PackedEventFlag.DISABLE)

    # --- observation ------------------------------------------------------------------
    @property
    def held_heads(self) -> list[int]:
        """Buffer IDs taken and not yet returned (for the observer)."""
        return list(self.in_flight)

    def held_chain(self, ident: int) -> Chain:
        """The buffer the device read for a held id (its ring slots may be reused already)."""
        return self.in_flight[ident][0]

    # --- failure ---------------------------------------------------------------------
    def _check_live(self) -> None:
        if self.broken:
            raise QueueBroken("this queue saw ring corruption; the device needs a reset")

    def _fail(self, error: RingCorruption) -> NoReturn:
        self.broken = True
        raise error
