"""Tests of the tests, in-order: `InOrderSplitMachine` must catch each broken variant.

Each variant breaks one rule of VIRTIO_F_IN_ORDER (§2.7.9) the way a real bug would: a
driver that hands out only the buffer a batched used element names (losing the ones it
skips), a driver that frees reclaimed descriptors at the front of its free list as it
does without the feature (its chains then stop being consecutive), and a device that
takes back any held buffer, not only the oldest.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test
from machines import InOrderSplitMachine, reference_device, reference_driver
from support.verdict import fails
from test_broken_variants import HUNT as SPLIT_HUNT

from impl.chain import Segment
from impl.ring_math import advance
from impl.split_device import SplitDevice
from impl.split_driver import SplitDriver, Token

HUNT = settings(SPLIT_HUNT, max_examples=800)
"""The split hunt with more programs: a driver freeing at the front of its free list
shows only once a buffer is reclaimed while a later one is outstanding on a queue of
four or more, and 300 programs missed it under some fixed seeds."""

def in_order_machine_fails(driver_factory: Callable[..., Any] = reference_driver,
                           device_factory: Callable[..., Any] = reference_device) -> bool:
    """Run the in-order machine on a pair; True if Hypothesis found a failing program."""
    return fails(lambda: run_state_machine_as_test(
        lambda: InOrderSplitMachine(driver_factory, device_factory), settings=HUNT
    ))


class OnlyTheNamedBuffer(SplitDriver):
    """Reclaims the buffer a used element names and silently drops the ones it skips."""

    def _get_buf_in_order(self) -> tuple[Token, int] | None:
        batch = self._batch if self._batch is not None else self._read_batch()
        if batch is None:
            return None
        end, written = batch
        self._batch = None
        while (head := self._oldest()) != end:
            record = self._state[head]
            assert record is not None
            self._detach(head, record)
            self.last_used_idx = advance(self.last_used_idx)
        record = self._state[end]
        assert record is not None
        self._detach(end, record)
        self.last_used_idx = advance(self.last_used_idx)
        return record.token, written


class FreesAtTheFront(SplitDriver):
    """Reclaims in order through its own FIFO of heads, but keeps the free list of a driver
    without the feature (freed chains go to its front): chains stop being consecutive."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._next = [i + 1 for i in range(self.size)]
        self._fifo: deque[int] = deque()

    def add_sgs(self, out: Sequence[Segment], in_: Sequence[Segment], token: Token) -> int:
        head = super().add_sgs(out, in_, token)
        self._fifo.append(head)
        return head

    def _oldest(self) -> int:
        return self._fifo[0]

    def _batch_length(self, end: int) -> int:
        return list(self._fifo).index(end) + 1

    def _detach(self, head: int, record: Any) -> None:
        self._fifo.remove(head)
        self.in_order = False
        try:
            super()._detach(head, record)
        finally:
            self.in_order = True


class AnyHeldBuffer(SplitDevice):
    """Takes back any buffer it holds, as without the feature."""

    def push_used(self, head: int, written: int) -> None:
        chain = self.in_flight.pop(head)
        self._write_used(chain.head, written)


def _driver(cls: type[SplitDriver]) -> Callable[..., SplitDriver]:
    def build(mem: Any, layout: Any, features: int, allocator: Any, start: int) -> SplitDriver:
        return cls(mem, layout, features, allocator=allocator, initial_index=start)
    return build


def test_reference_pair_passes_the_in_order_hunt() -> None:
    assert not in_order_machine_fails()


def test_catches_a_driver_returning_only_the_named_buffer_of_a_batch() -> None:
    assert in_order_machine_fails(driver_factory=_driver(OnlyTheNamedBuffer))


def test_catches_a_driver_freeing_at_the_front_of_its_free_list() -> None:
    assert in_order_machine_fails(driver_factory=_driver(FreesAtTheFront))


def test_catches_a_device_taking_back_any_held_buffer() -> None:
    def build(mem: Any, layout: Any, features: int, start: int) -> SplitDevice:
        return AnyHeldBuffer(mem, layout, features, initial_index=start)
    assert in_order_machine_fails(device_factory=build)
