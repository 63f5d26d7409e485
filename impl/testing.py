"""Test doubles: hostile peers that write raw ring bytes, and a memory that counts reads.

Rules:
- `MockDriverRing` plays the driver side of a split ring by writing descriptor and
  available-ring bytes exactly as given, with no checks: it can build anything a
  hostile guest can (loops, out-of-range `next`, nested indirect tables, an avail.idx
  that jumps or goes back). `MockDeviceRing` plays the device side the same way on the
  used ring. Tests build hostile rings only through these two, never by hand.
  `MockPackedRing` does both for the packed ring (§2.8): available descriptors with any
  lap's bits, indirect tables, used descriptors.
- `CountingMemory` is a `GuestMemory` that records every read, so a test can bound
  the work a walk does (at most `size + 1` descriptors, at most `len / 16` inside an
  indirect table, docs/architecture.md).
- `descriptor_tables` and `hostile_descriptors` are Hypothesis strategies for random
  descriptor contents biased towards the interesting values (in-range and
  out-of-range `next`, every flag combination, addresses near the end of memory and
  near 2^64).

Spec: §2.7.5 (descriptor table), §2.7.6 (available ring), §2.7.8 (used ring).
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

from .layout import (
    Descriptor,
    SplitLayout,
    align_up,
    avail_ring_bytes,
    desc_table_bytes,
    used_ring_bytes,
)
from .memory import GuestMemory
from .packed_layout import PackedDescriptor, PackedLayout
from .ring_math import advance, slot, wrap
from .spec import DESC_SIZE, USED_ELEM_SIZE, DescFlag
from .wrap_math import avail_bits, used_bits

ADDR_LIMIT = 1 << 64
"""One past the largest guest-physical address a descriptor can hold (le64 addr)."""


class CountingMemory(GuestMemory):
    """A `GuestMemory` that records each read as `(addr, length)` in `reads`."""

    __slots__ = ("reads",)

    def __init__(self, size: int = 0, *, backing: bytearray | None = None) -> None:
        super().__init__(size, backing=backing)
        self.reads: list[tuple[int, int]] = []

    def read_u8(self, addr: int) -> int:
        self.reads.append((addr, 1))
        return super().read_u8(addr)

    def read_u16(self, addr: int) -> int:
        self.reads.append((addr, 2))
        return super().read_u16(addr)

    def read_u32(self, addr: int) -> int:
        self.reads.append((addr, 4))
        return super().read_u32(addr)

    def read_u64(self, addr: int) -> int:
        self.reads.append((addr, 8))
        return super().read_u64(addr)

    def read(self, addr: int, length: int) -> bytes:
        self.reads.append((addr, length))
        return super().read(addr, length)

    def descriptor_reads(self, lo: int, hi: int) -> int:
        """How many descriptor-sized reads started inside `[lo, hi)`."""
        return sum(1 for addr, length in self.reads if length == DESC_SIZE and lo <= addr < hi)

    def clear(self) -> None:
        """Forget the reads recorded so far."""
        self.reads.clear()

    def uncounted(self) -> GuestMemory:
        """A plain view of the same bytes, for a test's own reads."""
        return GuestMemory(backing=self._buf)


