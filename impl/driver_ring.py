"""What every driver-side virtqueue does the same way, whatever its ring layout.

The split driver (`impl/split_driver.py`) and the packed driver (`impl/packed_driver.py`)
differ in how they write descriptors and read used entries; the calls below do not
depend on that, so they live here once:
- `add_outbuf` / `add_inbuf` are `add_sgs` with one side empty;
- an indirect table is used when negotiated, worth it (two parts or more) and a ring
  slot is free, as Linux decides (§2.7.5.3, §2.8.7);
- `kick()` is `kick_prepare()` then the transport's doorbell (§2.7.13.4, §2.8.21.2);
- teardown hands back every outstanding token exactly once, only after a device reset
  (§3.3, INIT-DRV-008);
- a device that broke a rule breaks the queue until reset: every later call raises
  `QueueBroken`.

Spec: §2.7.13, §2.8.21 (supplying buffers), §3.3 (removal).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Generic, NoReturn, Protocol, TypeVar

from .alloc import GuestAllocator
from .chain import Segment
from .errors import QueueBroken
from .memory import GuestMemory
from .spec import DESC_SIZE

Token = Hashable


class _Record(Protocol):
    """What a driver keeps per outstanding buffer: at least the caller's token."""

    @property
    def token(self) -> Token: ...


RecordT = TypeVar("RecordT", bound=_Record)


class DriverRing(Generic[RecordT]):
    """The ring-independent part of a driver queue; subclasses write the ring.

    Subclasses set these attributes and define `add_sgs`, `kick_prepare` and `_detach`.
    """

    mem: GuestMemory
    size: int
    indirect: bool
    num_free: int
    outstanding: int
    broken: bool
    _detach_from: int = 0
    """Where the next `detach_unused_buf` starts looking (a slot of `_state`)."""
    _allocator: GuestAllocator | None
    _notify: Callable[[], None] | None
    _state: list[RecordT | None]

    def add_sgs(self, out: Sequence[Segment], in_: Sequence[Segment], token: Token) -> int:
        """Expose a buffer of device-readable `out` then device-writable `in_` segments."""
        raise NotImplementedError

    def add_outbuf(self, segments: Sequence[Segment], token: Token) -> int:
        """Expose a device-readable buffer."""
        return self.add_sgs(segments, (), token)

    def add_inbuf(self, segments: Sequence[Segment], token: Token) -> int:
        """Expose a device-writable buffer."""
        return self.add_sgs((), segments, token)

    def _indirect_table(self, parts: int) -> int | None:
        """Allocate an indirect table when it is negotiated and worth it (Linux's rule)."""
        if not self.indirect or parts < 2 or self.num_free == 0 or self._allocator is None:
            return None
        return self._allocator.alloc(DESC_SIZE * parts, DESC_SIZE)

    def kick_prepare(self) -> bool:
        """Publish what was added; whether the device asked to be notified."""
        raise NotImplementedError

    def notify(self) -> None:
        """Ring the transport's doorbell for this queue (no-op without a hook)."""
        if self._notify is not None:
            self._notify()

    def kick(self) -> bool:
        """`kick_prepare()` and, if it says so, `notify()`; returns whether it notified."""
        needed = self.kick_prepare()
        if needed:
            self.notify()
        return needed

    def detach_unused_buf(self) -> Token | None:
        """Take back one buffer the device never used; only once the device is reset.

        For teardown (§3.3, INIT-DRV-008): the caller must have reset the device so
        the queue is not live. Returns None when nothing is outstanding.

        The search resumes where the previous call stopped (wrapping), so emptying a
        queue costs one pass over it rather than one pass per buffer.
        """
        if not self.outstanding:
            return None
        state, size, start = self._state, self.size, self._detach_from
        for step in range(size):
            head = (start + step) % size
            record = state[head]
            if record is not None:
                self._detach_from = head
                self._detach(head, record)
                return record.token
        raise AssertionError("outstanding buffers but no record")  # the count is kept exact

    def _detach(self, head: int, record: RecordT) -> None:
        """Forget outstanding buffer `head` and give its descriptors back."""
        raise NotImplementedError

    def token_of(self, head: int) -> Token | None:
        """The token of outstanding head (Buffer ID) `head`, or None (for the observer)."""
        record = self._state[head] if 0 <= head < self.size else None
        return None if record is None else record.token

    def _check_live(self) -> None:
        if self.broken:
            raise QueueBroken("the device broke this queue earlier; reset it")

    def _fail(self, error: Exception) -> NoReturn:
        self.broken = True
        raise error
