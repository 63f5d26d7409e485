"""Byte-level agreement on the packed ring: the reference driver and Linux's write the same.

One program of driver operations (add, kick_prepare, get_buf, disable_cb, enable_cb,
enable_cb_delayed) runs on two memories, one with the reference `PackedDriver` and one
with Linux 6.1's packed driver, each opposite a reference `PackedDevice` that pops,
completes and enables notifications identically; both rings sit where Linux allocates
one (`placement`) and the data buffers and indirect tables come from identical
allocators. After every operation the two memories must agree field by field (§2.8.13,
§2.8.14), up to what the spec leaves to the driver (docs/oracle.md, "Linux's packed
driver"):

- the Buffer ID: any free id is the driver's choice (§2.8.6); Linux takes one id per ring
  descriptor of a list, the reference one per list. So an `id` is compared by the token
  it stands for on each side, in every descriptor of an outstanding list, and not at all
  in a descriptor no outstanding list owns;
- the Driver Event Suppression area in event-index mode: Linux keeps ENABLE until the
  first `disable_cb`, then DISABLE / DESC; the reference keeps DESC. The `desc` word is
  compared whenever both say DESC (it means something only then);
- the Device Event Suppression area before the device first writes it: the reference
  driver names the start position there (DESC), Linux leaves the zeroed area;
- answers: `enable_cb_delayed` is False for Linux as soon as one used buffer waits (the
  reference waits for more than 3/4 of what is outstanding); `kick_prepare` in event-index
  mode after more than `size` descriptors since the last decision (below), and before the
  device first writes its area (Linux reads the zeroed ENABLE there and always kicks).

A queue restored at a position other than 0 holds, before that position, descriptors of
an earlier lap (the shim writes them for Linux, which tells a used descriptor by flags
alone); the same bytes are copied into the reference's ring, the same history for both.

`test_linux_kick_decision_after_long_batches` records a disagreement found here: Linux
decides a kick with 16-bit arithmetic on (offset, wrap counter) that is exact only when at
most `size` descriptors were made available since its last decision. After a longer batch
that passed the device's named descriptor, Linux does not notify where the reference (and
the model, positions modulo 2 * size) does.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from peers.linux import require_library
from peers.linux_packed import linux_packed_driver, placement

from impl.alloc import GuestAllocator
from impl.chain import Chain, Segment
from impl.errors import NoSpace
from impl.memory import GuestMemory
from impl.packed_device import PackedDevice
from impl.packed_driver import PackedDriver
from impl.packed_layout import EventSuppress, PackedDescriptor, PackedLayout
from impl.spec import DESC_SIZE, EVENT_SUPPRESS_SIZE, Feature, PackedEventFlag, feature_mask
from impl.wrap_math import advance, gap, offset_of

RING_BASE = 0x1000
DATA_BYTES = 1 << 16

op = st.one_of(
    st.tuples(st.just("add"), st.lists(st.integers(1, 32), max_size=3),
              st.lists(st.integers(1, 32), max_size=3)),
    st.tuples(st.sampled_from(["kick", "get", "disable", "enable", "delayed", "pop",
                               "dev_enable"])),
    st.tuples(st.just("complete"), st.integers(0, 1000)),
)


class Side:
    """One driver opposite a reference packed device, over its own memory."""

    def __init__(self, linux: bool, layout: PackedLayout, features: int, start: int) -> None:
        self.data = layout.end + 0x1000
        self.mem = GuestMemory(backing=bytearray(self.data + DATA_BYTES))
        self.alloc = GuestAllocator(self.data, self.data + DATA_BYTES)
        self.driver: Any = (
            linux_packed_driver(self.mem, layout, features, self.alloc, start) if linux
            else PackedDriver(self.mem, layout, features, allocator=self.alloc,
                              initial_offset=start)
        )
        self.device = PackedDevice(self.mem, layout, features, initial_offset=start)
        self.held: list[Chain] = []
        self.buffers: dict[int, list[int]] = {}
        self.device_wrote = False

    def run(self, step: tuple[Any, ...], token: int) -> object:
        """Apply one operation; return what the driver (or device) answered."""
        kind = step[0]
        if kind == "add":
            return self._add(step[1], step[2], token)
        if kind == "get":
            got = self.driver.get_buf()
            if got is not None:
                for addr in self.buffers.pop(got[0]):
                    self.alloc.free(addr)
            return got
        simple = {"kick": self.driver.kick_prepare, "disable": self.driver.disable_cb,
                  "enable": self.driver.enable_cb, "delayed": self.driver.enable_cb_delayed}
        if kind in simple:
            return simple[kind]()
        if kind == "dev_enable":
            self.device_wrote = True
            return self.device.enable_notification()
        if kind == "pop":
            chain = self.device.pop()
            if chain is not None:
                self.held.append(chain)
            return None if chain is None else self.driver.token_of(chain.head)
        if self.held:
            chain = self.held.pop(step[1] % len(self.held))
            chain.write_payload(self.mem, b"\xab" * chain.writable_len)
            self.device.push_used(chain.head, chain.writable_len)
        return None

    def _add(self, out: list[int], room: list[int], token: int) -> object:
        if not out and not room:
            room = [8]
        lens = (out + room)[: self.driver.size]
        segs = [Segment(self.alloc.alloc(n, 8) or 0, n) for n in lens]
        for i, seg in enumerate(segs):
            self.mem.write(seg.addr, bytes([token + i & 0xFF]) * seg.len)
        try:
            self.driver.add_sgs(segs[: len(out)], segs[len(out) :], token)
        except NoSpace:
            for seg in segs:
                self.alloc.free(seg.addr)
            return "nospace"
        self.buffers[token] = [seg.addr for seg in segs]
        return "added"


def owners(side: Side, layout: PackedLayout) -> dict[int, Any]:
    """Ring offset -> token of the outstanding list occupying it (from the driver's state)."""
    size, driver, found = layout.size, side.driver, {}
    pos = driver.last_used_idx
    while gap(driver.next_avail, pos, size):
        desc = PackedDescriptor.unpack(side.mem.read(layout.desc_addr(offset_of(pos, size)),
                                                     DESC_SIZE))
        token, descs = driver.token_of(desc.id), driver.descs_of(desc.id)
        assert token is not None and descs, f"position {pos} names no outstanding list"
        for k in range(descs):
            found[offset_of(advance(pos, k, size), size)] = token
        pos = advance(pos, descs, size)
    return found


def compare(ref: Side, linux: Side, layout: PackedLayout, event_idx: bool) -> None:
    """The two memories agree, up to the freedoms the module docstring lists."""
    a, b = ref.mem, linux.mem
    assert owners(ref, layout) == owners(linux, layout), "the lists occupy different slots"
    live = owners(ref, layout)
    for offset in range(layout.size):
        da = PackedDescriptor.unpack(a.read(layout.desc_addr(offset), DESC_SIZE))
        db = PackedDescriptor.unpack(b.read(layout.desc_addr(offset), DESC_SIZE))
        assert (da.addr, da.len, da.flags) == (db.addr, db.len, db.flags), (
            f"descriptor {offset}: reference {da}, Linux {db}")
        if offset in live:
            assert ref.driver.token_of(da.id) == linux.driver.token_of(db.id) == live[offset]
    same_data = a.read(ref.data, DATA_BYTES) == b.read(linux.data, DATA_BYTES)
    assert same_data, "buffers or indirect tables differ"
    da, db = (EventSuppress.unpack(m.read(layout.driver, EVENT_SUPPRESS_SIZE)) for m in (a, b))
    if not event_idx:
        assert da == db, f"driver event suppression: reference {da}, Linux {db}"
    elif da.flags == db.flags == PackedEventFlag.DESC:
        assert da.off_wrap == db.off_wrap, f"used event: reference {da}, Linux {db}"
    if not event_idx or ref.device_wrote:
        assert a.read(layout.device, EVENT_SUPPRESS_SIZE) == b.read(layout.device,
                                                                      EVENT_SUPPRESS_SIZE)


def agree(
    step: tuple[Any, ...], got_ref: object, got_linux: object, ref: Side,
    size: int, batch: int, event_idx: bool,
) -> None:
    """The two answers are equal, or differ only as docs/oracle.md records."""
    if got_ref == got_linux:
        return
    if step[0] == "delayed":
        waiting = ref.driver.more_used()
        assert waiting and got_ref is True and got_linux is False, "enable_cb_delayed"
        return
    if step[0] == "kick" and event_idx and not ref.device_wrote:
        assert got_linux is True, "a zeroed device area (ENABLE) asks for every kick"
        return
    if step[0] == "kick" and event_idx and batch > size:
        assert got_ref is True and got_linux is False, "a long batch's kick decision"
        return
    raise AssertionError(f"{step}: reference {got_ref}, Linux {got_linux}")


@pytest.mark.spec("PACKED-DRV-003", "PACKED-DRV-008", "PACKED-DRV-011", "PACKED-DRV-013")
@given(
    size=st.sampled_from([1, 2, 3, 5, 8, 100]),
    event_idx=st.booleans(),
    indirect=st.booleans(),
    behind=st.integers(1, 6),
    program=st.lists(op, max_size=60),
)
def test_linux_packed_driver_writes_the_reference_bytes(
    size: int, event_idx: bool, indirect: bool, behind: int, program: list[tuple[Any, ...]],
) -> None:
    if require_library() is None:
        pytest.skip("VIRTIO_ORACLE_NO_PEERS=1: Linux packed driver not available")
    bits = [Feature.EVENT_IDX] * event_idx + [Feature.INDIRECT_DESC] * indirect
    features = feature_mask(*bits)
    layout = placement(size, RING_BASE)
    start = (size - behind) % size
    ref, linux = (Side(flag, layout, features, start) for flag in (False, True))
    history = layout.desc_addr(start)
    ref.mem.write(layout.desc, linux.mem.read(layout.desc, history - layout.desc))
    compare(ref, linux, layout, event_idx)
    batch = 0
    for token, step in enumerate(program):
        before = ref.driver.num_free
        got_ref, got_linux = ref.run(step, token), linux.run(step, token)
        note(f"{step} -> reference {got_ref}, Linux {got_linux}")
        batch += before - ref.driver.num_free if step[0] == "add" else 0
        agree(step, got_ref, got_linux, ref, size, batch, event_idx)
        batch = 0 if step[0] == "kick" else batch
        compare(ref, linux, layout, event_idx)


def _kick_after(make: Any, size: int, named: int, batch: int) -> bool:
    """kick_prepare after `batch` one-descriptor buffers went round, the device having
    named position `named` (enable_notification there) just after the last decision."""
    layout = placement(size, RING_BASE)
    mem = GuestMemory(backing=bytearray(layout.end + 0x1000 + DATA_BYTES))
    alloc = GuestAllocator(layout.end + 0x1000, len(mem.backing))
    features = feature_mask(Feature.EVENT_IDX)
    driver = make(mem, layout, features, alloc, 0)
    device = PackedDevice(mem, layout, features)
    buffer = Segment(layout.end + 0x1000, 4)

    def round_trip(token: int) -> None:
        driver.add_sgs([buffer], [], token)
        chain = device.pop()
        device.push_used(chain.head, 0)
        assert driver.get_buf() == (token, 0)

    for token in range(named):
        round_trip(token)
    device.enable_notification()
    driver.kick_prepare()
    for token in range(batch):
        round_trip(named + token)
    return bool(driver.kick_prepare())


def _reference(mem: GuestMemory, layout: PackedLayout, features: int, alloc: GuestAllocator,
               start: int) -> PackedDriver:
    return PackedDriver(mem, layout, features, allocator=alloc, initial_offset=start)


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_linux_kick_decision_after_long_batches(size: int) -> None:
    """The device names the first descriptor of each batch, so a kick is due every time.

    Up to `size` descriptors per decision Linux kicks; beyond, it sometimes stays silent.
    """
    if require_library() is None:
        pytest.skip("VIRTIO_ORACLE_NO_PEERS=1: Linux packed driver not available")
    differ = []
    for named in range(2 * size):
        for batch in range(1, 3 * size + 1):
            ours = _kick_after(_reference, size, named, batch)
            theirs = _kick_after(linux_packed_driver, size, named, batch)
            assert ours, "the named descriptor is the batch's first: the reference kicks"
            if ours != theirs:
                differ.append((named, batch))
                assert ours and not theirs, "Linux only ever kicks less"
    assert differ, "Linux's long-batch kick decision now agrees: update docs/oracle.md"
    assert all(batch > size for _, batch in differ), "a short batch disagrees"
