"""Tests of the net tests: the link refinement machine must catch broken devices.

Each variant changes one thing in `NetDevice` the way real bugs look: a drop that is
not counted, num_buffers left at 1 for a merged packet, a receive queue that never
re-arms kicks when it runs dry, a used receive buffer without an interrupt. A check
that cannot fail is a defect, so `NetLinkMachine` must report each one.
"""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test
from support.verdict import fails
from test_refines_net import NetLinkMachine

from impl.chain import Chain
from impl.net_device import DropReason, NetDevice
from impl.spec import NET_HDR_LEGACY_SIZE, NET_HDR_SIZE, NET_QUEUE_RX

NUM_BUFFERS_OFFSET = NET_HDR_LEGACY_SIZE

HUNT = settings(
    max_examples=500,
    stateful_step_count=40,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)
"""Detection only, with a fixed seed: the same verdict on every run."""


def machine_fails(device_class: type[NetDevice]) -> bool:
    """True if Hypothesis finds a program on which the machine fails with this device."""
    return fails(lambda: run_state_machine_as_test(
        lambda: NetLinkMachine(device_class), settings=HUNT
    ))


class UncountedBacklogDrop(NetDevice):
    """Drops a frame on a full backlog without counting it."""

    def receive_frame(self, frame: bytes) -> None:
        before = self.stats.drops[DropReason.BACKLOG_FULL]
        super().receive_frame(frame)
        self.stats.drops[DropReason.BACKLOG_FULL] = before


class NumBuffersAlwaysOne(NetDevice):
    """Leaves num_buffers at 1 when a packet spans several buffers."""

    def _fill(self, data: bytes) -> bool:
        first = self._held[0]
        done = super()._fill(data)
        if self.context is not None and self.hdr_size == NET_HDR_SIZE:
            self.context.mem.write_u16(first.writable[0].addr + NUM_BUFFERS_OFFSET, 1)
        return done


class NeverRearmsReceive(NetDevice):
    """Never asks for receive kicks again after running out of buffers."""

    def _drain(self, index: int, *, once: bool = False) -> list[Chain]:
        if index != NET_QUEUE_RX:
            return super()._drain(index, once=once)
        queue = self._queue(index)
        if queue is None:
            return []
        chain = queue.pop()
        return [] if chain is None else [chain]


class NoReceiveInterrupt(NetDevice):
    """Forgets to signal used receive buffers."""

    def _signal(self, index: int) -> None:
        if index == NET_QUEUE_RX:
            self._used.discard(index)
            return
        super()._signal(index)


def test_reference_device_passes_the_same_hunt() -> None:
    assert not machine_fails(NetDevice)


def test_catches_an_uncounted_drop() -> None:
    assert machine_fails(UncountedBacklogDrop)


def test_catches_num_buffers_not_set_for_merged_packets() -> None:
    assert machine_fails(NumBuffersAlwaysOne)


def test_catches_a_receive_queue_that_never_rearms_kicks() -> None:
    assert machine_fails(NeverRearmsReceive)


def test_catches_a_missing_receive_interrupt() -> None:
    assert machine_fails(NoReceiveInterrupt)

