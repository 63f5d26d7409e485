"""The packed ring's abstraction function: ring memory plus shadows to the same `QueueView`.

Rules:
- Like `observer.abstract` for the split ring, it only reads, and it decodes lists with
  its own short reader, not `packed_chain` (the walk under test). It assumes a
  conforming ring; hostile rings have their own tests.
- The model counts *positions*: each buffer occupies as many as the ring descriptors its
  list took (1 with an indirect table), and positions are taken modulo 2 * size, the
  (offset, wrap counter) pair of `wrap_math`. So `avail_idx` is where the run of
  available lists after the device's `next_avail` ends, `used_idx` where the run of
  used descriptors after the driver's `last_used_idx` ends (which must be where the
  device will write its next one, its `next_used`: the packed ring's used.idx lives
  only in the device), and the event positions are the `desc` words of the two event
  suppression structures (in DESC mode).
- Memory alone cannot show what the split ring's descriptor table keeps: a used
  descriptor overwrites an available one, so the packed shadows reveal a little more.
  The driver tells the token, ring length and writable segments of an id it handed
  out; the device tells the buffer it read for an id it holds.

Spec: §2.8.1 (AVAIL/USED per lap), §2.8.6 (lists, id in the last descriptor, skipping),
§2.8.7 (indirect tables), §2.8.10 and §2.8.14 (event suppression).
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Sequence
from typing import Protocol

from model.queue import Buffer, QueueView

from .chain import Chain, Segment
from .errors import NotConforming
from .memory import GuestMemory
from .packed_layout import PackedDescriptor, PackedLayout
from .spec import DESC_SIZE, PackedDescFlag, PackedEventFlag
from .wrap_math import advance, decode_event, gap, is_available, is_used, offset_of, wrap_of


class PackedDriverShadow(Protocol):
    """What an observed packed driver must reveal beyond ring memory."""

    last_used_idx: int
    no_interrupt: bool

    def token_of(self, head: int) -> Hashable | None:
        """The token of an outstanding Buffer ID, or None."""

    def descs_of(self, head: int) -> int:
        """How many ring descriptors the list of an outstanding id took."""

    def writable_of(self, head: int) -> Sequence[Segment]:
        """The device-writable segments of an outstanding id."""


class PackedDeviceShadow(Protocol):
    """What an observed packed device must reveal beyond ring memory."""

    next_avail: int
    next_used: int

    @property
    def held_heads(self) -> Collection[int]:
        """Buffer IDs taken and not yet returned used."""

    def held_chain(self, ident: int) -> Chain:
        """The buffer the device read for a held id."""


def _descriptor(mem: GuestMemory, layout: PackedLayout, pos: int) -> PackedDescriptor:
    offset = offset_of(pos, layout.size)
    return PackedDescriptor.unpack(mem.read(layout.desc_addr(offset), DESC_SIZE))


def _elements(mem: GuestMemory, descs: list[PackedDescriptor]) -> list[PackedDescriptor]:
    """The buffer elements of a list: its descriptors, or its indirect table's entries."""
    if len(descs) == 1 and descs[0].flags & PackedDescFlag.INDIRECT:
        table = descs[0]
        raw = mem.read(table.addr, table.len)
        return [
            PackedDescriptor.unpack(raw[i : i + DESC_SIZE]) for i in range(0, len(raw), DESC_SIZE)
        ]
    return descs


def decode_list(mem: GuestMemory, layout: PackedLayout, pos: int) -> tuple[int, int, Buffer]:
    """(Buffer ID, ring descriptors, buffer) of the conforming list whose head is at `pos`."""
    descs = [_descriptor(mem, layout, pos)]
    while descs[-1].flags & PackedDescFlag.NEXT:
        if len(descs) >= layout.size:
            raise NotConforming(f"list at position {pos} does not end within the ring")
        pos = advance(pos, 1, layout.size)
        descs.append(_descriptor(mem, layout, pos))
    out: list[bytes] = []
    in_sizes: list[int] = []
    for element in _elements(mem, descs):
        if element.flags & PackedDescFlag.WRITE:
            in_sizes.append(element.len)
        else:
            out.append(mem.read(element.addr, element.len))
    return descs[-1].id, len(descs), Buffer(tuple(out), tuple(in_sizes))


