"""Hostile rings fed to Linux's device side (vringh) and to ours, side by side.

The cases are those of tests/test_hostile_device.py (the split-virtqueue issue's
hostile inputs), built the same way with `impl.testing.MockDriverRing`, plus a few
conforming corner cases where the two could part (zero-length descriptors, an
indirect descriptor flagged WRITE, direct-then-indirect). Each case is built twice,
once per device, on memories of its own; then each device pops once more and that
answer is compared with `OUTCOMES`, so a change in either side shows up here.
docs/oracle.md carries the same table with which answer the spec supports.

An answer is the error class the side raised (for vringh, the adapter's
`PeerRejectedChain` / `PeerRejectedRing` with vringh's errno), `accepted r+w` with
the readable and writable segment counts handed out, or `nothing`.
"""

from __future__ import annotations

import errno
import mmap
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from peers.linux import LinuxDevice, require_library

from impl.chain import Chain
from impl.errors import PeerRejectedChain, PeerRejectedRing, VirtioError
from impl.memory import GuestMemory
from impl.spec import DESC_SIZE, MAX_CHAIN_BYTES, DescFlag, Feature, feature_mask
from impl.split_device import SplitDevice
from impl.testing import ADDR_LIMIT, MockDriverRing, descriptor_tables

SIZE = 8
START_NEAR_WRAP = 0xFFFE
INDIRECT = feature_mask(Feature.INDIRECT_DESC)
NEXT, WRITE, IND = int(DescFlag.NEXT), int(DescFlag.WRITE), int(DescFlag.INDIRECT)
MEMORY = MockDriverRing.memory_for(SIZE, seg_len=32)
"""Room for 32 buffers of 16 bytes, so a table of SIZE + 1 entries is inside memory."""

Pop = Callable[[], object]
Build = Callable[[MockDriverRing, Pop], None]


def next_out_of_range(drv: MockDriverRing, pop: Pop) -> None:
    drv.set_desc(3, drv.buffer(0), 16, NEXT, SIZE)
    drv.publish(3)


def next_out_of_range_in_table(drv: MockDriverRing, pop: Pop) -> None:
    table = drv.indirect_chain(2, 2, 0)
    drv.write_table(table + DESC_SIZE, [(drv.buffer(1), 16, NEXT, 2)])
    drv.publish(2)


def loop_direct(drv: MockDriverRing, pop: Pop) -> None:
    drv.set_desc(1, drv.buffer(1), 16, NEXT, 2)
    drv.set_desc(2, drv.buffer(2), 16, NEXT, 4)
    drv.set_desc(4, drv.buffer(4), 16, NEXT, 1)
    drv.publish(1)


def loop_on_itself(drv: MockDriverRing, pop: Pop) -> None:
    drv.set_desc(5, drv.buffer(5), 16, NEXT, 5)
    drv.publish(5)


def loop_in_table(drv: MockDriverRing, pop: Pop) -> None:
    table = drv.indirect_chain(0, 3, 0)
    drv.write_table(table + 2 * DESC_SIZE, [(drv.buffer(2), 16, NEXT, 0)])
    drv.publish(0)


def table_longer_than_queue(drv: MockDriverRing, pop: Pop) -> None:
    drv.indirect_chain(0, SIZE + 1, 0)
    drv.publish(0)


def direct_then_table_too_long(drv: MockDriverRing, pop: Pop) -> None:
    drv.indirect_chain(3, SIZE, 0)
    drv.set_desc(1, drv.buffer(1), 16, NEXT, 2)
    drv.set_desc(2, drv.buffer(2), 16, NEXT, 3)
    drv.publish(1)


def exactly_queue_size(drv: MockDriverRing, pop: Pop) -> None:
    drv.set_desc(0, drv.buffer(0), 16, NEXT, 1)
    drv.indirect_chain(1, 2, SIZE - 3)
    drv.publish(0)


def indirect_well_formed(drv: MockDriverRing, pop: Pop) -> None:
    drv.indirect_chain(4, 1, 1)
    drv.publish(4)


