"""Ring benchmark: the reference round trip against a bare loop, and machine steps/s.

Not collected by pytest (its name does not start with test_). Run it from the repository
root on a quiet machine:

    PYTHONPATH=.:tests python tests/bench_ring.py [--seconds 2] [--rounds 5]

It measures, in one run:
(a) reference round trips per second at queue size 256: `add_sgs` of one buffer of two
    segments (one device-readable, one device-writable), `pop`, `push_used`, `get_buf`;
(b) the same round trip written bare: the same bytes read and written with `struct`,
    with no checks, no objects and no free-list records beyond one list; and the ratio
    a / b (the target is at least 25 %);
(c) steps per second of the refinement state machine (tests/machines.py), counted as
    invariant checks (one after the setup and one after every rule);
(d) the round trip of (a) for each pairing of the reference and Linux's ring code
    (tests/bench_peers.py; skipped with VIRTIO_ORACLE_NO_PEERS=1).
Figures go to docs/performance.md under "## Split ring". The packed ring (§2.8) is measured
the same ways (a)-(c) beside it (same buffer, same size, `PackedDriver`/`PackedDevice`, a
bare packed loop, `PackedQueueMachine`); its figures go under "## Packed ring".
"""

from __future__ import annotations

import argparse
import os
import platform
import struct
import sys
import time
from collections.abc import Callable

from bench_peers import pairing_loops
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import invariant, run_state_machine_as_test
from machines import SplitQueueMachine
from packed_machine import PackedQueueMachine
from peers.build import peers_disabled

from impl.chain import Segment
from impl.layout import SplitLayout
from impl.memory import GuestMemory
from impl.packed_device import PackedDevice
from impl.packed_driver import PackedDriver
from impl.packed_layout import PackedLayout
from impl.split_device import SplitDevice
from impl.split_driver import SplitDriver

QUEUE_SIZE = 256
SEG_LEN = 64


def reference_loop(iterations: int) -> None:
    """(a) The reference driver and device round-tripping one two-segment buffer."""
    layout = SplitLayout.modern(QUEUE_SIZE)
    data = layout.end + 64
    mem = GuestMemory(data + 2 * SEG_LEN)
    driver = SplitDriver(mem, layout)
    device = SplitDevice(mem, layout)
    out, in_ = [Segment(data, SEG_LEN)], [Segment(data + SEG_LEN, SEG_LEN)]
    for i in range(iterations):
        head = driver.add_sgs(out, in_, i)
        chain = device.pop()
        assert chain is not None
        device.push_used(head, SEG_LEN)
        got = driver.get_buf()
        assert got is not None


def bare_loop(iterations: int) -> None:
    """(b) The same bytes moved with struct, no checks: the floor of a Python ring."""
    layout = SplitLayout.modern(QUEUE_SIZE)
    desc, avail, used, size = layout.desc, layout.avail, layout.used, QUEUE_SIZE
    data = layout.end + 64
    buf = bytearray(data + 2 * SEG_LEN)
    pack_desc, unpack_desc = struct.Struct("<QIHH").pack_into, struct.Struct("<QIHH").unpack_from
    pack16, unpack16 = struct.Struct("<H").pack_into, struct.Struct("<H").unpack_from
    pack_elem, unpack_elem = struct.Struct("<II").pack_into, struct.Struct("<II").unpack_from
    free = [*range(1, size), 0]
    free_head, avail_idx, last_used, next_avail, next_used = 0, 0, 0, 0, 0
    tokens: list[object] = [None] * size
    for i in range(iterations):
        # driver: two descriptors, ring entry, avail.idx
        head = free_head
        second = free[head]
        pack_desc(buf, desc + 16 * head, data, SEG_LEN, 1, second)
        pack_desc(buf, desc + 16 * second, data + SEG_LEN, SEG_LEN, 2, 0)
        free_head = free[second]
        tokens[head] = i
        pack16(buf, avail + 4 + 2 * (avail_idx & (size - 1)), head)
        avail_idx = (avail_idx + 1) & 0xFFFF
        pack16(buf, avail + 2, avail_idx)
        # device: pop (read idx, entry, walk) then push_used
        if unpack16(buf, avail + 2)[0] != next_avail:
            got = unpack16(buf, avail + 4 + 2 * (next_avail & (size - 1)))[0]
            next_avail = (next_avail + 1) & 0xFFFF
            index, segments = got, []
            while True:
                addr, length, flags, nxt = unpack_desc(buf, desc + 16 * index)
                segments.append((addr, length, flags))
                if not flags & 1:
                    break
                index = nxt
            pack_elem(buf, used + 4 + 8 * (next_used & (size - 1)), got, SEG_LEN)
            next_used = (next_used + 1) & 0xFFFF
            pack16(buf, used + 2, next_used)
        # driver: get_buf
        if unpack16(buf, used + 2)[0] != last_used:
            ident, _written = unpack_elem(buf, used + 4 + 8 * (last_used & (size - 1)))
            last_used = (last_used + 1) & 0xFFFF
            tokens[ident] = None
            free[free[ident]] = free_head
            free_head = ident