def chain_buffer(mem: GuestMemory, chain: Chain) -> Buffer:
    """The meaning of a buffer a device holds: its readable bytes and writable sizes."""
    out = tuple(mem.read(seg.addr, seg.len) for seg in chain.readable)
    return Buffer(out, tuple(seg.len for seg in chain.writable))


def written_bytes(mem: GuestMemory, writable: Sequence[Segment], length: int) -> bytes:
    """The first `length` bytes of the writable segments (what a used len promises)."""
    pieces: list[bytes] = []
    for seg in writable:
        take = min(length, seg.len)
        if take <= 0:
            break
        pieces.append(mem.read(seg.addr, take))
        length -= take
    return b"".join(pieces)


def _available(
    mem: GuestMemory, layout: PackedLayout, driver: PackedDriverShadow, start: int
) -> tuple[list[tuple[Hashable | None, Buffer]], int]:
    """The available lists from position `start` on, and the position after the last."""
    size, pos, seen = layout.size, start, 0
    found: list[tuple[Hashable | None, Buffer]] = []
    while seen < size and is_available(_descriptor(mem, layout, pos).flags, wrap_of(pos, size)):
        ident, descs, buffer = decode_list(mem, layout, pos)
        found.append((driver.token_of(ident), buffer))
        pos, seen = advance(pos, descs, size), seen + descs
    return found, pos


def _used(
    mem: GuestMemory, layout: PackedLayout, driver: PackedDriverShadow, limit: int
) -> tuple[list[tuple[Hashable | None, bytes]], int]:
    """The used descriptors from the driver's position on (at most `limit` descriptors)."""
    size, pos, seen = layout.size, driver.last_used_idx, 0
    found: list[tuple[Hashable | None, bytes]] = []
    while seen < limit:
        desc = _descriptor(mem, layout, pos)
        if not is_used(desc.flags, wrap_of(pos, size)):
            break
        length = desc.len if desc.flags & PackedDescFlag.WRITE else 0
        found.append((driver.token_of(desc.id), written_bytes(mem, driver.writable_of(desc.id),
                                                              length)))
        descs = driver.descs_of(desc.id)
        if descs == 0:
            raise NotConforming(f"used id {desc.id} is not outstanding")
        pos, seen = advance(pos, descs, size), seen + descs
    return found, pos


def abstract_packed(
    mem: GuestMemory,
    layout: PackedLayout,
    driver: PackedDriverShadow,
    device: PackedDeviceShadow,
    *,
    event_idx: bool,
) -> QueueView:
    """Map (packed memory, driver shadow, device shadow) to the model's `QueueView`."""
    size = layout.size
    available, avail_end = _available(mem, layout, driver, device.next_avail)
    used, used_end = _used(mem, layout, driver, gap(device.next_avail, driver.last_used_idx, size))
    if used_end != device.next_used:
        raise NotConforming(
            f"used descriptors end at {used_end}, the device writes the next at {device.next_used}"
        )
    in_device = frozenset(
        (driver.token_of(ident), chain_buffer(mem, device.held_chain(ident)))
        for ident in device.held_heads
    )
    driver_flags = mem.read_u16(layout.driver_flags)
    device_flags = mem.read_u16(layout.device_flags)
    return QueueView(
        available=tuple(available),
        in_device=in_device,
        used=tuple(used),
        avail_idx=avail_end,
        used_idx=used_end,
        next_avail=device.next_avail,
        callbacks_enabled=not driver.no_interrupt,
        interrupts_wanted=None if event_idx else driver_flags != PackedEventFlag.DISABLE,
        used_event=decode_event(mem.read_u16(layout.driver_off_wrap), size) if event_idx else None,
        kicks_wanted=None if event_idx else device_flags != PackedEventFlag.DISABLE,
        avail_event=decode_event(mem.read_u16(layout.device_off_wrap), size) if event_idx else None,
    )