def indirect_flagged_write(drv: MockDriverRing, pop: Pop) -> None:
    table = drv.indirect_chain(4, 1, 1)
    drv.set_desc(4, table, 2 * DESC_SIZE, IND | WRITE, 0)
    drv.publish(4)


def nested_indirect(drv: MockDriverRing, pop: Pop) -> None:
    table = drv.indirect_chain(0, 2, 0)
    inner = table + DESC_SIZE * SIZE
    drv.write_table(inner, [(drv.buffer(7), 16, 0, 0)])
    drv.write_table(table + DESC_SIZE, [(inner, DESC_SIZE, IND, 0)])
    drv.publish(0)


def indirect_with_next(drv: MockDriverRing, pop: Pop) -> None:
    table = drv.indirect_chain(6, 1, 0)
    drv.set_desc(6, table, DESC_SIZE, IND | NEXT, 7)
    drv.set_desc(7, drv.buffer(7), 16, 0, 0)
    drv.publish(6)


def indirect_with_next_zero(drv: MockDriverRing, pop: Pop) -> None:
    table = drv.indirect_chain(6, 1, 0)
    drv.set_desc(6, table, DESC_SIZE, IND | NEXT, 0)
    drv.set_desc(0, drv.buffer(7), 16, 0, 0)
    drv.publish(6)


def table_length(length: int) -> Build:
    def build(drv: MockDriverRing, pop: Pop) -> None:
        table = drv.indirect_chain(2, 3, 0)
        drv.set_desc(2, table, length, IND, 0)
        drv.publish(2)
    return build


def readable_after_writable(drv: MockDriverRing, pop: Pop) -> None:
    drv.set_desc(0, drv.buffer(0), 16, NEXT, 1)
    drv.set_desc(1, drv.buffer(1), 16, WRITE | NEXT, 2)
    drv.set_desc(2, drv.buffer(2), 16, 0, 0)
    drv.publish(0)


def readable_after_writable_across(drv: MockDriverRing, pop: Pop) -> None:
    drv.set_desc(0, drv.buffer(0), 16, WRITE | NEXT, 1)
    drv.indirect_chain(1, 1, 1)
    drv.publish(0)


OUTSIDE = [
    (MEMORY, 1),
    (MEMORY - 8, 9),
    (MEMORY + (1 << 20), 16),
    (ADDR_LIMIT - 8, 16),
    (ADDR_LIMIT - 1, 1),
    (ADDR_LIMIT - 16, 0xFFFF_FFFF),
]


def buffer_outside(addr: int, length: int) -> Build:
    def build(drv: MockDriverRing, pop: Pop) -> None:
        drv.set_desc(0, drv.buffer(0), 16, NEXT, 1)
        drv.set_desc(1, addr, length, WRITE, 0)
        drv.publish(0)
    return build


def buffer_outside_in_table(addr: int, length: int) -> Build:
    def build(drv: MockDriverRing, pop: Pop) -> None:
        table = drv.indirect_chain(0, 2, 0)
        drv.write_table(table + DESC_SIZE, [(addr, length, 0, 0)])
        drv.publish(0)
    return build


def table_outside(addr: int) -> Build:
    def build(drv: MockDriverRing, pop: Pop) -> None:
        drv.set_desc(3, addr, 2 * DESC_SIZE, IND, 0)
        drv.publish(3)
    return build


def zero_length(addr: int) -> Build:
    def build(drv: MockDriverRing, pop: Pop) -> None:
        drv.set_desc(0, addr, 0, 0, 0)
        drv.publish(0)
    return build


def chain_of_4_gib(drv: MockDriverRing, pop: Pop) -> None:
    half = MAX_CHAIN_BYTES // 2
    drv.set_desc(0, 0, half, NEXT, 1)
    drv.set_desc(1, 0, half - 1, NEXT, 2)
    drv.set_desc(2, 0, 1, 0, 0)
    drv.publish(0)


def head_out_of_range(head: int) -> Build:
    def build(drv: MockDriverRing, pop: Pop) -> None:
        drv.publish(head)
    return build