def packed_reference_loop(iterations: int) -> None:
    """(a) for the packed ring: the same buffer through `PackedDriver` and `PackedDevice`."""
    layout = PackedLayout.modern(QUEUE_SIZE)
    data = layout.end + 64
    mem = GuestMemory(data + 2 * SEG_LEN)
    driver = PackedDriver(mem, layout)
    device = PackedDevice(mem, layout)
    out, in_ = [Segment(data, SEG_LEN)], [Segment(data + SEG_LEN, SEG_LEN)]
    for i in range(iterations):
        ident = driver.add_sgs(out, in_, i)
        chain = device.pop()
        assert chain is not None
        device.push_used(ident, SEG_LEN)
        got = driver.get_buf()
        assert got is not None


def packed_bare_loop(iterations: int) -> None:
    """(b) for the packed ring: the same bytes moved with struct, no checks."""
    layout = PackedLayout.modern(QUEUE_SIZE)
    desc, size = layout.desc, QUEUE_SIZE
    data = layout.end + 64
    buf = bytearray(data + 2 * SEG_LEN)
    pack_body, unpack_desc = struct.Struct("<QIH").pack_into, struct.Struct("<QIHH").unpack_from
    pack16, unpack16 = struct.Struct("<H").pack_into, struct.Struct("<H").unpack_from
    pack32 = struct.Struct("<I").pack_into
    avail_flag, used_flag = 1 << 7, 1 << 15
    free = list(range(size))
    descs = [0] * size
    next_avail = next_dev = next_used = last_used = 0
    drv_wrap = dev_wrap = used_wrap = last_wrap = 1
    for _ in range(iterations):
        # driver: second descriptor whole, head body, then head flags
        ident = free.pop()
        first, second = next_avail, next_avail + 1 if next_avail + 1 < size else 0
        wrap2 = drv_wrap if second else drv_wrap ^ 1
        bits2 = avail_flag if wrap2 else used_flag
        pack_body(buf, desc + 16 * second, data + SEG_LEN, SEG_LEN, ident)
        pack16(buf, desc + 16 * second + 14, 2 | bits2)
        pack_body(buf, desc + 16 * first, data, SEG_LEN, ident)
        pack16(buf, desc + 16 * first + 14, 1 | (avail_flag if drv_wrap else used_flag))
        descs[ident] = 2
        next_avail += 2
        if next_avail >= size:
            next_avail -= size
            drv_wrap ^= 1
        # device: read the list by flags, then write one used descriptor
        flags = unpack16(buf, desc + 16 * next_dev + 14)[0]
        if bool(flags & avail_flag) == dev_wrap and bool(flags & used_flag) != dev_wrap:
            pos, count = next_dev, 0
            while True:
                _addr, _length, got, flags = unpack_desc(buf, desc + 16 * pos)
                count += 1
                pos = pos + 1 if pos + 1 < size else 0
                if not flags & 1:
                    break
            next_dev += count
            if next_dev >= size:
                next_dev -= size
                dev_wrap ^= 1
            pack16(buf, desc + 16 * next_used + 12, got)
            pack32(buf, desc + 16 * next_used + 8, SEG_LEN)
            pack16(buf, desc + 16 * next_used + 14,
                   2 | ((avail_flag | used_flag) if used_wrap else 0))
            next_used += count
            if next_used >= size:
                next_used -= size
                used_wrap ^= 1
        # driver: get_buf
        flags = unpack16(buf, desc + 16 * last_used + 14)[0]
        if bool(flags & avail_flag) == last_wrap and bool(flags & used_flag) == last_wrap:
            got = unpack16(buf, desc + 16 * last_used + 12)[0]
            last_used += descs[got]
            if last_used >= size:
                last_used -= size
                last_wrap ^= 1
            free.append(got)
    assert len(free) == size, "every buffer came back (the bare loop is a real ring)"


