"""A hostile device against our bus and driver, on virtio-mmio and the descriptor page.

Each device lies in one way (clears FEATURES_OK, offers no VERSION_1, reports a queue
of maximum size 0, never shows a queue ready, never finishes a reset, changes its
configuration during every read, raises interrupts with undefined bits, writes a used
ring that lies). The outcome is always a clear typed `DeviceError`: a failed probe
leaves the device registered but unbound with FAILED set, no ring left allocated and
the driver never called; a lie after DRIVER_OK is recorded and the queue stops, and a
remove still returns every token exactly once.
"""

from __future__ import annotations

from typing import Any

import pytest
from transport_rig import Platform, round_trip

from impl.bus import BusDevice
from impl.devpage_driver import DevPageTransport
from impl.errors import (
    BadInterruptAck,
    ConfigUnstable,
    DeviceError,
    FeaturesRefused,
    NoVersion1,
    QueueNotEnabled,
    QueueUnavailable,
    ResetIncomplete,
    UsedIndexJump,
)
from impl.layout import SplitLayout
from impl.mmio_driver import MmioTransport
from impl.spec import DeviceId, Feature, Status
from impl.split_driver import SplitDriver
from impl.stubs import EchoDevice, EchoDriver
from impl.transport import TransportAccessor

LIVE = Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK
KINDS = ("mmio", "devpage")


class Hostile:
    """A transport accessor that passes everything through except the lies it is told."""

    def __init__(self, inner: TransportAccessor, **lies: bool) -> None:
        self._inner = inner
        self.lies = lies
        self._generation = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def get_status(self) -> int:
        status = self._inner.get_status()
        if self.lies.get("clear_features_ok"):
            status &= ~int(Status.FEATURES_OK)
        if self.lies.get("never_reset") and status == 0:
            status = Status.ACKNOWLEDGE
        return status

    def set_status(self, value: int) -> None:
        if self.lies.get("clear_features_ok"):
            value &= ~int(Status.FEATURES_OK)  # the device drops the bit it refuses
        self._inner.set_status(value)

    def get_features(self) -> int:
        features = self._inner.get_features()
        if self.lies.get("no_version_1"):
            features &= ~(1 << Feature.VERSION_1)
        return features

    def queue_max(self, index: int) -> int:
        if self.lies.get("queue_max_zero") and index == 1:
            return 0
        return self._inner.queue_max(index)

    def setup_queue(self, index: int, layout: SplitLayout) -> bool:
        ready = self._inner.setup_queue(index, layout)
        return False if self.lies.get("never_ready") else ready

    def config_generation(self) -> int | None:
        if self.lies.get("config_always_moving"):
            self._generation += 1
            return self._generation
        return self._inner.config_generation()

    def read_interrupt_status(self) -> int:
        status = self._inner.read_interrupt_status()
        if self.lies.get("unknown_interrupt_bits"):
            status |= 0xF0
        return status


class Rig:
    """A net echo device on one transport, its real accessor wrapped in `Hostile`."""

    def __init__(self, kind: str, **lies: bool) -> None:
        self.platform = Platform()
        self.backend = EchoDevice(DeviceId.NET, queues=(8, 8))
        inner: TransportAccessor
        if kind == "mmio":
            self.core = self.platform.add_mmio(self.backend)
            inner = MmioTransport(self.platform.space, self.platform.windows[0])
        else:
            self.core = self.platform.add_page_device(self.backend)
            entry = self.platform.page_cores[0][0]
            inner = DevPageTransport(self.platform.mem, entry, self.platform.host.hypercall)
        self.hostile = Hostile(inner, **lies)
        self.driver = EchoDriver("net", DeviceId.NET, queue_count=2)
        self.platform.bus.register_driver(self.driver)
        self.device: BusDevice = self.platform.bus.register_virtio_device(
            self.hostile  # type: ignore[arg-type]
        )

    def assert_failed_cleanly(self, error: type[DeviceError]) -> None:
        assert isinstance(self.device.probe_error, error)
        assert self.device.driver is None and self.device in self.platform.bus.devices
        assert self.core.status & Status.FAILED
        assert not self.core.active
        assert self.platform.allocator.allocated == {}, "a ring leaked"
        assert not any(q.ready for q in self.core.queues)


@pytest.mark.spec("INIT-DRV-004", "INIT-DRV-005", "FEAT-DRV-004")
@pytest.mark.parametrize("kind", KINDS)
def test_a_device_clearing_features_ok_fails_the_probe_before_the_driver_runs(kind: str) -> None:
    rig = Rig(kind, clear_features_ok=True)
    rig.assert_failed_cleanly(FeaturesRefused)
    assert rig.driver.bound == [] and rig.driver.config_seen == {}


