"""Memory models for the interleaving explorer: store buffers and invalidate queues.

Rules:
- The shared memory of N sides is an immutable value (`Shared`), so the explorer can
  hash and revisit states. Each side has its own view of memory, a store buffer of its
  writes not yet visible to others, and (in the weakest model) an invalidate queue of
  the others' writes not yet visible to it.
- Four models, strongest first (`MODELS`):
  * SC: every write is visible to everyone at once; barriers do nothing.
  * TSO (x86): a side's writes wait in a FIFO store buffer; a side reads its own
    buffered writes; buffered writes become visible in order, at any moment (chosen
    lazily, when another side reads: `read_choices`); a full barrier drains the
    buffer. A write or read barrier does nothing (TSO keeps store order and load
    order).
  * PSO: as TSO, but buffered writes to different addresses may become visible in any
    order, except across a write barrier (a write barrier splits the buffer: nothing
    after it flushes before everything before it). Two writes that overlap keep their
    order (coherence).
  * WEAK: PSO plus an invalidate queue per side: a flushed write reaches the other
    sides' views only when it is applied (decided lazily, at the reads that could
    observe it: `read_choices`), in any order among different addresses, so a side's
    later read can see an older value than its earlier read saw elsewhere (load-load
    reordering). A read barrier applies the whole queue; a full barrier drains the
    store buffer and applies the queue. This is the store buffer plus invalidate queue
    machine of McKenney's "Memory Barriers: a Hardware View for Software Hackers", the
    usual way to explain why `virtio_rmb` exists.
- Every address has one writer in a split ring (§2.7): reads fully served from a side's
  own store buffer are therefore local to that side, which the explorer uses to merge
  them into the previous step. The packed ring (§2.8) hands descriptor bytes over: the
  driver writes them, the device overwrites them used. That stays sound while at most
  one side has a write to a byte not yet visible everywhere; `pending_elsewhere` is the
  test the explorer makes at every write to enforce it (ownership hand-over).

Spec: §2.7.13.3 (barrier before avail idx), §2.7.13.4 (barrier before reading the
suppression fields), §2.7.8 (used element before used idx); Linux's virtio_wmb,
virtio_rmb, virtio_mb are the three `Barrier` kinds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, TypeVar

from .memory import Barrier

Store = tuple[int, bytes]
"""A buffered write: address and bytes."""

FENCE = None
"""A write-barrier marker inside a store buffer (PSO and WEAK only)."""

Entry = Store | None
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class MemoryModel:
    """Which reorderings a model allows (see the module rules)."""

    name: str
    buffered: bool
    fifo: bool
    invalidate: bool


SC = MemoryModel("SC", buffered=False, fifo=True, invalidate=False)
TSO = MemoryModel("TSO", buffered=True, fifo=True, invalidate=False)
PSO = MemoryModel("PSO", buffered=True, fifo=False, invalidate=False)
WEAK = MemoryModel("WEAK", buffered=True, fifo=False, invalidate=True)
MODELS = (SC, TSO, PSO, WEAK)


class Shared(NamedTuple):
    """The memory of N sides: per side a view, a store buffer, an invalidate queue."""

    views: tuple[bytes, ...]
    buffers: tuple[tuple[Entry, ...], ...]
    incoming: tuple[tuple[Store, ...], ...]


def initial(memory: bytes, sides: int) -> Shared:
    """Every side sees `memory`; nothing is buffered."""
    return Shared((memory,) * sides, ((),) * sides, ((),) * sides)


def _patch(view: bytes, addr: int, data: bytes) -> bytes:
    return view[:addr] + data + view[addr + len(data) :]


def _overlaps(a: Store, b: Store) -> bool:
    return a[0] < b[0] + len(b[1]) and b[0] < a[0] + len(a[1])


def _replace(items: tuple[T, ...], index: int, value: T) -> tuple[T, ...]:
    return (*items[:index], value, *items[index + 1:])


def load(shared: Shared, side: int, addr: int, length: int) -> bytes:
    """What `side` reads: its own buffered writes over its view (store forwarding)."""
    value = bytearray(shared.views[side][addr : addr + length])
    for entry in shared.buffers[side]:
        if entry is None:
            continue
        start, data = entry
        lo, hi = max(addr, start), min(addr + length, start + len(data))
        if lo < hi:
            value[lo - addr : hi - addr] = data[lo - start : hi - start]
    return bytes(value)


def forwarded(shared: Shared, side: int, addr: int, length: int) -> bool:
    """Whether every byte of the read comes from `side`'s own store buffer."""
    covered = bytearray(length)
    for entry in shared.buffers[side]:
        if entry is None:
            continue
        start, data = entry
        for byte in range(max(addr, start), min(addr + length, start + len(data))):
            covered[byte - addr] = 1
    return all(covered)


