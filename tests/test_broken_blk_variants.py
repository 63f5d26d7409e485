"""The virtio-blk disk machine catches real-looking bugs in the device, the disk and the driver.

Each variant is a small subclass with one bug; the machine (tests/blk_machine.py) must
find a failing program for it within a fixed-seed hunt, while the reference passes
the same hunt. No shrinking: the point is detection, not a readable counterexample.
The hunt runs on the direct bus (split rings) and on the descriptor page with packed
rings, so the packed variant of the machine has the same teeth.
"""

from __future__ import annotations

from typing import Any

import pytest
from blk_machine import BlkDiskMachine
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test
from support.verdict import fails

from impl.blk_device import BlkDevice
from impl.blk_driver import BlkDriver
from impl.blk_request import BlkRequest
from impl.chain import Chain
from impl.disk import MemoryDisk
from impl.spec import BlkReqType

HUNT = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)


HUNT_TRANSPORTS = ("direct", "page-packed")


def machine_fails(transport: str, **classes: Any) -> bool:
    """Run the machine with the given classes; True if Hypothesis found a failing program."""
    return fails(lambda: run_state_machine_as_test(
        lambda: BlkDiskMachine(transport, **classes), settings=HUNT
    ))


class FlushForgets(MemoryDisk):
    """A disk whose flush makes nothing stable."""

    def flush(self) -> None:
        self._dirty.clear()


class CacheAlways(BlkDevice):
    """A device that keeps a writeback cache even when the driver asked for writethrough."""

    def _apply_cache_mode(self) -> None:
        self.disk.writeback = True


class ReadsNextSector(BlkDevice):
    """A device whose reads start one sector late (when that stays on the disk)."""

    def _on_disk(self, request: BlkRequest, chain: Chain) -> bytes:
        count = request.in_len // 512
        if request.type is BlkReqType.IN and request.sector + 1 + count <= self.disk.capacity:
            return self.disk.read(request.sector + 1, count)
        return super()._on_disk(request, chain)


class DropsLastChunk(BlkDriver):
    """A driver that loses the last piece of a request it splits."""

    def _chunks(self, sector: int, count: int) -> list[tuple[int, int]]:
        chunks = super()._chunks(sector, count)
        return chunks[:-1] if len(chunks) > 1 else chunks


@pytest.mark.parametrize("transport", HUNT_TRANSPORTS)
def test_the_reference_passes_the_hunt(transport: str) -> None:
    assert not machine_fails(transport)


@pytest.mark.parametrize(
    "classes",
    [
        {"disk_class": FlushForgets},
        {"device_class": CacheAlways},
        {"device_class": ReadsNextSector},
        {"driver_class": DropsLastChunk},
    ],
    ids=["flush-forgets", "cache-always", "reads-next-sector", "drops-last-chunk"],
)
@pytest.mark.parametrize("transport", HUNT_TRANSPORTS)
def test_broken_variant_is_caught(classes: dict[str, type], transport: str) -> None:
    assert machine_fails(transport, **classes)
