"""The driver believes only the first `len` bytes of a used buffer (§2.7.8).

A device may write more than it reports (SPLIT-DEV-015); what lies past `len` must not
reach the driver's user. The receive path of the virtio-net driver is where a driver
reads device-written data: each buffer here is filled to the end with junk, then the
packet is written over its start and reported with a shorter `len`.
"""

from __future__ import annotations

import pytest

from impl.memory import GuestMemory
from impl.net_header import NetHdr
from impl.net_rx import RxFormat, UsedBuffer, assemble
from impl.spec import NET_HDR_SIZE

BUF = 256
BUFFERS = (0x1000, 0x2000, 0x3000)
JUNK = 0xEE


def filled_memory() -> GuestMemory:
    mem = GuestMemory(0x4000)
    for addr in BUFFERS:
        mem.fill(addr, BUF, JUNK)
    return mem


def frame(length: int) -> bytes:
    return bytes((i * 13 + 5) % 251 for i in range(length))


@pytest.mark.spec("SPLIT-DRV-016")
@pytest.mark.parametrize("length", [14, 60, BUF - NET_HDR_SIZE - 1])
def test_a_received_frame_ends_at_the_used_length(length: int) -> None:
    mem = filled_memory()
    data = frame(length)
    mem.write(BUFFERS[0], NetHdr(num_buffers=1).pack() + data)
    fmt = RxFormat(NET_HDR_SIZE, mrg=False, buf_size=BUF, max_frame=None)
    packet = assemble(mem, fmt, (BUFFERS[0], NET_HDR_SIZE + length), 1, lambda: None, [].append)
    assert packet.frame == data


@pytest.mark.spec("SPLIT-DRV-016")
def test_a_merged_frame_takes_only_the_used_length_of_its_last_buffer() -> None:
    mem = filled_memory()
    data = frame(2 * BUF - NET_HDR_SIZE + 30)
    head = NetHdr(num_buffers=3).pack() + data
    mem.write(BUFFERS[0], head[:BUF])
    mem.write(BUFFERS[1], head[BUF : 2 * BUF])
    mem.write(BUFFERS[2], head[2 * BUF :])
    more: list[UsedBuffer] = [(BUFFERS[1], BUF), (BUFFERS[2], 30)]
    fmt = RxFormat(NET_HDR_SIZE, mrg=True, buf_size=BUF, max_frame=None)
    released: list[int] = []
    packet = assemble(mem, fmt, (BUFFERS[0], BUF), 3, lambda: more.pop(0), released.append)
    assert packet.frame == data
    assert released == list(BUFFERS)
