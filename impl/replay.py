"""Replay one side of a queue from the values it read: each shared access becomes a step.

Rules:
- A side (a driver or a device running one operation) is deterministic Python that
  touches shared memory only through `GuestMemory`. Its whole behaviour is therefore a
  function of the sequence of values its reads returned. `run_side(program, reads)`
  runs the real code from the start on a `ScriptedMemory` that answers the first
  reads from `reads`, records every access (reads, writes, barriers) in order, and
  stops the run at the first read it has no value for. The interleaving explorer
  (`impl/interleave.py`) decides that value from its memory model and runs the side
  again with one more value; runs are memoised by the explorer, so each distinct
  history runs once.
- This is re-execution, as tokio-rs/loom does for Rust: no threads, no generators, no
  copy of the code under test. The cost is one run per distinct read history.
- Nothing here knows about rings; `Access.where` names the function that made the
  access so a trace reads like the code.
- A side may mark the points between its operations (`ScriptedMemory.mark`): when the
  run is made with `marking`, each mark stores how many accesses the side had made
  and a snapshot the side takes of itself, so the explorer can check states where
  every side is between operations (`Explorer(between=...)`). A mark is not an
  access: it changes neither the accesses nor the states explored.

Spec: §2.7.13.3, §2.7.13.4, §2.7.7.2, §2.7.10.2 (the ordering rules these runs check).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from .errors import StepLimitExceeded
from .memory import Barrier, GuestMemory


class Op(Enum):
    """What an access does to shared memory."""

    READ = "read"
    WRITE = "write"
    BARRIER = "barrier"


@dataclass(frozen=True, slots=True)
class Access:
    """One shared-memory access a side made: a scheduling point."""

    op: Op
    addr: int = 0
    length: int = 0
    data: bytes = b""
    barrier: Barrier | None = None
    label: str = ""
    where: str = ""


class _Paused(BaseException):
    """Raised inside the side's code at the first read with no recorded value."""


class ScriptedMemory(GuestMemory):
    """A memory that answers reads from a script and records every access.

    It holds no bytes: writes are recorded (the explorer applies them to its memory
    model), reads return the scripted values in order. Bounds are checked exactly as
    `GuestMemory` checks them, so a side sees the same `MemoryFault`s.
    """

    __slots__ = ("_reads", "_used", "accesses", "limit", "marking", "marks")

    def __init__(
        self, size: int, reads: Sequence[bytes], limit: int, *, marking: bool = False
    ) -> None:
        super().__init__(backing=bytearray(0))
        self.size = size
        self._reads = reads
        self._used = 0
        self.accesses: list[Access] = []
        self.limit = limit
        self.marking = marking
        self.marks: list[tuple[int, object]] = []

    def mark(self, snapshot: Callable[[], object]) -> None:
        """The side is between two operations: with `marking`, record how many accesses
        it has made and `snapshot()` (what it is now); without, do nothing."""
        if self.marking:
            self.marks.append((len(self.accesses), snapshot()))

    def _record(self, access: Access) -> None:
        if len(self.accesses) >= self.limit:
            raise StepLimitExceeded(f"a side made more than {self.limit} shared accesses")
        self.accesses.append(access)

    def _load(self, addr: int, length: int) -> bytes:
        self.check(addr, length)
        self._record(Access(Op.READ, addr, length, where=_caller(3)))
        if self._used == len(self._reads):
            raise _Paused
        value = self._reads[self._used]
        self._used += 1
        return value

    def _store(self, addr: int, data: bytes) -> None:
        self.check(addr, len(data))
        self._record(Access(Op.WRITE, addr, len(data), bytes(data), where=_caller(3)))

    def read_u8(self, addr: int) -> int:
        return self._load(addr, 1)[0]

    def read_u16(self, addr: int) -> int:
        return int.from_bytes(self._load(addr, 2), "little")

    def read_u32(self, addr: int) -> int:
        return int.from_bytes(self._load(addr, 4), "little")

    def read_u64(self, addr: int) -> int:
        return int.from_bytes(self._load(addr, 8), "little")

    def read(self, addr: int, length: int) -> bytes:
        return self._load(addr, length)

    def write_u8(self, addr: int, value: int) -> None:
        self._store(addr, value.to_bytes(1, "little"))

    def write_u16(self, addr: int, value: int) -> None:
        self._store(addr, value.to_bytes(2, "little"))

    def write_u32(self, addr: int, value: int) -> None:
        self._store(addr, value.to_bytes(4, "little"))

    def write_u64(self, addr: int, value: int) -> None:
        self._store(addr, value.to_bytes(8, "little"))

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        self._store(addr, bytes(data))

    def fill(self, addr: int, length: int, byte: int = 0) -> None:
        self._store(addr, bytes([byte]) * length)

    def barrier(self, kind: Barrier, label: str) -> None:
        self._record(Access(Op.BARRIER, barrier=kind, label=label, where=_caller(2)))


def _caller(depth: int) -> str:
    """The function that called memory, from `depth` frames up (for traces).

    Frames of the memory classes themselves (a structure access routed through
    `read`/`write`) and comprehensions are skipped, so the name is the ring code's.
    """
    frame = sys._getframe(depth)
    while frame.f_back is not None and (
        frame.f_code.co_name.startswith("<") or frame.f_code.co_filename in _MEMORY_FILES
    ):
        frame = frame.f_back
    owner = frame.f_locals.get("self")
    prefix = f"{type(owner).__name__}." if owner is not None else ""
    return prefix + frame.f_code.co_name


_MEMORY_FILES = frozenset({__file__, sys.modules[GuestMemory.__module__].__file__})


@dataclass(frozen=True, slots=True)
class SideRun:
    """What one run of a side did with a given read history.

    `accesses` are all the accesses in order. If `pending` is True the last one is a
    read still waiting for its value; otherwise the side finished, with `result` (what
    its program returned) or `error` (what it raised).
    """

    accesses: tuple[Access, ...]
    pending: bool
    result: object = None
    error: BaseException | None = None
    marks: tuple[tuple[int, object], ...] = ()
    """(accesses made, snapshot) at each point the side marked between operations."""


SideProgram = Callable[[GuestMemory], object]
"""One side's code: given its memory, build its state and run its operation."""


def run_side(
    program: SideProgram,
    size: int,
    reads: Sequence[bytes],
    limit: int,
    *,
    marking: bool = False,
) -> SideRun:
    """Run `program` from the start, answering its reads from `reads` (see module rules);
    with `marking`, keep the marks it makes between operations."""
    mem = ScriptedMemory(size, reads, limit, marking=marking)
    try:
        result = program(mem)
    except _Paused:
        return SideRun(tuple(mem.accesses), pending=True, marks=tuple(mem.marks))
    except StepLimitExceeded:
        raise
    except Exception as error:  # the side's own failure is an outcome to check
        return SideRun(tuple(mem.accesses), pending=False, error=error, marks=tuple(mem.marks))
    return SideRun(tuple(mem.accesses), pending=False, result=result, marks=tuple(mem.marks))
