"""The device's descriptor-chain walk (`impl.chain.walk_chain`) as a Z3 transition.

Rules:
- `step` is one iteration of the `while True` loop of `walk_chain`, its checks in the
  same order, each failure an outcome code naming the `ChainError` subclass it raises.
  `tests/test_proof_encodings.py` runs `walk_chain` and `run` side by side on concrete
  tables and asserts the same outcome (the same error class, or the same segments).
- Guest memory is a function from a descriptor's address to its four fields (`Reader`):
  uninterpreted Z3 functions in the proofs (any contents at all), the real bytes in the
  agreement test. Its size is a term too.
- Every number is a 66-bit term: 64-bit addresses plus 32-bit lengths and their sums
  never wrap at that width, so the terms compute what Python's integers do.

Spec: §2.7.5 (descriptor table), §2.7.5.2 (SPLIT-DRV-004), §2.7.5.3 (indirect).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import z3

from impl import errors
from impl.spec import DESC_SIZE, MAX_CHAIN_BYTES, DescFlag

WIDTH = 66
"""Bit width of every term of the walk: a u64 address plus a u32 length, a table
address plus 16 times a 16-bit index, and a running total below 2^33 all fit."""


class Outcome:
    """Outcome codes: still running, returned a chain, or raised one `ChainError` leaf."""

    RUNNING = 0
    RETURNED = 1
    RAISES: dict[int, type[errors.ChainError]] = {
        2: errors.IndirectNotNegotiated,
        3: errors.NestedIndirect,
        4: errors.IndirectWithNext,
        5: errors.BadIndirectTable,
        6: errors.ChainTooLong,
        7: errors.BufferOutOfBounds,
        8: errors.ReadableAfterWritable,
        9: errors.ChainLengthOverflow,
        10: errors.NextOutOfRange,
        11: errors.DescriptorLoop,
    }

    @classmethod
    def code(cls, error: type[errors.ChainError]) -> int:
        """The code of an error class."""
        return next(code for code, cls_ in cls.RAISES.items() if cls_ is error)


def w(value: int) -> Any:
    """A constant of the walk's width."""
    return z3.BitVecVal(value, WIDTH)


DESC_SHIFT = DESC_SIZE.bit_length() - 1
"""log2 of the descriptor size: `i * 16` and `len // 16` as shifts, cheaper for the solver."""


def times_desc_size(index: Any) -> Any:
    """`DESC_SIZE * index` (the offset of descriptor `index` in its table)."""
    return index << DESC_SHIFT


def widen(term: Any) -> Any:
    """Zero-extend a descriptor field to the walk's width."""
    return z3.ZeroExt(WIDTH - term.size(), term)


Reader = Callable[[Any], tuple[Any, Any, Any, Any]]
"""Descriptor address -> (addr: 64 bits, len: 32, flags: 16, next: 16)."""


@dataclass(frozen=True)
class WalkState:
    """The variables of `walk_chain`'s loop, plus what the proofs observe of a step."""

    status: Any
    table: Any
    cur_size: Any
    in_table: Any
    index: Any
    visited: Any
    readable: Any
    writable: Any
    total: Any
    indirect: Any
    reads: Any
    read_at: Any = None
    segment: tuple[Any, Any, Any] | None = None


@dataclass(frozen=True)
class Walk:
    """The fixed inputs of one walk: memory, its size, the table, the queue size."""

    read: Reader
    mem_size: Any
    table: Any
    size: Any
    indirect_ok: Any
    omit: frozenset[type[errors.ChainError]] = frozenset()
    """Checks left out: only the mutation tests set this, to model a broken walk."""
    next_slack: int = 0
    """Added to the `next` range bound: only the mutation tests set this (off-by-one)."""


def start(walk: Walk, head: Any) -> WalkState:
    """The state before the first iteration (`visited = {head}`)."""
    empty = z3.K(z3.BitVecSort(WIDTH), z3.BoolVal(False))
    return WalkState(
        status=w(Outcome.RUNNING), table=walk.table, cur_size=walk.size,
        in_table=z3.BoolVal(False), index=head, visited=z3.Store(empty, head, True),
        readable=w(0), writable=w(0), total=w(0), indirect=z3.BoolVal(False), reads=w(0),
    )


def contains(walk: Walk, addr: Any, length: Any) -> Any:
    """`GuestMemory.contains`: `[addr, addr + len)` inside memory (addr is a u64)."""
    return z3.ULE(addr + length, walk.mem_size)


def _chain(walk: Walk, *cases: tuple[Any, int], otherwise: Any) -> Any:
    """The first case whose condition holds gives the code (the code's `if` order)."""
    omitted = {Outcome.code(error) for error in walk.omit}
    result = otherwise
    for cond, code in reversed(cases):
        if code not in omitted:
            result = z3.If(cond, w(code), result)
    return result