@pytest.mark.spec("FEAT-DEV-005", "FEAT-DRV-007")
@pytest.mark.parametrize("kind", KINDS)
def test_a_modern_device_without_version_1_fails_the_probe(kind: str) -> None:
    rig = Rig(kind, no_version_1=True)
    rig.assert_failed_cleanly(NoVersion1)
    assert not rig.core.status & Status.FEATURES_OK


@pytest.mark.parametrize("kind", KINDS)
def test_a_queue_of_maximum_size_zero_fails_the_probe_and_frees_the_first_ring(
    kind: str,
) -> None:
    rig = Rig(kind, queue_max_zero=True)
    rig.assert_failed_cleanly(QueueUnavailable)


@pytest.mark.spec("MMIO-DRV-011")
@pytest.mark.parametrize("kind", KINDS)
def test_a_queue_that_never_reads_ready_fails_the_probe(kind: str) -> None:
    rig = Rig(kind, never_ready=True)
    rig.assert_failed_cleanly(QueueNotEnabled)


@pytest.mark.spec("RESET-DRV-001")
@pytest.mark.parametrize("kind", KINDS)
def test_a_device_that_never_finishes_a_reset_fails_the_probe(kind: str) -> None:
    rig = Rig(kind, never_reset=True)
    assert isinstance(rig.device.probe_error, ResetIncomplete)
    assert rig.device.driver is None and rig.platform.allocator.allocated == {}
    assert rig.driver.bound == []


@pytest.mark.spec("CONFIG-DRV-001")
@pytest.mark.parametrize("kind", KINDS)
def test_config_changing_during_every_read_fails_the_probe_after_bounded_retries(
    kind: str,
) -> None:
    rig = Rig(kind, config_always_moving=True)
    rig.assert_failed_cleanly(ConfigUnstable)


@pytest.mark.spec("MMIO-DRV-012", "MMIO-DRV-013", "MMIO-DRV-021", "MMIO-DRV-023")
@pytest.mark.parametrize("kind", KINDS)
def test_undefined_interrupt_bits_are_ignored_and_never_acknowledged(kind: str) -> None:
    rig = Rig(kind, unknown_interrupt_bits=True)
    assert rig.device.driver is rig.driver and rig.core.status == LIVE
    round_trip(rig.platform, rig.device, 0, b"abc", "tok")
    assert rig.platform.irqs.deliver_all() == 1
    assert rig.driver.received == [("tok", 3)]
    assert rig.device.unknown_interrupt_bits == 0xF0
    assert not any(isinstance(v, BadInterruptAck) for v in rig.core.violations)
    assert rig.core.interrupt_status == 0
    assert rig.device.interrupt() is False  # only undefined bits left: nothing handled


@pytest.mark.parametrize("kind", KINDS)
def test_a_spurious_interrupt_is_harmless(kind: str) -> None:
    rig = Rig(kind)
    round_trip(rig.platform, rig.device, 0, b"abc", "tok")
    rig.core.interrupt_status = 0  # the interrupt was lost; the line fires with nothing set
    rig.platform.host.refresh()
    assert rig.device.interrupt() is False
    assert rig.driver.received == []
    rig.platform.irqs.deliver_all()
    assert rig.driver.received == []  # status 0 at delivery too: the handler does nothing
    queue = rig.device.queues[0]
    assert isinstance(queue, SplitDriver) and queue.more_used()


@pytest.mark.parametrize("kind", KINDS)
def test_a_lying_used_ring_breaks_the_queue_and_remove_returns_every_token_once(
    kind: str,
) -> None:
    rig = Rig(kind)
    for n in range(3):
        round_trip(rig.platform, rig.device, 0, b"x", n)
    queue = rig.device.queues[0]
    assert isinstance(queue, SplitDriver)
    rig.platform.mem.write_u16(queue.layout.used_idx, 50)  # far beyond what is outstanding
    rig.platform.irqs.deliver_all()
    assert rig.driver.received == []
    assert any(isinstance(e, UsedIndexJump) for e in rig.device.errors)
    assert queue.broken
    rig.platform.bus.unregister_driver(rig.driver)
    returned = sorted(rig.driver.detached + rig.device.detached)  # type: ignore[type-var]
    assert returned == [0, 1, 2]
    assert rig.core.status == 0 and rig.platform.allocator.allocated != {}
