"""Hypothesis state machines that drive an implementation and the model in lockstep.

`SplitQueueMachine` pairs a driver and a device (any implementation: pass factories)
over one guest memory and `model.queue.VirtqueueModel` beside them. Every rule applies
one operation to both, compares what each returned, and logs it with `note()`; after
every rule the invariants check that the abstraction of memory equals the model's view
and that the ring's bookkeeping is whole. Queue sizes include 1, 2 and 32768, every run
starts its indices a few steps short of 65535 so it crosses the 16-bit wrap, and the
feature set varies (VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_IN_ORDER) as
does the layout (modern, legacy). With VIRTIO_F_IN_ORDER the device returns its oldest
buffer, alone or in a batch on one used element (§2.7.9), and a return out of order is
refused with nothing changed.

Each side writes through its own `OwnedView`, so a write into the other side's part of
the ring fails at once (§2.7, SPLIT-DEV-004).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from ownership import split_views

from impl.alloc import GuestAllocator
from impl.chain import Chain, Segment
from impl.errors import ChainError, NextOutOfRange, NoSpace, NotOldestHeld
from impl.layout import Descriptor, SplitLayout
from impl.memory import GuestMemory
from impl.observer import abstract
from impl.ring_math import distance
from impl.spec import DESC_SIZE, DescFlag, Feature, feature_mask
from impl.split_device import SplitDevice
from impl.split_driver import SplitDriver
from model.queue import Buffer, VirtqueueModel

DriverFactory = Callable[[GuestMemory, SplitLayout, int, GuestAllocator, int], Any]
DeviceFactory = Callable[[GuestMemory, SplitLayout, int, int], Any]


def reference_driver(
    mem: GuestMemory, layout: SplitLayout, features: int, allocator: GuestAllocator, start: int
) -> SplitDriver:
    """The reference driver, as the machine builds it."""
    return SplitDriver(mem, layout, features, allocator=allocator, initial_index=start)


def reference_device(
    mem: GuestMemory, layout: SplitLayout, features: int, start: int
) -> SplitDevice:
    """The reference device, as the machine builds it."""
    return SplitDevice(mem, layout, features, initial_index=start)


SIZES = (1, 2, 4, 8, 16, 256, 32768)
RING_BASE = 0x1000
DATA_BYTES = 1 << 18

segment_data = st.binary(min_size=1, max_size=48)
segment_room = st.integers(min_value=1, max_value=48)


class SplitQueueMachine(RuleBasedStateMachine):
    """Lockstep refinement of a split-ring driver/device pair against the model."""

    def __init__(
        self,
        driver_factory: DriverFactory = reference_driver,
        device_factory: DeviceFactory = reference_device,
    ) -> None:
        super().__init__()
        self.driver_factory = driver_factory
        self.device_factory = device_factory
        self.ready = False
        self.in_order = False
        self.batches = 0
        self.crossed_avail = self.crossed_used = False
        self.avail_laps = self.used_laps = 0

    # --- setup ------------------------------------------------------------------------
    @initialize(
        size=st.sampled_from(SIZES),
        event_idx=st.booleans(),
        indirect=st.booleans(),
        legacy=st.booleans(),
        behind=st.integers(min_value=1, max_value=6),
        in_order=st.booleans(),
    )
    def setup(
        self, size: int, event_idx: bool, indirect: bool, legacy: bool, behind: int,
        in_order: bool = False,
    ) -> None:
        """Lay out a queue whose indices start `behind` steps short of the 16-bit wrap."""
        bits = [Feature.EVENT_IDX] * event_idx + [Feature.INDIRECT_DESC] * indirect
        self.features = feature_mask(*bits, *[Feature.IN_ORDER] * in_order)
        self.event_idx = event_idx
        self.in_order = in_order
        self.start = (1 << 16) - behind
        layout_of = SplitLayout.legacy if legacy else SplitLayout.modern
        self.layout = layout_of(size, RING_BASE)
        data_start = self.layout.end + 0x1000
        self.backing = bytearray(data_start + DATA_BYTES)
        self.mem = GuestMemory(backing=self.backing)
        self.allocator = GuestAllocator(data_start, len(self.backing))
        note(f"size={size} event_idx={event_idx} indirect={indirect} legacy={legacy} "
             f"in_order={in_order}")
        note(f"start={self.start}")
        self._build()

    def _build(self) -> None:
        self.driver_mem, self.device_mem = self._views()
        self.driver = self.driver_factory(
            self.driver_mem, self.layout, self.features, self.allocator, self.start
        )
        self.device = self.device_factory(self.device_mem, self.layout, self.features, self.start)
        self.driver_mem.armed = self.device_mem.armed = True
        self.model = self._new_model()
        self.next_token = 0
        self.segments: dict[int, tuple[list[Segment], list[Segment]]] = {}
        self.heads: dict[int, int] = {}
        self.held: dict[int, Chain] = {}
        self.ready = True

    # --- driver rules -----------------------------------------------------------------
    @precondition(lambda self: self.ready)
    @rule(out=st.lists(segment_data, max_size=3), room=st.lists(segment_room, max_size=3))
    def add(self, out: list[bytes], room: list[int]) -> None:
        """The driver exposes a buffer of `out` data and `room` writable sizes."""
        if not out and not room:
            room = [8]
        out = out[: self.layout.size]
        room = room[: self.layout.size - len(out)]
        token = self.next_token
        self.next_token += 1
        out_segs = [self._fill(data) for data in out]
        in_segs = [self._fill(b"\xee" * n) for n in room]
        try:
            head = self.driver.add_sgs(out_segs, in_segs, token)
        except NoSpace:
            note(f"add {token}: no space ({self.driver.num_free} free)")
            assert self.driver.num_free < len(out_segs) + len(in_segs), "NoSpace with room left"
            for seg in out_segs + in_segs:
                self.allocator.free(seg.addr)
            return
        note(f"add token={token} head={head} out={[len(d) for d in out]} room={room}")
        self.segments[token] = (out_segs, in_segs)
        self.heads[token] = head
        self.model.add(token, Buffer(tuple(out), tuple(room)), self._footprint())
        assert self.model.outstanding <= self.layout.size

    def _fill(self, data: bytes) -> Segment:
        addr = self.allocator.alloc(len(data), 8)
        assert addr is not None, "the test's data window is large enough"
        self.mem.write(addr, data)
        return Segment(addr, len(data))

    @precondition(lambda self: self.ready)
    @rule()
    def kick_prepare(self) -> None:
        """The driver decides whether to notify; the model says whether it must."""
        got, want = self.driver.kick_prepare(), self.model.kick_prepare()
        note(f"kick_prepare -> {got}")
        assert got == want, f"kick_prepare returned {got}, the model says {want}"

    @precondition(lambda self: self.ready)
    @rule()
    def get_buf(self) -> None:
        """The driver reclaims the next used buffer; token, length and bytes must match."""
        got, want = self.driver.get_buf(), self.model.get_buf()
        note(f"get_buf -> {got}")
        if want is None:
            assert got is None, f"get_buf returned {got} but nothing was used"
            return
        token, data = want
        assert got == (token, len(data)), f"get_buf returned {got}, the model says {want}"
        out_segs, in_segs = self.segments.pop(token)
        del self.heads[token]
        seen = b"".join(self.mem.read(s.addr, s.len) for s in in_segs)[: len(data)]
        assert seen == data, "the bytes the device wrote are not what the driver reads"
        for seg in out_segs + in_segs:
            self.allocator.free(seg.addr)

    @precondition(lambda self: self.ready)
    @rule()
    def disable_cb(self) -> None:
        """The driver asks not to be interrupted."""
        note("disable_cb")
        self.driver.disable_cb()
        self.model.disable_cb()

    @precondition(lambda self: self.ready)
    @rule(delayed=st.booleans())
    def enable_cb(self, delayed: bool) -> None:
        """The driver asks to be interrupted (now, or after 3/4 of what is outstanding)."""
        if delayed:
            got, want = self.driver.enable_cb_delayed(), self.model.enable_cb_delayed()
        else:
            got, want = self.driver.enable_cb(), self.model.enable_cb()
        note(f"enable_cb(delayed={delayed}) -> {got}")
        assert got == want, f"enable_cb returned {got}, the model says {want}"

    # --- device rules -----------------------------------------------------------------
    @precondition(lambda self: self.ready)
    @rule(count=st.integers(min_value=1, max_value=4))
    def pop(self, count: int) -> None:
        """The device takes up to `count` chains; each must be the model's next buffer."""
        for _ in range(count):
            chain, want = self.device.pop(), self.model.pop()
            note(f"pop -> {None if chain is None else chain.head}")
            if want is None:
                assert chain is None, f"the device popped {chain} from an empty ring"
                return
            assert chain is not None, "the device found nothing although a buffer is available"
            token, buffer = want
            assert self.driver.token_of(chain.head) == token, "buffers taken out of order"
            assert chain.read_payload(self.device_mem) == b"".join(buffer.out)
            assert [s.len for s in chain.writable] == list(buffer.in_sizes)
            self.held[token] = chain

    @precondition(lambda self: self.ready and self.held)
    @rule(data=st.data())
    def push_used(self, data: st.DataObject) -> None:
        """The device answers one buffer it holds (any of them; in-order, the oldest):
        filling it, or writing a prefix."""
        token = self._returnable(data)
        chain = self.held.pop(token)
        answer = self._answer(data, chain)
        note(f"push_used token={token} head={chain.head} len={len(answer)}")
        self.device.push_used(chain.head, len(answer))
        self.model.push_used(token, answer)

    def _returnable(self, data: st.DataObject) -> int:
        """A held buffer the device may return now: any, or in-order the oldest (§2.7.9)."""
        if self.in_order:
            return min(self.held)
        return int(data.draw(st.sampled_from(sorted(self.held)), label="token"))

    def _answer(self, data: st.DataObject, chain: Chain, *, full: bool = False) -> bytes:
        """Draw and write the device's answer into `chain`: all of it, or any prefix."""
        size = chain.writable_len
        whole = st.binary(min_size=size, max_size=size)
        answer = data.draw(whole if full else whole | st.binary(max_size=size), label="answer")
        chain.write_payload(self.device_mem, answer)
        return answer

    # --- in-order use (§2.7.9) ---------------------------------------------------------
    def _batchable(self) -> list[int]:
        """Tokens of the oldest held buffers up to the first rejected chain, oldest first."""
        run = []
        for token in self.model.in_device:
            if token in self.model.rejected:
                break
            run.append(token)
        return run

    @precondition(lambda self: self.ready and self.in_order)
    @rule(data=st.data(), rooms=st.lists(segment_room, max_size=3))
    def push_used_batch(self, data: st.DataObject, rooms: list[int]) -> None:
        """In-order: the driver adds writable buffers of `rooms` bytes, the device takes all
        that is available and returns its oldest buffers on one used element naming the
        last; those before it completely written, the last with any prefix (§2.7.9)."""
        for room in rooms:
            self.add([], [room])
        self.pop(self.layout.size)
        if not self.held:
            return
        run = self._batchable()
        count = len(run) - data.draw(st.integers(0, len(run) - 1), label="fewer than all")
        answers = [self._answer(data, self.held[t], full=True) for t in run[: count - 1]]
        last = self.held[run[count - 1]]
        answers.append(self._answer(data, last))
        note(f"push_used_batch tokens={run[:count]} head={last.head} len={len(answers[-1])}")
        self.device.push_used_batch(count, len(answers[-1]))
        assert self.model.push_used_batch(answers) == run[:count]
        for token in run[:count]:
            del self.held[token]
        self.batches += count > 1

    @precondition(lambda self: self.ready and self.in_order and len(self.held) > 1)
    @rule()
    def push_out_of_order(self) -> None:
        """In-order: returning a buffer while an older one is held is refused, nothing moves."""
        token = max(self.held)
        used_idx = self.mem.read_u16(self.layout.used_idx)
        try:
            self.device.push_used(self.held[token].head, 0)
        except NotOldestHeld as error:
            note(f"push_used token={token} out of order: {type(error).__name__}")
            assert error.spec_ids == ("FEAT-DEV-009",)
        else:
            raise AssertionError("the device returned a buffer before an older one")
        assert self.mem.read_u16(self.layout.used_idx) == used_idx

    @precondition(lambda self: self.ready)
    @rule()
    def needs_notification(self) -> None:
        """The device decides whether to interrupt; the model says whether it must."""
        got, want = self.device.needs_notification(), self.model.needs_notification()
        note(f"needs_notification -> {got}")
        assert got == want, f"needs_notification returned {got}, the model says {want}"

    @precondition(lambda self: self.ready)
    @rule(enable=st.booleans())
    def device_notifications(self, enable: bool) -> None:
        """The device turns kicks on (and re-checks the ring) or off."""
        if enable:
            got, want = self.device.enable_notification(), self.model.enable_notification()
            note(f"enable_notification -> {got}")
            assert got == want, f"enable_notification returned {got}, the model says {want}"
        else:
            note("disable_notification")
            self.device.disable_notification()
            self.model.disable_notification()

    # --- the promises of notification suppression --------------------------------------
    @precondition(lambda self: self.ready and not self.model.available and self.driver.num_free)
    @rule(data=segment_data)
    def no_lost_kick(self, data: bytes) -> None:
        """A device that re-enabled kicks and found nothing gets a kick for the next buffer."""
        self.kick_prepare()
        idle = not self.device.enable_notification()
        assert idle == (not self.model.enable_notification())
        self.add([data], [])
        if idle and self.model.available:
            got, want = self.driver.kick_prepare(), self.model.kick_prepare()
            note(f"idle device, one buffer published: kick_prepare -> {got}")
            assert got and want, "lost wake-up: the device waits, the driver does not kick"

    @precondition(lambda self: self.ready and self.held)
    @rule()
    def no_lost_interrupt(self) -> None:
        """A driver that re-enabled callbacks with nothing pending is interrupted for the next."""
        self.needs_notification()
        idle = self.driver.enable_cb()
        assert idle == self.model.enable_cb()
        token = min(self.held)
        chain = self.held.pop(token)
        self.device.push_used(chain.head, 0)
        self.model.push_used(token, b"")
        got, want = self.device.needs_notification(), self.model.needs_notification()
        note(f"push_used token={token}; needs_notification -> {got}")
        assert got == want
        if idle:
            assert got, "lost wake-up: the driver waits, the device does not interrupt"

    # --- a hostile chain, and reset ----------------------------------------------------
    @precondition(lambda self: self.ready and not self.model.available and self.driver.num_free)
    @rule()
    def bad_chain(self) -> None:
        """A chain whose `next` points outside the table is returned used with length 0."""
        self.add([b"bad"], [])
        if not self.model.available:
            return
        token, _ = self.model.available[0]
        head = self.heads[token]
        expected, restore = self._break_head(head)
        try:
            self.device.pop()
        except ChainError as error:
            note(f"bad chain at head {head}: {type(error).__name__}")
            assert isinstance(error, expected) and error.head == head
        else:
            raise AssertionError(f"a chain breaking {expected.__name__} was accepted")
        finally:
            restore()
        assert self.model.reject() == token

    @precondition(lambda self: self.ready)
    @rule()
    def reset(self) -> None:
        """Reset the device; the driver takes back every buffer not reclaimed, once each."""
        self.device.reset()
        returned = []
        while (token := self.driver.detach_unused_buf()) is not None:
            returned.append(token)
        expected = self.model.detach_all()
        note(f"reset: detached {sorted(returned)}")
        assert sorted(returned) == sorted(expected), "detach lost or repeated a buffer"
        for out_segs, in_segs in self.segments.values():
            for seg in out_segs + in_segs:
                self.allocator.free(seg.addr)
        self.start = 0
        self._build()

    # --- invariants ---------------------------------------------------------------------
    @invariant()
    def refines_model(self) -> None:
        """The abstraction of memory and the two sides' shadows equals the model's view."""
        if not self.ready:
            return
        seen = self._abstract()
        want = self.model.view()
        assert seen == want, f"abstraction differs from the model:\n{seen}\n!=\n{want}"
        avail_laps, used_laps = self._laps()
        self.avail_laps = max(self.avail_laps, avail_laps)
        self.used_laps = max(self.used_laps, used_laps)
        self.crossed_avail |= self.avail_laps > 0
        self.crossed_used |= self.used_laps > 0

    @invariant()
    def ring_is_whole(self) -> None:
        """In flight never exceeds the size; every descriptor is free or in one live chain."""
        if self.ready:
            self._check_whole()

    # --- what differs between ring types (overridden by tests/packed_machine.py) -------
    def _views(self) -> tuple[GuestMemory, GuestMemory]:
        """Each side's view of the shared memory, refusing writes into the other's parts."""
        return split_views(self.backing, self.layout)

    def _new_model(self) -> VirtqueueModel:
        """The model of this queue: one position per buffer, modulo 2^16."""
        return VirtqueueModel(self.layout.size, self.event_idx, self.start,
                              in_order=self.in_order)

    def _footprint(self) -> int:
        """How many positions the buffer just added takes: one avail ring entry."""
        return 1

    def _laps(self) -> tuple[int, int]:
        """How many times the avail and used indices have wrapped 16 bits so far."""
        return self.model.published >> 16, self.model.used_count >> 16

    def _abstract(self) -> Any:
        """The abstraction function of this ring type applied to the current state."""
        return abstract(
            self.mem, self.layout, self.driver, self.device, event_idx=self.event_idx,
            in_order=self.in_order,
        )

    def _break_head(self, head: int) -> tuple[type[ChainError], Callable[[], None]]:
        """Point the head's `next` outside the table; return the error due and an undo."""
        raw = Descriptor.unpack(self.mem.read(self.layout.desc_addr(head), DESC_SIZE))
        broken = Descriptor(addr=raw.addr, len=raw.len, flags=raw.flags | DescFlag.NEXT,
                            next=self.layout.size)
        self.mem.write(self.layout.desc_addr(head), broken.pack())
        return NextOutOfRange, lambda: self.mem.write(self.layout.desc_addr(head), raw.pack())

    def _check_whole(self) -> None:
        """Split ring: in flight at most the size, and the descriptor partition holds."""
        avail_idx = self.mem.read_u16(self.layout.avail_idx)
        used_idx = self.mem.read_u16(self.layout.used_idx)
        assert distance(avail_idx, used_idx) <= self.layout.size
        if isinstance(self.driver, SplitDriver):
            live = set(self.heads.values())
            assert all(self.driver.token_of(h) == t for t, h in self.heads.items())
            check_descriptor_partition(self.driver, self.mem, live)
            if self.in_order:
                check_ring_order_links(self.mem, self.layout, live)