def pending_elsewhere(shared: Shared, side: int, addr: int, length: int) -> bool:
    """Whether a write by another side to `[addr, addr + length)` is not yet visible to all.

    That is: still in another side's store buffer, or still queued for `side` (WEAK).
    With two sides this is exact; with more, a write queued for a third side counts too
    (it may be `side`'s own, so the test is then conservative).
    """
    window = (addr, bytes(length))
    for other, buffer in enumerate(shared.buffers):
        if other != side and any(e is not None and _overlaps(e, window) for e in buffer):
            return True
    queues = shared.incoming if len(shared.views) > 2 else (shared.incoming[side],)
    return any(_overlaps(entry, window) for queue in queues for entry in queue)


def store(model: MemoryModel, shared: Shared, side: int, addr: int, data: bytes) -> Shared:
    """`side` writes `data` at `addr`: into its buffer, or (SC) straight to every view."""
    if not model.buffered:
        views = tuple(_patch(view, addr, data) for view in shared.views)
        return shared._replace(views=views)
    buffer = (*shared.buffers[side], (addr, data))
    return shared._replace(buffers=_replace(shared.buffers, side, buffer))


def fence(model: MemoryModel, shared: Shared, side: int, kind: Barrier) -> Shared:
    """The effect of a barrier of `kind` by `side` (see the module rules)."""
    if kind is Barrier.FULL:
        everything = set(range(len(shared.buffers[side])))
        return _apply_all(_flush_set(model, shared, side, everything), side)
    if kind is Barrier.READ:
        return _apply_all(shared, side)
    buffer = shared.buffers[side]
    if model.fifo or not buffer or buffer[-1] is FENCE:
        return shared
    return shared._replace(buffers=_replace(shared.buffers, side, (*buffer, FENCE)))


def fence_is_local(model: MemoryModel, shared: Shared, side: int, kind: Barrier) -> bool:
    """Whether a barrier changes only what `side` alone can observe (so it commutes)."""
    if kind is Barrier.WRITE:
        return True
    if kind is Barrier.READ:
        return not shared.incoming[side]
    return not shared.buffers[side] and not shared.incoming[side]


def _must_precede(model: MemoryModel, buffer: tuple[Entry, ...], older: int, newer: int) -> bool:
    """Whether buffered entry `older` must become visible before entry `newer`."""
    first, second = buffer[older], buffer[newer]
    if first is None or second is None:
        return False
    return model.fifo or FENCE in buffer[older:newer] or _overlaps(first, second)


def _flush_closure(model: MemoryModel, buffer: tuple[Entry, ...], chosen: set[int]) -> set[int]:
    """`chosen` plus every entry that must become visible before one of them."""
    closed = set(chosen)
    for index in sorted(chosen, reverse=True):
        closed |= {i for i in range(index) if _must_precede(model, buffer, i, index)}
    return closed


