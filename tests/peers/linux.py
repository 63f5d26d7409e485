"""Linux's split ring as a driver and a device under test, through the shim and ctypes.

Rules:
- `LinuxDriver` and `LinuxDevice` have the reference's interface (`SplitDriver`,
  `SplitDevice`) and the observer's (`DriverShadow`, `DeviceShadow`), so the same
  machine and checks run on them. docs/oracle.md writes that interface down.
- They share the caller's guest memory: the C side gets a pointer to the very bytes
  the `GuestMemory` holds (a bytearray or an mmap), and guest address G is base + G.
- What Linux keeps nowhere the adapter keeps itself, and only that: the Python
  objects behind token numbers, the indirect tables it lent the driver (the driver
  kmallocs them; here they come from the guest allocator), and the heads the device
  holds (vringh does not track them).
- Recovery on a refused chain is the project's (docs/architecture.md): the adapter
  returns the head used with length 0, then raises `PeerRejectedChain`. vringh
  itself leaves that choice to its caller.

Spec: §2.7 (split virtqueues), through Linux 6.x's implementation of it.
"""

from __future__ import annotations

import ctypes
import errno
from collections.abc import Hashable, Sequence
from functools import cache

from impl.alloc import GuestAllocator
from impl.chain import Chain, Segment
from impl.errors import (
    BadBuffer,
    NoSpace,
    NotInFlight,
    PayloadTooLarge,
    PeerRejectedChain,
    PeerRejectedRing,
    QueueBroken,
)
from impl.layout import Descriptor, SplitLayout
from impl.memory import GuestMemory
from impl.spec import DESC_SIZE, MAX_CHAIN_BYTES, DescFlag, Feature, feature_mask, has_feature

from .build import build

_INDIRECT = int(DescFlag.INDIRECT)
NO_TABLE = (1 << 64) - 1
_u64, _u32, _u16, _int, _uint, _ptr = (
    ctypes.c_uint64, ctypes.c_uint32, ctypes.c_uint16, ctypes.c_int, ctypes.c_uint,
    ctypes.c_void_p,
)
_NEW = [_ptr, ctypes.c_size_t, _uint, _u64, _u64, _u64, _u64, _uint]
_SIGNATURES: dict[str, tuple[type | None, list[type]]] = {
    "oracle_drv_new": (_ptr, _NEW),
    "oracle_drv_free": (None, [_ptr]),
    "oracle_drv_add": (_int, [_ptr, ctypes.POINTER(_u64), ctypes.POINTER(_u32), _uint, _uint,
                              _u64, _u64, ctypes.POINTER(_int)]),
    "oracle_drv_kick_prepare": (_int, [_ptr]),
    "oracle_drv_get_buf": (_u64, [_ptr, ctypes.POINTER(_u32)]),
    "oracle_drv_disable_cb": (None, [_ptr]),
    "oracle_drv_enable_cb": (_int, [_ptr]),
    "oracle_drv_enable_cb_delayed": (_int, [_ptr]),
    "oracle_drv_detach_unused": (_u64, [_ptr]),
    "oracle_drv_more_used": (_int, [_ptr]),
    "oracle_drv_token_of": (_u64, [_ptr, _uint]),
    "oracle_drv_last_used": (_uint, [_ptr]),
    "oracle_drv_no_interrupt": (_int, [_ptr]),
    "oracle_drv_num_free": (_uint, [_ptr]),
    "oracle_drv_free_head": (_uint, [_ptr]),
    "oracle_drv_broken": (_int, [_ptr]),
    "oracle_dev_new": (_ptr, _NEW),
    "oracle_dev_free": (None, [_ptr]),
    "oracle_dev_getdesc": (_int, [_ptr, ctypes.POINTER(_u64), ctypes.POINTER(_u32), _uint,
                                  ctypes.POINTER(_uint), ctypes.POINTER(_uint),
                                  ctypes.POINTER(_u16)]),
    "oracle_dev_complete": (_int, [_ptr, _u16, _u32]),
    "oracle_dev_need_notify": (_int, [_ptr]),
    "oracle_dev_notify_enable": (_int, [_ptr]),
    "oracle_dev_notify_disable": (None, [_ptr]),
    "oracle_dev_last_avail": (_uint, [_ptr]),
    "oracle_dev_last_used": (_uint, [_ptr]),
    "oracle_pair_round_trips": (_int, [_ptr, _ptr, _u64, _u32, _uint]),
}


