"""The proofs' encodings of memory-reading `impl` code agree with that code.

Where an obligation cannot evaluate an `impl` function on Z3 terms (the function reads
guest memory), it uses an encoding kept beside the proof. Each test here runs the real
code and the encoding on the same concrete inputs (the edges of the 16-bit wrap plus
Hypothesis inputs) and asserts they decide the same, so a change to either side that
makes them drift fails here.
"""

from __future__ import annotations

from typing import Any

import pytest
import z3
from hypothesis import example, given
from hypothesis import strategies as st

from impl.alloc import GuestAllocator
from impl.chain import Segment, read_descriptor, walk_chain
from impl.errors import (
    AvailIndexDecrement,
    AvailIndexJump,
    ChainError,
    DeviceError,
    NoSpace,
    UsedIndexJump,
)
from impl.layout import Descriptor, SplitLayout
from impl.memory import GuestMemory
from impl.spec import DESC_SIZE as DESC_BYTES
from impl.spec import DescFlag, Feature, feature_mask
from impl.split_device import SplitDevice
from impl.split_driver import SplitDriver
from proofs.buffer_ownership import AVAIL, DEVICE, FREE, TRANSITIONS, USED, Queue, Ring
from proofs.descriptor_ownership import FREE as FREE_DESC
from proofs.descriptor_ownership import TRANSITIONS as DESC_TRANSITIONS
from proofs.descriptor_ownership import Descs
from proofs.descriptor_ownership import Invariant as DescInvariant
from proofs.notification import device_notifies, driver_kicks
from proofs.ring_index import device_accepts_avail, driver_accepts_used
from proofs.walk_encoding import Outcome, Reader, Walk, run, w

SIZES = st.sampled_from([1, 2, 8, 256, 32768])
INDEX = st.one_of(st.integers(0, 0xFFFF), st.sampled_from([0, 1, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF]))


def _pair(size: int) -> tuple[GuestMemory, SplitLayout]:
    layout = SplitLayout.modern(size)
    return GuestMemory(layout.end), layout


@pytest.mark.spec("SPLIT-DRV-010", "INIT-DRV-007")
@given(size=SIZES, next_avail=INDEX, seen_ahead=st.integers(0, 32768), avail=INDEX)
@example(size=8, next_avail=0xFFFE, seen_ahead=0, avail=6)
@example(size=8, next_avail=0xFFFE, seen_ahead=3, avail=0)
@example(size=8, next_avail=0xFFFE, seen_ahead=0, avail=7)
def test_device_avail_check_matches_encoding(
    size: int, next_avail: int, seen_ahead: int, avail: int
) -> None:
    seen = (next_avail + min(seen_ahead, size)) & 0xFFFF
    mem, layout = _pair(size)
    device = SplitDevice(mem, layout)
    device.next_avail, device._avail_seen = next_avail, seen
    mem.write_u16(layout.avail_idx, avail)
    try:
        pending = device._pending()
        accepted = True
    except (AvailIndexJump, AvailIndexDecrement):
        accepted = False
    assert accepted == device_accepts_avail(avail, next_avail, seen, size)
    if accepted:
        assert pending == (avail - next_avail) % 65536


@given(size=SIZES, last_used=INDEX, outstanding=st.integers(0, 32768), used=INDEX)
@example(size=4, last_used=0xFFFF, outstanding=2, used=1)
@example(size=4, last_used=0xFFFF, outstanding=2, used=2)
def test_driver_used_check_matches_encoding(
    size: int, last_used: int, outstanding: int, used: int
) -> None:
    outstanding = min(outstanding, size)
    mem, layout = _pair(size)
    driver = SplitDriver(mem, layout)
    driver.last_used_idx, driver.outstanding = last_used, outstanding
    mem.write_u16(layout.used_idx, used)
    try:
        driver.get_buf()
        jumped = False
    except UsedIndexJump:
        jumped = True
    except DeviceError:  # a later check (id, len) failing means the index check passed
        jumped = False
    assert (not jumped) == driver_accepts_used(used, last_used, outstanding)


COUNTS = st.one_of(st.integers(0, 40), st.sampled_from([0xFFFF, 0x10000, 0x10001, 70000]))
FLAGS = st.one_of(st.sampled_from([0, 1, 2, 3, 0xFFFF]), st.integers(0, 0xFFFF))


