"""A lying device against Linux's packed driver (virtio_ring.c) and ours, side by side.

Two identical packed queues of 8 (where Linux places one), one driven by the reference
`PackedDriver` and one by Linux's; buffers are added on both, then a raw device writes
the same used descriptors into both rings (§2.8.6: id, len, then flags with AVAIL and
USED equal to its wrap counter). Each driver calls `get_buf` up to three times; the
answers (token:length, `nothing`, or the error: for Linux `broken`, its BAD_RING) must be
those recorded in `OUTCOMES`. docs/oracle.md carries the table with which answer the
spec supports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from peers.linux import require_library
from peers.linux_packed import linux_packed_driver, placement

from impl.alloc import GuestAllocator
from impl.chain import Segment
from impl.errors import QueueBroken, VirtioError
from impl.memory import GuestMemory
from impl.packed_driver import PackedDriver
from impl.packed_layout import PackedLayout
from impl.spec import PackedDescFlag
from impl.wrap_math import advance, offset_of, used_bits, wrap_of

SIZE = 8
SEG = 16
CALLS = 3
RING_BASE = 0x1000


class Pair:
    """A driver (reference or Linux) and a raw-writing device over one packed queue."""

    def __init__(self, linux: bool, start: int) -> None:
        self.layout: PackedLayout = placement(SIZE, RING_BASE)
        data = self.layout.end + 0x1000
        self.mem = GuestMemory(data + 0x4000)
        self.alloc = GuestAllocator(data, self.mem.size)
        self.driver: Any = (
            linux_packed_driver(self.mem, self.layout, 0, self.alloc, start) if linux
            else PackedDriver(self.mem, self.layout, 0, allocator=self.alloc,
                              initial_offset=start)
        )
        self.next_used = start
        self.ids: dict[str, int] = {}

    def add(self, token: str, readable: int = 1, writable: int = 1) -> None:
        """Add a buffer of `readable` + `writable` segments of SEG bytes each."""
        segs = [Segment(self.alloc.alloc(SEG, 8) or 0, SEG) for _ in range(readable + writable)]
        self.ids[token] = self.driver.add_sgs(segs[:readable], segs[readable:], token)

    def used(self, ident: int, length: int, *, write: bool = True, skip: int = 2,
             wrap_flip: bool = False) -> None:
        """Write one used descriptor at the device's position, then skip a list of `skip`."""
        lay, pos = self.layout, self.next_used
        offset = offset_of(pos, SIZE)
        self.mem.write_u16(lay.desc_id(offset), ident)
        self.mem.write_u32(lay.desc_len(offset), length)
        flags = used_bits(wrap_of(pos, SIZE) ^ wrap_flip)
        self.mem.write_u16(lay.desc_flags(offset), flags | (PackedDescFlag.WRITE if write else 0))
        self.next_used = advance(pos, skip, SIZE)

    def outcome(self) -> list[str]:
        """What `get_buf` answers, up to CALLS times or the first error."""
        seen = []
        for _ in range(CALLS):
            try:
                got = self.driver.get_buf()
            except QueueBroken:
                seen.append("broken")
                break
            except VirtioError as error:
                seen.append(type(error).__name__)
                break
            seen.append("nothing" if got is None else f"{got[0]}:{got[1]}")
        return seen


def _one(pair: Pair) -> None:
    pair.add("a")


def _two(pair: Pair) -> None:
    pair.add("a")
    pair.add("b")


Case = tuple[Callable[[Pair], None], Callable[[Pair], None]]
CASES: dict[str, Case] = {
    "id = size": (_one, lambda p: p.used(SIZE, 0)),
    "id 0xffff": (_one, lambda p: p.used(0xFFFF, 0)),
    "id never handed out": (_one, lambda p: p.used(5, 0)),
    "id inside a 3-descriptor list (not its Buffer ID)": (
        lambda p: p.add("a", 1, 2), lambda p: p.used(p.ids["a"] + 1, 0)),
    "same id twice": (_two, lambda p: (p.used(p.ids["a"], 0), p.used(p.ids["a"], 0))),
    "len past the writable bytes": (_one, lambda p: p.used(p.ids["a"], SEG + 1)),
    "len of exactly the writable bytes": (_one, lambda p: p.used(p.ids["a"], SEG)),
    "len without VIRTQ_DESC_F_WRITE": (_one, lambda p: p.used(p.ids["a"], 7, write=False)),
    "used under the wrong wrap counter": (_one, lambda p: p.used(p.ids["a"], 0, wrap_flip=True)),
    "in order, b before a": (_two, lambda p: (p.used(p.ids["b"], 1), p.used(p.ids["a"], 2))),
    "next used one descriptor early (a 2-descriptor list skipped as 1)": (
        _two, lambda p: (p.used(p.ids["a"], 0, skip=1), p.used(p.ids["b"], 0))),
}

NOTHING = ["nothing", "nothing"]
OUTCOMES: dict[str, tuple[list[str], list[str]]] = {
    "id = size": (["PackedUsedIdOutOfRange"], ["broken"]),
    "id 0xffff": (["PackedUsedIdOutOfRange"], ["broken"]),
    "id never handed out": (["PackedUsedIdNotOutstanding"], ["broken"]),
    "id inside a 3-descriptor list (not its Buffer ID)": (
        ["PackedUsedIdNotOutstanding"], ["broken"]),
    "same id twice": (["a:0", "PackedUsedIdNotOutstanding"], ["a:0", "broken"]),
    "len past the writable bytes": (["PackedUsedLengthTooLong"], ["a:17", *NOTHING]),
    "len of exactly the writable bytes": (["a:16", *NOTHING], ["a:16", *NOTHING]),
    "len without VIRTQ_DESC_F_WRITE": (["a:0", *NOTHING], ["a:7", *NOTHING]),
    "used under the wrong wrap counter": (["nothing", *NOTHING], ["nothing", *NOTHING]),
    "in order, b before a": (["b:1", "a:2", "nothing"], ["b:1", "a:2", "nothing"]),
    "next used one descriptor early (a 2-descriptor list skipped as 1)": (
        ["a:0", *NOTHING], ["a:0", *NOTHING]),
}
"""case -> (the reference's answers, Linux's answers), the same from either start."""


@pytest.mark.parametrize("start", [0, SIZE - 1], ids=["start 0", "start at the ring's end"])
@pytest.mark.parametrize("case", list(CASES))
def test_lying_device_against_both_packed_drivers(case: str, start: int) -> None:
    if require_library() is None:
        pytest.skip("VIRTIO_ORACLE_NO_PEERS=1: Linux packed driver not available")
    prepare, lie = CASES[case]
    answers = []
    for linux in (False, True):
        pair = Pair(linux, start)
        prepare(pair)
        lie(pair)
        answers.append(pair.outcome())
    assert (answers[0], answers[1]) == OUTCOMES[case], f"{case}: {answers}"
