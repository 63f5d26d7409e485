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
  so tests can check what a flush promises without killing anything. `FileDisk` is a
  real file or block device: `os.pread`/`os.pwrite`, `os.fdatasync` after each write in
  writethrough mode, `os.fsync` on flush. Operating-system errors propagate as
  `OSError`; the device turns them into VIRTIO_BLK_S_IOERR.
- Discard deallocates nothing here: it writes zeros, which a discard may do (BLK-DEV-023,
  and BLK-DRV-025 lets readers assume nothing about discarded sectors).

Spec: §5.2.4 (capacity), §5.2.5 (cache modes), §5.2.6.2 (stable writes, discard,
write zeroes).
"""

from __future__ import annotations

import os
from typing import Protocol

from .spec import BLK_SECTOR_SIZE

_ZERO_CHUNK = 1 << 20
"""Zeros are written at most this many bytes at a time (bounded memory for huge ranges)."""


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


class FileDisk:
    """A disk on a file or block device, through `os.pread`/`os.pwrite`.

    `capacity` defaults to the file's size in whole sectors; a larger value grows the
    file (a regular file only). Close it with `close()` or use it as a context manager.
    """

    __slots__ = ("_capacity", "_fd", "_read_only", "writeback")

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        capacity: int | None = None,
        read_only: bool = False,
        writeback: bool = False,
    ) -> None:
        flags = os.O_RDONLY if read_only else os.O_RDWR
        self._fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
        size = os.lseek(self._fd, 0, os.SEEK_END)
        if capacity is None:
            capacity = size // BLK_SECTOR_SIZE
        elif capacity * BLK_SECTOR_SIZE > size and not read_only:
            os.ftruncate(self._fd, capacity * BLK_SECTOR_SIZE)
        self._capacity = capacity
        self._read_only = read_only
        self.writeback = writeback

    @property
    def capacity(self) -> int:
        """Size in 512-byte sectors."""
        return self._capacity

    @property
    def read_only(self) -> bool:
        """Whether the file was opened read-only."""
        return self._read_only

    def read(self, sector: int, count: int) -> bytes:
        """`os.pread` until the range is read; bytes past the file's end read as zeros."""
        offset, length = sector * BLK_SECTOR_SIZE, count * BLK_SECTOR_SIZE
        parts: list[bytes] = []
        done = 0
        while done < length:
            piece = os.pread(self._fd, length - done, offset + done)
            if not piece:
                parts.append(bytes(length - done))
                break
            parts.append(piece)
            done += len(piece)
        return b"".join(parts)

    def write(self, sector: int, data: bytes) -> None:
        """`os.pwrite` until all is written; `os.fdatasync` before returning if writethrough."""
        offset = sector * BLK_SECTOR_SIZE
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, offset)
            view, offset = view[written:], offset + written
        if not self.writeback:
            os.fdatasync(self._fd)

    def flush(self) -> None:
        """`os.fsync`: everything written before is on stable storage when it returns."""
        os.fsync(self._fd)

    def discard(self, sector: int, count: int) -> None:
        """Write zeros (one allowed outcome of a discard)."""
        self.write_zeroes(sector, count)

    def write_zeroes(self, sector: int, count: int) -> None:
        """Write zeros in bounded chunks, then sync once if writethrough."""
        writeback, self.writeback = self.writeback, True
        try:
            remaining, at = count * BLK_SECTOR_SIZE, sector
            while remaining:
                chunk = min(remaining, _ZERO_CHUNK)
                self.write(at, bytes(chunk))
                at, remaining = at + chunk // BLK_SECTOR_SIZE, remaining - chunk
        finally:
            self.writeback = writeback
        if not writeback:
            os.fdatasync(self._fd)

    def close(self) -> None:
        """Close the file descriptor."""
        os.close(self._fd)

    def __enter__(self) -> FileDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
