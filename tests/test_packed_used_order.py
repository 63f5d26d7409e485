"""A packed device may finish its used-descriptor writes in any order (§2.8.12).

PACKED-DEV-003: once the device has started writing used descriptors in completion
order, the writes themselves may land in any order. The driver must then still hand
back buffers in ring order, and none before the descriptor at its position is used: a
used descriptor further on does not let it skip ahead. Here the reference device
returns a few buffers, the resulting used descriptors are replayed onto the ring in
every order, and after each write the driver reclaims what it can.

Spec: §2.8.12 (PACKED-DEV-002, PACKED-DEV-003), §2.8.6 (one used descriptor per list).
"""

from __future__ import annotations

import itertools

import pytest

from impl.alloc import GuestAllocator
from impl.chain import Segment
from impl.memory import GuestMemory
from impl.packed_device import PackedDevice
from impl.packed_driver import PackedDriver
from impl.packed_layout import PackedLayout
from impl.spec import DESC_SIZE

RING = 0x1000
DATA = 0x4000
ALLOC = 0x8000
MEMORY = 0x10000
SIZE = 8
TOKENS = ("a", "b", "c", "d")


def ring_with_used_writes() -> tuple[GuestMemory, PackedLayout, PackedDriver, list[bytes]]:
    """A driver with len(TOKENS) buffers out; their slots shown available, and the bytes
    the device's used descriptors put in those slots, in ring order."""
    layout = PackedLayout.modern(SIZE, RING)
    mem = GuestMemory(MEMORY)
    driver = PackedDriver(mem, layout, 0, allocator=GuestAllocator(ALLOC, MEMORY))
    device = PackedDevice(mem, layout, 0)
    for i, token in enumerate(TOKENS):
        driver.add_sgs([], [Segment(DATA + 64 * i, 16)], token)
    slots = range(len(TOKENS))
    available = [mem.read(layout.desc_addr(i), DESC_SIZE) for i in slots]
    for i in slots:
        chain = device.pop()
        assert chain is not None
        chain.write_payload(mem, bytes(i + 1))
        device.push_used(chain.head, i + 1)
    used = [mem.read(layout.desc_addr(i), DESC_SIZE) for i in slots]
    for i in slots:
        mem.write(layout.desc_addr(i), available[i])
    return mem, layout, driver, used


@pytest.mark.spec("PACKED-DEV-003")
@pytest.mark.parametrize("order", list(itertools.permutations(range(len(TOKENS)))))
def test_the_driver_reclaims_in_ring_order_whatever_order_used_writes_land(
    order: tuple[int, ...],
) -> None:
    mem, layout, driver, used = ring_with_used_writes()
    assert driver.get_buf() is None
    got: list[tuple[object, int]] = []
    written: set[int] = set()
    for slot in order:
        mem.write(layout.desc_addr(slot), used[slot])
        written.add(slot)
        while (buf := driver.get_buf()) is not None:
            got.append(buf)
        ready = next(i for i in range(len(TOKENS) + 1) if i not in written)
        assert got == [(TOKENS[i], i + 1) for i in range(ready)]
    assert driver.get_buf() is None
