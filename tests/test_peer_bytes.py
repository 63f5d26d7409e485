"""Byte-level agreement: the reference driver and Linux's driver write the same ring.

One program of driver operations (add, kick_prepare, get_buf, disable_cb, enable_cb,
enable_cb_delayed) runs on two memories, one with the reference driver and one with
Linux's, each opposite a reference device that pops and completes identically. The
data buffers and indirect tables come from identical allocators, so addresses agree.
After every operation the two memories must hold the same bytes, except where the
spec leaves the value free (docs/oracle.md, "What may differ"):

- `next` of a descriptor without VIRTQ_DESC_F_NEXT: not part of any chain (§2.7.5);
  each driver leaves its own free-list link there, and the two free lists end
  differently (Linux 0, the reference the queue size);
- used_event while callbacks are off in event-index mode: Linux writes 0, the
  reference leaves the old value; the device may then interrupt spuriously either
  way (SPLIT-DRV-015);
- used_event without VIRTIO_F_EVENT_IDX: Linux writes it anyway, the field means
  nothing then (§2.7.7).

The heads handed out are compared too: both drivers keep a LIFO free list, so they
choose the same descriptors; were that to change, this test says so.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from peers.linux import LinuxDriver, require_library

from impl.alloc import GuestAllocator
from impl.chain import Chain, Segment
from impl.errors import NoSpace
from impl.layout import Descriptor, SplitLayout
from impl.memory import GuestMemory
from impl.spec import DESC_SIZE, DescFlag, Feature, feature_mask
from impl.split_device import SplitDevice
from impl.split_driver import SplitDriver

RING_BASE = 0x1000
DATA_BYTES = 1 << 16

op = st.one_of(
    st.tuples(st.just("add"), st.lists(st.integers(1, 32), max_size=3),
              st.lists(st.integers(1, 32), max_size=3)),
    st.tuples(st.sampled_from(["kick", "get", "disable", "enable", "delayed", "pop"])),
    st.tuples(st.just("complete"), st.integers(0, 1000)),
)


class Side:
    """One driver opposite a reference device, over its own memory."""

    def __init__(self, linux: bool, layout: SplitLayout, features: int, start: int) -> None:
        data = layout.end + 0x1000
        self.mem = GuestMemory(backing=bytearray(data + DATA_BYTES))
        self.alloc = GuestAllocator(data, data + DATA_BYTES)
        make: Any = LinuxDriver if linux else SplitDriver
        self.driver = make(self.mem, layout, features, allocator=self.alloc, initial_index=start)
        self.device = SplitDevice(self.mem, layout, features, initial_index=start)
        self.held: list[Chain] = []
        self.buffers: dict[int, list[int]] = {}

    def run(self, step: tuple[Any, ...], token: int) -> object:
        """Apply one operation; return what the driver answered."""
        kind = step[0]
        if kind == "add":
            return self._add(step[1], step[2], token)
        if kind == "kick":
            return self.driver.kick_prepare()
        if kind == "get":
            got = self.driver.get_buf()
            if got is not None:
                for addr in self.buffers.pop(got[0]):
                    self.alloc.free(addr)
            return got
        if kind == "disable":
            return self.driver.disable_cb()
        if kind == "enable":
            return self.driver.enable_cb()
        if kind == "delayed":
            return self.driver.enable_cb_delayed()
        if kind == "pop":
            chain = self.device.pop()
            if chain is not None:
                self.held.append(chain)
            return None if chain is None else chain.head
        if self.held:
            chain = self.held.pop(step[1] % len(self.held))
            chain.write_payload(self.mem, b"\xab" * chain.writable_len)
            self.device.push_used(chain.head, chain.writable_len)
        return None

    def _add(self, out: list[int], room: list[int], token: int) -> object:
        if not out and not room:
            room = [8]
        lens = (out + room)[: self.driver.size]
        addrs = [self.alloc.alloc(n, 8) for n in lens]
        segs = [Segment(a, n) for a, n in zip(addrs, lens, strict=True) if a is not None]
        for i, seg in enumerate(segs):
            self.mem.write(seg.addr, bytes([token + i & 0xFF]) * seg.len)
        try:
            head = self.driver.add_sgs(segs[: len(out)], segs[len(out) :], token)
        except NoSpace:
            for seg in segs:
                self.alloc.free(seg.addr)
            return "nospace"
        self.buffers[token] = [seg.addr for seg in segs]
        return head


def compare(ref: Side, linux: Side, layout: SplitLayout, event_idx: bool) -> None:
    """The two memories agree byte for byte, up to the freedoms the docstring lists."""
    a, b = ref.mem, linux.mem
    for index in range(layout.size):
        da = Descriptor.unpack(a.read(layout.desc_addr(index), DESC_SIZE))
        db = Descriptor.unpack(b.read(layout.desc_addr(index), DESC_SIZE))
        if not da.flags & DescFlag.NEXT:
            db = Descriptor(addr=db.addr, len=db.len, flags=db.flags, next=da.next)
        assert da == db, f"descriptor {index}: reference {da}, Linux {db}"
        if da.flags & DescFlag.INDIRECT:
            assert a.read(da.addr, da.len) == b.read(db.addr, db.len), "indirect tables differ"
    for name in ("avail_flags", "avail_idx"):
        addr = getattr(layout, name)
        assert a.read_u16(addr) == b.read_u16(addr), f"{name} differs"
    ring = layout.avail_ring(0)
    assert a.read(ring, 2 * layout.size) == b.read(ring, 2 * layout.size), "avail ring differs"
    if event_idx and not ref.driver.no_interrupt:
        assert a.read_u16(layout.used_event) == b.read_u16(layout.used_event), "used_event"
    data = layout.end + 0x1000
    assert a.read(data, DATA_BYTES) == b.read(data, DATA_BYTES), "buffers differ"


@pytest.mark.spec("SPLIT-DRV-002", "SPLIT-DRV-013", "SPLIT-DRV-014")
@given(
    size=st.sampled_from([1, 2, 4, 8, 16, 256]),
    event_idx=st.booleans(),
    indirect=st.booleans(),
    legacy=st.booleans(),
    behind=st.integers(1, 6),
    program=st.lists(op, max_size=60),
)
def test_linux_driver_writes_the_reference_bytes(
    size: int, event_idx: bool, indirect: bool, legacy: bool, behind: int,
    program: list[tuple[Any, ...]],
) -> None:
    if require_library() is None:
        pytest.skip("VIRTIO_ORACLE_NO_PEERS=1: Linux driver not available")
    bits = [Feature.EVENT_IDX] * event_idx + [Feature.INDIRECT_DESC] * indirect
    features = feature_mask(*bits)
    layout = (SplitLayout.legacy if legacy else SplitLayout.modern)(size, RING_BASE)
    start = (1 << 16) - behind
    ref, linux = (Side(flag, layout, features, start) for flag in (False, True))
    compare(ref, linux, layout, event_idx)
    for token, step in enumerate(program):
        got_ref, got_linux = ref.run(step, token), linux.run(step, token)
        note(f"{step} -> {got_ref}")
        assert got_ref == got_linux, f"{step}: reference {got_ref}, Linux {got_linux}"
        compare(ref, linux, layout, event_idx)
