"""The abstraction function: decode ring memory (plus a little private state) into the model.

Rules:
- This is the oracle's eye. It reads guest memory through `GuestMemory` and never
  writes. It decodes chains with its own short reader rather than `chain.walk_chain`,
  so a bug in the walk under test cannot hide itself here; it assumes a well-formed
  ring (it observes conforming runs; hostile runs are checked by their own tests).
- The only private state it needs is what memory cannot show: which token a driver
  attached to a head, where the driver has reclaimed to, whether its callbacks are on
  (in event-index mode that lives only in the driver), where the device has consumed
  to, and which heads it holds. Those come through the two small protocols below, so
  any driver or device (the reference, a native peer, a user's) can be observed.
- With VIRTIO_F_IN_ORDER a used element may stand for a batch (§2.7.9): the used
  positions it covers are those of the available ring from the element's own position
  up to the buffer it names, each skipped buffer completely written. A driver halfway
  through reclaiming a batch says so through `pending_batch` (the named head and len).

Spec: §2.7.5 (descriptors), §2.7.6 (available ring), §2.7.8 (used ring),
§2.7.7 and §2.7.10 (suppression fields), §2.7.9 (in-order batches).
"""

from __future__ import annotations

from collections.abc import Collection, Hashable
from typing import Protocol

from model.queue import Buffer, QueueView

from .errors import NotConforming
from .layout import Descriptor, SplitLayout
from .memory import GuestMemory
from .ring_math import advance, distance, slot
from .spec import DESC_SIZE, AvailFlag, DescFlag, UsedFlag


class DriverShadow(Protocol):
    """What an observed driver must reveal beyond ring memory."""

    last_used_idx: int
    no_interrupt: bool

    def token_of(self, head: int) -> Hashable | None:
        """The token of an outstanding head, or None."""


class DeviceShadow(Protocol):
    """What an observed device must reveal beyond ring memory."""

    next_avail: int

    @property
    def held_heads(self) -> Collection[int]:
        """Heads taken from the available ring and not yet returned used."""


def decode_buffer(mem: GuestMemory, layout: SplitLayout, head: int) -> Buffer:
    """Read the buffer a conforming chain at `head` describes (direct or indirect)."""
    out: list[bytes] = []
    in_sizes: list[int] = []
    table, index = layout.desc, head
    for _ in range(2 * layout.size + 1):
        desc = Descriptor.unpack(mem.read(table + DESC_SIZE * index, DESC_SIZE))
        if desc.flags & DescFlag.INDIRECT:
            table, index = desc.addr, 0
            continue
        if desc.flags & DescFlag.WRITE:
            in_sizes.append(desc.len)
        else:
            out.append(mem.read(desc.addr, desc.len))
        if not desc.flags & DescFlag.NEXT:
            return Buffer(tuple(out), tuple(in_sizes))
        index = desc.next
    raise NotConforming(f"chain at head {head} does not end within the queue size")


def written_bytes(mem: GuestMemory, layout: SplitLayout, head: int, length: int) -> bytes:
    """The first `length` bytes of the chain's writable part (what a used len promises)."""
    pieces: list[bytes] = []
    table, index = layout.desc, head
    remaining = length
    for _ in range(2 * layout.size + 1):
        if not remaining:
            break
        desc = Descriptor.unpack(mem.read(table + DESC_SIZE * index, DESC_SIZE))
        if desc.flags & DescFlag.INDIRECT:
            table, index = desc.addr, 0
            continue
        if desc.flags & DescFlag.WRITE and remaining:
            take = min(remaining, desc.len)
            pieces.append(mem.read(desc.addr, take))
            remaining -= take
        if not desc.flags & DescFlag.NEXT:
            break
        index = desc.next
    return b"".join(pieces)


def used_in_order(
    mem: GuestMemory, layout: SplitLayout, driver: DriverShadow, used_idx: int
) -> list[tuple[Hashable | None, bytes]]:
    """The used buffers not yet reclaimed when used elements may close batches (§2.7.9).

    Used position p holds the buffer made available at position p (its head is in the
    available ring's slot for p, not yet reused since the buffer is outstanding). An
    element is read at the start of each batch; the batch runs to the buffer it names.
    """
    batch: tuple[int, int] | None = getattr(driver, "pending_batch", None)
    used: list[tuple[Hashable | None, bytes]] = []
    position = driver.last_used_idx
    for _ in range(distance(used_idx, driver.last_used_idx)):
        if batch is None:
            elem = layout.used_ring(slot(position, layout.size))
            batch = mem.read_u32(elem), mem.read_u32(elem + 4)
        end, length = batch
        head = mem.read_u16(layout.avail_ring(slot(position, layout.size)))
        if head == end:
            batch = None
        else:
            length = decode_buffer(mem, layout, head).writable
        used.append((driver.token_of(head), written_bytes(mem, layout, head, length)))
        position = advance(position)
    return used


def abstract(
    mem: GuestMemory,
    layout: SplitLayout,
    driver: DriverShadow,
    device: DeviceShadow,
    *,
    event_idx: bool,
    in_order: bool = False,
) -> QueueView:
    """Map (memory, driver shadow, device shadow) to the model's `QueueView`."""
    avail_idx = mem.read_u16(layout.avail_idx)
    used_idx = mem.read_u16(layout.used_idx)
    available = []
    position = device.next_avail
    for _ in range(distance(avail_idx, device.next_avail)):
        head = mem.read_u16(layout.avail_ring(slot(position, layout.size)))
        available.append((driver.token_of(head), decode_buffer(mem, layout, head)))
        position = advance(position)
    in_device = frozenset(
        (driver.token_of(head), decode_buffer(mem, layout, head)) for head in device.held_heads
    )
    if in_order:
        used = used_in_order(mem, layout, driver, used_idx)
    else:
        used = []
        position = driver.last_used_idx
        for _ in range(distance(used_idx, driver.last_used_idx)):
            elem = layout.used_ring(slot(position, layout.size))
            head, length = mem.read_u32(elem), mem.read_u32(elem + 4)
            used.append((driver.token_of(head), written_bytes(mem, layout, head, length)))
            position = advance(position)
    avail_flags = mem.read_u16(layout.avail_flags)
    used_flags = mem.read_u16(layout.used_flags)
    return QueueView(
        available=tuple(available),
        in_device=in_device,
        used=tuple(used),
        avail_idx=avail_idx,
        used_idx=used_idx,
        next_avail=device.next_avail,
        callbacks_enabled=not driver.no_interrupt,
        interrupts_wanted=None if event_idx else not avail_flags & AvailFlag.NO_INTERRUPT,
        used_event=mem.read_u16(layout.used_event) if event_idx else None,
        kicks_wanted=None if event_idx else not used_flags & UsedFlag.NO_NOTIFY,
        avail_event=mem.read_u16(layout.avail_event) if event_idx else None,
    )
