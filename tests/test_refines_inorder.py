"""The reference split ring with VIRTIO_F_IN_ORDER refines the abstract virtqueue.

`InOrderSplitMachine` (tests/machines.py) always negotiates the feature: the device
returns its oldest buffer alone or batches of its oldest on one used element, a return
out of order is refused with nothing changed, the driver reclaims batches buffer by
buffer, and after every step memory abstracts to the model's view (whose in-order
promise asserts the order) with the indices crossing the 16-bit wrap.
"""

from __future__ import annotations

import pytest
from hypothesis.stateful import run_state_machine_as_test
from machines import InOrderSplitMachine


@pytest.mark.spec("FEAT-DEV-009", "SPLIT-DRV-004")
def test_in_order_split_ring_refines_the_model() -> None:
    machines: list[InOrderSplitMachine] = []

    def build() -> InOrderSplitMachine:
        machine = InOrderSplitMachine()
        machines.append(machine)
        return machine

    run_state_machine_as_test(build)
    assert all(m.in_order for m in machines if m.ready), "a run did not negotiate IN_ORDER"
    assert any(m.batches for m in machines), "no run returned a batch of two or more"
    assert any(m.crossed_used for m in machines), "no run crossed the used.idx wrap"
