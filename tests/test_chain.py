"""The chain walk on well-formed chains, and Chain's payload helpers.

Hostile chains are in tests/test_hostile_device.py; here: what a correct walk returns
for direct, indirect and direct-then-indirect chains, that it ignores the WRITE flag of
an indirect descriptor and the `next` of a last descriptor, that it never writes, and
that a chain's payload is read and written across its segments.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impl.chain import Chain, Segment, walk_chain
from impl.errors import ChainError, PayloadTooLarge
from impl.memory import GuestMemory
from impl.spec import DESC_SIZE, DescFlag
from impl.testing import MockDriverRing

SIZE = 8
NEXT, WRITE, IND = int(DescFlag.NEXT), int(DescFlag.WRITE), int(DescFlag.INDIRECT)


def ring(size: int = SIZE, seg_len: int = 40) -> MockDriverRing:
    return MockDriverRing(GuestMemory(MockDriverRing.memory_for(size, seg_len=seg_len)), size)


def walk(drv: MockDriverRing, head: int, indirect_ok: bool = True) -> Chain:
    return walk_chain(drv.mem, drv.layout.desc, drv.size, head, indirect_ok=indirect_ok)


def test_direct_chain() -> None:
    drv = ring()
    drv.chain(2, 2, 1, seg_len=24)
    chain = walk(drv, 2)
    assert chain == Chain(
        2,
        (Segment(drv.buffer(2, 24), 24), Segment(drv.buffer(3, 24), 24)),
        (Segment(drv.buffer(4, 24), 24),),
        indirect=False,
    )
    assert (chain.readable_len, chain.writable_len) == (48, 24)


def test_indirect_chain() -> None:
    drv = ring()
    drv.indirect_chain(5, 1, 2)
    chain = walk(drv, 5)
    assert chain.indirect
    assert [s.addr for s in chain.readable] == [drv.buffer(SIZE)]
    assert [s.addr for s in chain.writable] == [drv.buffer(SIZE + 1), drv.buffer(SIZE + 2)]


@pytest.mark.spec("SPLIT-DEV-006")
@pytest.mark.parametrize("direct", [0, 1, 3])
def test_direct_descriptors_then_one_indirect(direct: int) -> None:
    drv = ring()
    for i in range(direct):
        drv.set_desc(i, drv.buffer(i), 16, NEXT, i + 1)
    drv.indirect_chain(direct, 1, 1)
    chain = walk(drv, 0)
    assert [s.addr for s in chain.readable] == [drv.buffer(i) for i in range(direct)] + [
        drv.buffer(SIZE)
    ]
    assert [s.addr for s in chain.writable] == [drv.buffer(SIZE + 1)]
    assert chain.indirect


@pytest.mark.spec("SPLIT-DEV-005")
def test_write_flag_of_an_indirect_descriptor_is_ignored() -> None:
    drv = ring()
    table = drv.indirect_chain(0, 2, 0)
    drv.set_desc(0, table, 2 * DESC_SIZE, IND | WRITE, 0)
    chain = walk(drv, 0)
    assert len(chain.readable) == 2 and chain.writable == ()


def test_next_of_the_last_descriptor_is_ignored() -> None:
    drv = ring()
    drv.set_desc(0, drv.buffer(0), 16, WRITE, 0xFFFF)
    assert walk(drv, 0).writable == (Segment(drv.buffer(0), 16),)


def test_zero_length_descriptor_is_accepted() -> None:
    drv = ring()
    drv.set_desc(0, drv.mem.size, 0, 0, 0)
    assert walk(drv, 0).readable == (Segment(drv.mem.size, 0),)


@pytest.mark.spec("SPLIT-DEV-004")
@pytest.mark.parametrize("loop", [False, True])
def test_the_walk_never_writes(loop: bool) -> None:
    drv = ring()
    drv.chain(0, 2, 2)
    drv.indirect_chain(6, 1, 1)
    if loop:
        drv.set_desc(3, drv.buffer(3), 16, WRITE | NEXT, 0)
    before = drv.mem.read(0, drv.mem.size)
    for head in (0, 6):
        with contextlib.suppress(ChainError):
            walk(drv, head)
    assert drv.mem.read(0, drv.mem.size) == before


@given(
    readable=st.integers(0, SIZE),
    writable=st.integers(0, SIZE),
    indirect=st.booleans(),
    seg_len=st.integers(0, 40),
)
def test_built_chains_walk_back_to_their_segments(
    readable: int, writable: int, indirect: bool, seg_len: int
) -> None:
    count = readable + writable
    if not 1 <= count <= SIZE:
        return
    drv = ring()
    if indirect:
        drv.indirect_chain(0, readable, writable, seg_len)
        addrs = [drv.buffer(SIZE + i, seg_len) for i in range(count)]
    else:
        drv.chain(0, readable, writable, seg_len)
        addrs = [drv.buffer(i, seg_len) for i in range(count)]
    chain = walk(drv, 0, indirect_ok=indirect)
    assert chain.readable == tuple(Segment(a, seg_len) for a in addrs[:readable])
    assert chain.writable == tuple(Segment(a, seg_len) for a in addrs[readable:])
    assert chain.indirect == indirect


def test_payload_read_and_written_across_segments() -> None:
    mem = GuestMemory(256)
    mem.write(0, b"abc")
    mem.write(16, b"de")
    chain = Chain(0, (Segment(0, 3), Segment(16, 2)), (Segment(64, 4), Segment(128, 4)))
    assert chain.read_payload(mem) == b"abcde"
    assert chain.write_payload(mem, b"123456") == 6
    assert mem.read(64, 4) == b"1234" and mem.read(128, 4) == b"56\0\0"
    assert chain.write_payload(mem, b"") == 0


@pytest.mark.spec("SPLIT-DEV-003")
def test_payload_larger_than_the_writable_part_writes_nothing() -> None:
    mem = GuestMemory(256)
    mem.write(0, b"readable")
    chain = Chain(0, (Segment(0, 8),), (Segment(64, 4),))
    before = mem.read(0, 256)
    with pytest.raises(PayloadTooLarge):
        chain.write_payload(mem, b"12345")
    assert mem.read(0, 256) == before
