"""The driver's flags-mode request not to be interrupted (§2.7.7, no VIRTIO_F_EVENT_IDX).

`disable_cb` writes 1 into the available ring's flags; the device then does not ask for
a used buffer notification, and `enable_cb` clears the word again.
"""

from __future__ import annotations

import pytest

from impl.chain import Segment
from impl.layout import SplitLayout
from impl.memory import GuestMemory
from impl.spec import AvailFlag
from impl.split_device import SplitDevice
from impl.split_driver import SplitDriver


def serve_one(driver: SplitDriver, device: SplitDevice, token: str) -> bool:
    driver.add_inbuf([Segment(0x4000, 8)], token)
    driver.kick_prepare()
    chain = device.pop()
    assert chain is not None
    device.push_used(chain.head, 0)
    return device.needs_notification()


@pytest.mark.spec("SPLIT-DRV-012")
def test_disable_cb_writes_no_interrupt_and_the_device_keeps_quiet() -> None:
    mem = GuestMemory(0x10000)
    layout = SplitLayout.modern(8, 0x1000)
    driver, device = SplitDriver(mem, layout), SplitDevice(mem, layout)
    assert serve_one(driver, device, "a") is True
    assert driver.get_buf() == ("a", 0)
    driver.disable_cb()
    assert mem.read_u16(layout.avail_flags) == AvailFlag.NO_INTERRUPT == 1
    assert serve_one(driver, device, "b") is False
    assert driver.enable_cb() is False  # "b" is already used
    assert mem.read_u16(layout.avail_flags) == 0
    assert driver.get_buf() == ("b", 0)
    assert serve_one(driver, device, "c") is True
