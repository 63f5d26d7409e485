"""The device process of the kill test: a driver and a file-backed device, writing until killed.

Run as `python tests/blk_kill_child.py PATH MODE`. MODE `writethrough` (CONFIG_WCE
negotiated, writeback 0: every write is stable when acknowledged) prints `ack N` after
write N completes OK; MODE `writeback` writes in batches and prints `flushed N` once a
flush issued after writes 0..N completed has completed. Write N goes to sector N and
holds the bytes of `pattern(N)`. The parent kills this process with SIGKILL.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from blk_rig import blk_side

from backends.file_disk import FileDisk
from impl.blk_device import BlkDevice

SECTOR = 512
BATCH = 8


def pattern(n: int) -> bytes:
    """The sector write N stores: its number, repeated."""
    return (n.to_bytes(4, "little") * (SECTOR // 4))[:SECTOR]


def main(path: str, mode: str) -> None:
    disk = FileDisk(path)
    device = BlkDevice(disk, writeback=mode == "writeback")
    driver = blk_side(device, transport="mmio").driver
    assert driver.writeback == (mode == "writeback")
    for n in range(disk.capacity):
        driver.write(n, pattern(n))
        if mode == "writethrough":
            print(f"ack {n}", flush=True)
        elif n % BATCH == BATCH - 1:
            driver.flush()
            print(f"flushed {n}", flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
