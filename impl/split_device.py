"""The device side of a split virtqueue: pop chains, push used elements, decide interrupts.

Rules:
- The device owns, and is the only writer of: the used ring (flags, idx, ring) and
  avail_event. It never writes the descriptor table or the available ring
  (SPLIT-DEV-004). Everything it reads there is hostile until checked.
- Recovery policy, documented in docs/architecture.md:
  * a malformed chain (any `ChainError`) is consumed and returned to the driver at
    once as used with length 0, then the error is raised with its `head` set: the
    queue keeps working, as Firecracker and cloud-hypervisor do;
  * ring-level corruption (`RingCorruption`: avail.idx jumping or going back, a head
    out of range or already held) marks the queue broken: every later call raises
    `QueueBroken` until `reset()` (the transport then sets DEVICE_NEEDS_RESET, §2.1).
- With VIRTIO_F_IN_ORDER (§2.7.9, docs/inorder.md) buffers go back in the order they
  were made available (FEAT-DEV-009): `push_used` takes only the oldest held buffer,
  `push_used_batch` returns the oldest `count` with one used element naming the last,
  and a malformed chain waits (held, with length 0 due) until every older buffer is
  back, then goes back on its own element.
- Work per call is bounded by the queue size (the chain walk's bound, §chain).
- Ordering points mirror the driver's labels (A-D, see split_driver and docs/ordering.md).

Spec: §2.7.6 (available ring), §2.7.8 (used ring), §2.7.7.2 and §2.7.10.2
(notification suppression), §2.7.5 (chains, through `chain.walk_chain`), §2.7.9
(in-order use).
"""

from __future__ import annotations

from itertools import islice
from typing import NoReturn

from .chain import Chain, walk_chain
from .errors import (
    AvailIndexDecrement,
    AvailIndexJump,
    BadUsedBatch,
    ChainError,
    HeadAlreadyInFlight,
    HeadOutOfRange,
    NotInFlight,
    NotOldestHeld,
    PayloadTooLarge,
    QueueBroken,
    RingCorruption,
)
from .layout import LE16_STRUCT, USED_ELEM_STRUCT, SplitLayout
from .memory import MB, RMB, WMB, GuestMemory, HoldsAccessors, Reader, Writer
from .ring_math import advance, distance, need_event, slot, wrap
from .spec import INDEX_MODULUS, AvailFlag, Feature, UsedFlag, has_feature