@pytest.mark.spec(
    "SPLIT-DRV-018", "SPLIT-DRV-019", "SPLIT-DRV-020", "SPLIT-DRV-021", "SPLIT-DRV-022",
    "SPLIT-DRV-023",
)
@given(event_idx=st.booleans(), added=COUNTS, new=INDEX, event=INDEX, flags=FLAGS)
@example(event_idx=True, added=1, new=0, event=0xFFFF, flags=1)
@example(event_idx=True, added=1, new=0, event=0, flags=0)
@example(event_idx=True, added=0x10000, new=5, event=9, flags=0)
def test_driver_kick_decision_matches_encoding(
    event_idx: bool, added: int, new: int, event: int, flags: int
) -> None:
    mem, layout = _pair(4)
    features = feature_mask(Feature.EVENT_IDX) if event_idx else 0
    driver = SplitDriver(mem, layout, features)
    driver._num_added, driver.avail_idx = added, new
    mem.write_u16(layout.avail_event, event)
    mem.write_u16(layout.used_flags, flags)
    assert driver.kick_prepare() == driver_kicks(event_idx, added, new, event, flags)


@pytest.mark.spec(
    "SPLIT-DEV-007", "SPLIT-DEV-008", "SPLIT-DEV-009", "SPLIT-DEV-010", "SPLIT-DEV-011",
    "SPLIT-DEV-012",
)
@given(event_idx=st.booleans(), used=COUNTS, old=INDEX, event=INDEX, flags=FLAGS)
@example(event_idx=True, used=1, old=0xFFFF, event=0xFFFF, flags=1)
@example(event_idx=True, used=2, old=0xFFFF, event=1, flags=0)
@example(event_idx=True, used=0x10000, old=3, event=2, flags=0)
def test_device_notify_decision_matches_encoding(
    event_idx: bool, used: int, old: int, event: int, flags: int
) -> None:
    mem, layout = _pair(4)
    features = feature_mask(Feature.EVENT_IDX) if event_idx else 0
    device = SplitDevice(mem, layout, features)
    new = (old + used) & 0xFFFF
    device._unsignalled, device._signalled_used, device.next_used = used, old, new
    mem.write_u16(layout.used_event, event)
    mem.write_u16(layout.avail_flags, flags)
    expected = device_notifies(event_idx, used, old, new, event, flags)
    assert device.needs_notification() == expected
    assert device._signalled_used == new


# --- the chain walk (obligations 3 and 6) ----------------------------------------------
TABLE_AT, INDIRECT_AT, MEMORY, HUGE = 0, 512, 1024, 1 << 40
DESC = st.builds(
    Descriptor,
    addr=st.one_of(st.integers(0, 900),
                   st.sampled_from([0, INDIRECT_AT, MEMORY - 16, MEMORY, 1 << 33, 2**64 - 16])),
    len=st.one_of(st.integers(0, 80), st.sampled_from([16, 32, 48, 64, 128]),
                  st.sampled_from([2**31, 2**32 - 16, 2**32 - 1])),
    flags=st.integers(0, 7),
    next=st.one_of(st.sampled_from([1, 2, 4, 8]), st.integers(0, 8)),  # == size often
)


def _pad(*descs: Descriptor) -> list[Descriptor]:
    return list(descs) + [Descriptor(addr=0, len=0)] * (8 - len(descs))


_NEXT, _WRITE, _IND = 1, 2, 4
_EDGES = [  # table, indirect table: the outcomes random tables rarely reach
    (_pad(Descriptor(addr=0, len=1, flags=_NEXT | _WRITE, next=1), Descriptor(addr=0, len=1)),
     _pad()),
    (_pad(Descriptor(addr=0, len=2**31, flags=_NEXT, next=1), Descriptor(addr=0, len=2**31)),
     _pad()),
    (_pad(Descriptor(addr=0, len=1, flags=_NEXT, next=1),
          Descriptor(addr=0, len=1, flags=_NEXT, next=0)), _pad()),
    (_pad(Descriptor(addr=INDIRECT_AT, len=32, flags=_IND)),
     _pad(Descriptor(addr=0, len=8, flags=_NEXT, next=1), Descriptor(addr=0, len=8, flags=_IND))),
    (_pad(Descriptor(addr=0, len=1, flags=_NEXT, next=2)), _pad()),
    (_pad(Descriptor(addr=INDIRECT_AT, len=32, flags=_IND | _WRITE)),
     _pad(Descriptor(addr=0, len=8, flags=_NEXT, next=1),
          Descriptor(addr=0, len=8, flags=_NEXT | _WRITE, next=0))),
    # one direct buffer, then a 2-entry table in a queue of 2: refused before the table
    (_pad(Descriptor(addr=0, len=1, flags=_NEXT, next=1),
          Descriptor(addr=INDIRECT_AT, len=32, flags=_IND)), _pad(Descriptor(addr=0, len=1))),
]


