"""Benchmark loops for the four driver/device pairings, reference and Linux (tests/peers).

Each loop is the round trip of tests/bench_ring.py's (a): `add_sgs` of one buffer of
one readable and one writable 64-byte segment, `pop`, `push_used`, `get_buf`, at queue
size 256, here with any driver and device factory. Linux's sides are C called through
ctypes, so the Linux pair measures the real ring code plus the cost of driving it from
Python (the adapters build a `Chain` per pop, as the reference does). bench_ring.py
prints these as (d); run alone: `PYTHONPATH=.:tests python tests/bench_peers.py`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from machines import reference_device, reference_driver
from peers.linux import LinuxDevice, LinuxDriver, linux_device, linux_driver, native_round_trips

from impl.alloc import GuestAllocator
from impl.chain import Segment
from impl.layout import SplitLayout
from impl.memory import GuestMemory

PAIRINGS: dict[str, tuple[Any, Any]] = {
    "reference driver, reference device": (reference_driver, reference_device),
    "Linux driver, reference device": (linux_driver, reference_device),
    "reference driver, Linux device (vringh)": (reference_driver, linux_device),
    "Linux driver, Linux device": (linux_driver, linux_device),
}
QUEUE_SIZE = 256
SEG_LEN = 64


def pairing_loop(driver_factory: Any, device_factory: Any) -> Callable[[int], None]:
    """A loop of `iterations` round trips through a fresh queue of the given pair."""

    def loop(iterations: int) -> None:
        layout = SplitLayout.modern(QUEUE_SIZE)
        data = layout.end + 64
        mem = GuestMemory(data + 2 * SEG_LEN)
        driver = driver_factory(mem, layout, 0, GuestAllocator(data, data), 0)
        device = device_factory(mem, layout, 0, 0)
        out, in_ = [Segment(data, SEG_LEN)], [Segment(data + SEG_LEN, SEG_LEN)]
        for i in range(iterations):
            head = driver.add_sgs(out, in_, i)
            chain = device.pop()
            assert chain is not None
            device.push_used(head, SEG_LEN)
            got = driver.get_buf()
            assert got is not None

    return loop


def native_loop(iterations: int) -> None:
    """Linux's driver and device with the whole loop in C: the real thing's own cost."""
    layout = SplitLayout.modern(QUEUE_SIZE)
    data = layout.end + 64
    mem = GuestMemory(data + 2 * SEG_LEN)
    driver = LinuxDriver(mem, layout)
    device = LinuxDevice(mem, layout)
    native_round_trips(driver, device, Segment(data, SEG_LEN), iterations)


def pairing_loops() -> dict[str, Callable[[int], None]]:
    """One round-trip loop per pairing, and Linux's pair looping in C."""
    loops = {name: pairing_loop(*factories) for name, factories in PAIRINGS.items()}
    loops["Linux driver, Linux device, loop in C"] = native_loop
    return loops


def main(argv: list[str]) -> int:
    """Print round trips per second for each pairing (best of three)."""
    iterations = int(argv[0]) if argv else 20000
    for name, loop in pairing_loops().items():
        best = 0.0
        for _ in range(3):
            start = time.perf_counter()
            loop(iterations)
            best = max(best, iterations / (time.perf_counter() - start))
        print(f"{name}: {best:,.0f} round trips/s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
