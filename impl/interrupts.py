"""Interrupt lines between devices and the guest's handlers: raise, hold, deliver.

Rules:
- A device raises a numbered line; the guest side has requested a handler for it.
  Raising never runs guest code inside the device unless the controller is in
  `immediate` mode: otherwise the line is held pending until `deliver(line)` or
  `deliver_all()`, so a scheduler (the tests') decides when the guest runs.
- A line raised again while pending is one delivery (level-triggered lines coalesce,
  as a real interrupt controller does); the handler then finds every bit that was
  set in the device's interrupt status.
- A line without a handler stays pending; a handler requested later receives it.

Spec: §2.3 (notifications), §4.2.3.4 (virtio-mmio's single interrupt line).
"""

from __future__ import annotations

from collections.abc import Callable

Handler = Callable[[], object]


class InterruptController:
    """A set of interrupt lines, each with at most one guest handler."""

    def __init__(self, *, immediate: bool = False) -> None:
        self.immediate = immediate
        self._handlers: dict[int, Handler] = {}
        self.pending: set[int] = set()
        self.raised = 0
        self.delivered = 0

    def request(self, line: int, handler: Handler) -> None:
        """Install `handler` for `line` (Linux's request_irq)."""
        self._handlers[line] = handler

    def free(self, line: int) -> None:
        """Remove the handler of `line`; later raises stay pending."""
        self._handlers.pop(line, None)

    def raise_line(self, line: int) -> None:
        """A device asserts `line`: held pending, or delivered now in immediate mode."""
        self.raised += 1
        self.pending.add(line)
        if self.immediate:
            self.deliver(line)

    def deliver(self, line: int) -> bool:
        """Run the handler of pending `line`; False if it was not pending or has none."""
        handler = self._handlers.get(line)
        if line not in self.pending or handler is None:
            return False
        self.pending.discard(line)
        self.delivered += 1
        handler()
        return True

    def deliver_all(self, limit: int = 1000) -> int:
        """Deliver pending lines until none with a handler is left; return how many ran.

        `limit` bounds the work (a handler whose device raises again at once would
        otherwise loop forever).
        """
        count = 0
        while count < limit:
            ready = sorted(line for line in self.pending if line in self._handlers)
            if not ready:
                break
            self.deliver(ready[0])
            count += 1
        return count
