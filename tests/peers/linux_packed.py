"""Linux's packed-ring driver under test, through the shim and ctypes.

Rules:
- `LinuxPackedDriver` has the reference's interface (`impl.packed_driver.PackedDriver`)
  and the observer's (`impl.packed_observer.PackedDriverShadow`), so the packed lockstep
  machine runs on it. Linux has no packed device side (vringh is split-only), so this is
  a driver only.
- Linux allocates a packed ring itself (`vring_create_virtqueue` with
  VIRTIO_F_RING_PACKED; without the DMA API each part is `alloc_pages_exact`). The shim
  serves those allocations as whole pages, in order, from a region of the caller's guest
  memory; the three addresses Linux got come back as `layout`. `placement()` tells in
  advance where Linux will put a ring of a given size, by building one on scratch memory.
- Positions are the project's (`impl.wrap_math`): Linux keeps its used and avail indices
  as offset | wrap counter << 15, the same encoding as an event word, and the adapter
  decodes them with `decode_event`.
- What Linux keeps nowhere the adapter keeps itself, and only that: the Python objects
  behind token numbers, the indirect tables lent to it (see `tests/peers/linux.py`), and
  the writable segments of each outstanding Buffer ID (for the observer).

Spec: §2.8 (packed virtqueues), through Linux 6.1's implementation of it.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from functools import cache

from impl.alloc import GuestAllocator
from impl.buffer import check_buffer
from impl.chain import Segment
from impl.errors import NoSpace, QueueBroken
from impl.memory import GuestMemory
from impl.packed_layout import PackedLayout
from impl.spec import DESC_SIZE, Feature, PackedEventFlag, feature_mask, has_feature
from impl.wrap_math import decode_event

from .linux import NO_TABLE, _base, _native_features, library

PAGE = mmap.PAGESIZE
"""The page size `alloc_pages_exact` rounds each ring part up to (tools/virtio's getpagesize)."""

_u64, _uint, _int, _ptr = ctypes.c_uint64, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p
_PU64 = ctypes.POINTER(_u64)
_SIGNATURES: dict[str, tuple[type | None, list[type]]] = {
    "oracle_pdrv_new": (_ptr, [_ptr, ctypes.c_size_t, _u64, _u64, _uint, _u64, _uint]),
    "oracle_pdrv_rings": (None, [_ptr, _PU64, _PU64, _PU64]),
    "oracle_pdrv_token_of": (_u64, [_ptr, _uint]),
    "oracle_pdrv_descs_of": (_uint, [_ptr, _uint]),
    "oracle_pdrv_last_id": (_uint, [_ptr, _uint]),
    "oracle_pdrv_next_id": (_uint, [_ptr, _uint]),
    "oracle_pdrv_last_used": (_uint, [_ptr]),
    "oracle_pdrv_next_avail": (_uint, [_ptr]),
    "oracle_pdrv_event_flags": (_uint, [_ptr]),
    "oracle_pdrv_more_used": (_int, [_ptr]),
}


@cache
def packed_library() -> ctypes.CDLL:
    """The peer library with the packed driver's signatures declared too."""
    lib = library()
    for name, (restype, argtypes) in _SIGNATURES.items():
        func = getattr(lib, name)
        func.restype = restype
        func.argtypes = argtypes
    return lib


def region_bytes(size: int) -> int:
    """How much room Linux's three page-rounded allocations take for a ring of `size`."""
    return -(-DESC_SIZE * size // PAGE) * PAGE + 2 * PAGE


@cache
def placement(size: int, base: int) -> PackedLayout:
    """Where Linux puts a packed ring of `size` when given the region from `base` on.

    Found by creating one on scratch memory; `base` must be page-aligned.
    """
    mem = GuestMemory(backing=bytearray(base + region_bytes(size)))
    driver = LinuxPackedDriver(mem, (base, mem.size), size)
    return driver.layout


@dataclass(slots=True)
class _Lent:
    """What the adapter remembers about a buffer Linux holds under a token number."""

    token: Hashable
    ident: int
    table: int | None


class LinuxPackedDriver:
    """Linux's `virtio_ring.c` packed driver, its ring inside `region` of `mem`."""

    def __init__(
        self,
        mem: GuestMemory,
        region: tuple[int, int],
        size: int,
        features: int = 0,
        *,
        allocator: GuestAllocator | None = None,
        initial_offset: int = 0,
    ) -> None:
        self._lib = packed_library()
        self.mem, self.size = mem, size
        self._view, base = _base(mem)
        self._allocator = allocator
        self.event_idx = has_feature(features, Feature.EVENT_IDX)
        self.indirect = has_feature(features, Feature.INDIRECT_DESC) and allocator is not None
        native = _native_features(features) | feature_mask(Feature.RING_PACKED)
        self._handle = self._lib.oracle_pdrv_new(
            base, mem.size, region[0], region[1], size, native, initial_offset % size
        )
        if not self._handle:
            raise RuntimeError(f"Linux could not create a packed ring of {size} in {region}")
        desc, driver, device = _u64(), _u64(), _u64()
        self._lib.oracle_pdrv_rings(self._handle, ctypes.byref(desc), ctypes.byref(driver),
                                    ctypes.byref(device))
        self.layout = PackedLayout(size, desc.value, driver.value, device.value)
        self.layout.validate(mem.size)
        self._lent: dict[int, _Lent] = {}
        self._writable: dict[int, tuple[Segment, ...]] = {}
        self._next_number = 1
        self._addrs = (_u64 * size)()
        self._lens = (ctypes.c_uint32 * size)()
        self._taken = _int(0)
        self._length = ctypes.c_uint32(0)

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle:
            self._lib.oracle_drv_free(handle)
            self._handle = None

    # --- adding ---------------------------------------------------------------------
    def add_sgs(self, out: Sequence[Segment], in_: Sequence[Segment], token: Hashable) -> int:
        """Expose a buffer (virtqueue_add_sgs); its Buffer ID, or NoSpace / BadBuffer."""
        check_buffer(self.mem, self.size, out, in_, token)
        segments = [*out, *in_]
        for i, seg in enumerate(segments):
            self._addrs[i], self._lens[i] = seg.addr, seg.len
        table = None
        if self.indirect and len(segments) > 1 and self._allocator is not None:
            table = self._allocator.alloc(DESC_SIZE * len(segments), DESC_SIZE)
        number, self._next_number = self._next_number, self._next_number + 1
        ident = self._lib.oracle_drv_add(
            self._handle, self._addrs, self._lens, len(out), len(in_), number,
            NO_TABLE if table is None else table, ctypes.byref(self._taken),
        )
        taken = bool(self._taken.value)
        if table is not None and not taken and self._allocator is not None:
            self._allocator.free(table)
        if ident == -errno.ENOSPC:
            raise NoSpace(f"Linux found {self.num_free} free descriptors, {len(segments)} needed")
        if ident < 0:
            raise QueueBroken(f"Linux refused the buffer (errno {-ident})")
        self._lent[number] = _Lent(token, ident, table if taken else None)
        self._writable[ident] = tuple(in_)
        return int(ident)

    def add_outbuf(self, segments: Sequence[Segment], token: Hashable) -> int:
        """Expose a device-readable buffer."""
        return self.add_sgs(segments, (), token)

    def add_inbuf(self, segments: Sequence[Segment], token: Hashable) -> int:
        """Expose a device-writable buffer."""
        return self.add_sgs((), segments, token)

    # --- notifying and reclaiming -----------------------------------------------------
    def kick_prepare(self) -> bool:
        """virtqueue_kick_prepare: does the device want a notification?"""
        return bool(self._lib.oracle_drv_kick_prepare(self._handle))

    def kick(self) -> bool:
        """kick_prepare (the doorbell itself is the transport's)."""
        return self.kick_prepare()

    def get_buf(self) -> tuple[Hashable, int] | None:
        """virtqueue_get_buf: (token, length) of the next used buffer, or None."""
        number = self._lib.oracle_drv_get_buf(self._handle, ctypes.byref(self._length))
        if not number:
            if self._lib.oracle_drv_broken(self._handle):
                raise QueueBroken("Linux marked the queue broken (the device lied)")
            return None
        return self._release(number), int(self._length.value)

    def more_used(self) -> bool:
        """virtqueue_poll at last_used: is a used descriptor waiting?"""
        return bool(self._lib.oracle_pdrv_more_used(self._handle))

    def detach_unused_buf(self) -> Hashable | None:
        """virtqueue_detach_unused_buf: take back a buffer after a device reset."""
        number = self._lib.oracle_drv_detach_unused(self._handle)
        return self._release(number) if number else None

    def _release(self, number: int) -> Hashable:
        lent = self._lent.pop(number)
        self._writable.pop(lent.ident, None)
        if lent.table is not None and self._allocator is not None:
            self._allocator.free(lent.table)
        return lent.token

    def disable_cb(self) -> None:
        """virtqueue_disable_cb."""
        self._lib.oracle_drv_disable_cb(self._handle)

    def enable_cb(self) -> bool:
        """virtqueue_enable_cb: False if a used buffer is already waiting."""
        return bool(self._lib.oracle_drv_enable_cb(self._handle))

    def enable_cb_delayed(self) -> bool:
        """virtqueue_enable_cb_delayed: False if a used buffer is already waiting."""
        return bool(self._lib.oracle_drv_enable_cb_delayed(self._handle))

    # --- observation (PackedDriverShadow) ---------------------------------------------
    def token_of(self, head: int) -> Hashable | None:
        """The token Linux stored for an outstanding Buffer ID."""
        number = self._lib.oracle_pdrv_token_of(self._handle, head)
        lent = self._lent.get(number) if number else None
        return lent.token if lent is not None else None

    def descs_of(self, head: int) -> int:
        """Ring descriptors the list of outstanding id `head` took (Linux's state num)."""
        return int(self._lib.oracle_pdrv_descs_of(self._handle, head))

    def writable_of(self, head: int) -> tuple[Segment, ...]:
        """The device-writable segments of outstanding id `head` (kept by the adapter)."""
        return self._writable.get(head, ())

    @property
    def last_used_idx(self) -> int:
        """Linux's last_used_idx as a position."""
        return decode_event(self._lib.oracle_pdrv_last_used(self._handle), self.size)

    @property
    def next_avail(self) -> int:
        """Linux's next_avail_idx and avail wrap counter as a position."""
        return decode_event(self._lib.oracle_pdrv_next_avail(self._handle), self.size)

    @property
    def event_flags(self) -> PackedEventFlag:
        """What Linux believes its Driver Event Suppression flags hold (its shadow)."""
        return PackedEventFlag(self._lib.oracle_pdrv_event_flags(self._handle))

    @property
    def no_interrupt(self) -> bool:
        """Whether callbacks are off (the shadow says DISABLE)."""
        return self.event_flags == PackedEventFlag.DISABLE

    @property
    def num_free(self) -> int:
        """Free ring descriptors."""
        return int(self._lib.oracle_drv_num_free(self._handle))

    @property
    def free_ids(self) -> list[int]:
        """The Buffer IDs on Linux's free list, in order (one per free descriptor)."""
        ids, ident = [], int(self._lib.oracle_drv_free_head(self._handle))
        for _ in range(self.num_free):
            ids.append(ident)
            ident = int(self._lib.oracle_pdrv_next_id(self._handle, ident))
        return ids

    def ids_of(self, head: int) -> list[int]:
        """The ids outstanding id `head` holds: Linux takes one per ring descriptor."""
        ids, ident = [head], head
        for _ in range(self.descs_of(head) - 1):
            ident = int(self._lib.oracle_pdrv_next_id(self._handle, ident))
            ids.append(ident)
        assert ids[-1] == self._lib.oracle_pdrv_last_id(self._handle, head)
        return ids


def linux_packed_driver(
    mem: GuestMemory, layout: PackedLayout, features: int, allocator: GuestAllocator, start: int
) -> LinuxPackedDriver:
    """A packed machine driver factory: Linux must place its ring where `layout` says.

    The machine learns `layout` from `placement()`; Linux gets the region from
    `layout.desc` on and must put the three parts at the same addresses again.
    """
    region = (layout.desc, layout.desc + region_bytes(layout.size))
    driver = LinuxPackedDriver(mem, region, layout.size, features, allocator=allocator,
                               initial_offset=start)
    if driver.layout != layout:
        raise RuntimeError(f"Linux placed the ring at {driver.layout}, not {layout}")
    return driver