class CountingMachine(SplitQueueMachine):
    """The refinement machine, counting its steps in a class attribute."""

    steps = 0

    @invariant()
    def count(self) -> None:
        """One more step (invariants run after setup and after every rule)."""
        CountingMachine.steps += 1


class CountingPackedMachine(PackedQueueMachine):
    """The packed refinement machine, counting its steps in `CountingMachine.steps`."""

    @invariant()
    def count(self) -> None:
        """One more step (invariants run after setup and after every rule)."""
        CountingMachine.steps += 1


def machine_steps(examples: int, machine: type = CountingMachine) -> tuple[int, float]:
    """(c) Run the machine for `examples` programs; return (steps, seconds)."""
    run_settings = settings(
        max_examples=examples, stateful_step_count=60, deadline=None, database=None,
        derandomize=True, phases=[Phase.generate], suppress_health_check=list(HealthCheck),
    )
    CountingMachine.steps = 0
    start = time.process_time()
    run_state_machine_as_test(machine, settings=run_settings)
    return CountingMachine.steps, time.process_time() - start


def calibrate(loop: Callable[[int], None], seconds: float) -> int:
    """Iterations of `loop` that take about `seconds`."""
    iterations = 1000
    while True:
        start = time.process_time()
        loop(iterations)
        elapsed = time.process_time() - start
        if elapsed >= seconds / 4:
            return max(int(iterations * seconds / elapsed), 1)
        iterations *= 4


def best_rates(loops: list[Callable[[int], None]], seconds: float, rounds: int) -> list[float]:
    """Best iterations per second of each loop, the loops taking turns `rounds` times.

    Taking turns spreads the load of other processes over all loops alike, and the
    best of several runs is the one least disturbed by them.
    """
    sizes = [calibrate(loop, seconds) for loop in loops]
    best = [0.0] * len(loops)
    for _ in range(rounds):
        for i, (loop, iterations) in enumerate(zip(loops, sizes, strict=True)):
            start = time.process_time()
            loop(iterations)
            best[i] = max(best[i], iterations / (time.process_time() - start))
    return best


def machine_description() -> str:
    """nproc, CPU model, Python version and the load average now."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"nproc {os.cpu_count()}, {model}, Python {platform.python_version()} "
            f"({platform.python_implementation()}), load average {load}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--machine-examples", type=int, default=100)
    parser.add_argument("--ring", choices=("split", "packed", "both"), default="both")
    args = parser.parse_args(argv)
    print(machine_description())
    if args.ring in ("split", "both"):
        print("--- split ring")
        reference, bare = best_rates([reference_loop, bare_loop], args.seconds, args.rounds)
        print(f"(a) reference round trips/s (size {QUEUE_SIZE}): {reference:,.0f}")
        print(f"(b) bare struct round trips/s:                {bare:,.0f}")
        print(f"    ratio a/b: {reference / bare:.1%} (target >= 25 %)")
        steps, elapsed = machine_steps(args.machine_examples)
        print(f"(c) state-machine steps/s: {steps / elapsed:,.0f} "
              f"({steps} steps in {elapsed:.1f} s)")
        if not peers_disabled():
            pairings = pairing_loops()
            rates = best_rates(list(pairings.values()), args.seconds, args.rounds)
            for name, pairing_rate in zip(pairings, rates, strict=True):
                print(f"(d) {name}: {pairing_rate:,.0f} round trips/s")
    if args.ring in ("packed", "both"):
        print("--- packed ring")
        loops = [packed_reference_loop, packed_bare_loop]
        reference, bare = best_rates(loops, args.seconds, args.rounds)
        print(f"(a) reference round trips/s (size {QUEUE_SIZE}): {reference:,.0f}")
        print(f"(b) bare struct round trips/s:                {bare:,.0f}")
        print(f"    ratio a/b: {reference / bare:.1%}")
        steps, elapsed = machine_steps(args.machine_examples, CountingPackedMachine)
        print(f"(c) state-machine steps/s: {steps / elapsed:,.0f} "
              f"({steps} steps in {elapsed:.1f} s)")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
