"""Hostile rings fed to Linux's device side (vringh) and to ours, side by side.

Each case lays one conforming buffer with the reference driver, then corrupts the
bytes the way a hostile driver could (§2.7.5, §2.7.6); the reference device and
vringh each pop from an identical copy. `OUTCOMES` records what each answers; the
test asserts both still answer that way, so a change in either shows up here, and
docs/oracle.md carries the same table with which answer the spec supports.

An answer is the error class the side raised (for vringh, the adapter's
`PeerRejectedChain` / `PeerRejectedRing` with vringh's errno), or `accepted` with
the readable/writable segment counts vringh handed out.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest
from peers.linux import LinuxDevice, require_library

from impl.alloc import GuestAllocator
from impl.chain import Chain, Segment
from impl.errors import PeerRejectedChain, PeerRejectedRing, VirtioError
from impl.layout import Descriptor, SplitLayout
from impl.memory import GuestMemory
from impl.spec import DESC_SIZE, DescFlag, Feature, feature_mask
from impl.split_device import SplitDevice
from impl.split_driver import SplitDriver

SIZE = 8
MEMORY = 0x10000
DATA = 0x4000
TABLE = 0x8000
FEATURES = feature_mask(Feature.INDIRECT_DESC, Feature.EVENT_IDX)


class Ring:
    """A queue with buffers laid by the reference driver, and helpers to corrupt it."""

    def __init__(self) -> None:
        self.backing = bytearray(MEMORY)
        self.mem = GuestMemory(backing=self.backing)
        self.layout = SplitLayout.modern(SIZE, 0x1000)
        self.driver = SplitDriver(self.mem, self.layout, 0,
                                  allocator=GuestAllocator(DATA, TABLE))

    def add(self, readable: int = 1, writable: int = 1) -> int:
        """Publish a direct chain of `readable` 16-byte then `writable` 16-byte segments."""
        segs = [Segment(DATA + 0x100 * i, 16) for i in range(readable + writable)]
        return self.driver.add_sgs(segs[:readable], segs[readable:], object())

    def desc(self, index: int, table: int | None = None) -> Descriptor:
        base = self.layout.desc if table is None else table
        return Descriptor.unpack(self.mem.read(base + DESC_SIZE * index, DESC_SIZE))

    def put(self, index: int, desc: Descriptor, table: int | None = None) -> None:
        base = self.layout.desc if table is None else table
        self.mem.write(base + DESC_SIZE * index, desc.pack())

    def indirect(self, entries: list[Descriptor], *, flags: int = 0, length: int | None = None,
                 addr: int = TABLE) -> None:
        """Make head 0 point at an indirect table holding `entries`."""
        for i, entry in enumerate(entries):
            self.put(i, entry, addr)
        size = DESC_SIZE * len(entries) if length is None else length
        self.put(0, Descriptor(addr=addr, len=size, flags=DescFlag.INDIRECT | flags))


def _chain(n: int, last_flags: int = 0) -> list[Descriptor]:
    return [Descriptor(addr=DATA + 0x100 * i, len=16,
                       flags=(DescFlag.NEXT | last_flags) if i < n - 1 else last_flags,
                       next=i + 1) for i in range(n)]


def next_out_of_range(r: Ring) -> None:
    head = r.add()
    r.put(head, Descriptor(addr=DATA, len=16, flags=DescFlag.NEXT, next=SIZE))


def descriptor_loop(r: Ring) -> None:
    head = r.add(2, 0)
    second = r.desc(head).next
    r.put(second, Descriptor(addr=DATA, len=16, flags=DescFlag.NEXT, next=head))


def readable_after_writable(r: Ring) -> None:
    head = r.add(1, 1)
    second = r.desc(head).next
    r.put(head, Descriptor(addr=DATA, len=16, flags=DescFlag.NEXT | DescFlag.WRITE,
                           next=second))
    r.put(second, Descriptor(addr=DATA + 0x100, len=16))


def buffer_outside_memory(r: Ring) -> None:
    head = r.add(1, 0)
    r.put(head, Descriptor(addr=MEMORY - 8, len=16))


def buffer_wraps_64_bits(r: Ring) -> None:
    head = r.add(1, 0)
    r.put(head, Descriptor(addr=(1 << 64) - 8, len=16))


def zero_length_at_zero(r: Ring) -> None:
    head = r.add(1, 0)
    r.put(head, Descriptor(addr=0, len=0))


def zero_length_elsewhere(r: Ring) -> None:
    head = r.add(1, 0)
    r.put(head, Descriptor(addr=DATA, len=0))


def head_made_available_twice(r: Ring) -> None:
    head = r.add()
    r.mem.write_u16(r.layout.avail_ring(1), head)
    r.mem.write_u16(r.layout.avail_idx, 2)


def indirect_ok(r: Ring) -> None:
    r.add(1, 0)
    r.indirect(_chain(2, DescFlag.WRITE))


def direct_then_indirect(r: Ring) -> None:
    head = r.add(2, 0)
    second = r.desc(head).next
    for i, entry in enumerate(_chain(2, DescFlag.WRITE)):
        r.put(i, entry, TABLE)
    r.put(second, Descriptor(addr=TABLE, len=2 * DESC_SIZE, flags=DescFlag.INDIRECT))


def indirect_flagged_writable(r: Ring) -> None:
    r.add(1, 0)
    r.indirect(_chain(2), flags=DescFlag.WRITE)


def indirect_not_negotiated(r: Ring) -> None:
    r.add(1, 0)
    r.indirect(_chain(2))


def indirect_with_next(r: Ring) -> None:
    r.add(1, 0)
    r.indirect(_chain(2), flags=DescFlag.NEXT)


def nested_indirect(r: Ring) -> None:
    r.add(1, 0)
    r.indirect([Descriptor(addr=TABLE + 0x400, len=2 * DESC_SIZE, flags=DescFlag.INDIRECT)])
    for i, entry in enumerate(_chain(2)):
        r.put(i, entry, TABLE + 0x400)


def indirect_len_not_multiple(r: Ring) -> None:
    r.add(1, 0)
    r.indirect(_chain(2), length=DESC_SIZE + 8)


def indirect_len_zero(r: Ring) -> None:
    r.add(1, 0)
    r.indirect([], length=0)


def indirect_table_outside_memory(r: Ring) -> None:
    r.add(1, 0)
    r.indirect([], length=2 * DESC_SIZE, addr=MEMORY - DESC_SIZE)


def indirect_longer_than_queue(r: Ring) -> None:
    r.add(1, 0)
    r.indirect(_chain(SIZE + 1))


def indirect_next_out_of_table(r: Ring) -> None:
    r.add(1, 0)
    entries = _chain(2)
    entries[1] = Descriptor(addr=DATA + 0x100, len=16, flags=DescFlag.NEXT, next=2)
    r.indirect(entries)


def head_out_of_range(r: Ring) -> None:
    r.add()
    r.mem.write_u16(r.layout.avail_ring(0), SIZE)


def avail_idx_jump(r: Ring) -> None:
    r.add()
    r.mem.write_u16(r.layout.avail_idx, SIZE + 1)


Case = Callable[[Ring], None]
CASES: dict[str, tuple[Case, bool, int]] = {
    # name: (corruption, VIRTIO_F_INDIRECT_DESC negotiated, pops; the last one answers)
    "next out of range": (next_out_of_range, True, 1),
    "descriptor loop": (descriptor_loop, True, 1),
    "readable after writable": (readable_after_writable, True, 1),
    "buffer outside memory": (buffer_outside_memory, True, 1),
    "buffer address wraps 2^64": (buffer_wraps_64_bits, True, 1),
    "zero-length descriptor at address 0": (zero_length_at_zero, True, 1),
    "zero-length descriptor elsewhere": (zero_length_elsewhere, True, 1),
    "indirect table, well formed": (indirect_ok, True, 1),
    "direct descriptors, then an indirect one": (direct_then_indirect, True, 1),
    "indirect descriptor flagged WRITE": (indirect_flagged_writable, True, 1),
    "indirect without VIRTIO_F_INDIRECT_DESC": (indirect_not_negotiated, False, 1),
    "INDIRECT together with NEXT": (indirect_with_next, True, 1),
    "nested indirect table": (nested_indirect, True, 1),
    "indirect len not a multiple of 16": (indirect_len_not_multiple, True, 1),
    "indirect len 0": (indirect_len_zero, True, 1),
    "indirect table outside memory": (indirect_table_outside_memory, True, 1),
    "indirect table longer than the queue": (indirect_longer_than_queue, True, 1),
    "indirect next beyond the table": (indirect_next_out_of_table, True, 1),
    "avail head out of range": (head_out_of_range, True, 1),
    "avail.idx jumps past the queue size": (avail_idx_jump, True, 1),
    "a held head made available again": (head_made_available_twice, True, 2),
}

ACCEPTED = "accepted"
OUTCOMES: dict[str, tuple[str, str]] = {
    'next out of range': ('NextOutOfRange', 'PeerRejectedChain(EINVAL)'),
    'descriptor loop': ('DescriptorLoop', 'PeerRejectedChain(ELOOP)'),
    'readable after writable': ('ReadableAfterWritable', 'PeerRejectedChain(EINVAL)'),
    'buffer outside memory': ('BufferOutOfBounds', 'PeerRejectedChain(EINVAL)'),
    'buffer address wraps 2^64': ('BufferOutOfBounds', 'PeerRejectedChain(EINVAL)'),
    'zero-length descriptor at address 0': ('accepted 1r+0w', 'PeerRejectedChain(EINVAL)'),
    'zero-length descriptor elsewhere': ('accepted 1r+0w', 'accepted 1r+0w'),
    'indirect table, well formed': ('accepted 0r+2w', 'accepted 0r+2w'),
    'direct descriptors, then an indirect one': ('accepted 1r+2w', 'accepted 1r+2w'),
    'indirect descriptor flagged WRITE': ('accepted 2r+0w', 'accepted 2r+0w'),
    'indirect without VIRTIO_F_INDIRECT_DESC': ('IndirectNotNegotiated', 'accepted 2r+0w'),
    'INDIRECT together with NEXT': ('IndirectWithNext', 'accepted 2r+0w'),
    'nested indirect table': ('NestedIndirect', 'PeerRejectedChain(EINVAL)'),
    'indirect len not a multiple of 16': ('BadIndirectTable', 'PeerRejectedChain(EINVAL)'),
    'indirect len 0': ('BadIndirectTable', 'PeerRejectedChain(ELOOP)'),
    'indirect table outside memory': ('BufferOutOfBounds', 'PeerRejectedChain(EINVAL)'),
    'indirect table longer than the queue': ('ChainTooLong', 'accepted 9r+0w'),
    'indirect next beyond the table': ('NextOutOfRange', 'PeerRejectedChain(EINVAL)'),
    'avail head out of range': ('HeadOutOfRange', 'PeerRejectedRing(EINVAL)'),
    'avail.idx jumps past the queue size': ('AvailIndexJump', 'accepted 1r+1w'),
    'a held head made available again': ('HeadAlreadyInFlight', 'accepted 1r+1w'),
}


def _answer(pop: Callable[[], Chain | None]) -> str:
    try:
        chain = pop()
    except PeerRejectedChain as error:
        return f"PeerRejectedChain({errno.errorcode[error.errno]})"
    except PeerRejectedRing as error:
        return f"PeerRejectedRing({errno.errorcode[error.errno]})"
    except VirtioError as error:
        return type(error).__name__
    if chain is None:
        return "nothing"
    return f"{ACCEPTED} {len(chain.readable)}r+{len(chain.writable)}w"


def answers(name: str) -> tuple[str, str]:
    """(reference answer, vringh answer) for case `name`."""
    build, indirect, pops = CASES[name]
    ring = Ring()
    build(ring)
    features = FEATURES if indirect else feature_mask(Feature.EVENT_IDX)
    ours = GuestMemory(backing=bytearray(ring.backing))
    theirs = GuestMemory(backing=bytearray(ring.backing))
    reference = SplitDevice(ours, ring.layout, features)
    linux = LinuxDevice(theirs, ring.layout, features)
    for _ in range(pops - 1):
        reference.pop()
        linux.pop()
    return _answer(reference.pop), _answer(linux.pop)


SPEC_IDS = {
    "descriptor loop": ("SPLIT-DRV-004",),
    "readable after writable": ("SPLIT-DRV-002",),
    "direct descriptors, then an indirect one": ("SPLIT-DEV-006",),
    "indirect descriptor flagged WRITE": ("SPLIT-DEV-005",),
    "indirect without VIRTIO_F_INDIRECT_DESC": ("SPLIT-DRV-005",),
    "INDIRECT together with NEXT": ("SPLIT-DRV-008",),
    "nested indirect table": ("SPLIT-DRV-006",),
    "indirect table longer than the queue": ("SPLIT-DRV-007", "SPLIT-DEV-002"),
    "avail.idx jumps past the queue size": ("INIT-DRV-007", "SPLIT-DRV-010"),
    "a held head made available again": ("INIT-DRV-007",),
}
"""The requirement each case's reference answer enforces (none for the unnamed rules)."""


def _params() -> list[object]:
    return [pytest.param(name, marks=[pytest.mark.spec(*SPEC_IDS[name])] if name in SPEC_IDS
                         else [], id=name) for name in CASES]


@pytest.mark.parametrize("name", _params())
def test_hostile_chain_answers(name: str) -> None:
    if require_library() is None:
        pytest.skip("VIRTIO_ORACLE_NO_PEERS=1: vringh not available")
    assert answers(name) == OUTCOMES[name]
