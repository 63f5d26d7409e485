"""A controlled scheduler: every interleaving of N sides' shared accesses, exhaustively.

Rules:
- Each side is the real code (`impl/replay.py` runs it from its read history); each
  shared access it makes is a scheduling point. A state is the memory (`Shared`, with
  store buffers per the chosen `MemoryModel`) plus, per side, its read history and how
  many accesses it has made: nothing else can differ, since the code is deterministic.
- The events from a state: a side makes its next access; a read has one event per
  value it may return. The search is a breadth-first walk over states with a visited
  set, so it is exhaustive over every schedule, each state is expanded once, and the
  first failure found has the fewest scheduling decisions: that trace is the
  counterexample printed.
- Partial-order reduction, three sound pieces (tests/test_interleavings_reduction.py
  checks them against a naive enumeration): (1) the state cache merges every order of
  independent events that reaches the same state (commuting diamonds); (2) an access
  that only its own side can observe (a write into its own store buffer, a read its
  buffer fully serves, a barrier that changes nothing another side sees) is merged
  into the step before it, since it commutes with every other event and cannot be
  disabled; (3) buffered writes become visible lazily: which of the other side's
  writes a read observes is chosen at that read (`weak_memory.read_choices`), the
  only moment the choice can be seen, instead of a flush event at every moment.
- `interleavings` counts the schedules the states stand for (paths in the state graph
  from the start to a finished state); `executions` counts distinct finished states,
  each checked once after draining all buffers (quiescence).
- Every shared byte must have one writer (as every split ring field has, §2.7): the
  reductions below rely on it, and a second writer raises `MultipleWriters`. With
  `handover=True` (the packed ring, §2.8, whose used descriptors overwrite available
  ones) a byte may change writer, provided no other side's write to it is still
  pending (buffered, or queued for the writer) when it writes: then there is one
  order of writes per byte and the reductions hold. The explorer checks that at every
  write; a write that races a pending one is a failure of the execution (a write-write
  race: which value lands is up to the hardware), reported with its trace.
- Optionally (`between`), states where every side is between operations are checked
  too, not only finished ones: a side marks those points (`replay.ScriptedMemory.mark`)
  with a snapshot of itself, and at a state where each side's access count is exactly
  one of its marks, `between` gets the memory with every buffered write landed and the
  snapshots. Landing every pending write is something the hardware may do at any
  moment, so that memory is itself a reachable state with the sides where they are.
  Marks are not accesses: the states explored are the same with or without the check.
  A point skipped because a local access was merged across it is not checked.
- A barrier can be removed for one side by label, or by label and the function that
  makes it (`dropped`), which is how the tests show each barrier necessary without
  editing the code under test.

Spec: §2.7.13.3, §2.7.13.4 (SPLIT-DRV-024, SPLIT-DRV-025), §2.7.8 (SPLIT-DEV-013),
§2.7.7.2 and §2.7.10.2 (the notification promises the checks enforce); §2.8.6 and
§2.8.21.1 (the packed ring: used descriptors overwrite available ones, `handover`).
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .errors import DroppedBarrierNotFound, MultipleWriters
from .memory import GuestMemory
from .replay import Access, Op, SideProgram, SideRun, run_side
from .weak_memory import (
    MemoryModel,
    Shared,
    drain,
    fence,
    fence_is_local,
    forwarded,
    initial,
    load,
    pending_elsewhere,
    read_choices,
    store,
)

Position = tuple[int, int]
"""A side's read-history id and the number of accesses it has made."""

State = tuple[Shared, tuple[Position, ...]]
Event = tuple[str, int, int]
"""("run", side, choice): the side makes its next access; a read takes outcome `choice`."""


@dataclass(frozen=True, slots=True)
class Side:
    """One thread of control: a name for traces and the code it runs."""

    name: str
    program: SideProgram


@dataclass(frozen=True, slots=True)
class Finished:
    """A complete execution, after quiescence: what the checks look at."""

    memory: GuestMemory
    runs: tuple[SideRun, ...]

    def result(self, side: int) -> object:
        """What side `side`'s program returned (None if it raised)."""
        return self.runs[side].result

    def error(self, side: int) -> BaseException | None:
        """What side `side`'s program raised, if anything."""
        return self.runs[side].error


Check = Callable[[Finished], str | None]
"""Returns None when a finished execution is correct, else what went wrong."""
BetweenCheck = Callable[[GuestMemory, tuple[object, ...]], str | None]
"""Given the memory (buffered writes landed) and each side's snapshot at a state where
every side is between operations: None when it is correct, else what went wrong."""