class _SparseMemory(GuestMemory):
    """1 KiB of real bytes that may claim a larger size; bytes past the first KiB read 0.

    The bounds check stays the real one (against the claimed size); only where the
    bytes come from differs, as for an untouched page of a large sparse mapping.
    """

    def read(self, addr: int, length: int) -> bytes:
        data = super().read(addr, length)
        return data + bytes(length - len(data))


def _walk_memory(
    table: list[Descriptor], indirect: list[Descriptor], huge: bool
) -> GuestMemory:
    """The two tables in 1 KiB of bytes; `huge` claims 1 TiB, read as zeros past the KiB."""
    mem = _SparseMemory(MEMORY)
    for i, desc in enumerate(table):
        mem.write(TABLE_AT + 16 * i, desc.pack())
    for i, desc in enumerate(indirect):
        mem.write(INDIRECT_AT + 16 * i, desc.pack())
    if huge:
        mem.size = HUGE  # lets chains reach 2^32 bytes without allocating them
    return mem


def _reader(mem: GuestMemory) -> Reader:
    def read(addr: Any) -> tuple[Any, Any, Any, Any]:
        desc = read_descriptor(mem, int(z3.simplify(addr).as_long()), 0)
        return (z3.BitVecVal(desc.addr, 64), z3.BitVecVal(desc.len, 32),
                z3.BitVecVal(desc.flags, 16), z3.BitVecVal(desc.next, 16))

    return read


@pytest.mark.spec("SPLIT-DRV-004", "SPLIT-DRV-007", "SPLIT-DEV-002", "SPLIT-DEV-001")
@given(
    size=st.sampled_from([1, 2, 4, 8]),
    table=st.lists(DESC, min_size=8, max_size=8),
    indirect=st.lists(DESC, min_size=8, max_size=8),
    head=st.integers(0, 7),
    indirect_ok=st.booleans(),
    huge=st.booleans(),
)
@example(size=2, table=_EDGES[0][0], indirect=_EDGES[0][1], head=0, indirect_ok=True, huge=False)
@example(size=2, table=_EDGES[1][0], indirect=_EDGES[1][1], head=0, indirect_ok=True, huge=True)
@example(size=2, table=_EDGES[2][0], indirect=_EDGES[2][1], head=0, indirect_ok=True, huge=False)
@example(size=2, table=_EDGES[3][0], indirect=_EDGES[3][1], head=0, indirect_ok=True, huge=False)
@example(size=2, table=_EDGES[4][0], indirect=_EDGES[4][1], head=0, indirect_ok=True, huge=False)
@example(size=2, table=_EDGES[5][0], indirect=_EDGES[5][1], head=0, indirect_ok=True, huge=False)
@example(  # an indirect table past the real bytes of a memory claiming 1 TiB
    size=2, table=_pad(Descriptor(addr=0, len=0), Descriptor(addr=MEMORY, len=16, flags=_IND)),
    indirect=_pad(Descriptor(addr=0, len=0)), head=1, indirect_ok=True, huge=True,
)
def test_walk_encoding_matches_walk_chain(
    size: int, table: list[Descriptor], indirect: list[Descriptor], head: int,
    indirect_ok: bool, huge: bool,
) -> None:
    head %= size
    mem = _walk_memory(table[:size], indirect, huge)
    walk = Walk(_reader(mem), w(mem.size), w(TABLE_AT), w(size), z3.BoolVal(indirect_ok))
    code, segments = run(walk, w(head), 2 * size + 4)
    try:
        chain = walk_chain(mem, TABLE_AT, size, head, indirect_ok=indirect_ok)
    except ChainError as error:
        assert code == Outcome.code(type(error)), (type(error).__name__, code)
        return
    assert code == Outcome.RETURNED
    expected = [(s.addr, s.len, False) for s in chain.readable]
    expected += [(s.addr, s.len, True) for s in chain.writable]
    assert segments == expected