def check_ring_order_links(mem: GuestMemory, layout: SplitLayout, live: set[int]) -> None:
    """In-order: each chained descriptor of a live chain links to its ring successor,
    the table's last entry to 0 (§2.7.5, SPLIT-DRV-004)."""
    for head in live:
        index = head
        for _ in range(layout.size):
            desc = Descriptor.unpack(mem.read(layout.desc_addr(index), DESC_SIZE))
            if not desc.flags & DescFlag.NEXT:
                break
            assert desc.next == (index + 1) % layout.size, f"descriptor {index} links out of order"
            index = desc.next


def check_descriptor_partition(driver: SplitDriver, mem: GuestMemory, live: set[int]) -> None:
    """Every descriptor index is in exactly one place: the free list or one live chain.

    `live` are the heads the driver handed out and has not reclaimed.
    """
    size = driver.size
    assert driver.outstanding == len(live), "the driver's outstanding count is off"
    owner: dict[int, str] = {}
    index = driver.free_head
    for _ in range(driver.num_free):
        assert index not in owner, f"descriptor {index} is twice in the free list"
        owner[index] = "free"
        index = driver._next[index]
    for head in sorted(live):
        index = head
        for _ in range(size):
            assert index not in owner, f"descriptor {index} is in two places"
            owner[index] = f"chain {head}"
            desc = Descriptor.unpack(mem.read(driver.layout.desc_addr(index), DESC_SIZE))
            if not desc.flags & DescFlag.NEXT:
                break
            index = desc.next
    assert len(owner) == size, f"{size - len(owner)} descriptors are lost"


class InOrderSplitMachine(SplitQueueMachine):
    """`SplitQueueMachine` with VIRTIO_F_IN_ORDER always negotiated (§2.7.9)."""

    @initialize(
        size=st.sampled_from(SIZES),
        event_idx=st.booleans(),
        indirect=st.booleans(),
        legacy=st.booleans(),
        behind=st.integers(min_value=1, max_value=6),
        in_order=st.just(True),
    )
    def setup(
        self, size: int, event_idx: bool, indirect: bool, legacy: bool, behind: int,
        in_order: bool,
    ) -> None:
        """As the parent's setup, in-order."""
        super().setup(size, event_idx, indirect, legacy, behind, in_order)
