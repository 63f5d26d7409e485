"""Linux's split ring against the model and the reference: the four driver/device pairings.

The lockstep machine of tests/machines.py runs with (reference, reference), (Linux
driver, reference device), (reference driver, Linux device) and (Linux, Linux), with
EVENT_IDX and INDIRECT_DESC on and off and indices crossing the 16-bit wrap. After
every step memory decodes to the model's view, and each side's notification decision
(kick_prepare, needs_notification, enable_cb, enable_notification) equals the
model's, so the peer's and the reference's decisions agree.

Two documented differences are modelled rather than hidden (docs/oracle.md):
- Linux's disable_cb writes used_event = 0 in event-index mode; the reference leaves
  it. Both are allowed while callbacks are off (SPLIT-DRV-015: interrupts may be
  spurious then), so for a Linux driver the model's used_event follows that write.
- vringh reports a malformed chain only as an errno; the adapter raises
  `PeerRejectedChain`, after returning the head used with length 0 as our policy does.

Without the peer (VIRTIO_ORACLE_NO_PEERS=1) the Linux pairings are skipped with that
reason in the summary; if the peer cannot be built they fail.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import note
from hypothesis.stateful import precondition, rule, run_state_machine_as_test
from machines import SplitQueueMachine, reference_device, reference_driver
from peers.linux import (
    DISABLED_USED_EVENT,
    LinuxDriver,
    linux_device,
    linux_driver,
    require_library,
)

from impl.errors import ChainError, NextOutOfRange, PeerRejectedChain
from impl.layout import Descriptor
from impl.spec import DESC_SIZE, DescFlag

PAIRINGS = {
    "ref-ref": (reference_driver, reference_device),
    "linux-ref": (linux_driver, reference_device),
    "ref-linux": (reference_driver, linux_device),
    "linux-linux": (linux_driver, linux_device),
}
EINVAL = 22


class PeerQueueMachine(SplitQueueMachine):
    """The lockstep machine, with the two documented Linux differences modelled."""

    @precondition(lambda self: self.ready)
    @rule()
    def disable_cb(self) -> None:
        """The driver asks not to be interrupted (Linux also moves used_event to 0)."""
        was_on = self.model.callbacks_enabled
        super().disable_cb()
        if was_on and self.event_idx and isinstance(self.driver, LinuxDriver):
            self.model.used_event = DISABLED_USED_EVENT

    @precondition(lambda self: self.ready and not self.model.available and self.driver.num_free)
    @rule()
    def bad_chain(self) -> None:
        """A chain whose `next` is out of range is refused and returned used with length 0."""
        self.add([b"bad"], [])
        if not self.model.available:
            return
        token, _ = self.model.available[0]
        head = self.heads[token]
        raw = Descriptor.unpack(self.mem.read(self.layout.desc_addr(head), DESC_SIZE))
        broken = Descriptor(addr=raw.addr, len=raw.len, flags=raw.flags | DescFlag.NEXT,
                            next=self.layout.size)
        self.mem.write(self.layout.desc_addr(head), broken.pack())
        try:
            self.device.pop()
        except ChainError as error:
            note(f"bad chain at head {head}: {error!r}")
            assert error.head == head
            assert isinstance(error, NextOutOfRange) or (
                isinstance(error, PeerRejectedChain) and error.errno == EINVAL
            )
        else:
            raise AssertionError("a chain with next out of range was accepted")
        finally:
            self.mem.write(self.layout.desc_addr(head), raw.pack())
        assert self.model.reject() == token


@pytest.mark.spec(
    "SPLIT-DRV-010", "SPLIT-DRV-011", "SPLIT-DRV-020", "SPLIT-DRV-022",
    "SPLIT-DEV-009", "SPLIT-DEV-011", "SPLIT-DEV-013", "SPLIT-DEV-014",
)
@pytest.mark.parametrize("pairing", list(PAIRINGS))
def test_pairing_refines_the_model(pairing: str) -> None:
    driver_factory, device_factory = PAIRINGS[pairing]
    if "linux" in pairing and require_library() is None:
        pytest.skip("VIRTIO_ORACLE_NO_PEERS=1: Linux peer pairings not run")
    machines: list[PeerQueueMachine] = []

    def build() -> Any:
        machine = PeerQueueMachine(driver_factory, device_factory)
        machines.append(machine)
        return machine

    run_state_machine_as_test(build)
    assert any(m.crossed_avail for m in machines), "no run crossed the avail.idx wrap"
    assert any(m.crossed_used for m in machines), "no run crossed the used.idx wrap"