@cache
def library() -> ctypes.CDLL:
    """The built peer library (building it on first use), with every signature declared."""
    lib = ctypes.CDLL(str(build()))
    for name, (restype, argtypes) in _SIGNATURES.items():
        func = getattr(lib, name)
        func.restype = restype
        func.argtypes = argtypes
    return lib


def _base(mem: GuestMemory) -> tuple[ctypes.Array[ctypes.c_char], int]:
    """A ctypes view of `mem`'s bytes (kept alive by the caller) and its address."""
    view = (ctypes.c_char * mem.size).from_buffer(mem.backing)
    return view, ctypes.addressof(view)


def _native_features(features: int) -> int:
    """The feature word for Linux: ours, plus VERSION_1 so both sides are little-endian."""
    return features | feature_mask(Feature.VERSION_1)


class LinuxDriver:
    """Linux's `virtio_ring.c` split driver over `mem` at `layout` (the SplitDriver interface)."""

    def __init__(
        self,
        mem: GuestMemory,
        layout: SplitLayout,
        features: int = 0,
        *,
        allocator: GuestAllocator | None = None,
        initial_index: int = 0,
    ) -> None:
        layout.validate(mem.size)
        self._lib = library()
        self.mem, self.layout, self.size = mem, layout, layout.size
        self._view, base = _base(mem)
        self._allocator = allocator
        self.indirect = has_feature(features, Feature.INDIRECT_DESC) and allocator is not None
        self._handle = self._lib.oracle_drv_new(
            base, mem.size, layout.size, layout.desc, layout.avail, layout.used,
            _native_features(features), initial_index,
        )
        if not self._handle:
            raise RuntimeError("Linux refused to create the virtqueue")
        self._tokens: dict[int, Hashable] = {}
        self._tables: dict[int, int] = {}
        self._next_id = 1
        self._addrs = (_u64 * layout.size)()
        self._lens = (_u32 * layout.size)()
        self._taken = _int(0)
        self._taken_ref = ctypes.byref(self._taken)
        self._length = _u32(0)
        self._length_ref = ctypes.byref(self._length)

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle:
            self._lib.oracle_drv_free(handle)
            self._handle = None

    # --- adding ---------------------------------------------------------------------
    def add_sgs(self, out: Sequence[Segment], in_: Sequence[Segment], token: Hashable) -> int:
        """Expose a buffer (virtqueue_add_sgs); the head index, or NoSpace / BadBuffer."""
        segments = [*out, *in_]
        self._check_buffer(segments, token)
        total = len(segments)
        addrs, lens = self._addrs, self._lens
        for i, seg in enumerate(segments):
            addrs[i], lens[i] = seg.addr, seg.len
        table = None
        if self.indirect and total > 1 and self._allocator is not None:
            table = self._allocator.alloc(DESC_SIZE * total, DESC_SIZE)
        ident, self._next_id = self._next_id, self._next_id + 1
        taken = self._taken
        head = self._lib.oracle_drv_add(
            self._handle, addrs, lens, len(out), len(in_), ident,
            NO_TABLE if table is None else table, self._taken_ref,
        )
        if table is not None and not taken.value:
            assert self._allocator is not None
            self._allocator.free(table)
        if head == -errno.ENOSPC:
            raise NoSpace(f"Linux found {self.num_free} free descriptors, {total} segments")
        if head < 0:
            raise QueueBroken(f"Linux refused the buffer (errno {-head})")
        self._tokens[ident] = token
        if table is not None and taken.value:
            self._tables[ident] = table
        return int(head)

    def add_outbuf(self, segments: Sequence[Segment], token: Hashable) -> int:
        """Expose a device-readable buffer."""
        return self.add_sgs(segments, (), token)

    def add_inbuf(self, segments: Sequence[Segment], token: Hashable) -> int:
        """Expose a device-writable buffer."""
        return self.add_sgs((), segments, token)

    def _check_buffer(self, segments: list[Segment], token: Hashable) -> None:
        """The caller's contract, as the reference states it (Linux would BUG or WARN)."""
        if token is None or not segments or len(segments) > self.size:
            raise BadBuffer("a buffer needs a token and 1..queue-size segments")
        total = 0
        for seg in segments:
            if not self.mem.contains(seg.addr, seg.len):
                raise BadBuffer("a segment lies outside guest memory")
            total += seg.len
        if total >= MAX_CHAIN_BYTES:
            raise BadBuffer("a chain must stay below 2^32 bytes")

    # --- notifying and reclaiming -------------------------------------------------
    def kick_prepare(self) -> bool:
        """virtqueue_kick_prepare: does the device want a notification?"""
        return bool(self._lib.oracle_drv_kick_prepare(self._handle))

    def kick(self) -> bool:
        """kick_prepare (the doorbell itself is the transport's)."""
        return self.kick_prepare()

    def get_buf(self) -> tuple[Hashable, int] | None:
        """virtqueue_get_buf: (token, length) of the next used buffer, or None."""
        length = self._length
        ident = self._lib.oracle_drv_get_buf(self._handle, self._length_ref)
        if not ident:
            if self._lib.oracle_drv_broken(self._handle):
                raise QueueBroken("Linux marked the queue broken (the device lied)")
            return None
        return self._release(ident), int(length.value)

    def more_used(self) -> bool:
        """virtqueue_poll: are there used buffers not reclaimed?"""
        return bool(self._lib.oracle_drv_more_used(self._handle))

    def detach_unused_buf(self) -> Hashable | None:
        """virtqueue_detach_unused_buf: take back a buffer after a device reset."""
        ident = self._lib.oracle_drv_detach_unused(self._handle)
        return self._release(ident) if ident else None

    def _release(self, ident: int) -> Hashable:
        table = self._tables.pop(ident, None)
        if table is not None and self._allocator is not None:
            self._allocator.free(table)
        return self._tokens.pop(ident)

    def disable_cb(self) -> None:
        """virtqueue_disable_cb."""
        self._lib.oracle_drv_disable_cb(self._handle)

    def enable_cb(self) -> bool:
        """virtqueue_enable_cb: False if used buffers are already waiting."""
        return bool(self._lib.oracle_drv_enable_cb(self._handle))

    def enable_cb_delayed(self) -> bool:
        """virtqueue_enable_cb_delayed."""
        return bool(self._lib.oracle_drv_enable_cb_delayed(self._handle))

    # --- observation (DriverShadow) -----------------------------------------------
    def token_of(self, head: int) -> Hashable | None:
        """The token Linux stored for an outstanding head."""
        ident = self._lib.oracle_drv_token_of(self._handle, head)
        return self._tokens.get(ident) if ident else None

    @property
    def last_used_idx(self) -> int:
        """Linux's last_used_idx."""
        return int(self._lib.oracle_drv_last_used(self._handle))

    @property
    def no_interrupt(self) -> bool:
        """Whether callbacks are off (Linux's avail_flags_shadow)."""
        return bool(self._lib.oracle_drv_no_interrupt(self._handle))

    @property
    def num_free(self) -> int:
        """Free descriptors."""
        return int(self._lib.oracle_drv_num_free(self._handle))

    @property
    def free_head(self) -> int:
        """The first free descriptor."""
        return int(self._lib.oracle_drv_free_head(self._handle))


