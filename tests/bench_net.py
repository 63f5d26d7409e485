"""Benchmark: frames per second and MiB/s between two virtio-net drivers over a wire.

Run: `PYTHONPATH=.:tests python tests/bench_net.py [seconds-per-case] [transport ...]`
(transports: direct, mmio, mmio-legacy, page; default direct and mmio). For 64-byte
and 1500-byte frames, with and without VIRTIO_NET_F_MRG_RXBUF, guest A sends bursts
of frames to guest B, which polls them after each burst (NAPI-style); every frame is
checked to arrive. Prints one Markdown table row per case (wall-clock rates and, since the machine
is shared, frames per CPU second of this process), as docs/performance.md
records them.
"""

from __future__ import annotations

import sys
import time

from net_rig import MAC_A, MAC_B, frame, net_pair

from impl.net_driver import DRIVER_FEATURES
from impl.spec import NetFeature, feature_mask

BURST = 32
QUEUE_SIZE = 256
MIB = 1 << 20


def run_case(
    size: int, mrg: bool, seconds: float, transport: str = "direct"
) -> tuple[float, float, float]:
    """Frames/s and MiB/s (wall clock) and frames per CPU second, `size`-byte frames."""
    known = DRIVER_FEATURES if mrg else DRIVER_FEATURES & ~feature_mask(NetFeature.MRG_RXBUF)
    a, b, _ = net_pair(known=known, queue_size=QUEUE_SIZE, mem_size=16 << 20, transport=transport)
    data = frame(MAC_B, MAC_A, size)
    sent = 0
    start = time.perf_counter()
    cpu = time.process_time()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(BURST):
            a.driver.send(data)
        b.driver.poll()
        assert len(b.driver.frames) == BURST and b.driver.frames[-1] == data
        b.driver.frames.clear()
        sent += BURST
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    assert not b.device.stats.drops and not b.driver.errors
    return sent / elapsed, sent * size / elapsed / MIB, sent / cpu


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    transports = sys.argv[2:] or ["direct", "mmio"]
    print("| transport | frame | MRG_RXBUF | frames/s | MiB/s | frames per CPU second |")
    print("|---|---:|:---:|---:|---:|---:|")
    for transport in transports:
        for size in (64, 1500):
            for mrg in (False, True):
                fps, mibs, per_cpu = run_case(size, mrg, seconds, transport)
                flag = "on" if mrg else "off"
                rates = f"{fps:,.0f} | {mibs:.2f} | {per_cpu:,.0f}"
                print(f"| {transport} | {size} B | {flag} | {rates} |")


if __name__ == "__main__":
    main()
