"""A small guest platform for transport tests: memory, allocator, interrupt lines, bus.

`Platform` holds one guest memory with a ring/data allocator window, an interrupt
controller (held lines: the test decides when the guest handler runs), an MMIO address
space and a `VirtioBus`. `add_mmio` places a backend behind a virtio-mmio register
window, `add_page_device` publishes one in the descriptor page (either with
`packed=True`: the device core also offers VIRTIO_F_RING_PACKED; the bus negotiates
it when built with `ring_features` including `PACKED_RING`); `round_trip` pushes one
buffer through a bound queue and back.
"""

from __future__ import annotations

from collections.abc import Hashable

from impl.alloc import GuestAllocator
from impl.bus import BusDevice, VirtioBus
from impl.chain import Segment
from impl.device import DeviceBackend
from impl.device_core import DeviceCore
from impl.devpage import DevicePageHost, EntryLayout
from impl.interrupts import InterruptController
from impl.memory import GuestMemory
from impl.mmio import MmioDevice, MmioSpace, MmioWindow
from impl.spec import MMIO_VERSION_LEGACY, MMIO_VERSION_MODERN

MEMORY_BYTES = 1 << 20
ALLOC_START = 0x10000
ALLOC_END = 0xF0000
MMIO_BASE = 0x1000_0000
MMIO_STRIDE = 0x1000
PAGE_ADDR = 0x1000
PAGE_IRQ_BASE = 32


class Platform:
    """Guest memory, interrupt lines, an MMIO space and the bus, wired together."""

    def __init__(self, *, immediate: bool = False, **bus_options: int) -> None:
        self.mem = GuestMemory(MEMORY_BYTES)
        self.allocator = GuestAllocator(ALLOC_START, ALLOC_END)
        self.irqs = InterruptController(immediate=immediate)
        self.space = MmioSpace(self.irqs)
        self.bus = VirtioBus(self.mem, self.allocator, self.irqs, **bus_options)
        self.windows: list[MmioWindow] = []
        self.cores: dict[int, DeviceCore] = {}
        self.host = DevicePageHost(self.mem, PAGE_ADDR, self.irqs)
        self.page_cores: list[tuple[EntryLayout, DeviceCore]] = []

    def add_window(self) -> MmioWindow:
        """An empty window (nothing answers there)."""
        slot = len(self.windows)
        window = MmioWindow(base=MMIO_BASE + MMIO_STRIDE * slot, irq=slot + 1)
        self.windows.append(window)
        return window

    def add_mmio(
        self, backend: DeviceBackend, *, legacy: bool = False, packed: bool = False
    ) -> DeviceCore:
        """Map `backend` behind a new virtio-mmio window; return its device core."""
        window = self.add_window()
        core = DeviceCore(backend, self.mem, legacy=legacy, packed=packed)
        version = MMIO_VERSION_LEGACY if legacy else MMIO_VERSION_MODERN
        self.space.attach(window, MmioDevice(core, version=version))
        self.cores[window.base] = core
        return core

    def add_page_device(self, backend: DeviceBackend, *, packed: bool = False) -> DeviceCore:
        """Publish `backend` as the next descriptor-page entry; return its device core."""
        core = DeviceCore(backend, self.mem, packed=packed)
        entry = self.host.add(core, PAGE_IRQ_BASE + len(self.page_cores))
        self.page_cores.append((entry, core))
        return core


def round_trip(
    platform: Platform, device: BusDevice, index: int, payload: bytes, token: Hashable
) -> None:
    """Expose `payload` plus as much room on queue `index` and kick (no interrupt delivered)."""
    out = platform.allocator.alloc(len(payload), 8)
    room = platform.allocator.alloc(len(payload), 8)
    assert out is not None and room is not None
    platform.mem.write(out, payload)
    queue = device.queues[index]
    queue.add_sgs([Segment(out, len(payload))], [Segment(room, len(payload))], token)
    queue.kick()