def step(walk: Walk, s: WalkState) -> WalkState:
    """One loop iteration of `walk_chain` from a running state (identity once final)."""
    read_at = s.table + times_desc_size(s.index)
    d_addr, d_len, d_flags, d_next = (widen(field) for field in walk.read(read_at))

    def flag(bit: DescFlag) -> Any:
        return d_flags & int(bit) != 0

    code = Outcome.code
    entries = z3.LShR(d_len, DESC_SHIFT)
    enter = _chain(
        walk,
        (z3.And(z3.Not(walk.indirect_ok), z3.Not(s.in_table)), code(errors.IndirectNotNegotiated)),
        (s.in_table, code(errors.NestedIndirect)),
        (flag(DescFlag.NEXT), code(errors.IndirectWithNext)),
        (z3.Or(d_len == 0, d_len & (DESC_SIZE - 1) != 0), code(errors.BadIndirectTable)),
        (z3.UGT(s.readable + s.writable + entries, walk.size), code(errors.ChainTooLong)),
        (z3.Not(contains(walk, d_addr, d_len)), code(errors.BufferOutOfBounds)),
        otherwise=w(Outcome.RUNNING),
    )
    writable = flag(DescFlag.WRITE)
    readable2 = z3.If(writable, s.readable, s.readable + 1)
    writable2 = z3.If(writable, s.writable + 1, s.writable)
    total2 = s.total + d_len
    fresh = z3.Not(z3.Select(s.visited, d_next))
    add = _chain(
        walk,
        (z3.Not(contains(walk, d_addr, d_len)), code(errors.BufferOutOfBounds)),
        (z3.And(z3.Not(writable), s.writable != 0), code(errors.ReadableAfterWritable)),
        (z3.UGT(readable2 + writable2, walk.size), code(errors.ChainTooLong)),
        (z3.UGE(total2, MAX_CHAIN_BYTES), code(errors.ChainLengthOverflow)),
        (z3.Not(flag(DescFlag.NEXT)), Outcome.RETURNED),
        (z3.UGE(d_next, s.cur_size + walk.next_slack), code(errors.NextOutOfRange)),
        (z3.Not(fresh), code(errors.DescriptorLoop)),
        otherwise=w(Outcome.RUNNING),
    )
    is_pointer = flag(DescFlag.INDIRECT)
    one = z3.Store(z3.K(z3.BitVecSort(WIDTH), z3.BoolVal(False)), w(0), True)
    after = WalkState(
        status=z3.If(is_pointer, enter, add),
        table=z3.If(is_pointer, d_addr, s.table),
        cur_size=z3.If(is_pointer, entries, s.cur_size),
        in_table=z3.Or(s.in_table, is_pointer),
        index=z3.If(is_pointer, w(0), d_next),
        visited=z3.If(is_pointer, one, z3.Store(s.visited, d_next, True)),
        readable=z3.If(is_pointer, s.readable, readable2),
        writable=z3.If(is_pointer, s.writable, writable2),
        total=z3.If(is_pointer, s.total, total2),
        indirect=z3.Or(s.indirect, is_pointer),
        reads=s.reads + 1,
        read_at=read_at,
        segment=(z3.And(z3.Not(is_pointer), add != code(errors.BufferOutOfBounds)),
                 d_addr, d_len),
    )
    return after


def run(walk: Walk, head: Any, max_steps: int) -> tuple[int, list[tuple[int, int, bool]]]:
    """Evaluate the walk on concrete inputs: (final outcome code, segments added).

    Each segment is (addr, len, writable). Stops at the first final state or after
    `max_steps` iterations (then the code is still RUNNING).
    """
    s = start(walk, head)
    segments: list[tuple[int, int, bool]] = []
    for _ in range(max_steps):
        before_writable = s.writable
        s = step(walk, s)
        assert s.segment is not None
        if z3.is_true(z3.simplify(s.segment[0])):
            grew = z3.is_true(z3.simplify(s.writable != before_writable))
            segments.append((_int(s.segment[1]), _int(s.segment[2]), grew))
        code = _int(s.status)
        if code != Outcome.RUNNING:
            return code, segments
    return Outcome.RUNNING, segments


def _int(term: Any) -> int:
    return int(z3.simplify(term).as_long())


def unroll(walk: Walk, head: Any, steps: int) -> list[WalkState]:
    """The states after 0, 1, ..., `steps` iterations (a final state repeats itself)."""
    states = [start(walk, head)]
    for _ in range(steps):
        s = states[-1]
        nxt = step(walk, s)
        running = s.status == w(Outcome.RUNNING)
        states.append(_guard(running, nxt, s))
    return states


def _guard(cond: Any, then: WalkState, other: WalkState) -> WalkState:
    """`then` where `cond` holds, `other` elsewhere, field by field."""
    fields = ("status", "table", "cur_size", "in_table", "index", "visited", "readable",
              "writable", "total", "indirect", "reads")
    merged = {name: z3.If(cond, getattr(then, name), getattr(other, name)) for name in fields}
    segment = None
    if then.segment is not None:
        segment = (z3.And(cond, then.segment[0]), then.segment[1], then.segment[2])
    return WalkState(**merged, read_at=then.read_at, segment=segment)
