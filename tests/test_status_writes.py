"""What the driver side writes to device status over a device's whole life (§2.1, §3.1, §3.4).

A device core that logs every status write the transport hands it is bound by the bus,
used, removed and bound again, on virtio-mmio and on the descriptor page.
"""

from __future__ import annotations

import pytest
from transport_rig import PAGE_ADDR, PAGE_IRQ_BASE, Platform, round_trip

from impl.device_core import DeviceCore
from impl.devpage_driver import scan_devpage
from impl.mmio import MmioDevice
from impl.mmio_driver import scan_mmio
from impl.spec import DeviceId, Status
from impl.stubs import EchoDevice, EchoDriver


class StatusLog(DeviceCore):
    """A device core that keeps every value written to its status field.

    VIRTIO_F_SUSPEND is never offered (`impl/transport.RING_FEATURES` leaves it out), so
    no status write may carry SUSPEND.
    """

    def __init__(self, backend: EchoDevice, platform: Platform) -> None:
        super().__init__(backend, platform.mem)
        self.written: list[int] = []

    def write_status(self, value: int) -> None:
        self.written.append(value)
        super().write_status(value)


@pytest.mark.spec("INIT-DRV-009")
@pytest.mark.parametrize("transport", ["mmio", "page"])
def test_the_driver_never_sets_suspend_when_it_was_not_negotiated(transport: str) -> None:
    platform = Platform()
    core = StatusLog(EchoDevice(DeviceId.NET), platform)
    if transport == "mmio":
        platform.space.attach(platform.add_window(), MmioDevice(core))
        (device,) = scan_mmio(platform.space, platform.windows, platform.bus).registered
    else:
        platform.host.add(core, PAGE_IRQ_BASE)
        scan = scan_devpage(platform.mem, PAGE_ADDR, platform.host.hypercall, platform.bus)
        (device,) = scan.registered
    driver = EchoDriver("net", DeviceId.NET)
    for _ in range(2):
        platform.bus.register_driver(driver)
        round_trip(platform, device, 0, b"x", "t")
        platform.irqs.deliver_all()
        platform.bus.unregister_driver(driver)
    assert Status.DRIVER_OK in [Status(v) & Status.DRIVER_OK for v in core.written]
    assert [v for v in core.written if v & Status.SUSPEND] == []
