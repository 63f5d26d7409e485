"""Test doubles for virtio-blk: a disk that records every call, and a driver that sends raw chains.

`RecordingDisk` is a `MemoryDisk` that logs each call, so a test can assert that a
rejected request never reached the disk. `RawBench` binds a `BlkDevice` over that
disk to a bare driver that owns one ring and nothing else (a split ring on the direct
bus, or a packed ring over a packed transport of `blk_rig`): a test lays out any
chain it likes (header split anywhere, status missing or read-only, hostile values),
kicks, and reads back the used length and the status byte itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from blk_rig import bus_bind, guest
from direct_bus import DirectDevice, bind

from impl.alloc import GuestAllocator
from impl.blk_device import BlkDevice
from impl.blk_driver import KNOWN_FEATURES
from impl.chain import Segment
from impl.device_core import DeviceCore
from impl.disk import MemoryDisk
from impl.driver import DeviceMatch, DriverQueue, VirtioDevice
from impl.memory import GuestMemory
from impl.spec import DeviceId

SECTOR = 512


class RecordingDisk(MemoryDisk):
    """A memory disk that records each call as (name, arguments)."""

    __slots__ = ("calls",)

    def __init__(self, capacity: int, **kwargs: bool) -> None:
        super().__init__(capacity, **kwargs)
        self.calls: list[tuple[str, tuple[int, ...]]] = []

    def read(self, sector: int, count: int) -> bytes:
        self.calls.append(("read", (sector, count)))
        return super().read(sector, count)

    def write(self, sector: int, data: bytes) -> None:
        self.calls.append(("write", (sector, len(data))))
        super().write(sector, data)

    def flush(self) -> None:
        self.calls.append(("flush", ()))
        super().flush()

    def discard(self, sector: int, count: int) -> None:
        self.calls.append(("discard", (sector, count)))
        super().discard(sector, count)

    def write_zeroes(self, sector: int, count: int) -> None:
        self.calls.append(("write_zeroes", (sector, count)))
        super().write_zeroes(sector, count)


class RawDriver:
    """A driver that only finds one queue and leaves every buffer to the test."""

    name = "raw"
    id_table = (DeviceMatch(DeviceId.BLOCK),)

    def __init__(self, feature_table: int = KNOWN_FEATURES) -> None:
        self.feature_table = feature_table
        self.ring: DriverQueue | None = None

    def validate(self, vdev: VirtioDevice, features: int) -> int:
        return features

    def probe(self, vdev: VirtioDevice) -> None:
        self.ring = vdev.find_vqs(["req.0"], [None])[0]

    def remove(self, vdev: VirtioDevice) -> None:
        self.ring = None

    def config_changed(self, vdev: VirtioDevice) -> None:
        """Nothing to do."""


@dataclass
class Answer:
    """What came back for one raw chain: used length and the last writable byte."""

    length: int
    status: int | None
    written: bytes


@dataclass
class RawBench:
    """A `BlkDevice` on a `RecordingDisk`, driven by raw chains."""

    disk: RecordingDisk
    device: BlkDevice
    handle: DirectDevice | Any
    ring: DriverQueue
    alloc: GuestAllocator
    mem: GuestMemory
    core: DeviceCore | None = None
    """The transport's device core (None on the direct bus)."""

    @classmethod
    def build(
        cls,
        capacity: int = 64,
        *,
        read_only: bool = False,
        feature_table: int = KNOWN_FEATURES,
        transport: str = "direct",
        **device_kwargs: int,
    ) -> RawBench:
        """A device over a disk of `capacity` sectors filled with a known pattern.

        `transport` is "direct" (the direct bus, a split ring) or one of `blk_rig`'s."""
        disk = RecordingDisk(capacity, read_only=read_only)
        disk._data[:] = bytes((i * 7 + 3) & 0xFF for i in range(capacity * SECTOR))
        device = BlkDevice(disk, queue_size=32, **device_kwargs)  # type: ignore[arg-type]
        mem, alloc = guest(1 << 22)
        driver = RawDriver(feature_table)
        handle: DirectDevice | Any
        core = None
        if transport == "direct":
            handle = bind(driver, device, mem, alloc)
        else:
            handle, core, _bus = bus_bind(driver, device, transport, mem, alloc, feature_table)
        assert driver.ring is not None
        disk.calls.clear()
        return cls(disk, device, handle, driver.ring, alloc, mem, core)

    def place(self, data: bytes) -> Segment:
        """Put `data` in guest memory and return its segment."""
        addr = self.alloc.alloc(max(len(data), 1), 8)
        assert addr is not None
        self.mem.write(addr, data)
        return Segment(addr, len(data))

    def send(self, out: Sequence[bytes], in_sizes: Sequence[int]) -> Answer:
        """Expose readable pieces `out` and writable pieces of `in_sizes`; return the answer."""
        out_segs = [self.place(piece) for piece in out]
        in_segs = [self.place(b"\xee" * n) for n in in_sizes]
        self.ring.add_sgs(out_segs, in_segs, "raw")
        self.ring.kick()
        used = self.ring.get_buf()
        assert used is not None, "the device did not answer"
        token, length = used
        assert token == "raw"
        written = b"".join(self.mem.read(s.addr, s.len) for s in in_segs)
        status = written[-1] if written else None
        return Answer(length, status, written)

    def image(self) -> bytes:
        """The disk's contents."""
        return self.disk.image()