@dataclass
class Report:
    """What an exploration found, and how much it looked at."""

    model: str
    states: int = 0
    executions: int = 0
    interleavings: int = 0
    between: int = 0
    """States checked with every side between operations (`Explorer(between=...)`)."""
    seconds: float = 0.0
    failure: str | None = None
    trace: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether every finished execution passed the check."""
        return self.failure is None

    def summary(self) -> str:
        """One line of figures."""
        verdict = "pass" if self.passed else f"FAIL: {self.failure}"
        return (
            f"{self.model}: {self.states} states, {self.executions} executions, "
            f"{self.interleavings} interleavings, {self.seconds:.2f} s, {verdict}"
        )

    def counterexample(self) -> str:
        """The failure and its trace: numbered decisions, merged accesses under them."""
        lines = [f"{self.model}: {self.failure}"]
        number = 0
        for line in self.trace:
            if line.startswith(" "):
                lines.append(f"     {line}")
            else:
                number += 1
                lines.append(f"{number:3d}. {line}")
        return "\n".join(lines)


Namer = Callable[[int], str]


class _Race(Exception):
    """A write while another side's write to the same bytes is pending (handover mode)."""


class Explorer:
    """Explores every interleaving of `sides` over `memory` under `model` (module rules)."""

    def __init__(
        self,
        sides: Sequence[Side],
        memory: bytes,
        model: MemoryModel,
        check: Check,
        *,
        dropped: frozenset[tuple[str, ...]] = frozenset(),
        names: Namer = hex,
        limit: int = 10_000,
        handover: bool = False,
        between: BetweenCheck | None = None,
    ) -> None:
        self.sides = tuple(sides)
        self.between = between
        self.memory = memory
        self.model = model
        self.check = check
        self.dropped = dropped
        self.names = names
        self.limit = limit
        self.handover = handover
        self._children: dict[tuple[int, bytes], int] = {}
        self._histories: list[tuple[bytes, ...]] = [()]
        self._runs: dict[tuple[int, int], SideRun] = {}
        self._writer: dict[int, int] = {}
        self._matched: set[tuple[str, ...]] = set()

    # --- sides --------------------------------------------------------------------
    def _run(self, side: int, history: int) -> SideRun:
        key = (side, history)
        run = self._runs.get(key)
        if run is None:
            reads = self._histories[history]
            run = run_side(
                self.sides[side].program,
                len(self.memory),
                reads,
                self.limit,
                marking=self.between is not None,
            )
            self._runs[key] = run
        return run

    def _extend(self, history: int, value: bytes) -> int:
        key = (history, value)
        child = self._children.get(key)
        if child is None:
            child = len(self._histories)
            self._histories.append((*self._histories[history], value))
            self._children[key] = child
        return child

    def _next_access(self, side: int, position: Position) -> Access | None:
        run = self._run(side, position[0])
        return run.accesses[position[1]] if position[1] < len(run.accesses) else None

    def _is_dropped(self, side: int, access: Access) -> bool:
        """Whether this barrier is removed: by (side, label) or (side, label, function)."""
        name = self.sides[side].name
        hits = {(name, access.label), (name, access.label, access.where)} & self.dropped
        self._matched |= hits
        return bool(hits)

    def _check_every_drop_matched(self) -> None:
        """A removed barrier that no side ever reached names nothing: refuse the run,
        or a mistyped label would make "passes without this barrier" vacuous."""
        unmatched = self.dropped - self._matched
        if unmatched:
            raise DroppedBarrierNotFound(
                f"no side reached a barrier named {sorted(unmatched)}: check the label "
                "and the function that makes it"
            )

    def _is_local(self, shared: Shared, side: int, access: Access) -> bool:
        if access.op is Op.WRITE:
            return self.model.buffered
        if access.op is Op.READ:
            return forwarded(shared, side, access.addr, access.length)
        assert access.barrier is not None
        return self._is_dropped(side, access) or fence_is_local(
            self.model, shared, side, access.barrier
        )

    def _perform(
        self,
        shared: Shared,
        side: int,
        position: Position,
        access: Access,
        log: list[str] | None,
        choice: int = 0,
    ) -> tuple[Shared, Position]:
        history, count = position
        if access.op is Op.READ:
            shared = read_choices(self.model, shared, side, access.addr, access.length)[choice]
            value = load(shared, side, access.addr, access.length)
            if log is not None:
                log.append(self._line(side, access, f"-> {_show(value)}"))
            return shared, (self._extend(history, value), count + 1)
        if log is not None:
            log.append(self._line(side, access, ""))
        if access.op is Op.WRITE:
            self._claim(shared, side, access)
            shared = store(self.model, shared, side, access.addr, access.data)
            return shared, (history, count + 1)
        assert access.barrier is not None
        if self._is_dropped(side, access):
            return shared, (history, count + 1)
        return fence(self.model, shared, side, access.barrier), (history, count + 1)

    def _claim(self, shared: Shared, side: int, access: Access) -> None:
        """Record `side` as the writer of these bytes; refuse a second writer.

        In handover mode: refuse only a write racing another side's pending one.
        """
        if self.handover:
            if pending_elsewhere(shared, side, access.addr, access.length):
                raise _Race(
                    f"write-write race: the {self.sides[side].name} wrote "
                    f"{self.names(access.addr)} while the other side's write to it was "
                    "not yet visible (ownership hand-over broken)"
                )
            return
        for addr in range(access.addr, access.addr + access.length):
            owner = self._writer.setdefault(addr, side)
            if owner != side:
                raise MultipleWriters(
                    f"{self.sides[side].name} and {self.sides[owner].name} both write "
                    f"{self.names(access.addr)}"
                )

    def _line(self, side: int, access: Access, outcome: str) -> str:
        """One access as a trace line."""
        where = f"{self.sides[side].name} {access.where}:"
        if access.op is Op.READ:
            return f"{where} read {self.names(access.addr)} {outcome}"
        if access.op is Op.WRITE:
            buffered = " (buffered)" if self.model.buffered else ""
            return f"{where} write {self.names(access.addr)} = {_show(access.data)}{buffered}"
        assert access.barrier is not None
        removed = " REMOVED" if self._is_dropped(side, access) else ""
        return f"{where} barrier {access.label} ({access.barrier.value}){removed}"

    def _advance(
        self,
        shared: Shared,
        positions: tuple[Position, ...],
        side: int,
        log: list[str] | None,
        choice: int = 0,
    ) -> tuple[Shared, tuple[Position, ...]]:
        """Make side's next access (reading by `choice`), then the local ones after it."""
        position = positions[side]
        first = True
        while True:
            access = self._next_access(side, position)
            if access is None or (not first and not self._is_local(shared, side, access)):
                break
            shared, position = self._perform(shared, side, position, access, log, choice)
            first, choice = False, 0
        return shared, (*positions[:side], position, *positions[side + 1:])

    # --- the state graph ---------------------------------------------------------------
    def _start(self, log: list[str] | None = None) -> State:
        """The first state: each side has made the local accesses it begins with."""
        shared = initial(self.memory, len(self.sides))
        positions: tuple[Position, ...] = ((0, 0),) * len(self.sides)
        for side in range(len(self.sides)):
            access = self._next_access(side, positions[side])
            if access is not None and self._is_local(shared, side, access):
                shared, positions = self._advance(shared, positions, side, log)
        return shared, positions

    def _events(self, state: State) -> list[Event]:
        shared, positions = state
        if all(self._next_access(side, pos) is None for side, pos in enumerate(positions)):
            return []
        events: list[Event] = []
        for side, position in enumerate(positions):
            access = self._next_access(side, position)
            if access is not None:
                choices = 1
                if access.op is Op.READ:
                    choices = len(
                        read_choices(self.model, shared, side, access.addr, access.length)
                    )
                events += [("run", side, choice) for choice in range(choices)]
        return events

    def _step(self, state: State, event: Event, log: list[str] | None) -> State:
        shared, positions = state
        _, side, choice = event
        return self._advance(shared, positions, side, log, choice)

    def _finish(self, state: State) -> Finished:
        shared, positions = state
        final = drain(self.model, shared)
        runs = tuple(self._run(side, pos[0]) for side, pos in enumerate(positions))
        return Finished(GuestMemory(backing=bytearray(final.views[0])), runs)

    def explore(self, *, stop_at_failure: bool = True) -> Report:
        """Walk every state breadth first; check each finished one (module rules)."""
        began = time.perf_counter()
        report = Report(self.model.name)
        opening: list[str] = []
        try:
            start = self._start(opening)
        except _Race as race:
            return self._raced_at_start(report, race, opening, began)
        parent: dict[State, tuple[State, Event] | None] = {start: None}
        successors: dict[State, list[State]] = {}
        queue = deque([start])
        while queue:
            state = queue.popleft()
            events = self._events(state)
            if not events:
                report.executions += 1
                failure = self.check(self._finish(state))
                if failure is not None and report.failure is None:
                    report.failure = failure
                    report.trace = self._trace(parent, state)
                    if stop_at_failure:
                        break
                continue
            failure = self._check_between(state, report)
            if failure is not None and report.failure is None:
                report.failure = failure
                report.trace = self._trace(parent, state)
                if stop_at_failure:
                    break
            children = successors.setdefault(state, [])
            for event in events:
                try:
                    child = self._step(state, event, None)
                except _Race as race:
                    if report.failure is None:
                        report.failure = str(race)
                        report.trace = self._trace(parent, state, event)
                    if stop_at_failure:
                        break
                    continue
                children.append(child)
                if child not in parent:
                    parent[child] = (state, event)
                    queue.append(child)
            if report.failure is not None and stop_at_failure:
                break
        report.states = len(parent)
        if report.failure is None:
            self._check_every_drop_matched()
            report.interleavings = _count_paths(start, successors)
        report.seconds = time.perf_counter() - began
        return report

    def _check_between(self, state: State, report: Report) -> str | None:
        """The `between` check, if every side is exactly at one of its marks."""
        if self.between is None:
            return None
        shared, positions = state
        snapshots = []
        for side, (history, count) in enumerate(positions):
            at = [snap for made, snap in self._run(side, history).marks if made == count]
            if not at:
                return None
            snapshots.append(at[-1])
        report.between += 1
        memory = GuestMemory(backing=bytearray(drain(self.model, shared).views[0]))
        failure = self.between(memory, tuple(snapshots))
        return None if failure is None else f"between operations: {failure}"

    def walk(self, choose: Callable[[int], int]) -> Report:
        """Follow one schedule: at each state `choose(n)` picks one of its n events.

        For scenarios too large to explore exhaustively (a Hypothesis test draws the
        choices, so a failure shrinks to a short schedule). The report counts one
        execution and carries the trace if it failed. The `between` check is not made.
        """
        began = time.perf_counter()
        report = Report(self.model.name, executions=1, interleavings=1)
        opening: list[str] = []
        try:
            state = self._start(opening)
        except _Race as race:
            return self._raced_at_start(report, race, opening, began)
        lines = _grouped(opening)
        while events := self._events(state):
            log: list[str] = []
            try:
                state = self._step(state, events[choose(len(events))], log)
            except _Race as race:
                report.failure, report.trace = str(race), lines + _grouped(log)
                report.seconds = time.perf_counter() - began
                return report
            lines += _grouped(log)
            report.states += 1
        report.failure = self.check(self._finish(state))
        if report.failure is not None:
            report.trace = lines
        report.seconds = time.perf_counter() - began
        return report

    def _raced_at_start(
        self, report: Report, race: _Race, opening: list[str], began: float
    ) -> Report:
        """The sides' opening local accesses already race (handover mode): one failure."""
        report.failure, report.trace = str(race), _grouped(opening)
        report.seconds = time.perf_counter() - began
        return report

    def _trace(
        self,
        parent: dict[State, tuple[State, Event] | None],
        end: State,
        last: Event | None = None,
    ) -> list[str]:
        """Replay the path to `end` (then `last`, which races) and describe each decision."""
        path: list[Event] = []
        link = parent[end]
        while link is not None:
            path.append(link[1])
            link = parent[link[0]]
        opening: list[str] = []
        state = self._start(opening)
        lines = _grouped(opening)
        for event in reversed(path):
            log: list[str] = []
            state = self._step(state, event, log)
            lines += _grouped(log)
        if last is not None:
            log = []
            with contextlib.suppress(_Race):
                self._step(state, last, log)
            lines += _grouped(log)
        return lines


def _grouped(log: list[str]) -> list[str]:
    """One scheduling decision: its first access, then the merged ones indented."""
    return log[:1] + [f"  {line}" for line in log[1:]]


def _count_paths(start: State, successors: dict[State, list[State]]) -> int:
    """Schedules from `start` to a finished state: paths in the (acyclic) state graph."""
    counts: dict[State, int] = {}
    stack: list[tuple[State, bool]] = [(start, False)]
    while stack:
        state, expanded = stack.pop()
        if state in counts:
            continue
        children = successors.get(state)
        if not children:
            counts[state] = 1
        elif expanded:
            counts[state] = sum(counts[child] for child in children)
        else:
            stack.append((state, True))
            stack += [(child, False) for child in children if child not in counts]
    return counts[start]


def _show(value: bytes) -> str:
    """A value as a person reads it: small scalars as integers, anything else in hex."""
    number = int.from_bytes(value, "little")
    if len(value) <= 8 and number < 1 << 16:
        return str(number)
    return value.hex()
