"""The net driver does not count on a device that needs a reset to finish anything (§2.1.1).

STATUS-DRV-004: once DEVICE_NEEDS_RESET is set, the driver should not rely on the
device completing operations. The device here sets it (through its transport, with a
configuration change interrupt) and then serves nothing more, as a broken device may.
A control command is then never used: the driver must report that with a typed error
and keep its own state as before the command (the ack byte it reads is the ERR it put
there, not a success it assumed), and after the bus resets and re-binds the device
everything completes again.

Spec: §2.1.1 (STATUS-DRV-004), §5.1.9.5 (control virtqueue), §2.1.2 (needs reset).
"""

from __future__ import annotations

from typing import Any

import pytest
from net_rig import MAC_A, MAC_B, net_side

from impl.bus import BusDevice
from impl.errors import HeadOutOfRange, NetCtrlNoAnswer
from impl.net_device import NetDevice
from impl.spec import NetCtrlRx


class GivingUpNet(NetDevice):
    """A virtio-net device that, once told to give up, asks for a reset and serves nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.given_up = False

    def give_up(self) -> None:
        assert self.context is not None
        self.given_up = True
        self.context.needs_reset(HeadOutOfRange("test: the device gave up"))

    def queue_notify(self, index: int) -> None:
        if not self.given_up:
            super().queue_notify(index)

    def reset(self) -> None:
        self.given_up = False
        super().reset()


@pytest.mark.spec("STATUS-DRV-004")
@pytest.mark.parametrize("transport", ["mmio", "page", "mmio-packed"])
def test_control_commands_to_a_device_needing_reset_are_not_taken_as_done(
    transport: str,
) -> None:
    side = net_side(MAC_A, None, transport=transport, device_class=GivingUpNet)
    device, handle = side.device, side.handle
    assert isinstance(device, GivingUpNet) and isinstance(handle, BusDevice)
    assert side.driver.set_rx_mode(NetCtrlRx.PROMISC, True)
    device.give_up()
    side.deliver()
    assert side.reset_requested() and handle.needs_reset
    with pytest.raises(NetCtrlNoAnswer):
        side.driver.set_mac_address(MAC_B)
    assert side.driver.mac == MAC_A
    with pytest.raises(NetCtrlNoAnswer):
        side.driver.set_rx_mode(NetCtrlRx.PROMISC, False)
    assert device.rx_filter.promisc  # the second command never reached the filter
    side.rebind()
    assert not side.reset_requested()
    assert side.driver.set_mac_address(MAC_B) and side.driver.mac == MAC_B
