"""A disk on a real file or block device, for the virtio-blk device.

Rules:
- The `Disk` contract of `impl/disk.py` (whole 512-byte sectors; the device has checked
  every range before calling), over `os.pread`/`os.pwrite`.
- Writethrough (`writeback` False): `os.fdatasync` after each write, so a write is
  stable when `write` returns (BLK-DEV-028). Flush: `os.fsync`.
- Operating-system errors propagate as `OSError`; the device turns them into
  VIRTIO_BLK_S_IOERR.
- This is I/O, so it lives here, outside the sans-IO `impl` package.

Spec: §5.2.5 (cache modes), §5.2.6.2 (stable writes).
"""

from __future__ import annotations

import os

from impl.spec import BLK_SECTOR_SIZE

_ZERO_CHUNK = 1 << 20
"""Zeros are written at most this many bytes at a time (bounded memory for huge ranges)."""


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