# --- buffer ownership (obligation 4) -------------------------------------------------
OWN_SIZE = 4


def _own_view(driver: SplitDriver, device: SplitDevice, live: bool) -> dict[str, Any]:
    """The real pair's state in the encoding's terms (sets, not list orders)."""
    mem, layout, n = driver.mem, driver.layout, driver.size
    loc = {}
    avail = [mem.read_u16(layout.avail_ring((device.next_avail + k) % n))
             for k in range((driver.avail_idx - device.next_avail) % 65536)] if live else []
    used = [mem.read_u32(layout.used_ring((driver.last_used_idx + k) % n))
            for k in range((device.next_used - driver.last_used_idx) % 65536)] if live else []
    for h in range(n):
        if driver._state[h] is None:
            loc[h] = FREE
        elif not live:
            loc[h] = -1  # outstanding; where exactly no longer matters once not live
        else:
            loc[h] = DEVICE if h in device.in_flight else AVAIL if h in avail else USED
    return {"loc": loc, "avail": avail, "used": used, "n_free": driver.num_free,
            "n_out": driver.outstanding, "n_dev": len(device.in_flight) if live else None,
            "indices": (driver.avail_idx, device.next_avail, device.next_used,
                        driver.last_used_idx) if live else None}


def _own_queue(view: dict[str, Any], driver: SplitDriver, device: SplitDevice,
               live: bool) -> tuple[Queue, dict[str, list[int]]]:
    """A concrete encoding state for a real pair (lists in head order)."""
    n, loc = driver.size, view["loc"]
    lists = {"free": [h for h in range(n) if loc[h] == FREE],
             "out": [h for h in range(n) if loc[h] != FREE],
             "dev": sorted(device.in_flight) if live else []}

    def array(values: dict[int, int]) -> Any:
        arr = z3.K(z3.BitVecSort(32), z3.BitVecVal(0, 32))
        for key, value in values.items():
            arr = z3.Store(arr, key, value)
        return arr

    def bv32(value: int) -> Any:
        return z3.BitVecVal(value, 32)

    ring_a = {s: driver.mem.read_u16(driver.layout.avail_ring(s)) for s in range(n)}
    ring_u = {s: driver.mem.read_u32(driver.layout.used_ring(s)) for s in range(n)}
    start_a, start_u = device.next_avail, driver.last_used_idx
    apos = {h: (start_a + k) % 65536 for k, h in enumerate(view["avail"])}
    upos = {h: (start_u + k) % 65536 for k, h in enumerate(view["used"])}
    q = Queue(
        live=z3.BoolVal(live), loc=array({h: max(v, AVAIL) if v < 0 else v
                                          for h, v in loc.items()}),
        free=array(dict(enumerate(lists["free"]))),
        free_pos=array({h: i for i, h in enumerate(lists["free"])}),
        n_free=bv32(len(lists["free"])), out=array(dict(enumerate(lists["out"]))),
        out_pos=array({h: i for i, h in enumerate(lists["out"])}),
        n_out=bv32(len(lists["out"])), dev=array(dict(enumerate(lists["dev"]))),
        dev_pos=array({h: i for i, h in enumerate(lists["dev"])}),
        n_dev=bv32(len(lists["dev"])), avail_ring=array(ring_a), avail_pos=array(apos),
        used_ring=array(ring_u), used_pos=array(upos), avail_idx=bv32(driver.avail_idx),
        next_avail=bv32(device.next_avail), used_idx=bv32(device.next_used),
        last_used=bv32(driver.last_used_idx))
    return q, lists


