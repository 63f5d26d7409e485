"""What a virtqueue means: buffers moving between two parties, and who wants to be told.

Rules:
- No bytes of the ring, no addresses, no descriptors: a buffer is the data the driver
  offers and the room it leaves for the device's answer. Counters are unbounded
  integers; only `view()` reduces them to what 16-bit ring indices can show.
- The life of a buffer (§2.6, §2.7.13, §2.7.14): the driver makes it *available*; the
  device *takes* it in the order it was made available (the available ring is a FIFO);
  the device returns it *used* in any order with some bytes written; the driver
  *reclaims* used buffers in the order they were returned. After a reset, every buffer
  not yet reclaimed is handed back once (§3.3, detach).
- In-order use (VIRTIO_F_IN_ORDER, §2.7.9; FEAT-DEV-009): the device promises to return
  buffers in the order they were made available, so `in_device` is a FIFO too and only
  its oldest buffer may be returned. A batch (one used element standing for several
  buffers) means the same as returning each of its buffers in turn, every one but the
  last completely written. A chain the device rejects goes back, with nothing written,
  only once every older buffer is back.
- Notifications are promises about those counters. A side asks to be told about a
  position (the flag form: about every position; the event-index form: about one
  position, taken modulo 2^16 as the rings carry it, §2.7.7, §2.7.10) and the other
  side notifies when a batch it published covers that position.
- Ring-neutral counting: the counters count *positions*. A buffer occupies `slots`
  positions (always 1 in the split ring; in the packed ring, the ring descriptors its
  list took, §2.8.6), and positions are told apart modulo `positions` (2^16 for the
  split ring's indices, 2 * size for the packed ring's offset and wrap counter, §2.8.1).
- Each method returns what the spec says the operation yields; `view()` is what the
  implementation's memory must decode to.

Spec: §2.6 (virtqueues), §2.7.7 and §2.7.10 (suppression), §2.7.13 and §2.7.14, §2.7.9
and §6 (VIRTIO_F_IN_ORDER).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field

Token = Hashable
POSITIONS = 1 << 16
"""How many positions the rings can tell apart; event positions are modulo this (§2.7.7)."""


@dataclass(frozen=True)
class Buffer:
    """A buffer's meaning: the bytes the device may read, and the sizes it may write."""

    out: tuple[bytes, ...]
    in_sizes: tuple[int, ...]

    @property
    def writable(self) -> int:
        """How many bytes the device may write: the most a used length can say."""
        return sum(self.in_sizes)


@dataclass(frozen=True)
class QueueView:
    """The comparable state of a queue: model and implementation must agree on all of it.

    `kicks_wanted`/`interrupts_wanted` are the flag-form requests (None in event-index
    mode); `avail_event`/`used_event` the event-index positions (None in flag mode).
    """

    available: tuple[tuple[Token, Buffer], ...]
    in_device: frozenset[tuple[Token, Buffer]]
    used: tuple[tuple[Token, bytes], ...]
    avail_idx: int
    used_idx: int
    next_avail: int
    callbacks_enabled: bool
    interrupts_wanted: bool | None
    used_event: int | None
    kicks_wanted: bool | None
    avail_event: int | None


def covers(start: int, end: int, position: int, modulus: int = POSITIONS) -> bool:
    """Whether counters start, start+1, ..., end-1 include one equal to `position` mod `modulus`.

    The first such counter at or after `start` is start + (position - start) mod modulus.
    """
    return start + (position - start) % modulus < end


