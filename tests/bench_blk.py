"""Benchmark: sequential 4 KiB reads and writes through the virtio-blk driver and device.

Run `PYTHONPATH=. python tests/bench_blk.py [--ops N]`. For each backend (in-memory,
file) and queue depth (1, 32) it times N sequential 4 KiB writes and then N reads
through `BlkDriver` -> split ring -> `BlkDevice` -> disk, and the same N calls made
directly on the backend (`os.pread`/`os.pwrite` for the file, the `MemoryDisk`
methods for memory). It prints a Markdown table with IOPS, MiB/s and the ratio
direct/virtio (how many times slower the virtio path is). Queue depth 32 submits 32
requests under `BlkDriver.plugged()` and kicks once, so the device serves 32 per
notification. The memory rows run over the direct bus and over virtio-mmio (register
writes for each kick, the interrupt controller for each completion); the file rows
over the direct bus. Both backends run in writeback mode (no sync per write), so the
file path and the direct loop make the same system calls. Best of three runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from blk_rig import blk_side

from backends.file_disk import FileDisk
from impl.blk_device import BlkDevice
from impl.blk_driver import BlkDriver
from impl.disk import Disk, MemoryDisk

BLOCK = 4096
SECTORS = BLOCK // 512
RUNS = 3


def best(fn: Callable[[], None]) -> float:
    """Fastest of RUNS timings of `fn`, in seconds."""
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def virtio_run(driver: BlkDriver, ops: int, depth: int, write: bool) -> None:
    """`ops` sequential 4 KiB requests, `depth` at a time."""
    data = b"\xa5" * BLOCK
    for first in range(0, ops, depth):
        with driver.plugged():
            batch = [
                driver.submit_write(n * SECTORS, data) if write
                else driver.submit_read(n * SECTORS, SECTORS)
                for n in range(first, min(first + depth, ops))
            ]  # fmt: skip
        for op in batch:
            driver.wait(op)


def direct_run(disk: Disk, fd: int | None, ops: int, write: bool) -> None:
    """The same transfers straight on the backend."""
    data = b"\xa5" * BLOCK
    for n in range(ops):
        if fd is not None:
            if write:
                os.pwrite(fd, data, n * BLOCK)
            else:
                os.pread(fd, BLOCK, n * BLOCK)
        elif write:
            disk.write(n * SECTORS, data)
        else:
            disk.read(n * SECTORS, SECTORS)


def measure(name: str, disk: Disk, fd: int | None, ops: int, transport: str) -> list[str]:
    rows = []
    side = blk_side(BlkDevice(disk, writeback=True), transport=transport, mem_size=1 << 24)
    driver = side.driver
    for write in (True, False):
        kind = "write" if write else "read"
        direct = best(lambda w=write: direct_run(disk, fd, ops, w))  # type: ignore[misc]
        for depth in (1, 32):
            took = best(lambda d=depth, w=write: virtio_run(driver, ops, d, w))  # type: ignore[misc]
            iops = ops / took
            rows.append(
                f"| {transport} | {name} | {kind} | {depth} | {iops:,.0f} | "
                f"{iops * BLOCK / 2**20:.1f} | {ops / direct:,.0f} | {took / direct:.1f}x |"
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ops", type=int, default=4096)
    parser.add_argument("--transports", default="direct,mmio")
    args = parser.parse_args()
    ops = args.ops
    rows = []
    for transport in args.transports.split(","):
        rows += measure("memory", MemoryDisk(ops * SECTORS), None, ops, transport)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.img"
        path.write_bytes(bytes(ops * BLOCK))
        with FileDisk(path, writeback=True) as disk:
            fd = os.open(path, os.O_RDWR)
            try:
                rows += measure("file", disk, fd, ops, "direct")
            finally:
                os.close(fd)
    print(f"{ops} sequential 4 KiB requests per row, best of {RUNS}")
    print("| transport | backend | op | depth | virtio IOPS | virtio MiB/s | direct IOPS | cost |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
