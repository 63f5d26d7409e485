"""The driver side's register traffic obeys virtio-mmio's driver rules, access by access.

A tracing address space records every access the scan, the probe, a round trip, a
config read and a remove make; the trace is then checked against §4.2.2/§4.2.3: only
aligned 32-bit control accesses, naturally aligned 8/16/32-bit config accesses,
selectors written before feature registers, nothing touched at a DeviceID-0 window
after DeviceID, no shared-memory registers, no version other than 1 and 2 accepted;
also with packed rings negotiated (version 2).
"""

from __future__ import annotations

import pytest
from transport_rig import Platform, round_trip

from impl.device_core import DeviceCore
from impl.interrupts import InterruptController
from impl.mmio import REGISTERS, MmioDevice, MmioSpace
from impl.mmio_driver import scan_mmio
from impl.packed_driver import PackedDriver
from impl.spec import MMIO_CONFIG_OFFSET, DeviceId, MmioReg
from impl.stubs import EchoDevice, EchoDriver
from impl.transport import PACKED_RING, RING_FEATURES

Access = tuple[str, int, int]
SHM = {MmioReg.SHM_SEL, MmioReg.SHM_LEN_LOW, MmioReg.SHM_LEN_HIGH, MmioReg.SHM_BASE_LOW,
       MmioReg.SHM_BASE_HIGH}


class TracingSpace(MmioSpace):
    """An MMIO space that records (kind, address, width) of every guest access."""

    def __init__(self, irqs: InterruptController) -> None:
        super().__init__(irqs)
        self.trace: list[Access] = []

    def read(self, addr: int, width: int) -> int:
        self.trace.append(("r", addr, width))
        return super().read(addr, width)

    def write(self, addr: int, width: int, value: int) -> None:
        self.trace.append(("w", addr, width))
        super().write(addr, width, value)


class OddVersion(MmioDevice):
    """A device answering Version 3, which no driver may accept."""

    def read(self, offset: int, width: int) -> int:
        return 3 if offset == MmioReg.VERSION else super().read(offset, width)


def traced_platform(legacy: bool, packed: bool = False) -> tuple[Platform, TracingSpace]:
    platform = Platform(ring_features=RING_FEATURES | PACKED_RING)
    space = TracingSpace(platform.irqs)
    platform.space = space
    platform.add_mmio(EchoDevice(DeviceId.RESERVED))
    platform.add_mmio(EchoDevice(DeviceId.NET, queues=(8, 6)), legacy=legacy, packed=packed)
    window = platform.add_window()
    odd = DeviceCore(EchoDevice(DeviceId.BLOCK), platform.mem)
    space.attach(window, OddVersion(odd))
    return platform, space


@pytest.mark.spec(
    "MMIO-DRV-002", "MMIO-DRV-003", "MMIO-DRV-005", "MMIO-DRV-007", "MMIO-DRV-008",
    "MMIO-DRV-018", "MMIO-DRV-019", "MMIO-DRV-001",
)
@pytest.mark.parametrize(("legacy", "packed"), [(False, False), (True, False), (False, True)])
def test_the_driver_sides_register_traffic_keeps_the_mmio_rules(legacy: bool, packed: bool) -> None:
    platform, space = traced_platform(legacy, packed)
    driver = EchoDriver("net", DeviceId.NET)
    platform.bus.register_driver(driver)
    result = scan_mmio(space, platform.windows, platform.bus)
    (device,) = result.registered
    assert all(isinstance(ring, PackedDriver) == packed for ring in device.queues)
    reserved, _net, odd = platform.windows
    assert [w for w, e in result.skipped if e is not None] == [odd]  # Version 3 ignored
    round_trip(platform, device, 0, b"trace", "t")
    platform.irqs.deliver_all()
    device.read_config(0, 8)
    device.read_config(1, 2)
    device.read_config(2, 6)
    platform.bus.unregister_driver(driver)
    assert driver.received == [("t", 5)]

    reserved_offsets = [a - reserved.base for _, a, _ in space.trace
                        if reserved.base <= a < reserved.base + reserved.size]
    assert reserved_offsets == [MmioReg.MAGIC_VALUE, MmioReg.VERSION, MmioReg.DEVICE_ID]
    odd_offsets = [a - odd.base for _, a, _ in space.trace if odd.base <= a < odd.base + odd.size]
    assert odd_offsets == [MmioReg.MAGIC_VALUE, MmioReg.VERSION]

    net = platform.windows[1]
    version = 1 if legacy else 2
    last_written: dict[int, bool] = {}
    for kind, addr, width in space.trace:
        if not net.base <= addr < net.base + net.size:
            continue
        offset = addr - net.base
        if offset >= MMIO_CONFIG_OFFSET:
            assert width in (1, 2, 4) and offset % width == 0
            continue
        assert width == 4 and offset % 4 == 0
        assert offset in REGISTERS and version in REGISTERS[offset][1]
        assert offset not in SHM
        if kind == "r" and offset == MmioReg.DEVICE_FEATURES:
            assert last_written.get(MmioReg.DEVICE_FEATURES_SEL)
        if kind == "w" and offset == MmioReg.DRIVER_FEATURES:
            assert last_written.get(MmioReg.DRIVER_FEATURES_SEL)
        if kind == "w":
            last_written[offset] = True
    core = platform.cores[net.base]
    assert core.violations == []
