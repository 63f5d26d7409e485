"""Guest memory: the one place where ring code touches shared bytes.

Rules:
- Every read and write the driver and the device make to shared memory goes through a
  `GuestMemory` method. Nothing else in `impl/` holds a reference to the raw buffer.
- Every access is bounds-checked against the region; an `addr + length` past the end
  (or an address that does not fit 64 bits) raises `MemoryFault`, never wraps.
- Scalars are little-endian, as every virtio 1.x structure is (§1.4, §2.7.3).
- Structures move in one access each: `read_struct`/`write_struct` take a `struct.Struct`
  (the layouts own the formats) and touch exactly `fmt.size` bytes, bounds-checked like
  any other access. A subclass that redefines `read` or `write` (the recording and
  interleaving memories) gets versions of them built on its own `read`/`write`, so it
  still sees every structure access, one access per structure.
- A ring reads and writes its own fields through accessors it asks for once
  (`reader`/`writer` over one area of a validated layout): the area is bounds-checked
  when the accessor is made, and every address the ring passes lies inside it by
  construction (a fixed field, or a slot the proven `ring_math.slot` keeps below the
  queue size). On this flat memory an accessor is the `struct` codec bound to the
  bytes, with no Python frame per access; on a subclass that redefines any accessor
  it is that subclass's checked `read_struct`/`write_struct`, so recording and
  interleaving memories still see, and check, every access. An object holding
  accessors derives from `HoldsAccessors`, so a copy of it (the interleaving explorer
  deep-copies a side with its memory swapped) binds them to the copy's own memory.
- Ordering points are explicit calls to `barrier(kind, label)`. In this memory they
  cost nothing, because one Python thread is sequentially consistent; the interleaving
  explorer's memory (`impl/replay.py`, `impl/weak_memory.py`) makes every access a
  scheduling point and buffers stores per side, so the labels are where orderings get
  checked (docs/ordering.md). A label names the pair: the publishing side and the
  observing side use the same letter.

Spec: §2.7.13.3 and §2.7.13.4 (driver barriers), §2.7.8 and §2.7.7 (device side).
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable
from enum import Enum
from functools import partial
from typing import Any

from .errors import MemoryFault

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_ADDR_LIMIT = 1 << 64

_Bytes = bytearray | mmap.mmap
_unpack16: Callable[[_Bytes, int], tuple[int]] = _U16.unpack_from
_unpack32: Callable[[_Bytes, int], tuple[int]] = _U32.unpack_from
_unpack64: Callable[[_Bytes, int], tuple[int]] = _U64.unpack_from
_pack16: Callable[[_Bytes, int, int], None] = _U16.pack_into
_pack32: Callable[[_Bytes, int, int], None] = _U32.pack_into
_pack64: Callable[[_Bytes, int, int], None] = _U64.pack_into
"""The bound codecs, typed, and looked up once rather than per access."""

Reader = Callable[[int], tuple[Any, ...]]
"""Reads one structure at an address: what `GuestMemory.reader` returns."""

Writer = Callable[..., None]
"""Writes one structure at an address, `write(addr, *values)`: what `GuestMemory.writer`
returns."""


class Barrier(Enum):
    """The three fences the spec asks for (Linux: virtio_rmb, virtio_wmb, virtio_mb)."""

    READ = "rmb"
    WRITE = "wmb"
    FULL = "mb"


WMB, RMB, MB = Barrier.WRITE, Barrier.READ, Barrier.FULL
"""The barrier kinds as plain module names for ring code: looking up an `Enum` member
costs a call on Python 3.11, and the rings name a barrier on every operation."""


class GuestMemory:
    """A flat little-endian region of guest-physical memory starting at address 0.

    Backed by a `bytearray` (default) or an `mmap`, so a native peer can map the same
    pages. The region never grows.
    """

    __slots__ = ("_buf", "size")

    def __init__(self, size: int = 0, *, backing: bytearray | mmap.mmap | None = None) -> None:
        if backing is None:
            backing = bytearray(size)
        self._buf: bytearray | mmap.mmap = backing
        self.size: int = len(backing)

    @property
    def backing(self) -> bytearray | mmap.mmap:
        """The bytes themselves, for a native peer that must address the same pages."""
        return self._buf

    def contains(self, addr: int, length: int) -> bool:
        """Whether `[addr, addr + length)` lies inside the region, with no 64-bit wrap."""
        return 0 <= addr < _ADDR_LIMIT and 0 <= length and addr + length <= self.size

    def check(self, addr: int, length: int) -> None:
        """Raise `MemoryFault` unless `[addr, addr + length)` lies inside the region."""
        if not (0 <= addr and 0 <= length and addr + length <= self.size and addr < _ADDR_LIMIT):
            raise MemoryFault(addr, length, self.size)

    _flat: bool = True
    """Whether every accessor is this class's own: then `reader`/`writer` hand out the
    bare codecs."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        """Route a subclass's structure accesses through its own `read`/`write`."""
        super().__init_subclass__(**kwargs)
        cls._flat = all(getattr(cls, name) is getattr(GuestMemory, name) for name in _ACCESSORS)
        if cls.read is not GuestMemory.read and cls.read_struct is GuestMemory.read_struct:
            cls.read_struct = GuestMemory._read_struct_via_read  # type: ignore[method-assign]
        if cls.write is not GuestMemory.write and cls.write_struct is GuestMemory.write_struct:
            cls.write_struct = GuestMemory._write_struct_via_write  # type: ignore[method-assign]

    def read_u8(self, addr: int) -> int:
        """Read one byte."""
        if not 0 <= addr < self.size:
            raise MemoryFault(addr, 1, self.size)
        return self._buf[addr]

    def read_u16(self, addr: int) -> int:
        """Read a little-endian u16."""
        if not 0 <= addr <= self.size - 2:
            raise MemoryFault(addr, 2, self.size)
        return _unpack16(self._buf, addr)[0]

    def read_u32(self, addr: int) -> int:
        """Read a little-endian u32."""
        if not 0 <= addr <= self.size - 4:
            raise MemoryFault(addr, 4, self.size)
        return _unpack32(self._buf, addr)[0]

    def read_u64(self, addr: int) -> int:
        """Read a little-endian u64."""
        if not 0 <= addr <= self.size - 8:
            raise MemoryFault(addr, 8, self.size)
        return _unpack64(self._buf, addr)[0]

    def read(self, addr: int, length: int) -> bytes:
        """Read `length` bytes."""
        end = addr + length
        if not (0 <= addr <= end <= self.size and addr < _ADDR_LIMIT):  # `check`, inlined
            raise MemoryFault(addr, length, self.size)
        return bytes(self._buf[addr:end])

    def read_struct(self, fmt: struct.Struct, addr: int) -> tuple[Any, ...]:
        """Read one structure of format `fmt` at `addr`: `fmt.size` bytes in one access."""
        if not 0 <= addr <= self.size - fmt.size:
            raise MemoryFault(addr, fmt.size, self.size)
        return fmt.unpack_from(self._buf, addr)

    def _read_struct_via_read(self, fmt: struct.Struct, addr: int) -> tuple[Any, ...]:
        return fmt.unpack(self.read(addr, fmt.size))

    def reader(self, fmt: struct.Struct, lo: int, hi: int) -> Reader:
        """A function reading one `fmt` structure at an address inside `[lo, hi)`.

        The area is checked here (`MemoryFault` if it leaves the region); the caller
        promises every address it passes keeps the structure inside the area.
        """
        self.check(lo, hi - lo)
        if self._flat:
            return partial(fmt.unpack_from, self._buf)
        return partial(self.read_struct, fmt)

    def writer(self, fmt: struct.Struct, lo: int, hi: int) -> Writer:
        """A function writing one `fmt` structure at an address inside `[lo, hi)`.

        Called as `write(addr, *values)`; the same promise as `reader`.
        """
        self.check(lo, hi - lo)
        if self._flat:
            return partial(fmt.pack_into, self._buf)
        return partial(self.write_struct, fmt)

    def write_u8(self, addr: int, value: int) -> None:
        """Write one byte."""
        if not 0 <= addr < self.size:
            raise MemoryFault(addr, 1, self.size)
        self._buf[addr] = value

    def write_u16(self, addr: int, value: int) -> None:
        """Write a little-endian u16."""
        if not 0 <= addr <= self.size - 2:
            raise MemoryFault(addr, 2, self.size)
        _pack16(self._buf, addr, value)

    def write_u32(self, addr: int, value: int) -> None:
        """Write a little-endian u32."""
        if not 0 <= addr <= self.size - 4:
            raise MemoryFault(addr, 4, self.size)
        _pack32(self._buf, addr, value)

    def write_u64(self, addr: int, value: int) -> None:
        """Write a little-endian u64."""
        if not 0 <= addr <= self.size - 8:
            raise MemoryFault(addr, 8, self.size)
        _pack64(self._buf, addr, value)

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        """Write `data` at `addr`."""
        end = addr + len(data)
        if not (0 <= addr <= end <= self.size and addr < _ADDR_LIMIT):  # `check`, inlined
            raise MemoryFault(addr, len(data), self.size)
        self._buf[addr:end] = data

    def write_struct(self, fmt: struct.Struct, addr: int, *values: Any) -> None:
        """Write one structure of format `fmt` at `addr`: `fmt.size` bytes in one access.

        Callers pass values that fit their fields (ring code writes only values it
        checked or computed); one that does not raises `struct.error`, and the
        structure's bytes are then unspecified.
        """
        if not 0 <= addr <= self.size - fmt.size:
            raise MemoryFault(addr, fmt.size, self.size)
        fmt.pack_into(self._buf, addr, *values)

    def _write_struct_via_write(self, fmt: struct.Struct, addr: int, *values: Any) -> None:
        self.write(addr, fmt.pack(*values))

    def fill(self, addr: int, length: int, byte: int = 0) -> None:
        """Set `length` bytes at `addr` to `byte`."""
        self.check(addr, length)
        self._buf[addr : addr + length] = bytes([byte]) * length

    def barrier(self, kind: Barrier, label: str) -> None:
        """An ordering point. A no-op here; an interleaving memory acts on it.

        `label` names the pair ("A" .. "D", see docs/ordering.md) so the matching
        barrier on the other side can be found by searching for the same label.
        """


class HoldsAccessors:
    """Ring code keeping `reader`/`writer` accessors of `self.mem` as attributes.

    An accessor is bound to one memory's bytes, so a copy must not carry it over: a
    copy or deep copy drops the accessors and makes them again from its own `mem`
    (which a deep copy may have swapped for another memory through its memo).
    """

    mem: GuestMemory

    def _accessors(self) -> dict[str, Reader | Writer]:
        """The accessors by attribute name, made from `self.mem`."""
        raise NotImplementedError

    def _bind_accessors(self) -> None:
        for name, accessor in self._accessors().items():
            setattr(self, name, accessor)  # not via vars(): that would slow attribute reads

    def __getstate__(self) -> dict[str, Any]:
        state = dict(vars(self))
        for name in self._accessors():
            del state[name]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)
        self._bind_accessors()


_ACCESSORS = tuple(
    name
    for name in vars(GuestMemory)
    if name.startswith(("read", "write", "fill")) and name not in ("reader", "writer")
)
"""Every method that touches the bytes: a subclass redefining one is not flat."""