def _flush_set(model: MemoryModel, shared: Shared, side: int, indices: set[int]) -> Shared:
    """Entries `indices` of `side`'s buffer (a closed set) become visible, in order."""
    if not indices:
        return shared
    buffer = shared.buffers[side]
    views = list(shared.views)
    incoming = list(shared.incoming)
    for index in sorted(indices):
        entry = buffer[index]
        if entry is None:
            continue
        for other in range(len(views)):
            if other == side or not model.invalidate:
                views[other] = _patch(views[other], *entry)
            else:
                incoming[other] = (*incoming[other], entry)
    rest: list[Entry] = []
    for index, entry in enumerate(buffer):
        if index in indices or (entry is FENCE and (not rest or rest[-1] is FENCE)):
            continue
        rest.append(entry)
    if rest and rest[-1] is FENCE:
        rest.pop()
    buffers = _replace(shared.buffers, side, tuple(rest))
    return Shared(tuple(views), buffers, tuple(incoming))


def _subsets(items: list[int]) -> list[set[int]]:
    return [
        {items[bit] for bit in range(len(items)) if mask >> bit & 1}
        for mask in range(1 << len(items))
    ]


def read_choices(
    model: MemoryModel, shared: Shared, side: int, addr: int, length: int
) -> list[Shared]:
    """The states `side` may read `[addr, addr + length)` from: one per outcome.

    Other sides' buffered writes become visible lazily, at the only moments anyone
    can tell: a read of their bytes (here), the writer's own full barrier, quiescence.
    Every address has one writer, so a write becoming visible commutes with every
    other event; choosing here, per read, is therefore the same set of behaviours as a
    scheduler flushing at arbitrary moments, without the orders nobody can observe.
    Each choice makes some overlapping writes visible, with every write that must
    precede them (store order in TSO, write barriers and same-address order in PSO
    and WEAK). In WEAK a visible write is still queued for this side; a second choice
    applies some overlapping queued writes (with the older ones they overlap).
    """
    if not model.buffered:
        return [shared]
    window = (addr, bytes(length))
    outcomes: dict[Shared, None] = {}
    others = [other for other in range(len(shared.views)) if other != side]
    flushes = _flush_options(model, shared, others, window)
    for flushed in flushes:
        if not model.invalidate:
            outcomes[flushed] = None
            continue
        queue = flushed.incoming[side]
        touching = [i for i, entry in enumerate(queue) if _overlaps(entry, window)]
        for chosen in _subsets(touching):
            for index in sorted(chosen, reverse=True):
                chosen |= {i for i in range(index) if _overlaps(queue[i], queue[index])}
            outcomes[_apply_some(flushed, side, tuple(sorted(chosen)))] = None
    return list(outcomes)


def _flush_options(
    model: MemoryModel, shared: Shared, others: list[int], window: Store
) -> list[Shared]:
    """Every way the other sides' writes overlapping `window` may have become visible."""
    options = [shared]
    for other in others:
        buffer = shared.buffers[other]
        touching = [
            i for i, entry in enumerate(buffer) if entry is not None and _overlaps(entry, window)
        ]
        closures = {
            frozenset(_flush_closure(model, buffer, chosen)) for chosen in _subsets(touching)
        }
        options = [
            _flush_set(model, option, other, set(closure))
            for option in options
            for closure in sorted(closures, key=sorted)
        ]
    return options


def _apply_some(shared: Shared, side: int, indices: tuple[int, ...]) -> Shared:
    """Apply the queued entries at `indices` (in queue order) to `side`'s view."""
    if not indices:
        return shared
    queue = shared.incoming[side]
    view = shared.views[side]
    for index in indices:
        view = _patch(view, *queue[index])
    rest = tuple(entry for i, entry in enumerate(queue) if i not in indices)
    views = _replace(shared.views, side, view)
    return Shared(views, shared.buffers, _replace(shared.incoming, side, rest))


def _apply_all(shared: Shared, side: int) -> Shared:
    return _apply_some(shared, side, tuple(range(len(shared.incoming[side]))))


def drain(model: MemoryModel, shared: Shared) -> Shared:
    """Quiescence: every buffered and queued write reaches every view."""
    for side in range(len(shared.views)):
        shared = _flush_set(model, shared, side, set(range(len(shared.buffers[side]))))
    for side in range(len(shared.views)):
        shared = _apply_all(shared, side)
    return shared
