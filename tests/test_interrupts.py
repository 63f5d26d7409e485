"""The interrupt controller: held lines, coalescing, immediate delivery, bounded draining."""

from __future__ import annotations

from impl.interrupts import InterruptController


def test_a_line_raised_twice_before_delivery_is_delivered_once() -> None:
    irqs = InterruptController()
    runs: list[int] = []
    irqs.request(3, lambda: runs.append(3))
    irqs.raise_line(3)
    irqs.raise_line(3)
    assert runs == [] and irqs.pending == {3}
    assert irqs.deliver_all() == 1 and runs == [3]
    assert irqs.raised == 2 and irqs.delivered == 1
    assert irqs.deliver(3) is False


def test_immediate_mode_runs_the_handler_inside_the_raise() -> None:
    irqs = InterruptController(immediate=True)
    runs: list[int] = []
    irqs.request(1, lambda: runs.append(1))
    irqs.raise_line(1)
    assert runs == [1] and not irqs.pending


def test_a_line_without_a_handler_waits_for_one() -> None:
    irqs = InterruptController()
    irqs.raise_line(5)
    assert irqs.deliver_all() == 0 and irqs.pending == {5}
    runs: list[int] = []
    irqs.request(5, lambda: runs.append(5))
    assert irqs.deliver_all() == 1 and runs == [5]
    irqs.free(5)
    irqs.raise_line(5)
    assert irqs.deliver(5) is False and irqs.pending == {5}


def test_draining_a_line_that_always_raises_again_is_bounded() -> None:
    irqs = InterruptController()
    irqs.request(2, lambda: irqs.raise_line(2))
    irqs.raise_line(2)
    assert irqs.deliver_all(limit=10) == 10 and irqs.pending == {2}