def _predicted(q: Queue, n: int, live: bool) -> dict[str, Any]:
    """Read a concrete encoding state back in `_own_view`'s terms."""
    def get(term: Any) -> int:
        return int(z3.simplify(term).as_long())

    loc = {h: get(q.loc[h]) for h in range(n)}
    if not live:
        loc = {h: FREE if v == FREE else -1 for h, v in loc.items()}
    fns = Ring()
    avail = [get(q.avail_ring[fns.slot(fns.advance(q.next_avail, k), n)])
             for k in range(get(fns.distance(q.avail_idx, q.next_avail)))] if live else []
    used = [get(q.used_ring[fns.slot(fns.advance(q.last_used, k), n)])
            for k in range(get(fns.distance(q.used_idx, q.last_used)))] if live else []
    return {"loc": loc, "avail": avail, "used": used, "n_free": get(q.n_free),
            "n_out": get(q.n_out), "n_dev": get(q.n_dev) if live else None,
            "indices": tuple(get(x) for x in (q.avail_idx, q.next_avail, q.used_idx,
                                              q.last_used)) if live else None}


OWN_OPS = ["add", "pop", "push_used", "get_buf"] * 4 + ["reset", "detach", "detach"]
"""Reset ends the live part of a program, so it is drawn rarely."""


@pytest.mark.spec("INIT-DRV-007")
@given(start=INDEX, ops=st.lists(st.tuples(st.sampled_from(OWN_OPS),
                                           st.integers(0, OWN_SIZE - 1)), max_size=40))
@example(start=0xFFFE, ops=[("add", 0), ("add", 0), ("pop", 0), ("pop", 0), ("push_used", 1),
                            ("get_buf", 0), ("add", 0), ("reset", 0), ("detach", 0)])
def test_ownership_encoding_predicts_the_real_pair(start: int, ops: list[tuple[str, int]]) -> None:
    layout = SplitLayout.modern(OWN_SIZE)
    mem = GuestMemory(layout.end + 4096)
    driver = SplitDriver(mem, layout, initial_index=start)
    device = SplitDevice(mem, layout, initial_index=start)
    live, token = True, 0
    for op, pick in ops:
        before = _own_view(driver, device, live)
        q, lists = _own_queue(before, driver, device, live)
        if op == "add" and live and driver.num_free:
            token += 1
            head = driver.add_outbuf([Segment(layout.end, 8)], token)
            choice = lists["free"].index(head)
        elif op == "pop" and live and device._pending():
            device.pop()
            choice = 0
        elif op == "push_used" and live and device.in_flight:
            head = sorted(device.in_flight)[pick % len(device.in_flight)]
            device.push_used(head, 0)
            choice = lists["dev"].index(head)
        elif op == "get_buf" and live and device.next_used != driver.last_used_idx:
            driver.get_buf()
            choice = 0
        elif op == "reset" and live:
            device.reset()
            live, choice = False, 0
        elif op == "detach" and not live and driver.outstanding:
            head = next(h for h in range(OWN_SIZE) if driver._state[h] is not None)
            driver.detach_unused_buf()
            choice = lists["out"].index(head)
        else:
            continue
        guard, after = TRANSITIONS[op](q, OWN_SIZE, Ring(), z3.BitVecVal(choice, 32))
        assert z3.is_true(z3.simplify(guard)), op
        assert _predicted(after, OWN_SIZE, live) == _own_view(driver, device, live), op


@pytest.mark.spec("SPLIT-DEV-011", "SPLIT-DEV-012")
@given(start=INDEX, ops=st.lists(st.sampled_from(["add", "pop", "push", "notify", "reset"]),
                                 max_size=60))
def test_device_keeps_the_assumption_of_the_notification_proof(
    start: int, ops: list[str]
) -> None:
    """proof_need_event assumes next_used == signalled_used + unsignalled (mod 2^16)."""
    layout = SplitLayout.modern(4)
    mem = GuestMemory(layout.end + 4096)
    driver = SplitDriver(mem, layout, feature_mask(Feature.EVENT_IDX), initial_index=start)
    device = SplitDevice(mem, layout, feature_mask(Feature.EVENT_IDX), initial_index=start)
    for op in ops:
        if op == "add" and driver.num_free:
            driver.add_outbuf([Segment(layout.end, 8)], object())
        elif op == "pop" and device._pending():
            device.pop()
        elif op == "push" and device.in_flight:
            device.push_used(next(iter(device.in_flight)), 0)
        elif op == "notify":
            device.needs_notification()
        elif op == "reset":
            device.reset()
            driver = SplitDriver(mem, layout, feature_mask(Feature.EVENT_IDX),
                                 initial_index=start)
        unsignalled = device._unsignalled
        assert device.next_used == (device._signalled_used + unsignalled) % 65536


