"""Per-side views of one shared guest memory that refuse writes into the other side's areas.

The split ring gives each part exactly one writer (§2.7): the driver writes the
descriptor table and the available ring (with used_event); the device writes the used
ring (with avail_event) and nothing else of the ring (SPLIT-DEV-004). Each side gets
its own `OwnedView` over the same bytes, so a write by the wrong side fails the test
at the instruction that made it.
"""

from __future__ import annotations

from impl.layout import SplitLayout, avail_ring_bytes, desc_table_bytes, used_ring_bytes
from impl.memory import GuestMemory


class OwnershipViolation(AssertionError):
    """A side wrote into a part of the ring the spec gives to the other side."""


class OwnedView(GuestMemory):
    """A `GuestMemory` over shared `backing` that forbids writes to some ranges once armed."""

    __slots__ = ("armed", "forbidden", "side")

    def __init__(
        self, backing: bytearray, side: str, forbidden: list[tuple[str, int, int]]
    ) -> None:
        super().__init__(backing=backing)
        self.side = side
        self.forbidden = forbidden
        self.armed = False

    def _guard(self, addr: int, length: int) -> None:
        if not self.armed:
            return
        for name, lo, hi in self.forbidden:
            if addr < hi and addr + length > lo:
                raise OwnershipViolation(
                    f"the {self.side} wrote {length} bytes at {addr:#x}, inside the {name}"
                )

    def write_u8(self, addr: int, value: int) -> None:
        self._guard(addr, 1)
        super().write_u8(addr, value)

    def write_u16(self, addr: int, value: int) -> None:
        self._guard(addr, 2)
        super().write_u16(addr, value)

    def write_u32(self, addr: int, value: int) -> None:
        self._guard(addr, 4)
        super().write_u32(addr, value)

    def write_u64(self, addr: int, value: int) -> None:
        self._guard(addr, 8)
        super().write_u64(addr, value)

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        self._guard(addr, len(data))
        super().write(addr, data)

    def fill(self, addr: int, length: int, byte: int = 0) -> None:
        self._guard(addr, length)
        super().fill(addr, length, byte)


def split_views(backing: bytearray, layout: SplitLayout) -> tuple[OwnedView, OwnedView]:
    """The driver's and the device's views of a split ring in `backing` (both unarmed)."""
    desc = ("descriptor table", layout.desc, layout.desc + desc_table_bytes(layout.size))
    avail = ("available ring", layout.avail, layout.avail + avail_ring_bytes(layout.size))
    used = ("used ring", layout.used, layout.used + used_ring_bytes(layout.size))
    return OwnedView(backing, "driver", [used]), OwnedView(backing, "device", [desc, avail])
