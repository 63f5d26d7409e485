"""Where an ordering scenario's ring and buffers live, and how a trace names addresses.

`Geometry(size, buffers, start)`: a split ring of `size` entries from address 0, the
data of buffer 0 (the first round's) and of buffers 1..`buffers` after it, indices
starting at `start`. `field_namer` turns an address into the ring field the spec names
(§2.7.5 descriptors, §2.7.6 available ring, §2.7.8 used ring, §2.7.7 and §2.7.10 the
event fields), so a counterexample reads like the layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from impl.layout import SplitLayout, align_up
from impl.memory import GuestMemory
from impl.spec import DESC_SIZE, Feature, feature_mask
from impl.split_device import SplitDevice
from impl.split_driver import SplitDriver

SIZE = 2
LENGTH = 4
TOKENS = ("t0", "t1", "t2")
PAYLOAD = (b"\x10\x11\x12\x13", b"\xa1\xa2\xa3\xa4", b"\xb1\xb2\xb3\xb4")
"""The standard scenario's tokens and data: buffer 0 is the first round's."""

DriverFactory = Callable[[GuestMemory, SplitLayout, int, int], Any]
DeviceFactory = Callable[[GuestMemory, SplitLayout, int, int], Any]
"""(memory, layout, features, initial index) -> a driver or device."""


@dataclass(frozen=True)
class Geometry:
    """Where a scenario's ring and buffers live: queue `size`, `buffers` in flight."""

    size: int = SIZE
    buffers: int = 2
    start: int = 0

    @property
    def layout(self) -> SplitLayout:
        """The ring, from address 0."""
        return SplitLayout.modern(self.size)

    def data(self, i: int) -> int:
        """Where buffer `i`'s data lives (buffer 0 is the first round's)."""
        return align_up(self.layout.end, 8) + 8 * i

    @property
    def memory_size(self) -> int:
        """The guest memory the scenario needs."""
        return self.data(self.buffers + 1)

    def token(self, i: int) -> str:
        """Buffer `i`'s token."""
        return TOKENS[i] if i < len(TOKENS) else f"t{i}"

    def buffer_of(self, token: str) -> int:
        """Which buffer carries `token`."""
        return next(i for i in range(self.buffers + 1) if self.token(i) == token)

    def payload(self, i: int) -> bytes:
        """Buffer `i`'s data."""
        return PAYLOAD[i] if i < len(PAYLOAD) else bytes([0xC0 + i]) * LENGTH


STANDARD = Geometry()
"""The standard scenario: queue size 2, two buffers in flight, indices from 0."""


def reference_driver(
    mem: GuestMemory, layout: SplitLayout, features: int, start: int
) -> SplitDriver:
    """The reference driver."""
    return SplitDriver(mem, layout, features, initial_index=start)


def reference_device(
    mem: GuestMemory, layout: SplitLayout, features: int, start: int
) -> SplitDevice:
    """The reference device."""
    return SplitDevice(mem, layout, features, initial_index=start)


def features_for(event_idx: bool) -> int:
    """The negotiated features of a mode."""
    return feature_mask(Feature.EVENT_IDX) if event_idx else 0


def field_namer(geometry: Geometry) -> Callable[[int], str]:
    """Name an address as the ring layout (§2.7.5-§2.7.8) calls it."""
    lay, size = geometry.layout, geometry.size
    named = {
        lay.avail_flags: "avail.flags",
        lay.avail_idx: "avail.idx",
        lay.used_event: "used_event",
        lay.used_flags: "used.flags",
        lay.used_idx: "used.idx",
        lay.avail_event: "avail_event",
    }
    for i in range(size):
        named[lay.avail_ring(i)] = f"avail.ring[{i}]"
        named[lay.used_ring(i)] = f"used.ring[{i}]"
        named[lay.used_ring(i) + 4] = f"used.ring[{i}].len"
        named[lay.desc_addr(i)] = f"desc[{i}]"
    for i in range(geometry.buffers + 1):
        named[geometry.data(i)] = f"data of buffer {i}"

    def name(addr: int) -> str:
        if addr in named:
            return named[addr]
        if lay.desc <= addr < lay.desc_addr(size):
            index, offset = divmod(addr - lay.desc, DESC_SIZE)
            return f"desc[{index}]+{offset}"
        return hex(addr)

    return name
