"""virtio-blk guests for the blk tests: a `BlkDevice` and a `BlkDriver` bound over a transport.

`blk_side` builds one guest on `transport`:

- "direct": `direct_bus` (no registers; the driver talks to the backend directly);
- "mmio": a virtio-mmio version 2 register window, scanned and probed by the bus;
- "mmio-legacy": a virtio-mmio version 1 window (no VERSION_1, no FEATURES_OK);
- "page": the descriptor-page bus (lguest style);
- "mmio-packed", "page-packed": virtio-mmio version 2 and the descriptor page with
  VIRTIO_F_RING_PACKED offered by the device core and accepted by the bus, so every
  request queue is a packed ring (§2.8).

`BlkSide.rings[i]` is the driver half of queue i, a `SplitDriver` or a `PackedDriver` (the
tests read `token_of` from it to know which request a held chain carries: a split
chain's head or a packed chain's Buffer ID).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from direct_bus import bind

from impl.alloc import GuestAllocator
from impl.blk_device import BlkDevice
from impl.blk_driver import KNOWN_FEATURES, BlkDriver
from impl.bus import RING_FEATURES, VirtioBus
from impl.device_core import DeviceCore
from impl.devpage import DevicePageHost
from impl.devpage_driver import scan_devpage
from impl.driver import VirtioDriver
from impl.interrupts import InterruptController
from impl.memory import GuestMemory
from impl.mmio import MmioDevice, MmioSpace, MmioWindow
from impl.mmio_driver import scan_mmio
from impl.packed_driver import PackedDriver
from impl.spec import MMIO_VERSION_LEGACY, MMIO_VERSION_MODERN, Status
from impl.split_driver import SplitDriver
from impl.transport import PACKED_RING

GUEST_BASE = 0x10000
MMIO_BASE = 0x1000_0000
MMIO_IRQ = 1
PAGE_ADDR = 0x1000
PAGE_IRQ = 32
TRANSPORTS = ("direct", "mmio", "mmio-legacy", "page")
PACKED_TRANSPORTS = ("mmio-packed", "page-packed")
PACKED_SUFFIX = "-packed"


@dataclass
class BlkSide:
    """One guest with a block device, and the platform hooks a test needs."""

    mem: GuestMemory
    allocator: GuestAllocator
    device: BlkDevice
    driver: BlkDriver
    handle: Any
    rings: list[SplitDriver] | list[PackedDriver]
    config_changes: Callable[[], int]
    reset_requested: Callable[[], bool]
    bus: VirtioBus | None = None


def guest(size: int = 4 << 20) -> tuple[GuestMemory, GuestAllocator]:
    """A guest memory and the allocator rings and buffers come from."""
    return GuestMemory(size), GuestAllocator(GUEST_BASE, size)


def blk_side(
    device: BlkDevice,
    *,
    transport: str = "direct",
    known: int = KNOWN_FEATURES,
    mem_size: int = 4 << 20,
    max_queues: int | None = None,
    driver_class: type[BlkDriver] = BlkDriver,
) -> BlkSide:
    """Bind a fresh `driver_class` to `device` over `transport` in a fresh guest memory."""
    mem, allocator = guest(mem_size)
    driver = driver_class(feature_table=known, max_queues=max_queues)
    if transport == "direct":
        handle = bind(driver, device, mem, allocator)
        rings = [queue.ring for queue in handle.queues]
        return BlkSide(mem, allocator, device, driver, handle, rings,
                       lambda: handle.config_interrupts,
                       lambda: bool(handle.reset_requests))  # fmt: skip
    bus_device, core, bus = bus_bind(driver, device, transport, mem, allocator, known)
    return BlkSide(mem, allocator, device, driver, bus_device, list(bus_device.queues),
                   lambda: bus_device.config_changes,
                   lambda: bool(core.status & Status.DEVICE_NEEDS_RESET), bus)  # fmt: skip


def bus_bind(
    driver: VirtioDriver,
    device: BlkDevice,
    transport: str,
    mem: GuestMemory,
    allocator: GuestAllocator,
    known: int = KNOWN_FEATURES,
) -> tuple[Any, DeviceCore, VirtioBus]:
    """Bind `driver` to `device` through a bus on `transport` (any but "direct").

    Returns the bus's handle on the device (the driver's `VirtioDevice`), the device
    core behind the transport, and the bus. The ring bits offered are those in `known`,
    plus RING_PACKED on the packed transports.
    """
    irqs = InterruptController(immediate=True)
    packed = transport.endswith(PACKED_SUFFIX)
    ring_features = RING_FEATURES & known | (PACKED_RING if packed else 0)
    bus = VirtioBus(mem, allocator, irqs, ring_features=ring_features)
    core = _attach(transport, device, mem, irqs, bus, driver)
    [bus_device] = bus.devices
    assert bus_device.driver is driver, f"probe failed: {bus_device.probe_error}"
    assert bus_device.packed == packed, "the packed variants run packed rings, the rest split"
    return bus_device, core, bus


def _attach(
    transport: str,
    device: BlkDevice,
    mem: GuestMemory,
    irqs: InterruptController,
    bus: VirtioBus,
    driver: VirtioDriver,
) -> DeviceCore:
    """Put `device` behind `transport`, register `driver`, let the guest find the device."""
    bus.register_driver(driver)
    packed = transport.endswith(PACKED_SUFFIX)
    transport = transport.removesuffix(PACKED_SUFFIX)
    legacy = transport == "mmio-legacy"
    core = DeviceCore(device, mem, legacy=legacy, packed=packed)
    if transport == "page":
        host = DevicePageHost(mem, PAGE_ADDR, irqs)
        host.add(core, PAGE_IRQ)
        scan_devpage(mem, PAGE_ADDR, host.hypercall, bus)
        return core
    assert legacy or transport == "mmio", f"unknown transport {transport}"
    space = MmioSpace(irqs)
    window = MmioWindow(base=MMIO_BASE, irq=MMIO_IRQ)
    version = MMIO_VERSION_LEGACY if legacy else MMIO_VERSION_MODERN
    space.attach(window, MmioDevice(core, version=version))
    scan_mmio(space, [window], bus)
    return core
