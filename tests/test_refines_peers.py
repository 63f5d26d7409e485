"""Linux's split ring against the model and the reference: the four driver/device pairings.

The lockstep machine of tests/machines.py runs with (reference, reference), (Linux
driver, reference device), (reference driver, Linux device) and (Linux, Linux), once
for each EVENT_IDX x INDIRECT_DESC pair, with indices crossing the 16-bit wrap. After
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

import errno
from typing import Any

import pytest
from hypothesis import note, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule, run_state_machine_as_test
from machines import SIZES, SplitQueueMachine, reference_device, reference_driver
from peers.linux import (
    DISABLED_USED_EVENT,
    LinuxDevice,
    LinuxDriver,
    linux_device,
    linux_driver,
    require_library,
)

from impl.errors import ChainError, NextOutOfRange, PeerRejectedChain
from impl.layout import Descriptor, SplitLayout, avail_ring_bytes, desc_table_bytes, used_ring_bytes
from impl.spec import DESC_SIZE, DescFlag

PAIRINGS = {
    "ref-ref": (reference_driver, reference_device),
    "linux-ref": (linux_driver, reference_device),
    "ref-linux": (reference_driver, linux_device),
    "linux-linux": (linux_driver, linux_device),
}
MIN_EXAMPLES = 10
"""Fewest programs per feature pair; the profile's budget is shared among the four pairs."""


def ring_parts(layout: SplitLayout) -> list[tuple[str, int, int]]:
    """(name, start, end) of the descriptor table, available ring and used ring."""
    return [
        ("descriptor table", layout.desc, layout.desc + desc_table_bytes(layout.size)),
        ("available ring", layout.avail, layout.avail + avail_ring_bytes(layout.size)),
        ("used ring", layout.used, layout.used + used_ring_bytes(layout.size)),
    ]


class Guarded:
    """A native side whose every call is checked not to change the other side's ring parts.

    The Python sides write through `OwnedView`s that refuse such writes; C writes the
    bytes directly, so the check is a comparison of those parts before and after.
    """

    def __init__(self, side: Any, backing: bytearray, parts: list[tuple[str, int, int]]) -> None:
        self._side, self._backing, self._parts = side, backing, parts

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._side, name)
        if not callable(attr):
            return attr

        def guarded(*args: Any, **kwargs: Any) -> Any:
            before = [bytes(self._backing[lo:hi]) for _, lo, hi in self._parts]
            try:
                return attr(*args, **kwargs)
            finally:
                for (part, lo, hi), old in zip(self._parts, before, strict=True):
                    assert self._backing[lo:hi] == old, f"{name} wrote into the {part}"

        return guarded


class PeerQueueMachine(SplitQueueMachine):
    """The lockstep machine, with the two documented Linux differences modelled."""

    def _build(self) -> None:
        """Build as the base machine does, then guard the native sides' writes."""
        super()._build()
        desc, avail, used = ring_parts(self.layout)
        self.linux_driver = isinstance(self.driver, LinuxDriver)
        if self.linux_driver:
            self.driver = Guarded(self.driver, self.backing, [used])
        if isinstance(self.device, LinuxDevice):
            self.device = Guarded(self.device, self.backing, [desc, avail])

    @precondition(lambda self: self.ready)
    @rule()
    def disable_cb(self) -> None:
        """The driver asks not to be interrupted (Linux also moves used_event to 0)."""
        was_on = self.model.callbacks_enabled
        super().disable_cb()
        if was_on and self.event_idx and self.linux_driver:
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
                isinstance(error, PeerRejectedChain) and error.errno == errno.EINVAL
            )
        else:
            raise AssertionError("a chain with next out of range was accepted")
        finally:
            self.mem.write(self.layout.desc_addr(head), raw.pack())
        assert self.model.reject() == token


def fixed_features(event_idx: bool, indirect: bool) -> type[PeerQueueMachine]:
    """The peer machine with EVENT_IDX and INDIRECT_DESC fixed, the rest still drawn."""

    class Fixed(PeerQueueMachine):
        @initialize(
            size=st.sampled_from(SIZES),
            legacy=st.booleans(),
            behind=st.integers(min_value=1, max_value=6),
        )
        def setup(self, size: int, legacy: bool, behind: int) -> None:  # type: ignore[override]
            """Lay out the queue with this class's feature pair."""
            PeerQueueMachine.setup(self, size=size, event_idx=event_idx, indirect=indirect,
                                   legacy=legacy, behind=behind)

    return Fixed


FEATURE_PAIRS = [(e, i) for e in (False, True) for i in (False, True)]


@pytest.mark.spec(
    "SPLIT-DRV-010", "SPLIT-DRV-011", "SPLIT-DRV-020", "SPLIT-DRV-022",
    "SPLIT-DEV-009", "SPLIT-DEV-011", "SPLIT-DEV-013", "SPLIT-DEV-014",
)
@pytest.mark.parametrize(("event_idx", "indirect"), FEATURE_PAIRS,
                         ids=[f"event_idx={e}-indirect={i}" for e, i in FEATURE_PAIRS])
@pytest.mark.parametrize("pairing", list(PAIRINGS))
def test_pairing_refines_the_model(pairing: str, event_idx: bool, indirect: bool) -> None:
    driver_factory, device_factory = PAIRINGS[pairing]
    if "linux" in pairing and require_library() is None:
        pytest.skip("VIRTIO_ORACLE_NO_PEERS=1: Linux peer pairings not run")
    machine_class = fixed_features(event_idx, indirect)
    machines: list[PeerQueueMachine] = []

    def build() -> Any:
        machine = machine_class(driver_factory, device_factory)
        machines.append(machine)
        return machine

    share = max(MIN_EXAMPLES, settings.default.max_examples // len(FEATURE_PAIRS))
    run_state_machine_as_test(build, settings=settings(settings.default, max_examples=share))
    assert any(m.crossed_avail for m in machines), "no run crossed the avail.idx wrap"
    assert any(m.crossed_used for m in machines), "no run crossed the used.idx wrap"