class SplitDevice(HoldsAccessors):
    """Device half of one split virtqueue over `mem` at `layout`.

    `features` is the negotiated feature word. `initial_index` must match the
    driver's (0 after a reset; other values model a restored queue).
    """

    _get_avail: Reader
    _put_used: Writer
    _put_used_elem: Writer

    def __init__(
        self, mem: GuestMemory, layout: SplitLayout, features: int = 0, *, initial_index: int = 0
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
        self.indirect = has_feature(features, Feature.INDIRECT_DESC)
        self.in_order = has_feature(features, Feature.IN_ORDER)
        self._initial = wrap(initial_index)
        self.reset()

    def _accessors(self) -> dict[str, Reader | Writer]:
        """The device reads the Driver Area and writes the Device Area."""
        mem, lay = self.mem, self.layout
        return {
            "_get_avail": mem.reader(LE16_STRUCT, *lay.avail_area),
            "_put_used": mem.writer(LE16_STRUCT, *lay.used_area),
            "_put_used_elem": mem.writer(USED_ELEM_STRUCT, *lay.used_area),
        }

    def reset(self) -> None:
        """Forget all queue state (VQ-DEV-002); ring memory is the driver's to re-initialize."""
        self.next_avail = self._initial
        self.next_used = self._initial
        self._avail_seen = self._initial
        self._signalled_used = self._initial
        self._unsignalled = 0
        self.in_flight: dict[int, Chain] = {}
        self._rejected: set[int] = set()
        self.broken = False

    # --- taking buffers (§2.7.6, §2.7.5) ----------------------------------------------
    def pop(self) -> Chain | None:
        """Take the next available chain, or None if the driver has published nothing new.

        Raises `RingCorruption` (queue now broken) or `ChainError` (head returned as
        used with length 0, queue still usable).
        """
        if self.broken:
            self._check_live()
        if self._pending() == 0:
            return None
        mem, size, nxt = self.mem, self.size, self.next_avail
        mem.barrier(RMB, "A")  # observe A
        (head,) = self._get_avail(self._avail_slot_at[slot(nxt, size)])
        if head >= size:
            self._fail(HeadOutOfRange(f"available head {head} >= queue size {size}"))
        if head in self.in_flight:
            self._fail(HeadAlreadyInFlight(f"head {head} is already held by the device"))
        self.next_avail = advance(nxt)
        try:
            chain = walk_chain(mem, self._desc_at, size, head, indirect_ok=self.indirect)
        except ChainError as error:
            error.head = head
            if self.in_order and self.in_flight:  # older buffers go back first (§2.7.9)
                self.in_flight[head] = Chain(head, (), ())
                self._rejected.add(head)
            else:
                self._write_used(head, 0)
            raise
        self.in_flight[head] = chain
        return chain

    def _pending(self) -> int:
        """Read avail.idx and return how many entries lie beyond next_avail, checked."""
        avail_idx: int = self._get_avail(self._avail_idx_at)[0]
        nxt = self.next_avail
        pending = distance(avail_idx, nxt)
        if pending > self.size:
            self._fail(AvailIndexJump(f"avail.idx {avail_idx} is {pending} ahead of {nxt}"))
        if pending < distance(self._avail_seen, nxt):
            self._fail(
                AvailIndexDecrement(f"avail.idx went back from {self._avail_seen} to {avail_idx}")
            )
        self._avail_seen = avail_idx
        return pending

    # --- returning buffers (§2.7.8) ---------------------------------------------------
    def push_used(self, head: int, written: int) -> None:
        """Return chain `head` to the driver, reporting `written` bytes (SPLIT-DEV-013/014).

        The caller must already have written those bytes (e.g. `Chain.write_payload`).
        With VIRTIO_F_IN_ORDER only the oldest held buffer may go back (`NotOldestHeld`).
        """
        if self.broken:
            self._check_live()
        if self.in_order:
            self._push_used_in_order(head, written)
            return
        in_flight = self.in_flight
        chain = in_flight.get(head)
        if chain is None:
            raise NotInFlight(f"head {head} is not held by the device")
        if not 0 <= written <= chain.writable_len:
            raise PayloadTooLarge(f"written {written} outside 0..{chain.writable_len}")
        del in_flight[head]
        self._write_used(head, written)

    def _write_used(self, head: int, written: int, count: int = 1) -> None:
        """Fill the used element, then publish used.idx (publish C).

        One element stands for `count` buffers under VIRTIO_F_IN_ORDER (a batch: it
        goes where the first would have had its own, and used.idx moves by `count`,
        §2.7.9); otherwise for one.
        """
        nxt = self.next_used
        self._put_used_elem(self._used_slot_at[slot(nxt, self.size)], head, written)
        self.mem.barrier(WMB, "C")  # publish C
        self.next_used = nxt = advance(nxt, count)
        self._put_used(self._used_idx_at, nxt)
        self._unsignalled += count

    # --- in-order returns (§2.7.9) ----------------------------------------------------
    def _push_used_in_order(self, head: int, written: int) -> None:
        """`push_used` under VIRTIO_F_IN_ORDER: `head` must be the oldest held buffer."""
        chain = self.in_flight.get(head)
        if chain is None or head in self._rejected:
            raise NotInFlight(f"head {head} is not held by the device")
        oldest = next(iter(self.in_flight))
        if head != oldest:
            raise NotOldestHeld(f"head {head} is not the oldest held buffer ({oldest} is)")
        self.push_used_batch(1, written)

    def push_used_batch(self, count: int, written_of_last: int) -> None:
        """Return the `count` oldest held buffers on one used element (VIRTIO_F_IN_ORDER).

        The element names the last of them with `written_of_last` bytes; used.idx moves
        on by `count`, and the driver counts each earlier buffer as completely used
        (§2.7.9): the caller must have written all their writable bytes. Refused with
        `BadUsedBatch`, before anything is written, without the feature, for a count
        outside 1..held, or for a batch reaching over a rejected chain.
        """
        if self.broken:
            self._check_live()
        if not self.in_order:
            raise BadUsedBatch("batched used elements need VIRTIO_F_IN_ORDER")
        in_flight = self.in_flight
        if not 1 <= count <= len(in_flight):
            raise BadUsedBatch(f"a batch of {count} from {len(in_flight)} held buffers")
        heads = list(islice(in_flight, count))
        if not self._rejected.isdisjoint(heads):
            raise BadUsedBatch("a batch may not reach over a rejected chain")
        last = in_flight[heads[-1]]
        if not 0 <= written_of_last <= last.writable_len:
            raise PayloadTooLarge(f"written {written_of_last} outside 0..{last.writable_len}")
        for head in heads:
            del in_flight[head]
        self._write_used(last.head, written_of_last, count)
        self._return_rejected()

    def _return_rejected(self) -> None:
        """Give back, each on its own element with length 0, rejected chains now oldest."""
        in_flight, rejected = self.in_flight, self._rejected
        while rejected and in_flight:
            head = next(iter(in_flight))
            if head not in rejected:
                return
            del in_flight[head]
            rejected.discard(head)
            self._write_used(head, 0)

    # --- used buffer notifications (§2.7.7.2) ----------------------------------------
    def needs_notification(self) -> bool:
        """Whether the driver asked to be interrupted for what was used since the last call.

        Event-index mode: when used_event lies among the entries used since the last
        call (SPLIT-DEV-011; more than 2^16 of them always notify). Flags mode: unless
        the driver set VIRTQ_AVAIL_F_NO_INTERRUPT (SPLIT-DEV-009). Records the point.
        """
        self.mem.barrier(MB, "D")  # observe D
        used, self._unsignalled = self._unsignalled, 0
        old, self._signalled_used = self._signalled_used, self.next_used
        if self.event_idx:
            event = self.mem.read_u16(self.layout.used_event)
            return used >= INDEX_MODULUS or bool(need_event(event, self.next_used, old))
        return not self.mem.read_u16(self.layout.avail_flags) & AvailFlag.NO_INTERRUPT

    # --- available buffer notifications (§2.7.10.2) ----------------------------------
    def enable_notification(self) -> bool:
        """Ask for kicks again, then re-check the ring; True means work arrived meanwhile.

        Event-index mode publishes avail_event = next_avail; flags mode clears
        VIRTQ_USED_F_NO_NOTIFY. The re-check after the fence is what prevents a lost
        wake-up: a buffer published before the driver could see our request is found
        here instead.
        """
        self._check_live()
        if self.event_idx:
            self.mem.write_u16(self.layout.avail_event, self.next_avail)
        else:
            self.mem.write_u16(self.layout.used_flags, 0)
        self.mem.barrier(MB, "B")  # observe B
        return self._pending() != 0

    def disable_notification(self) -> None:
        """Ask the driver not to kick (flags mode); a no-op with event indices.

        With VIRTIO_F_EVENT_IDX the device leaves avail_event where it last put it, so
        the driver kicks at most once more (when it publishes past that entry), as
        Linux vhost and rust-vmm do.
        """
        self._check_live()
        if not self.event_idx:
            self.mem.write_u16(self.layout.used_flags, UsedFlag.NO_NOTIFY)

    @property
    def held_heads(self) -> list[int]:
        """Heads taken and not yet returned, oldest first (for the observer); in-order,
        this includes rejected chains waiting for their turn."""
        return list(self.in_flight)

    # --- failure ---------------------------------------------------------------------
    def _check_live(self) -> None:
        if self.broken:
            raise QueueBroken("this queue saw ring corruption; the device needs a reset")

    def _fail(self, error: RingCorruption) -> NoReturn:
        self.broken = True
        raise error