def avail_jump(ahead: int) -> Build:
    def build(drv: MockDriverRing, pop: Pop) -> None:
        drv.chain(0, 1, 0)
        drv.set_avail_idx(drv.initial_index + ahead)
    return build


def avail_exactly_full(drv: MockDriverRing, pop: Pop) -> None:
    for head in range(SIZE):
        drv.set_desc(head, drv.buffer(head), 16, 0, 0)
    drv.publish(*range(SIZE))


def head_already_held(drv: MockDriverRing, pop: Pop) -> None:
    drv.chain(2, 1, 1)
    drv.publish(2)
    pop()
    drv.publish(2)


def avail_decrement(drv: MockDriverRing, pop: Pop) -> None:
    drv.chain(0, 1, 0)
    drv.chain(1, 1, 0)
    drv.publish(0, 1)
    pop()
    pop()
    drv.set_avail_idx(drv.avail_idx - 1)


# name: (build, features, starting index, needs 2^31 bytes of memory)
CASES: dict[str, tuple[Build, int, int, bool]] = {
    "next out of range": (next_out_of_range, INDIRECT, 0, False),
    "next out of range inside an indirect table": (next_out_of_range_in_table, INDIRECT, 0, False),
    "loop, direct": (loop_direct, INDIRECT, 0, False),
    "loop, direct, across the index wrap": (loop_direct, INDIRECT, START_NEAR_WRAP, False),
    "loop on itself": (loop_on_itself, INDIRECT, 0, False),
    "loop inside an indirect table": (loop_in_table, INDIRECT, 0, False),
    "indirect table longer than the queue": (table_longer_than_queue, INDIRECT, 0, False),
    "direct, then a table: one more than the queue": (direct_then_table_too_long, INDIRECT, 0,
                                                      False),
    "direct, then a table: exactly the queue size": (exactly_queue_size, INDIRECT, 0, False),
    "indirect table, well formed": (indirect_well_formed, INDIRECT, 0, False),
    "indirect descriptor flagged WRITE": (indirect_flagged_write, INDIRECT, 0, False),
    "indirect without VIRTIO_F_INDIRECT_DESC": (indirect_well_formed, 0, 0, False),
    "nested indirect table": (nested_indirect, INDIRECT, 0, False),
    "INDIRECT with NEXT (next = 7)": (indirect_with_next, INDIRECT, 0, False),
    "INDIRECT with NEXT (next = 0)": (indirect_with_next_zero, INDIRECT, 0, False),
    **{f"indirect len {n}": (table_length(n), INDIRECT, 0, False)
       for n in (0, 8, DESC_SIZE + 1, 3 * DESC_SIZE - 1)},
    "readable after writable": (readable_after_writable, INDIRECT, 0, False),
    "readable after writable, across a table": (readable_after_writable_across, INDIRECT, 0,
                                                False),
    **{f"buffer [{a:#x}, +{n:#x}) outside memory": (buffer_outside(a, n), INDIRECT, 0, False)
       for a, n in OUTSIDE},
    **{f"buffer [{a:#x}, +{n:#x}) outside memory, in a table": (
        buffer_outside_in_table(a, n), INDIRECT, 0, False) for a, n in OUTSIDE},
    "indirect table at the end of memory": (table_outside(MEMORY - DESC_SIZE), INDIRECT, 0,
                                            False),
    "indirect table wrapping 2^64": (table_outside(ADDR_LIMIT - DESC_SIZE), INDIRECT, 0, False),
    "zero-length descriptor at address 0": (zero_length(0), INDIRECT, 0, False),
    "zero-length descriptor elsewhere": (zero_length(MEMORY // 2), INDIRECT, 0, False),
    "chain of 2^32 bytes": (chain_of_4_gib, INDIRECT, 0, True),
    **{f"avail head {h:#x} out of range": (head_out_of_range(h), INDIRECT, 0, False)
       for h in (SIZE, SIZE + 1, 0xFFFF)},
    **{f"avail.idx {n:#x} ahead": (avail_jump(n), INDIRECT, start, False)
       for n in (SIZE + 1, 0x8000, 0xFFFF) for start in (0,)},
    "avail.idx exactly the queue size ahead": (avail_exactly_full, INDIRECT, START_NEAR_WRAP,
                                               False),
    "a held head made available again": (head_already_held, INDIRECT, 0, False),
    "avail.idx goes back": (avail_decrement, INDIRECT, 0, False),
}

OUTCOMES: dict[str, tuple[str, str]] = {
    'next out of range': ('NextOutOfRange', 'refused, EINVAL'),
    'next out of range inside an indirect table': ('NextOutOfRange', 'refused, EINVAL'),
    'loop, direct': ('DescriptorLoop', 'refused, ELOOP'),
    'loop, direct, across the index wrap': ('DescriptorLoop', 'refused, ELOOP'),
    'loop on itself': ('DescriptorLoop', 'refused, ELOOP'),
    'loop inside an indirect table': ('DescriptorLoop', 'refused, ELOOP'),
    'indirect table longer than the queue': ('ChainTooLong', 'accepted 9r+0w'),
    'direct, then a table: one more than the queue': ('ChainTooLong', 'accepted 10r+0w'),
    'direct, then a table: exactly the queue size': ('accepted 3r+5w', 'accepted 3r+5w'),
    'indirect table, well formed': ('accepted 1r+1w', 'accepted 1r+1w'),
    'indirect descriptor flagged WRITE': ('accepted 1r+1w', 'accepted 1r+1w'),
    'indirect without VIRTIO_F_INDIRECT_DESC': ('IndirectNotNegotiated', 'accepted 1r+1w'),
    'nested indirect table': ('NestedIndirect', 'refused, EINVAL'),
    'INDIRECT with NEXT (next = 7)': ('IndirectWithNext', 'accepted 2r+0w'),
    'INDIRECT with NEXT (next = 0)': ('IndirectWithNext', 'accepted 1r+0w'),
    'indirect len 0': ('BadIndirectTable', 'refused, ELOOP'),
    'indirect len 8': ('BadIndirectTable', 'refused, EINVAL'),
    'indirect len 17': ('BadIndirectTable', 'refused, EINVAL'),
    'indirect len 47': ('BadIndirectTable', 'refused, EINVAL'),
    'readable after writable': ('ReadableAfterWritable', 'refused, EINVAL'),
    'readable after writable, across a table': ('ReadableAfterWritable', 'refused, EINVAL'),
    'buffer [0x3e0, +0x1) outside memory': ('BufferOutOfBounds', 'refused, EINVAL'),
    'buffer [0x3d8, +0x9) outside memory': ('BufferOutOfBounds', 'refused, EINVAL'),
    'buffer [0x1003e0, +0x10) outside memory': ('BufferOutOfBounds', 'refused, EINVAL'),
    'buffer [0xfffffffffffffff8, +0x10) outside memory': ('BufferOutOfBounds', 'refused, EINVAL'),
    'buffer [0xffffffffffffffff, +0x1) outside memory': ('BufferOutOfBounds', 'refused, EINVAL'),
    'buffer [0xfffffffffffffff0, +0xffffffff) outside memory':
        ('BufferOutOfBounds', 'refused, EINVAL'),
    'buffer [0x3e0, +0x1) outside memory, in a table': ('BufferOutOfBounds', 'refused, EINVAL'),
    'buffer [0x3d8, +0x9) outside memory, in a table': ('BufferOutOfBounds', 'refused, EINVAL'),
    'buffer [0x1003e0, +0x10) outside memory, in a table': ('BufferOutOfBounds', 'refused, EINVAL'),
    'buffer [0xfffffffffffffff8, +0x10) outside memory, in a table':
        ('BufferOutOfBounds', 'refused, EINVAL'),
    'buffer [0xffffffffffffffff, +0x1) outside memory, in a table':
        ('BufferOutOfBounds', 'refused, EINVAL'),
    'buffer [0xfffffffffffffff0, +0xffffffff) outside memory, in a table':
        ('BufferOutOfBounds', 'refused, EINVAL'),
    'indirect table at the end of memory': ('BufferOutOfBounds', 'refused, EINVAL'),
    'indirect table wrapping 2^64': ('BufferOutOfBounds', 'refused, EINVAL'),
    'zero-length descriptor at address 0': ('accepted 1r+0w', 'refused, EINVAL'),
    'zero-length descriptor elsewhere': ('accepted 1r+0w', 'accepted 1r+0w'),
    'chain of 2^32 bytes': ('ChainLengthOverflow', 'accepted 3r+0w'),
    'avail head 0x8 out of range': ('HeadOutOfRange', 'refused (ring), EINVAL'),
    'avail head 0x9 out of range': ('HeadOutOfRange', 'refused (ring), EINVAL'),
    'avail head 0xffff out of range': ('HeadOutOfRange', 'refused (ring), EINVAL'),
    'avail.idx 0x9 ahead': ('AvailIndexJump', 'accepted 1r+0w'),
    'avail.idx 0x8000 ahead': ('AvailIndexJump', 'accepted 1r+0w'),
    'avail.idx 0xffff ahead': ('AvailIndexJump', 'accepted 1r+0w'),
    'avail.idx exactly the queue size ahead': ('8 accepted in order', '8 accepted in order'),
    'a held head made available again': ('HeadAlreadyInFlight', 'accepted 1r+1w'),
    'avail.idx goes back': ('AvailIndexJump', 'accepted 1r+0w'),
}

SPEC_IDS = {
    "loop, direct": ("SPLIT-DRV-004",),
    "loop, direct, across the index wrap": ("SPLIT-DRV-004",),
    "loop on itself": ("SPLIT-DRV-004",),
    "loop inside an indirect table": ("SPLIT-DRV-004",),
    "chain of 2^32 bytes": ("SPLIT-DRV-004",),
    "indirect table longer than the queue": ("SPLIT-DRV-007", "SPLIT-DEV-002"),
    "direct, then a table: one more than the queue": ("SPLIT-DRV-007", "SPLIT-DEV-002"),
    "direct, then a table: exactly the queue size": ("SPLIT-DRV-007", "SPLIT-DEV-006"),
    "indirect descriptor flagged WRITE": ("SPLIT-DEV-005",),
    "indirect without VIRTIO_F_INDIRECT_DESC": ("SPLIT-DRV-005",),
    "nested indirect table": ("SPLIT-DRV-006",),
    "INDIRECT with NEXT (next = 7)": ("SPLIT-DRV-008",),
    "INDIRECT with NEXT (next = 0)": ("SPLIT-DRV-008",),
    "readable after writable": ("SPLIT-DRV-002",),
    "readable after writable, across a table": ("SPLIT-DRV-002",),
    "avail.idx 0x9 ahead": ("INIT-DRV-007", "SPLIT-DRV-010"),
    "avail.idx 0x8000 ahead": ("INIT-DRV-007", "SPLIT-DRV-010"),
    "avail.idx 0xffff ahead": ("INIT-DRV-007", "SPLIT-DRV-010"),
    "avail.idx exactly the queue size ahead": ("INIT-DRV-007", "SPLIT-DRV-010"),
    "a held head made available again": ("INIT-DRV-007",),
    "avail.idx goes back": ("SPLIT-DRV-010",),
}
"""The requirement each case's reference answer enforces (none for the unnamed rules)."""


def _answer(pop: Callable[[], Chain | None]) -> str:
    try:
        chain = pop()
    except PeerRejectedChain as error:
        return f"refused, {errno.errorcode[error.errno]}"
    except PeerRejectedRing as error:
        return f"refused (ring), {errno.errorcode[error.errno]}"
    except VirtioError as error:
        return type(error).__name__
    if chain is None:
        return "nothing"
    return f"accepted {len(chain.readable)}r+{len(chain.writable)}w"


def _memory(large: bool) -> GuestMemory:
    if not large:
        return GuestMemory(MEMORY)
    return GuestMemory(backing=mmap.mmap(-1, MAX_CHAIN_BYTES // 2 + MEMORY))



def answers(name: str) -> tuple[str, str]:
    """(reference answer, vringh answer) for case `name`."""
    build, features, start, large = CASES[name]
    results = []
    for native in (False, True):
        mem = _memory(large)
        base = MAX_CHAIN_BYTES // 2 if large else 0
        drv = MockDriverRing(mem, SIZE, ring_base=base, initial_index=start)
        make = LinuxDevice if native else SplitDevice
        device = make(mem, drv.layout, features, initial_index=start)
        build(drv, device.pop)
        if name == "avail.idx exactly the queue size ahead":
            popped = [device.pop() for _ in range(SIZE)]
            results.append(f"{sum(c is not None for c in popped)} accepted in order"
                           if [c.head for c in popped if c] == list(range(SIZE)) else "wrong")
            continue
        results.append(_answer(device.pop))
    return results[0], results[1]


def _params() -> list[object]:
    return [pytest.param(name, marks=[pytest.mark.spec(*SPEC_IDS[name])] if name in SPEC_IDS
                         else [], id=name) for name in CASES]


@pytest.mark.parametrize("name", _params())
def test_hostile_ring_answers(name: str) -> None:
    if require_library() is None:
        pytest.skip("VIRTIO_ORACLE_NO_PEERS=1: vringh not available")
    assert answers(name) == OUTCOMES[name]


# --- random tables: vringh never accepts less than the reference, nor something else ------
NEXT_LINK, INDIRECT_FLAG = int(DescFlag.NEXT), int(DescFlag.INDIRECT)


def _random_ring(size: int, head: int, direct: list[tuple[int, int, int, int]],
                 tables: list[tuple[int, int, int, int]]) -> tuple[GuestMemory, MockDriverRing]:
    """The ring of tests/test_hostile_device.py's random-table test, built the same way."""
    mem = GuestMemory(MockDriverRing.memory_for(size))
    drv = MockDriverRing(mem, size)
    scratch = drv.scratch
    direct = [(scratch + DESC_SIZE * (a % size), ln, fl, nx) if fl & INDIRECT_FLAG and a % 2
              else (a, ln, fl, nx) for a, ln, fl, nx in direct]
    for i, desc in enumerate(direct):
        drv.set_desc(i, *desc)
    drv.write_table(scratch, tables)
    drv.publish(head)
    return mem, drv


def _pop(device: SplitDevice | LinuxDevice) -> Chain | None:
    try:
        return device.pop()
    except VirtioError:
        return None


@given(
    st.sampled_from([1, 2, 4, 8, 16]).flatmap(
        lambda size: st.tuples(
            st.just(size),
            st.integers(0, size - 1),
            st.booleans(),
            descriptor_tables(size, MockDriverRing.memory_for(size)),
            descriptor_tables(size, MockDriverRing.memory_for(size), entries=2 * size),
        )
    )
)
def test_random_tables_vringh_accepts_what_the_reference_accepts(
    case: tuple[int, int, bool, list[tuple[int, int, int, int]], list[tuple[int, int, int, int]]],
) -> None:
    """Whatever chain the reference accepts, vringh accepts with the same segments.

    The one exception is the documented corner: a zero-length descriptor at address 0.
    (vringh may accept more; the table above lists how.) Neither side may crash.
    """
    if require_library() is None:
        pytest.skip("VIRTIO_ORACLE_NO_PEERS=1: vringh not available")
    size, head, indirect, direct, tables = case
    features = INDIRECT if indirect else 0
    ours_mem, drv = _random_ring(size, head, direct, tables)
    theirs_mem, _ = _random_ring(size, head, direct, tables)
    ours = _pop(SplitDevice(ours_mem, drv.layout, features))
    theirs = _pop(LinuxDevice(theirs_mem, drv.layout, features))
    if ours is None:
        return
    if theirs is None:
        segments = ours.readable + ours.writable
        assert any(seg.addr == 0 and seg.len == 0 for seg in segments), (
            f"vringh refused a chain the reference accepted: {ours}")
        return
    assert (theirs.readable, theirs.writable) == (ours.readable, ours.writable)