class MockDriverRing:
    """A driver that writes descriptor-table and available-ring bytes as it is told.

    The ring is laid out with `SplitLayout.modern(size, ring_base)` and zeroed, with
    both indices at `initial_index`; guest memory after the ring is free for data and
    indirect tables (`scratch`).
    """

    def __init__(
        self,
        mem: GuestMemory,
        size: int,
        *,
        ring_base: int = 0,
        initial_index: int = 0,
    ) -> None:
        self.mem = mem
        self.layout = SplitLayout.modern(size, ring_base)
        self.size = size
        self.scratch = align_up(self.layout.end, DESC_SIZE)
        self.initial_index = wrap(initial_index)
        self.reset()

    def reset(self) -> None:
        """Zero the three ring parts and put both indices back at the initial index."""
        lay, mem = self.layout, self.mem
        mem.fill(lay.desc, desc_table_bytes(self.size))
        mem.fill(lay.avail, avail_ring_bytes(self.size))
        mem.fill(lay.used, used_ring_bytes(self.size))
        self.avail_idx = self.initial_index
        mem.write_u16(lay.avail_idx, self.avail_idx)
        mem.write_u16(lay.used_idx, self.initial_index)

    @staticmethod
    def memory_for(size: int, ring_base: int = 0, seg_len: int = 16) -> int:
        """Bytes of guest memory that hold the ring, two tables' worth of scratch and data."""
        end = align_up(SplitLayout.modern(size, ring_base).end, DESC_SIZE)
        return end + DESC_SIZE * 2 * size + 2 * size * seg_len

    # --- raw writes -------------------------------------------------------------------
    def set_desc(self, index: int, addr: int, length: int, flags: int = 0, nxt: int = 0) -> None:
        """Write descriptor `index` of the ring's table with exactly these fields."""
        self.write_table(self.layout.desc_addr(index), [(addr, length, flags, nxt)])

    def write_table(self, addr: int, descs: Sequence[tuple[int, int, int, int]]) -> None:
        """Write `(addr, len, flags, next)` descriptors one after another from `addr`."""
        for i, (d_addr, d_len, d_flags, d_next) in enumerate(descs):
            raw = Descriptor(addr=d_addr, len=d_len, flags=d_flags, next=d_next).pack()
            self.mem.write(addr + DESC_SIZE * i, raw)

    def publish(self, *heads: int) -> None:
        """Put each head in the next available-ring slot, then move avail.idx past them."""
        for head in heads:
            self.mem.write_u16(self.layout.avail_ring(slot(self.avail_idx, self.size)), head)
            self.avail_idx = advance(self.avail_idx)
        self.mem.write_u16(self.layout.avail_idx, self.avail_idx)

    def set_avail_idx(self, value: int) -> None:
        """Write avail.idx directly (a hostile jump or decrement)."""
        self.avail_idx = wrap(value)
        self.mem.write_u16(self.layout.avail_idx, self.avail_idx)

    # --- well-formed chains -----------------------------------------------------------
    def chain(self, first: int, readable: int, writable: int, seg_len: int = 16) -> int:
        """Write a valid direct chain on descriptors `first, first+1, ...`; return its head.

        Each descriptor describes `seg_len` bytes of scratch memory of its own.
        """
        count = readable + writable
        descs = [
            (self.buffer(first + i, seg_len), seg_len, _flags(i, readable, count), first + i + 1)
            for i in range(count)
        ]
        self.write_table(self.layout.desc_addr(first), descs)
        return first

    def indirect_chain(
        self, head: int, readable: int, writable: int, seg_len: int = 16, *, table: int = -1
    ) -> int:
        """Write a valid indirect buffer at descriptor `head`; return the table's address.

        The table goes to `table`, by default the start of the scratch area.
        """
        count = readable + writable
        table = self.scratch if table < 0 else table
        descs = [
            (self.buffer(self.size + i, seg_len), seg_len, _flags(i, readable, count), i + 1)
            for i in range(count)
        ]
        self.write_table(table, descs)
        self.set_desc(head, table, DESC_SIZE * count, int(DescFlag.INDIRECT))
        return table

    def buffer(self, n: int, seg_len: int = 16) -> int:
        """Address of the `n`-th data buffer of `seg_len` bytes, placed after a table area."""
        return self.scratch + DESC_SIZE * 2 * self.size + n * seg_len

    # --- what the device wrote --------------------------------------------------------
    def used_idx(self) -> int:
        """The device's used.idx as it is in memory."""
        return self.mem.read_u16(self.layout.used_idx)

    def used_elems(self) -> list[tuple[int, int]]:
        """The used elements from the initial index up to used.idx, as (id, len)."""
        elems = []
        idx = self.initial_index
        while idx != self.used_idx():
            addr = self.layout.used_ring(slot(idx, self.size))
            elems.append((self.mem.read_u32(addr), self.mem.read_u32(addr + 4)))
            idx = advance(idx)
        return elems


def _flags(i: int, readable: int, count: int) -> int:
    """Flags of part `i` of a well-formed chain: WRITE after the readable parts, NEXT but last."""
    write = DescFlag.WRITE if i >= readable else 0
    return int(write | (DescFlag.NEXT if i < count - 1 else 0))


