"""Durability of acknowledged writes: kill the device process, reopen the file, find them all.

The device runs in a subprocess over a real file (`tests/blk_kill_child.py`). In
writethrough mode every write is stable once acknowledged (§5.2.6.2 case 2,
BLK-DEV-028); in writeback mode every write acknowledged before a completed FLUSH is
(case 3). The parent waits for some acknowledgements, sends SIGKILL, reopens the file
and checks each acknowledged write is there. Because SIGKILL leaves the page cache
intact, the backend tests below also check that a writethrough write is synced
(`os.fdatasync`) before its completion reaches the driver, and that FLUSH fsyncs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from blk_kill_child import SECTOR, pattern
from blk_rig import blk_side

from backends.file_disk import FileDisk
from impl.blk_device import BlkDevice
from impl.blk_driver import BlkDriver

CHILD = Path(__file__).parent / "blk_kill_child.py"
CAPACITY = 4096
WANTED = 200


def run_and_kill(path: Path, mode: str) -> list[str]:
    """Start the device process, read acknowledgements until WANTED, then SIGKILL it."""
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(path), mode],
        stdout=subprocess.PIPE, text=True, cwd=CHILD.parent.parent,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line.strip())
            if len(lines) >= WANTED or line.startswith("done"):
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the device process was not killed mid-run"
    return lines


def sector(path: Path, n: int) -> bytes:
    with path.open("rb") as f:
        f.seek(n * SECTOR)
        return f.read(SECTOR)


@pytest.fixture
def disk_file(tmp_path: Path) -> Path:
    path = tmp_path / "disk.img"
    path.write_bytes(bytes(CAPACITY * SECTOR))
    return path


@pytest.mark.spec("BLK-DEV-028")
def test_acknowledged_writethrough_writes_survive_sigkill(disk_file: Path) -> None:
    lines = run_and_kill(disk_file, "writethrough")
    acked = [int(line.split()[1]) for line in lines if line.startswith("ack")]
    assert len(acked) == WANTED
    missing = [n for n in acked if sector(disk_file, n) != pattern(n)]
    assert not missing, f"acknowledged writes not in the file: {missing[:10]}"


@pytest.mark.spec("BLK-DEV-028")
def test_flushed_writeback_writes_survive_sigkill(disk_file: Path) -> None:
    lines = run_and_kill(disk_file, "writeback")
    flushed = [int(line.split()[1]) for line in lines if line.startswith("flushed")]
    assert flushed, "no flush completed before the kill"
    missing = [n for n in range(flushed[-1] + 1) if sector(disk_file, n) != pattern(n)]
    assert not missing, f"writes covered by a completed flush are not in the file: {missing[:10]}"


# --- the backend syncs before the completion is reported -------------------------------
@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every fdatasync/fsync call."""
    calls: list[str] = []
    real_fdatasync, real_fsync = os.fdatasync, os.fsync

    def fdatasync(fd: int) -> None:
        calls.append("fdatasync")
        real_fdatasync(fd)

    def fsync(fd: int) -> None:
        calls.append("fsync")
        real_fsync(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    monkeypatch.setattr(os, "fsync", fsync)
    return calls


def bind(path: Path, writeback: bool) -> tuple[BlkDriver, BlkDevice, FileDisk]:
    disk = FileDisk(path)
    device = BlkDevice(disk, writeback=writeback, defer=True)
    return blk_side(device).driver, device, disk


@pytest.mark.spec("BLK-DEV-028")
def test_writethrough_write_is_synced_before_it_completes(
    disk_file: Path, synced: list[str]
) -> None:
    driver, device, disk = bind(disk_file, writeback=False)
    op = driver.submit_write(3, pattern(3))
    (head,) = device.held(0)
    assert not synced and not op.done
    device.serve(0, head)
    assert op.done and synced == ["fdatasync"], "the write completed before it was synced"
    op.result()
    disk.close()


@pytest.mark.spec("BLK-DEV-028", "BLK-DRV-001")
def test_writeback_write_waits_for_flush(disk_file: Path, synced: list[str]) -> None:
    driver, device, disk = bind(disk_file, writeback=True)
    assert driver.writeback
    write = driver.submit_write(3, pattern(3))
    device.serve(0, next(iter(device.held(0))))
    assert write.done and synced == []
    flush = driver.submit_flush()
    device.serve(0, next(iter(device.held(0))))
    assert flush.done and synced == ["fsync"]
    flush.result()
    disk.close()


@pytest.mark.spec("BLK-DRV-022")
def test_switching_to_writethrough_syncs_later_writes(disk_file: Path, synced: list[str]) -> None:
    driver, device, disk = bind(disk_file, writeback=True)
    driver.set_writeback(False)
    assert not driver.writeback and not disk.writeback
    driver.submit_write(5, pattern(5))
    device.serve(0, next(iter(device.held(0))))
    assert synced == ["fdatasync"]
    disk.close()


def test_file_disk_reads_past_the_end_as_zeros(tmp_path: Path) -> None:
    path = tmp_path / "short.img"
    path.write_bytes(b"\x01" * SECTOR)
    with FileDisk(path, capacity=1, read_only=True) as disk:
        assert disk.read(0, 1) == b"\x01" * SECTOR
    with FileDisk(path, capacity=4) as disk:
        assert disk.capacity == 4
        assert disk.read(1, 3) == bytes(3 * SECTOR)
        disk.write_zeroes(0, 1)
        assert disk.read(0, 1) == bytes(SECTOR)