class LinuxDevice:
    """Linux's `vringh` over `mem` at `layout` (the SplitDevice interface)."""

    def __init__(
        self, mem: GuestMemory, layout: SplitLayout, features: int = 0, *, initial_index: int = 0
    ) -> None:
        layout.validate(mem.size)
        self._lib = library()
        self.mem, self.layout, self.size = mem, layout, layout.size
        self._features = _native_features(features)
        self._initial = initial_index
        self._view, self._base = _base(mem)
        self._cap = mem.size // DESC_SIZE + 2 * layout.size
        self._addrs = (_u64 * self._cap)()
        self._lens = (_u32 * self._cap)()
        self._nread, self._nwrite, self._head = _uint(0), _uint(0), _u16(0)
        self._refs = (ctypes.byref(self._nread), ctypes.byref(self._nwrite),
                      ctypes.byref(self._head))
        self._handle = None
        self.reset()

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle:
            self._lib.oracle_dev_free(handle)
            self._handle = None

    def reset(self) -> None:
        """Start over at the initial index (vringh has no reset: a new vringh)."""
        if self._handle:
            self._lib.oracle_dev_free(self._handle)
        lay = self.layout
        self._handle = self._lib.oracle_dev_new(
            self._base, self.mem.size, lay.size, lay.desc, lay.avail, lay.used,
            self._features, self._initial,
        )
        if not self._handle:
            raise RuntimeError("vringh refused the ring")
        self.in_flight: dict[int, Chain] = {}

    def pop(self) -> Chain | None:
        """vringh_getdesc_user: the next chain, None, or PeerRejectedChain/Ring."""
        nread, nwrite, head = self._nread, self._nwrite, self._head
        err = self._lib.oracle_dev_getdesc(
            self._handle, self._addrs, self._lens, self._cap, *self._refs
        )
        if err == 0:
            return None
        if err < 0:
            if head.value >= self.size:
                raise PeerRejectedRing(f"vringh refused the ring (errno {-err})", -err)
            self._lib.oracle_dev_complete(self._handle, head.value, 0)
            error = PeerRejectedChain(f"vringh refused chain {head.value} (errno {-err})", -err)
            error.head = head.value
            raise error
        addrs, lens, readable = self._addrs, self._lens, nread.value
        pieces = [Segment(addrs[i], lens[i]) for i in range(readable + nwrite.value)]
        flags = Descriptor.unpack(self.mem.read(self.layout.desc_addr(head.value), DESC_SIZE)).flags
        chain = Chain(head.value, tuple(pieces[:readable]), tuple(pieces[readable:]),
                      bool(flags & _INDIRECT))
        self.in_flight[head.value] = chain
        return chain

    def push_used(self, head: int, written: int) -> None:
        """vringh_complete_user for a held head, after the reference's argument checks."""
        chain = self.in_flight.get(head)
        if chain is None:
            raise NotInFlight(f"head {head} is not held by the device")
        if not 0 <= written <= chain.writable_len:
            raise PayloadTooLarge(f"written {written} outside 0..{chain.writable_len}")
        del self.in_flight[head]
        if self._lib.oracle_dev_complete(self._handle, head, written):
            raise RuntimeError("vringh could not write the used ring")

    def needs_notification(self) -> bool:
        """vringh_need_notify_user."""
        answer = self._lib.oracle_dev_need_notify(self._handle)
        if answer < 0:
            raise RuntimeError(f"vringh_need_notify failed (errno {-answer})")
        return bool(answer)

    def enable_notification(self) -> bool:
        """vringh_notify_enable_user; True when buffers arrived meanwhile (its False)."""
        return not self._lib.oracle_dev_notify_enable(self._handle)

    def disable_notification(self) -> None:
        """vringh_notify_disable_user."""
        self._lib.oracle_dev_notify_disable(self._handle)

    # --- observation (DeviceShadow) -------------------------------------------------
    @property
    def next_avail(self) -> int:
        """vringh's last_avail_idx."""
        return int(self._lib.oracle_dev_last_avail(self._handle))

    @property
    def held_heads(self) -> list[int]:
        """Heads popped and not yet completed (kept by the adapter)."""
        return list(self.in_flight)