class MockDeviceRing:
    """A device that writes used-ring bytes as it is told, for hostile-device tests."""

    def __init__(self, mem: GuestMemory, layout: SplitLayout, *, initial_index: int = 0) -> None:
        self.mem = mem
        self.layout = layout
        self.used_idx = wrap(initial_index)

    def push(self, head: int, written: int) -> None:
        """Write the used element (head, written) in the next slot and publish it."""
        self.put(self.used_idx, head, written)
        self.set_used_idx(advance(self.used_idx))

    def put(self, idx: int, head: int, written: int) -> None:
        """Write a used element in the slot of index `idx` without moving used.idx."""
        addr = self.layout.used_ring(slot(idx, self.layout.size))
        self.mem.write_u32(addr, head)
        self.mem.write_u32(addr + USED_ELEM_SIZE // 2, written)

    def set_used_idx(self, value: int) -> None:
        """Write used.idx directly (a hostile jump)."""
        self.used_idx = wrap(value)
        self.mem.write_u16(self.layout.used_idx, self.used_idx)

    def avail_heads(self, start: int) -> list[int]:
        """The heads the driver published from index `start` up to avail.idx."""
        heads = []
        idx, end = start, self.mem.read_u16(self.layout.avail_idx)
        while idx != end:
            heads.append(self.mem.read_u16(self.layout.avail_ring(slot(idx, self.layout.size))))
            idx = advance(idx)
        return heads


# --- Hypothesis strategies ---------------------------------------------------------------
def hostile_addresses(mem_size: int) -> st.SearchStrategy[int]:
    """Buffer addresses: inside memory, at its end, beyond it, and near 2^64."""
    return st.one_of(
        st.integers(0, max(mem_size - 1, 0)),
        st.integers(max(mem_size - 64, 0), mem_size + 64),
        st.integers(ADDR_LIMIT - 64, ADDR_LIMIT - 1),
        st.integers(0, ADDR_LIMIT - 1),
    )


def hostile_descriptors(
    size: int, mem_size: int, tables: Sequence[int] = ()
) -> st.SearchStrategy[tuple[int, int, int, int]]:
    """One descriptor `(addr, len, flags, next)` a hostile driver might write.

    `next` is mostly in range (so chains get long and loop), sometimes just beyond
    `size`; flags are any combination of the three defined bits, sometimes with
    undefined bits set; an INDIRECT descriptor's address is often one of `tables`.
    """
    lengths = st.one_of(
        st.integers(0, 64), st.sampled_from([DESC_SIZE * n for n in (1, 2, size, size + 1)]),
        st.integers(0, (1 << 32) - 1),
    )
    flags = st.one_of(st.integers(0, 7), st.integers(0, (1 << 16) - 1))
    nexts = st.one_of(st.integers(0, max(size - 1, 0)), st.integers(size, size + 2),
                      st.integers(0, (1 << 16) - 1))
    addrs = st.one_of(hostile_addresses(mem_size), st.sampled_from(tables)) if tables else (
        hostile_addresses(mem_size))
    return st.tuples(addrs, lengths, flags, nexts)


def descriptor_tables(
    size: int, mem_size: int, tables: Sequence[int] = (), entries: int | None = None
) -> st.SearchStrategy[list[tuple[int, int, int, int]]]:
    """A table of `entries` (default `size`) hostile descriptors."""
    count = size if entries is None else entries
    return st.lists(hostile_descriptors(size, mem_size, tables), min_size=count, max_size=count)


# --- packed ring (§2.8) ------------------------------------------------------------------
class MockPackedRing:
    """Plays either side of a packed ring by writing descriptors exactly as given.

    As a hostile driver: `put` writes one ring descriptor marked available for the lap
    counter `lap` (or with any raw flags), `table` an indirect table. As a hostile
    device: `put_used` writes a used descriptor's id, len and flags. No checks at all.
    """

    def __init__(self, mem: GuestMemory, layout: PackedLayout) -> None:
        self.mem = mem
        self.layout = layout

    def put(self, offset: int, *, flags: int = 0, id: int = 0, addr: int = 0, len: int = 0,
            lap: int | None = 1) -> None:
        """Write ring descriptor `offset`; `lap` adds the AVAIL/USED bits of that counter."""
        bits = 0 if lap is None else avail_bits(lap)
        desc = PackedDescriptor(addr=addr, len=len, id=id, flags=flags | bits)
        self.mem.write(self.layout.desc_addr(offset), desc.pack())

    def table(self, addr: int, entries: Sequence[tuple[int, int, int]]) -> None:
        """Write an indirect table of (addr, len, flags) entries at `addr`."""
        for i, (buf, length, flags) in enumerate(entries):
            entry = PackedDescriptor(addr=buf, len=length, flags=flags)
            self.mem.write(addr + DESC_SIZE * i, entry.pack())

    def put_used(self, offset: int, ident: int, length: int, *, flags: int = 0,
                 lap: int = 1) -> None:
        """Write a used descriptor at `offset`: id, len, then flags with `lap`'s used bits."""
        self.mem.write_u16(self.layout.desc_id(offset), ident)
        self.mem.write_u32(self.layout.desc_len(offset), length)
        self.mem.write_u16(self.layout.desc_flags(offset), flags | used_bits(lap))

    def flags(self, offset: int) -> int:
        """The flags word of ring descriptor `offset`."""
        return self.mem.read_u16(self.layout.desc_flags(offset))

    def ident(self, offset: int) -> int:
        """The id word of ring descriptor `offset`."""
        return self.mem.read_u16(self.layout.desc_id(offset))