# --- descriptor ownership (obligation 4, descriptor level) ---------------------------
DESC_QUEUE = 8


def _desc_view(driver: SplitDriver) -> dict[str, Any]:
    """The driver's descriptor bookkeeping, with the ghost witness read off its links."""
    n, links = driver.size, driver._next
    free_at, d = [], driver.free_head
    for _ in range(driver.num_free):
        free_at.append(d)
        d = links[d] if d < n else -1
    descs = {h: (0 if r is None else r.descs) for h, r in enumerate(driver._state)}
    at: dict[tuple[int, int], int] = {}
    for h, k in descs.items():
        d = h
        for j in range(k):
            at[h, j] = d
            d = links[d] if j + 1 < k else d
    owner = {d: FREE_DESC for d in free_at} | {d: h for (h, _), d in at.items()}
    rank = {d: j for j, d in enumerate(free_at)} | {d: j for (_, j), d in at.items()}
    table = [Descriptor.unpack(driver.mem.read(driver.layout.desc_addr(d), DESC_BYTES))
             for d in range(n)]
    return {"next": list(links), "free_head": driver.free_head, "num_free": driver.num_free,
            "descs": descs, "free_at": free_at, "at": at, "owner": owner, "rank": rank,
            "table_next": [t.next for t in table],
            "chained": [bool(t.flags & DescFlag.NEXT) for t in table]}


def _int_array(values: dict[int, int]) -> Any:
    arr = z3.K(z3.IntSort(), z3.IntVal(0))
    for key, value in values.items():
        arr = z3.Store(arr, key, value)
    return arr


def _desc_state(view: dict[str, Any]) -> Descs:
    """The encoded state of a view. The ghosts `base` and `block_of` (not the driver's)
    are a witness: the outstanding chains' blocks laid end to end from 0, in head order."""
    chained = z3.K(z3.IntSort(), z3.BoolVal(False))
    for d, flag in enumerate(view["chained"]):
        chained = z3.Store(chained, d, flag)
    bases, block_of, end = {}, {}, 0
    for h, k in view["descs"].items():
        if k:
            bases[h], end = end, end + k
            block_of |= {p: h for p in range(bases[h], end)}
    at = z3.Lambda([z3.Int("h"), z3.Int("j")], z3.IntVal(0))
    for (h, j), d in view["at"].items():
        at = z3.Store(at, h, j, d)
    return Descs(next=_int_array(dict(enumerate(view["next"]))),
                 free_head=z3.IntVal(view["free_head"]), num_free=z3.IntVal(view["num_free"]),
                 descs=_int_array(view["descs"]), owner=_int_array(view["owner"]),
                 rank=_int_array(view["rank"]),
                 free_at=_int_array(dict(enumerate(view["free_at"]))), at=at,
                 base=_int_array(bases), block_of=_int_array(block_of),
                 table_next=_int_array(dict(enumerate(view["table_next"]))),
                 chained=chained)


def _desc_predicted(s: Descs, n: int) -> dict[str, Any]:
    """Read a concrete encoded state back in `_desc_view`'s terms."""
    def get(term: Any) -> int:
        return int(z3.simplify(term).as_long())

    num_free = get(s.num_free)
    descs = {h: get(s.descs[h]) for h in range(n)}
    free_at = [get(s.free_at[j]) for j in range(num_free)]
    at = {(h, j): get(s.at[h, j]) for h, k in descs.items() for j in range(k)}
    return {"next": [get(s.next[d]) for d in range(n)], "free_head": get(s.free_head),
            "num_free": num_free, "descs": descs, "free_at": free_at, "at": at,
            "owner": {d: get(s.owner[d]) for d in range(n)},
            "rank": {d: get(s.rank[d]) for d in range(n)},
            "table_next": [get(s.table_next[d]) for d in range(n)],
            "chained": [z3.is_true(z3.simplify(s.chained[d])) for d in range(n)]}


def _desc_invariant_holds(view: dict[str, Any], n: int) -> bool:
    """Every part of the invariant, at every element that is not vacuous, on a state."""
    inv = DescInvariant(_desc_state(view), z3.IntVal(n))
    parts = [inv.glob(), *(inv.desc(d) for d in range(-1, n + 1)),
             *(inv.head(h) for h in range(-1, n + 1)),
             *(inv.free_pos(j) for j in range(-1, n + 1)),
             *(inv.chain_pos(h, j) for h in range(n)
               for j in range(-1, view["descs"][h] + 1)),  # others: vacuous
             *(inv.cover(p) for p in range(-1, n + 1)),
             *(inv.apart(g, h) for g in range(n) for h in range(n)
               if view["descs"][g] and view["descs"][h])]
    return all(z3.is_true(z3.simplify(p)) for p in parts)


