"""What a virtio-blk disk means: numbered 512-byte sectors, request outcomes, and durability.

Rules:
- No bytes of any request layout: a disk is a map from sector number to 512 bytes.
  A sector never written reads as zeros; a discarded sector is `UNDEFINED` (the spec
  lets a read after a discard return anything, BLK-DRV-025) until it is written again.
- Each request has one outcome, decided here from the request alone: IOERR when it
  reaches past capacity or writes a read-only disk, UNSUPP when its type was not
  negotiated, otherwise OK with its effect. A request that fails has no effect.
- Effects happen when a request completes, in the order requests complete (the device
  may complete them in any order, §5.2.6); the caller tells the model that order.
- Durability (§5.2.6.2, "stable writes"): in writethrough mode a write is stable when
  it completes; in writeback mode it is volatile until a flush *issued after it
  completed* completes. What a crash may leave in a sector is its last stable value or
  any volatile value written since (`crash_allows`). Switching to writethrough does
  not make earlier volatile writes stable (BLK-DRV-023).

Spec: §5.2.6 (request types and status), §5.2.6.1, §5.2.6.2 (read-only, discard,
write zeroes, stable writes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from impl.spec import BLK_ID_BYTES, BLK_SECTOR_SIZE


class Undefined(Enum):
    """Marks a sector whose contents the spec leaves open."""

    UNDEFINED = "undefined"


UNDEFINED = Undefined.UNDEFINED
Contents = bytes | Undefined
ZEROS = bytes(BLK_SECTOR_SIZE)


class Status(Enum):
    """A request's outcome (§5.2.6): the meaning of the status byte."""

    OK = "ok"
    IOERR = "ioerr"
    UNSUPP = "unsupp"


@dataclass(frozen=True)
class Outcome:
    """A request's status and, for a read or GET_ID, what it returns (per sector for reads)."""

    status: Status
    sectors: tuple[Contents, ...] = ()
    data: bytes = b""

    def accepts(self, data: bytes) -> bool:
        """Whether `data` is a correct answer: defined sectors equal, undefined ones anything."""
        if len(self.sectors) * BLK_SECTOR_SIZE != len(data) and self.sectors:
            return False
        for i, want in enumerate(self.sectors):
            got = data[i * BLK_SECTOR_SIZE : (i + 1) * BLK_SECTOR_SIZE]
            if want is not UNDEFINED and got != want:
                return False
        return not self.data or data == self.data


OK = Outcome(Status.OK)
IOERR = Outcome(Status.IOERR)
UNSUPP = Outcome(Status.UNSUPP)


@dataclass
class _Sector:
    """A sector's current contents, its stable contents, and volatile writes since."""

    now: Contents = ZEROS
    stable: Contents = ZEROS
    volatile: list[tuple[int, Contents]] = field(default_factory=list)


@dataclass
class DiskModel:
    """A disk of `capacity` sectors; `writeback` is the cache mode the device runs in."""

    capacity: int
    read_only: bool = False
    writeback: bool = False
    flush: bool = True
    discard: bool = True
    write_zeroes: bool = True
    serial: bytes = b""
    _sectors: dict[int, _Sector] = field(default_factory=dict)
    _completed: int = 0

    # --- requests ----------------------------------------------------------------------
    def read(self, sector: int, count: int) -> Outcome:
        """IN: the sectors' contents, or IOERR past capacity."""
        if not self._in_range(sector, count):
            return IOERR
        return Outcome(Status.OK, tuple(self._get(s).now for s in range(sector, sector + count)))

    def write(self, sector: int, data: bytes) -> Outcome:
        """OUT: store whole sectors; IOERR past capacity or on a read-only disk."""
        count = len(data) // BLK_SECTOR_SIZE
        if self.read_only or not self._in_range(sector, count):
            return IOERR
        for i in range(count):
            self._store(sector + i, data[i * BLK_SECTOR_SIZE : (i + 1) * BLK_SECTOR_SIZE])
        self._completed += 1
        return OK

    def flush_issued(self) -> int:
        """A FLUSH is sent: the writes it will cover are those completed so far."""
        return self._completed

    def flush_completed(self, issued: int) -> Outcome:
        """FLUSH completes: every write completed before it was issued is stable (case 3)."""
        if not self.flush:
            return UNSUPP
        for state in self._sectors.values():
            covered = [value for seq, value in state.volatile if seq < issued]
            if covered:
                state.stable = covered[-1]
                state.volatile = [(seq, v) for seq, v in state.volatile if seq >= issued]
        return OK

    def discard_ranges(self, ranges: Sequence[tuple[int, int]]) -> Outcome:
        """DISCARD: the sectors become undefined, now and after a crash."""
        if not self.discard:
            return UNSUPP
        if self.read_only or not all(self._in_range(s, n) for s, n in ranges):
            return IOERR
        for sector, count in ranges:
            for s in range(sector, sector + count):
                self._sectors[s] = _Sector(UNDEFINED, UNDEFINED)
        return OK

    def write_zeroes_ranges(self, ranges: Sequence[tuple[int, int]]) -> Outcome:
        """WRITE_ZEROES: a write of zeros to each range (BLK-DEV-025)."""
        if not self.write_zeroes:
            return UNSUPP
        if self.read_only or not all(self._in_range(s, n) for s, n in ranges):
            return IOERR
        for sector, count in ranges:
            for s in range(sector, sector + count):
                self._store(s, ZEROS)
        self._completed += 1
        return OK

    def get_id(self) -> Outcome:
        """GET_ID: the serial, NUL-padded to 20 bytes."""
        return Outcome(Status.OK, data=self.serial[:BLK_ID_BYTES].ljust(BLK_ID_BYTES, b"\0"))

    def resize(self, capacity: int) -> None:
        """The disk now has `capacity` sectors: those cut off are gone, new ones are zeros."""
        self.capacity = capacity
        for sector in [s for s in self._sectors if s >= capacity]:
            del self._sectors[sector]

    # --- observation ---------------------------------------------------------------------
    def contents(self, sector: int) -> Contents:
        """What a read of `sector` returns now."""
        return self._get(sector).now

    def crash_allows(self, sector: int) -> list[Contents]:
        """What persistent storage may hold in `sector` after a crash now."""
        state = self._get(sector)
        return [state.stable, *(value for _, value in state.volatile)]

    def differences(self, image: bytes, *, after_crash: bool = False) -> list[int]:
        """Sectors where `image` (the whole disk) is not what the model allows."""
        bad = []
        for s in range(self.capacity):
            got = image[s * BLK_SECTOR_SIZE : (s + 1) * BLK_SECTOR_SIZE]
            allowed = self.crash_allows(s) if after_crash else [self.contents(s)]
            if not any(a is UNDEFINED or a == got for a in allowed):
                bad.append(s)
        return bad

    # --- helpers -------------------------------------------------------------------------
    def _in_range(self, sector: int, count: int) -> bool:
        return 0 <= sector and 0 <= count and sector + count <= self.capacity

    def _get(self, sector: int) -> _Sector:
        return self._sectors.get(sector) or _Sector()

    def _store(self, sector: int, value: bytes) -> None:
        state = self._sectors.setdefault(sector, _Sector())
        state.now = value
        if self.writeback:
            state.volatile.append((self._completed, value))
        else:
            state.stable, state.volatile = value, []
