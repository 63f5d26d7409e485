"""A device that writes more than it reports: the split ring still refines the model (§2.7.8).

SPLIT-DEV-015 lets a device write past `len` into a buffer's writable part (`len` may
underestimate what it wrote). `OverwritingMachine` is the lockstep refinement machine of
tests/machines.py whose device, on every used buffer, fills the whole writable part
(its answer, then junk) and reports only the answer's length. The model is told the
answer only; after every step the abstraction of memory (which reads the first `len`
bytes of each used buffer) must equal the model's view, and each `get_buf` must return
exactly the answer's length and bytes. So nothing in the driver, the observer or the
model takes the junk, or the buffer's size, for written data.
"""

from __future__ import annotations

import pytest
from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule, run_state_machine_as_test
from machines import SplitQueueMachine

JUNK = 0xEE
"""What the device writes past the length it reports."""


class OverwritingMachine(SplitQueueMachine):
    """The split refinement machine with a device that writes more than `len` bytes."""

    overwrote = 0

    @precondition(lambda self: self.ready and self.held)
    @rule(data=st.data())
    def push_used(self, data: st.DataObject) -> None:
        """The device fills a held buffer to its end, reporting a shorter (or equal) length."""
        token = self._returnable(data)
        chain = self.held.pop(token)
        size = chain.writable_len
        answer = data.draw(st.binary(max_size=size), label="answer")
        chain.write_payload(self.device_mem, answer + bytes([JUNK]) * (size - len(answer)))
        self.overwrote += size > len(answer)
        note(f"push_used token={token} head={chain.head} len={len(answer)} of {size} written")
        self.device.push_used(chain.head, len(answer))
        self.model.push_used(token, answer)


@pytest.mark.spec("SPLIT-DEV-015")
def test_a_device_writing_past_len_still_refines_the_model() -> None:
    machines: list[OverwritingMachine] = []

    def build() -> OverwritingMachine:
        machine = OverwritingMachine()
        machines.append(machine)
        return machine

    run_state_machine_as_test(build)
    assert sum(m.overwrote for m in machines) > 0, "no run wrote past a reported length"
