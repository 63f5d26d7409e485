"""Disks behind the block device: what a virtio-blk device stores its sectors on.

Rules:
- A `Disk` speaks in whole 512-byte sectors and trusts its caller: the device
  (`impl/blk_device.py`) has already checked every range against `capacity` and the
  read-only flag before it calls one, so a disk is never touched by a rejected request.
- Two cache modes (§5.2.5, §5.2.6.2 "stable writes"). Writethrough (`writeback`
  False): a write is stable when `write` returns, so a device that completes it
  afterwards has committed it (BLK-DEV-028). Writeback: a write may stay volatile
  until `flush()` returns, which makes every write that returned before it stable.
- `MemoryDisk` keeps, beside the sectors, the image a crash would leave (`stable_image`),
  so tests can check what a flush promises without killing anything. A disk on a
  real file is `backends.file_disk.FileDisk` (I/O stays out of `impl`).
- Discard deallocates nothing here: it writes zeros, which a discard may do (BLK-DEV-023,
  and BLK-DRV-025 lets readers assume nothing about discarded sectors).

Spec: §5.2.4 (capacity), §5.2.5 (cache modes), §5.2.6.2 (stable writes, discard,
write zeroes).
"""

from __future__ import annotations

from typing import Protocol

from .spec import BLK_SECTOR_SIZE


class Disk(Protocol):
    """A sector store behind a block device."""

    @property
    def capacity(self) -> int:
        """Size in 512-byte sectors."""
        ...

    @property
    def read_only(self) -> bool:
        """Whether writes are refused (the device then offers VIRTIO_BLK_F_RO)."""
        ...

    writeback: bool
    """Cache mode: False = writethrough (each write stable on return), True = writeback."""

    def read(self, sector: int, count: int) -> bytes:
        """The contents of `count` sectors from `sector` on."""
        ...

    def write(self, sector: int, data: bytes) -> None:
        """Store `data` (whole sectors) from `sector` on; stable on return if writethrough."""
        ...

    def flush(self) -> None:
        """Make every write that returned before this call stable."""
        ...

    def discard(self, sector: int, count: int) -> None:
        """Let `count` sectors from `sector` go; later reads of them return anything."""
        ...

    def write_zeroes(self, sector: int, count: int) -> None:
        """Set `count` sectors from `sector` on to zeros (a write, for stability purposes)."""
        ...


class MemoryDisk:
    """A disk in a `bytearray`, with the crash image kept alongside.

    `stable_image()` is what persistent storage would hold after a crash now: every
    write made in writethrough mode and every write flushed since. Volatile writes are
    tracked as dirty sector ranges and copied over on `flush()`.
    """

    __slots__ = ("_data", "_dirty", "_read_only", "_stable", "writeback")

    def __init__(self, capacity: int, *, read_only: bool = False, writeback: bool = False) -> None:
        self._data = bytearray(capacity * BLK_SECTOR_SIZE)
        self._stable = bytearray(len(self._data))
        self._dirty: set[tuple[int, int]] = set()
        self._read_only = read_only
        self.writeback = writeback

    @property
    def capacity(self) -> int:
        """Size in 512-byte sectors."""
        return len(self._data) // BLK_SECTOR_SIZE

    @property
    def read_only(self) -> bool:
        """Whether writes are refused."""
        return self._read_only

    def read(self, sector: int, count: int) -> bytes:
        """The contents of `count` sectors from `sector` on."""
        start = sector * BLK_SECTOR_SIZE
        return bytes(self._data[start : start + count * BLK_SECTOR_SIZE])

    def write(self, sector: int, data: bytes) -> None:
        """Store `data`; writethrough also updates the crash image at once."""
        start = sector * BLK_SECTOR_SIZE
        self._data[start : start + len(data)] = data
        if self.writeback:
            self._dirty.add((start, len(data)))
        else:
            self._stable[start : start + len(data)] = data

    def flush(self) -> None:
        """Copy every volatile range into the crash image."""
        for start, length in self._dirty:
            self._stable[start : start + length] = self._data[start : start + length]
        self._dirty.clear()

    def discard(self, sector: int, count: int) -> None:
        """Zero the sectors (one allowed outcome of a discard)."""
        self.write_zeroes(sector, count)

    def write_zeroes(self, sector: int, count: int) -> None:
        """Zero the sectors, as a write."""
        self.write(sector, bytes(count * BLK_SECTOR_SIZE))

    def resize(self, capacity: int) -> None:
        """Grow (with zeros) or shrink the disk to `capacity` sectors."""
        size = capacity * BLK_SECTOR_SIZE
        for image in (self._data, self._stable):
            del image[size:]
            image.extend(bytes(size - len(image)))
        self._dirty = {(a, min(n, size - a)) for a, n in self._dirty if a < size}

    def stable_image(self) -> bytes:
        """The bytes persistent storage holds now (what a crash would leave)."""
        return bytes(self._stable)

    def image(self) -> bytes:
        """The bytes a read sees now."""
        return bytes(self._data)