@dataclass
class VirtqueueModel:
    """The abstract virtqueue of `size` entries (§2.6), in flag or event-index mode."""

    size: int
    event_idx: bool
    initial: int = 0
    available: deque[tuple[Token, Buffer]] = field(default_factory=deque)
    in_device: dict[Token, Buffer] = field(default_factory=dict)
    used: deque[tuple[Token, bytes]] = field(default_factory=deque)
    callbacks_enabled: bool = True
    kicks_wanted: bool = True
    positions: int = POSITIONS
    slots: dict[Token, int] = field(default_factory=dict)
    in_order: bool = False
    rejected: set[Token] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.published = self.taken = self.used_count = self.reclaimed = self.initial
        self.kicked_at = self.signalled_at = self.initial
        self.used_event = self.avail_event = self.initial

    @property
    def outstanding(self) -> int:
        """Buffers made available and not yet reclaimed; never more than `size` (§2.7)."""
        return len(self.available) + len(self.in_device) + len(self.used)

    # --- driver operations ------------------------------------------------------------
    def add(self, token: Token, buffer: Buffer, slots: int = 1) -> None:
        """The driver makes `buffer` available under `token`, taking `slots` positions."""
        assert token not in self.tokens(), "a token is outstanding at most once"
        self.available.append((token, buffer))
        self.slots[token] = slots
        self.published += slots

    def kick_prepare(self) -> bool:
        """Does the device want to hear about what was published since the last decision?"""
        start, self.kicked_at = self.kicked_at, self.published
        if self.event_idx:
            return covers(start, self.published, self.avail_event, self.positions)
        return self.kicks_wanted

    def get_buf(self) -> tuple[Token, bytes] | None:
        """The driver reclaims the oldest used buffer with the bytes the device wrote."""
        if not self.used:
            return None
        token, written = self.used.popleft()
        self.reclaimed += self.slots.pop(token)
        if self.callbacks_enabled:
            self.used_event = self.reclaimed
        return token, written

    def disable_cb(self) -> None:
        """The driver stops asking for interrupts (the event position is left stale)."""
        self.callbacks_enabled = False

    def enable_cb(self) -> bool:
        """Ask for an interrupt at the next used buffer; True if none is waiting already."""
        self.callbacks_enabled = True
        self.used_event = self.reclaimed
        return not self.used

    def enable_cb_delayed(self) -> bool:
        """Ask for an interrupt once 3/4 of what is outstanding is used (Linux's policy)."""
        self.callbacks_enabled = True
        later = (self.published - self.reclaimed) * 3 // 4
        self.used_event = self.reclaimed + later
        return sum(self.slots[token] for token, _ in self.used) <= later

    def detach_all(self) -> list[Token]:
        """After a reset: every buffer not reclaimed comes back exactly once."""
        tokens = self.tokens()
        self.slots.clear()
        self.rejected.clear()
        self.available.clear()
        self.in_device.clear()
        self.used.clear()
        return tokens

    # --- device operations ------------------------------------------------------------
    def pop(self) -> tuple[Token, Buffer] | None:
        """The device takes the oldest available buffer."""
        if not self.available:
            return None
        token, buffer = self.available.popleft()
        self.taken += self.slots[token]
        self.in_device[token] = buffer
        return token, buffer

    def reject(self) -> Token:
        """The device takes the oldest available buffer and returns it unused (bad chain).

        In-order, it waits in the device behind the buffers taken before it (§2.7.9).
        """
        token, buffer = self.available.popleft()
        self.taken += self.slots[token]
        if self.in_order and self.in_device:
            self.in_device[token] = buffer
            self.rejected.add(token)
        else:
            self._return(token, b"")
        return token

    def push_used(self, token: Token, written: bytes) -> None:
        """The device returns a buffer it holds, with the bytes it wrote into it.

        In-order, only the oldest buffer it holds (FEAT-DEV-009).
        """
        if self.in_order:
            assert token == next(iter(self.in_device)), "in-order: the oldest goes back first"
            assert token not in self.rejected, "a rejected chain is not the caller's to return"
        buffer = self.in_device.pop(token)
        assert len(written) <= buffer.writable, "a device writes at most the writable bytes"
        self._return(token, written)
        if self.in_order:
            self._return_rejected()

    def push_used_batch(self, written: list[bytes]) -> list[Token]:
        """In-order: the device returns its `len(written)` oldest buffers on one element.

        Means the same as returning them one by one; the spec counts every buffer but the
        last as completely used (§2.7.9), so each of those answers fills its buffer.
        Returns the tokens, oldest first.
        """
        assert self.in_order and 1 <= len(written) <= len(self.in_device)
        tokens = list(self.in_device)[: len(written)]
        for token, answer in zip(tokens[:-1], written[:-1], strict=True):
            assert len(answer) == self.in_device[token].writable, "skipped buffers are full"
        for token, answer in zip(tokens, written, strict=True):
            self.push_used(token, answer)
        return tokens

    def _return_rejected(self) -> None:
        """Rejected chains that are now the oldest in the device go back, empty."""
        while self.in_device and next(iter(self.in_device)) in self.rejected:
            token = next(iter(self.in_device))
            del self.in_device[token]
            self.rejected.discard(token)
            self._return(token, b"")

    def _return(self, token: Token, written: bytes) -> None:
        self.used.append((token, written))
        self.used_count += self.slots[token]

    def needs_notification(self) -> bool:
        """Does the driver want an interrupt for what was used since the last decision?"""
        start, self.signalled_at = self.signalled_at, self.used_count
        if self.event_idx:
            return covers(start, self.used_count, self.used_event, self.positions)
        return self.callbacks_enabled

    def enable_notification(self) -> bool:
        """The device asks for kicks again; True if buffers are already waiting."""
        self.kicks_wanted = True
        self.avail_event = self.taken
        return bool(self.available)

    def disable_notification(self) -> None:
        """The device stops asking for kicks (flag form only; the event position stays)."""
        if not self.event_idx:
            self.kicks_wanted = False

    # --- observation ------------------------------------------------------------------
    def tokens(self) -> list[Token]:
        """Every outstanding token: available, then in the device, then used."""
        return [t for t, _ in self.available] + list(self.in_device) + [t for t, _ in self.used]

    def view(self) -> QueueView:
        """The state as the ring can show it: counters modulo `positions`."""
        flags, event = (None, self.event_idx) if self.event_idx else (True, False)
        modulus = self.positions
        return QueueView(
            available=tuple(self.available),
            in_device=frozenset(self.in_device.items()),
            used=tuple(self.used),
            avail_idx=self.published % modulus,
            used_idx=self.used_count % modulus,
            next_avail=self.taken % modulus,
            callbacks_enabled=self.callbacks_enabled,
            interrupts_wanted=self.callbacks_enabled if flags else None,
            used_event=self.used_event % modulus if event else None,
            kicks_wanted=self.kicks_wanted if flags else None,
            avail_event=self.avail_event % modulus if event else None,
        )