def native_round_trips(driver: LinuxDriver, device: LinuxDevice, segment: Segment,
                       count: int) -> None:
    """Run `count` round trips of one buffer entirely in C (no Python between the steps).

    The buffer is `segment` readable and as many bytes right after it writable; both
    sides must be over the same memory and start empty.
    """
    err = driver._lib.oracle_pair_round_trips(
        driver._handle, device._handle, segment.addr, segment.len, count
    )
    if err:
        raise RuntimeError(f"the native round trip failed (errno {-err})")


def linux_driver(
    mem: GuestMemory, layout: SplitLayout, features: int, allocator: GuestAllocator, start: int
) -> LinuxDriver:
    """A machine driver factory for Linux's driver."""
    return LinuxDriver(mem, layout, features, allocator=allocator, initial_index=start)


def linux_device(mem: GuestMemory, layout: SplitLayout, features: int, start: int) -> LinuxDevice:
    """A machine device factory for vringh."""
    return LinuxDevice(mem, layout, features, initial_index=start)


DISABLED_USED_EVENT = 0
"""What Linux's disable_cb writes to used_event in event-index mode (its own choice)."""


def require_library() -> ctypes.CDLL | None:
    """The peer library; None if the user opted out, a test failure if it cannot be built."""
    import pytest

    from .build import NO_PEERS_ENV, PeerUnavailable, peers_disabled

    if peers_disabled():
        return None
    try:
        return library()
    except PeerUnavailable as error:
        pytest.fail(f"the Linux peer is unavailable: {error}\n"
                    f"(set {NO_PEERS_ENV}=1 to run without native peers)", pytrace=False)
