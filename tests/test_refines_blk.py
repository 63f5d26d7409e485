"""The virtio-blk driver and device refine the disk model (tests/blk_machine.py).

Random mixes of reads, writes, flushes, discards, write-zeroes, GET_ID and
out-of-range requests, many in flight on small rings, served in an order the test
picks; after every step the driver's answers, the disk and its crash image agree with
`model.disk.DiskModel`. Run over the direct bus and both transports (virtio-mmio and the
descriptor page) with split rings, and over virtio-mmio version 2 and the descriptor page
with packed rings ("mmio-packed", "page-packed"; queue sizes there include odd ones).
"""

from __future__ import annotations

import pytest
from blk_machine import BlkDiskMachine
from blk_rig import PACKED_TRANSPORTS, TRANSPORTS
from hypothesis.stateful import run_state_machine_as_test

REFINEMENT_IDS = (
    "BLK-DRV-012", "BLK-DRV-013", "BLK-DRV-014", "BLK-DRV-015", "BLK-DRV-016",
    "BLK-DRV-017", "BLK-DRV-018", "BLK-DRV-019", "BLK-DRV-021", "BLK-DRV-022",
    "BLK-DRV-024", "BLK-DRV-011", "BLK-DEV-018", "BLK-DEV-019", "BLK-DEV-025", "BLK-DEV-028",
)


@pytest.mark.spec(*REFINEMENT_IDS)
@pytest.mark.parametrize("transport", TRANSPORTS + PACKED_TRANSPORTS)
def test_blk_driver_and_device_refine_the_disk_model(transport: str) -> None:
    run_state_machine_as_test(lambda: BlkDiskMachine(transport))
