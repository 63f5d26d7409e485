"""Benchmark: one buffer's round trip for each driver/device pairing, reference and Linux.

A round trip is what a request costs the ring: the driver adds one readable and one
writable 64-byte segment and decides on a kick; the device pops the chain, reads the
request, writes the answer and returns it, and decides on an interrupt; the driver
reclaims it. Linux's sides are C driven through ctypes, so the Linux pair measures the
real code plus the call overhead from Python. Run: `PYTHONPATH=.:tests python
tests/bench_peers.py [rounds]`; it prints a Markdown table for docs/performance.md.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from machines import reference_device, reference_driver
from peers.linux import linux_device, linux_driver

from impl.alloc import GuestAllocator
from impl.chain import Segment
from impl.layout import SplitLayout
from impl.memory import GuestMemory
from impl.spec import Feature, feature_mask

PAIRINGS: dict[str, tuple[Any, Any]] = {
    "reference driver, reference device": (reference_driver, reference_device),
    "Linux driver, reference device": (linux_driver, reference_device),
    "reference driver, Linux device (vringh)": (reference_driver, linux_device),
    "Linux driver, Linux device": (linux_driver, linux_device),
}
SIZE = 256
SEGMENT = 64


def round_trips(driver_factory: Any, device_factory: Any, rounds: int) -> float:
    """Seconds per round trip over `rounds` buffers, event indices and indirect on."""
    layout = SplitLayout.modern(SIZE, 0x1000)
    data = layout.end + 0x1000
    mem = GuestMemory(backing=bytearray(data + 0x10000))
    alloc = GuestAllocator(data, mem.size)
    features = feature_mask(Feature.EVENT_IDX, Feature.INDIRECT_DESC)
    driver = driver_factory(mem, layout, features, alloc, 0)
    device = device_factory(mem, layout, features, 0)
    out, room = Segment(data, SEGMENT), Segment(data + SEGMENT, SEGMENT)
    answer = b"\x5a" * SEGMENT
    begin = time.perf_counter()
    for token in range(rounds):
        driver.add_sgs([out], [room], token)
        driver.kick_prepare()
        chain = device.pop()
        chain.read_payload(mem)
        chain.write_payload(mem, answer)
        device.push_used(chain.head, SEGMENT)
        device.needs_notification()
        driver.get_buf()
    return (time.perf_counter() - begin) / rounds


def main() -> None:
    """Print one table row per pairing: microseconds per round trip, and round trips/s."""
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    print("| pairing | µs per round trip | round trips/s |")
    print("|---|---:|---:|")
    for name, (drv, dev) in PAIRINGS.items():
        best = min(round_trips(drv, dev, rounds) for _ in range(3))
        print(f"| {name} | {best * 1e6:.1f} | {1 / best:,.0f} |")


if __name__ == "__main__":
    main()
