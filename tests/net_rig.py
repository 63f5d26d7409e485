"""Two virtio-net guests joined by a wire, for the net tests: build, bind, exchange.

`NetSide` is one guest: its memory, its `NetDevice`, its `NetDriver` and the handle
joining them. `net_pair` builds two sides over a `Wire` with the options a test
chooses (features the drivers know, buffer sizes, queue sizes, backlog).
"""

from __future__ import annotations

from dataclasses import dataclass

from direct_bus import DirectDevice, bind

from impl.alloc import GuestAllocator
from impl.memory import GuestMemory
from impl.net_backend import FrameTap, Port, Wire
from impl.net_device import NetDevice
from impl.net_driver import DRIVER_FEATURES, NetDriver

MAC_A = bytes.fromhex("525400000001")
MAC_B = bytes.fromhex("525400000002")
GUEST_BASE = 0x1000


@dataclass
class NetSide:
    """One guest on the link."""

    mem: GuestMemory
    device: NetDevice
    driver: NetDriver
    handle: DirectDevice


def net_side(
    mac: bytes,
    port: Port | None,
    *,
    mem_size: int = 4 << 20,
    known: int = DRIVER_FEATURES,
    buf_size: int | None = None,
    queue_size: int = 64,
    auto_refill: bool = True,
    immediate: bool = True,
    device_class: type[NetDevice] = NetDevice,
    **device_options: object,
) -> NetSide:
    """Build a device on `port`, a driver over fresh guest memory, and bind them."""
    mem = GuestMemory(mem_size)
    allocator = GuestAllocator(GUEST_BASE, mem_size)
    device = device_class(mac, port, queue_size=queue_size, **device_options)  # type: ignore[arg-type]
    driver = NetDriver(
        mem, allocator, feature_table=known, buf_size=buf_size, auto_refill=auto_refill
    )
    handle = bind(driver, device, mem, allocator, immediate=immediate)
    return NetSide(mem, device, driver, handle)


def net_pair(
    taps: tuple[FrameTap, ...] = (), **options: object
) -> tuple[NetSide, NetSide, Wire]:
    """Two sides, A and B, joined by one wire."""
    wire = Wire(taps)
    a = net_side(MAC_A, wire.a, **options)  # type: ignore[arg-type]
    b = net_side(MAC_B, wire.b, **options)  # type: ignore[arg-type]
    return a, b, wire


def frame(dst: bytes, src: bytes, length: int, seed: int = 0) -> bytes:
    """An Ethernet frame of `length` bytes: header with a local ethertype, then a pattern."""
    body = bytes((seed + i) & 0xFF for i in range(length - 14))
    return dst + src + b"\x88\xb5" + body