DESC_OPS = st.tuples(st.sampled_from(["add", "add", "complete", "reset"]),
                     st.integers(0, 3), st.integers(0, 2), st.integers(0, DESC_QUEUE - 1))
"""(op, device-readable parts, device-writable parts, which held head completes)."""


@pytest.mark.spec("INIT-DRV-007")
@given(indirect=st.booleans(), ops=st.lists(DESC_OPS, max_size=30))
@example(indirect=False, ops=[("add", 3, 0, 0), ("add", 2, 1, 0), ("add", 3, 0, 0),
                              ("complete", 0, 0, 1), ("add", 1, 1, 0), ("complete", 0, 0, 0),
                              ("reset", 0, 0, 0)])
@example(indirect=True, ops=[("add", 2, 1, 0), ("add", 1, 0, 0), ("add", 3, 2, 0),
                             ("complete", 0, 0, 0), ("add", 0, 2, 0), ("reset", 0, 0, 0)])
def test_descriptor_encoding_predicts_the_real_driver(
    indirect: bool, ops: list[tuple[str, int, int, int]]
) -> None:
    """add (k = parts, or 1 for an indirect table) and release (get_buf, detach) agree."""
    layout = SplitLayout.modern(DESC_QUEUE)
    mem = GuestMemory(layout.end + 8192)
    features = feature_mask(Feature.INDIRECT_DESC) if indirect else 0
    allocator = GuestAllocator(layout.end + 4096, layout.end + 8192)
    driver = SplitDriver(mem, layout, features, allocator=allocator)
    device = SplitDevice(mem, layout, features)
    seg = Segment(layout.end, 8)
    assert _desc_invariant_holds(_desc_view(driver), DESC_QUEUE)
    for op, reads, writes, pick in ops:
        before = _desc_view(driver)
        s = _desc_state(before)
        if op == "add" and reads + writes:
            try:
                head = driver.add_sgs([seg] * reads, [seg] * writes, object())
            except NoSpace:
                k = reads + writes  # direct (no table is taken when nothing is free)
                guard, _ = DESC_TRANSITIONS["add"](s, DESC_QUEUE, z3.IntVal(k))
                assert z3.is_false(z3.simplify(guard))
                assert _desc_view(driver) == before
                continue
            record = driver._state[head]
            assert record is not None
            k = 1 if record.table is not None else reads + writes
            guard, after = DESC_TRANSITIONS["add"](s, DESC_QUEUE, z3.IntVal(k))
            assert z3.simplify(s.free_head).as_long() == head
        elif op == "complete" and driver.outstanding:
            while device._pending():
                device.pop()
            held = sorted(device.in_flight)
            if not held:
                continue
            head = held[pick % len(held)]
            device.push_used(head, 0)
            driver.get_buf()
            guard, after = DESC_TRANSITIONS["release"](s, DESC_QUEUE, z3.IntVal(head))
        elif op == "reset" and driver.outstanding:
            device.reset()
            while driver.outstanding:  # teardown: detach every buffer, one release each
                s = _desc_state(_desc_view(driver))
                head = next(h for h, r in enumerate(driver._state) if r is not None)
                driver.detach_unused_buf()
                guard, after = DESC_TRANSITIONS["release"](s, DESC_QUEUE, z3.IntVal(head))
                _agrees(guard, after, driver)
            assert driver.num_free == DESC_QUEUE
            driver = SplitDriver(mem, layout, features, allocator=allocator)
            device = SplitDevice(mem, layout, features)
            continue
        else:
            continue
        _agrees(guard, after, driver)
    assert _desc_invariant_holds(_desc_view(driver), DESC_QUEUE)


def _agrees(guard: Any, after: Descs, driver: SplitDriver) -> None:
    """The step was enabled and predicted the state the driver reached."""
    assert z3.is_true(z3.simplify(guard))
    assert _desc_predicted(after, DESC_QUEUE) == _desc_view(driver)
