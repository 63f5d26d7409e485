"""virtio-net guests for the net tests: one guest per side, on a chosen transport.

`NetSide` is one guest: its memory, its `NetDevice` (host side), its `NetDriver` and
what the test needs of the platform between them: deliver pending interrupts, ask
whether one is pending, ask whether the device asked for a reset. `net_side` builds
one on `transport`:

- "direct": `direct_bus` (no registers; the driver talks to the backend directly);
- "mmio": a virtio-mmio version 2 register window, scanned and probed by the bus;
- "mmio-legacy": a virtio-mmio version 1 window (no VERSION_1: the 10-byte header
  unless MRG_RXBUF, the header in its own descriptor);
- "page": the descriptor-page bus (lguest style);
- "mmio-packed", "page-packed": the same with VIRTIO_F_RING_PACKED offered by the
  device core and accepted by the bus, so every queue is a packed ring.

`net_pair` joins two sides with a `Wire`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from direct_bus import bind

from impl.alloc import GuestAllocator
from impl.bus import RING_FEATURES, VirtioBus
from impl.device_core import DeviceCore
from impl.devpage import DevicePageHost
from impl.devpage_driver import scan_devpage
from impl.interrupts import InterruptController
from impl.memory import GuestMemory
from impl.mmio import MmioDevice, MmioSpace, MmioWindow
from impl.mmio_driver import scan_mmio
from impl.net_backend import FrameTap, Port, Wire
from impl.net_device import NetDevice
from impl.net_driver import DRIVER_FEATURES, NetDriver
from impl.spec import MMIO_VERSION_LEGACY, MMIO_VERSION_MODERN, Status
from impl.transport import PACKED_RING

MAC_A = bytes.fromhex("525400000001")
MAC_B = bytes.fromhex("525400000002")
GUEST_BASE = 0x10000
MMIO_BASE = 0x1000_0000
MMIO_IRQ = 1
PAGE_ADDR = 0x1000
PAGE_IRQ = 32
TRANSPORTS = ("direct", "mmio", "mmio-legacy", "page")
PACKED_TRANSPORTS = ("mmio-packed", "page-packed")
BUS_TRANSPORTS = ("mmio", "mmio-legacy", "page", *PACKED_TRANSPORTS)
PACKED_SUFFIX = "-packed"


@dataclass
class NetSide:
    """One guest on the link, and the platform hooks a test needs."""

    mem: GuestMemory
    device: NetDevice
    driver: NetDriver
    handle: Any
    deliver: Callable[[], int]
    pending: Callable[[], bool]
    reset_requested: Callable[[], bool]
    bus: VirtioBus | None = None

    def rebind(self) -> None:
        """Unbind the driver (the bus resets the device) and bind it again."""
        assert self.bus is not None, "rebinding needs a bus"
        self.bus.unregister_driver(self.driver)
        self.bus.register_driver(self.driver)
        assert self.handle.driver is self.driver


def net_side(
    mac: bytes,
    port: Port | None,
    *,
    transport: str = "direct",
    mem_size: int = 4 << 20,
    known: int = DRIVER_FEATURES,
    buf_size: int | None = None,
    queue_size: int = 64,
    auto_refill: bool = True,
    immediate: bool = True,
    device_class: type[NetDevice] = NetDevice,
    give_memory: bool = True,
    **device_options: Any,
) -> NetSide:
    """Build a device on `port`, a driver over fresh guest memory, and bind them."""
    mem = GuestMemory(mem_size)
    allocator = GuestAllocator(GUEST_BASE, mem_size)
    device = device_class(mac, port, queue_size=queue_size, **device_options)
    driver = NetDriver(
        mem if give_memory else None,
        allocator if give_memory else None,
        feature_table=known,
        buf_size=buf_size,
        auto_refill=auto_refill,
    )
    if transport == "direct":
        handle = bind(driver, device, mem, allocator, immediate=immediate)
        return NetSide(
            mem,
            device,
            driver,
            handle,
            handle.deliver,
            lambda: bool(handle.pending) or handle.config_pending,
            lambda: bool(handle.reset_requests),
        )
    irqs = InterruptController(immediate=immediate)
    packed = transport.endswith(PACKED_SUFFIX)
    ring_features = RING_FEATURES & known | (PACKED_RING if packed else 0)
    bus = VirtioBus(mem, allocator, irqs, queue_size=queue_size, ring_features=ring_features)
    core = _attach(transport, device, mem, irqs, bus, driver)
    [bus_device] = bus.devices
    assert bus_device.driver is driver, f"probe failed: {bus_device.probe_error}"
    assert bus_device.packed == packed, "the packed variants run packed rings, the rest split"
    return NetSide(
        mem,
        device,
        driver,
        bus_device,
        irqs.deliver_all,
        lambda: bool(irqs.pending),
        lambda: bool(core.status & Status.DEVICE_NEEDS_RESET),
        bus,
    )


def _attach(
    transport: str,
    device: NetDevice,
    mem: GuestMemory,
    irqs: InterruptController,
    bus: VirtioBus,
    driver: NetDriver,
) -> DeviceCore:
    """Put `device` behind `transport`, register `driver`, let the guest find the device."""
    bus.register_driver(driver)
    packed = transport.endswith(PACKED_SUFFIX)
    transport = transport.removesuffix(PACKED_SUFFIX)
    if transport == "page":
        core = DeviceCore(device, mem, packed=packed)
        host = DevicePageHost(mem, PAGE_ADDR, irqs)
        host.add(core, PAGE_IRQ)
        scan_devpage(mem, PAGE_ADDR, host.hypercall, bus)
        return core
    legacy = transport == "mmio-legacy"
    assert legacy or transport == "mmio", f"unknown transport {transport}"
    core = DeviceCore(device, mem, legacy=legacy, packed=packed)
    space = MmioSpace(irqs)
    window = MmioWindow(base=MMIO_BASE, irq=MMIO_IRQ)
    space.attach(
        window, MmioDevice(core, version=MMIO_VERSION_LEGACY if legacy else MMIO_VERSION_MODERN)
    )
    scan_mmio(space, [window], bus)
    return core


def net_pair(taps: tuple[FrameTap, ...] = (), **options: Any) -> tuple[NetSide, NetSide, Wire]:
    """Two sides, A and B, joined by one wire."""
    wire = Wire(taps)
    a = net_side(MAC_A, wire.a, **options)
    b = net_side(MAC_B, wire.b, **options)
    return a, b, wire


def frame(dst: bytes, src: bytes, length: int, seed: int = 0) -> bytes:
    """An Ethernet frame of `length` bytes: header with a local ethertype, then a pattern."""
    body = bytes((seed + i) & 0xFF for i in range(length - 14))
    return dst + src + b"\x88\xb5" + body
