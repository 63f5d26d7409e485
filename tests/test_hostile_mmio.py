"""A hostile driver against our virtio-mmio device: every case has a defined outcome.

Outcomes (docs/transports.md, "Hostile driver"): *ignored* (a read returns 0, a write
has no effect), *FEATURES_OK refused*, or *DEVICE_NEEDS_RESET* with a configuration
change interrupt when DRIVER_OK is set. Each case checks its outcome, that a typed
`DriverError` was recorded, that nothing escaped the register access, and that a reset
followed by the ordinary probe brings the device back with a buffer round-tripping.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from transport_rig import Platform, round_trip

from impl.device_core import DeviceCore
from impl.errors import (
    AvailIndexJump,
    BadInterruptAck,
    BadRegisterAccess,
    DriverError,
    FeaturesFrozen,
    FeaturesNotOffered,
    IllegalStatusWrite,
    NotifyNotLive,
    QueueBusy,
    QueueConfigInvalid,
)
from impl.layout import SplitLayout
from impl.mmio import MmioDevice
from impl.mmio_driver import MmioTransport, scan_mmio
from impl.spec import (
    MMIO_CONFIG_OFFSET,
    MMIO_MAGIC,
    DeviceId,
    Feature,
    InterruptBit,
    MmioReg,
    Status,
    feature_mask,
)
from impl.stubs import MODERN_FEATURES, EchoDevice, EchoDriver

LIVE = Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK
LEGACY_LIVE = Status.ACKNOWLEDGE | Status.DRIVER | Status.DRIVER_OK
RING = 0x40000


class Rig:
    """One modern (or legacy) echo device behind a window, and raw register access."""

    def __init__(self, *, legacy: bool = False) -> None:
        self.platform = Platform()
        self.backend = EchoDevice(DeviceId.BLOCK, queues=(8,))
        self.core: DeviceCore = self.platform.add_mmio(self.backend, legacy=legacy)
        self.legacy = legacy
        self.window = self.platform.windows[0]
        device = self.platform.space.device_at(self.window.base)
        assert device is not None
        self.device: MmioDevice = device
        self.transport = MmioTransport(self.platform.space, self.window)

    def read(self, offset: int, width: int = 4) -> int:
        return self.platform.space.read(self.window.base + offset, width)

    def write(self, offset: int, value: int, width: int = 4) -> None:
        self.platform.space.write(self.window.base + offset, width, value)

    def status(self, *bits: Status) -> None:
        value = 0
        for bit in bits:
            value |= bit
        self.write(MmioReg.STATUS, value)

    def negotiate(self, features: int = feature_mask(Feature.VERSION_1)) -> None:
        self.status(Status.ACKNOWLEDGE)
        self.status(Status.ACKNOWLEDGE, Status.DRIVER)
        self.transport.set_features(features)
        self.status(Status.ACKNOWLEDGE, Status.DRIVER, Status.FEATURES_OK)

    def enable_queue(self) -> SplitLayout:
        layout = SplitLayout.modern(8, RING)
        assert self.transport.setup_queue(0, layout)
        return layout

    def live(self) -> SplitLayout:
        self.negotiate()
        layout = self.enable_queue()
        self.status(*LIVE)
        assert self.core.active
        return layout

    def recorded(self, kind: type[DriverError]) -> bool:
        return any(isinstance(v, kind) for v in self.core.violations)

    def assert_recovers(self) -> None:
        """A reset, then the ordinary probe, then a buffer round trip."""
        driver = EchoDriver("blk", DeviceId.BLOCK, queue_count=1)
        self.platform.bus.register_driver(driver)
        scan = scan_mmio(self.platform.space, self.platform.windows, self.platform.bus)
        (device,) = scan.registered
        assert device.driver is driver
        assert self.core.status == (LEGACY_LIVE if self.legacy else LIVE)
        round_trip(self.platform, device, 0, b"again", "t")
        self.platform.irqs.deliver_all()
        assert driver.received == [("t", 5)]
        assert all(isinstance(v, DriverError) for v in self.core.violations)


# --- register access rules (§4.2.2) ------------------------------------------------------
@pytest.mark.spec("MMIO-DRV-002")
@pytest.mark.parametrize("width", [1, 2, 8])
def test_control_register_access_of_the_wrong_width_is_ignored(width: int) -> None:
    rig = Rig()
    assert rig.read(MmioReg.MAGIC_VALUE, width) == 0
    rig.write(MmioReg.STATUS, Status.ACKNOWLEDGE, width)
    assert rig.core.status == 0 and rig.recorded(BadRegisterAccess)
    rig.assert_recovers()


@pytest.mark.spec("MMIO-DRV-002")
def test_misaligned_register_access_is_ignored() -> None:
    rig = Rig()
    assert rig.read(MmioReg.MAGIC_VALUE + 2) == 0
    rig.write(MmioReg.STATUS + 1, Status.ACKNOWLEDGE)
    assert rig.core.status == 0 and rig.recorded(BadRegisterAccess)
    rig.assert_recovers()


@pytest.mark.spec("MMIO-DRV-001")
@pytest.mark.parametrize("offset", [0x018, 0x048, 0x0C0, 0x0F8, MmioReg.GUEST_PAGE_SIZE,
                                    MmioReg.QUEUE_PFN, MmioReg.QUEUE_ALIGN])
def test_undefined_offsets_read_zero_and_ignore_writes(offset: int) -> None:
    rig = Rig()
    rig.write(offset, 0xFFFFFFFF)
    assert rig.read(offset) == 0
    assert rig.recorded(BadRegisterAccess)
    rig.assert_recovers()


@pytest.mark.spec("MMIO-DRV-001")
@pytest.mark.parametrize("offset", [MmioReg.QUEUE_READY, MmioReg.QUEUE_DESC_LOW,
                                    MmioReg.CONFIG_GENERATION])
def test_modern_only_registers_are_undefined_on_a_legacy_device(offset: int) -> None:
    rig = Rig(legacy=True)
    rig.write(offset, 1)
    assert rig.read(offset) == 0 and rig.recorded(BadRegisterAccess)
    rig.assert_recovers()


@pytest.mark.spec("MMIO-DRV-001", "MMIO-DEV-001", "MMIO-DEV-002")
@pytest.mark.parametrize("offset", [MmioReg.MAGIC_VALUE, MmioReg.VERSION, MmioReg.DEVICE_ID,
                                    MmioReg.VENDOR_ID, MmioReg.DEVICE_FEATURES,
                                    MmioReg.QUEUE_NUM_MAX, MmioReg.INTERRUPT_STATUS,
                                    MmioReg.CONFIG_GENERATION])
def test_writes_to_read_only_registers_are_ignored(offset: int) -> None:
    rig = Rig()
    before = rig.read(offset)
    rig.write(offset, 0xDEADBEEF)
    assert rig.read(offset) == before and rig.recorded(BadRegisterAccess)
    assert rig.read(MmioReg.MAGIC_VALUE) == MMIO_MAGIC and rig.read(MmioReg.VERSION) == 2
    rig.assert_recovers()


@pytest.mark.spec("MMIO-DRV-001")
@pytest.mark.parametrize("offset", [MmioReg.QUEUE_NOTIFY, MmioReg.INTERRUPT_ACK,
                                    MmioReg.DRIVER_FEATURES, MmioReg.QUEUE_SEL,
                                    MmioReg.QUEUE_DESC_HIGH])
def test_reads_of_write_only_registers_return_zero(offset: int) -> None:
    rig = Rig()
    assert rig.read(offset) == 0 and rig.recorded(BadRegisterAccess)


@pytest.mark.spec("MMIO-DRV-003")
@pytest.mark.parametrize(("offset", "width"), [(0, 8), (1, 2), (2, 4), (3, 4), (0x100, 4)])
def test_config_accesses_of_bad_width_alignment_or_range_are_ignored(
    offset: int, width: int
) -> None:
    rig = Rig()
    assert rig.device.read(MMIO_CONFIG_OFFSET + offset, width) == 0
    rig.device.write(MMIO_CONFIG_OFFSET + offset, width, 0xFF)
    assert rig.recorded(BadRegisterAccess)
    assert rig.read(MMIO_CONFIG_OFFSET, 4) == 0x04030201


# --- queue setup (§4.2.2, §4.2.3.2) ---------------------------------------------------------
def _program(rig: Rig, size: int, desc: int, driver: int, device: int) -> None:
    rig.write(MmioReg.QUEUE_SEL, 0)
    rig.write(MmioReg.QUEUE_NUM, size)
    for low, addr in ((MmioReg.QUEUE_DESC_LOW, desc), (MmioReg.QUEUE_DRIVER_LOW, driver),
                      (MmioReg.QUEUE_DEVICE_LOW, device)):
        rig.write(low, addr & 0xFFFFFFFF)
        rig.write(low + 4, addr >> 32)
    rig.write(MmioReg.QUEUE_READY, 1)


GOOD = SplitLayout.modern(8, RING)


@pytest.mark.spec("MMIO-DRV-009", "SPLIT-DRV-001", "MMIO-DEV-007")
@pytest.mark.parametrize(
    ("size", "desc", "driver", "device"),
    [
        (8, 0, 0, 0),                                   # nothing programmed
        (8, 0, GOOD.avail, GOOD.used),                  # one area at 0
        (8, GOOD.desc + 8, GOOD.avail, GOOD.used),      # descriptor table misaligned
        (8, GOOD.desc, GOOD.avail + 1, GOOD.used),      # driver area misaligned
        (8, GOOD.desc, GOOD.avail, GOOD.used + 2),      # device area misaligned
        (8, GOOD.desc, GOOD.avail, 1 << 40),            # outside guest memory
        (6, GOOD.desc, GOOD.avail, GOOD.used),          # not a power of two
        (16, GOOD.desc, GOOD.avail, GOOD.used),         # above QueueNumMax
        (0, GOOD.desc, GOOD.avail, GOOD.used),          # zero
    ],
)
def test_queue_ready_with_an_invalid_layout_stays_zero(
    size: int, desc: int, driver: int, device: int
) -> None:
    rig = Rig()
    rig.negotiate()
    _program(rig, size, desc, driver, device)
    assert rig.read(MmioReg.QUEUE_READY) == 0 and rig.recorded(QueueConfigInvalid)
    rig.status(*LIVE)
    rig.write(MmioReg.QUEUE_NOTIFY, 0)
    assert rig.backend.served == 0 and rig.recorded(NotifyNotLive)
    rig.assert_recovers()


@pytest.mark.spec("MMIO-DRV-010")
def test_queue_registers_written_while_ready_are_ignored() -> None:
    rig = Rig()
    rig.negotiate()
    rig.enable_queue()
    rig.write(MmioReg.QUEUE_NUM, 2)
    rig.write(MmioReg.QUEUE_DESC_LOW, 0x1234)
    assert rig.core.queues[0].size == 8 and rig.core.queues[0].desc == GOOD.desc
    assert rig.recorded(QueueBusy)
    rig.assert_recovers()


# --- status order and features (§2.1, §2.2, §3.1.1) -----------------------------------------
@pytest.mark.spec("INIT-DRV-001", "STATUS-DRV-001", "STATUS-DEV-002", "STATUS-DEV-001")
def test_driver_ok_before_features_ok_sets_needs_reset_and_activates_nothing() -> None:
    rig = Rig()
    rig.status(Status.ACKNOWLEDGE)
    rig.status(Status.ACKNOWLEDGE, Status.DRIVER)
    rig.status(Status.ACKNOWLEDGE, Status.DRIVER, Status.DRIVER_OK)
    status = rig.read(MmioReg.STATUS)
    assert status == Status.ACKNOWLEDGE | Status.DRIVER | Status.DEVICE_NEEDS_RESET
    assert not rig.core.active and rig.backend.context is None
    assert rig.recorded(IllegalStatusWrite)
    assert rig.read(MmioReg.INTERRUPT_STATUS) == 0  # DRIVER_OK never set: no interrupt owed
    rig.assert_recovers()


@pytest.mark.spec("FEAT-DRV-001", "FEAT-DEV-002")
def test_accepting_a_feature_not_offered_refuses_features_ok() -> None:
    rig = Rig()
    rig.negotiate(feature_mask(Feature.VERSION_1, Feature.RING_PACKED))
    assert not rig.read(MmioReg.STATUS) & Status.FEATURES_OK
    assert rig.recorded(FeaturesNotOffered)
    rig.assert_recovers()


@pytest.mark.spec("FEAT-DRV-006", "FEAT-DEV-002")
def test_a_modern_driver_without_version_1_is_refused_features_ok() -> None:
    rig = Rig()
    rig.negotiate(feature_mask(Feature.EVENT_IDX))
    assert not rig.read(MmioReg.STATUS) & Status.FEATURES_OK
    assert rig.recorded(FeaturesNotOffered)
    rig.assert_recovers()


@pytest.mark.spec("INIT-DRV-003")
def test_changing_features_after_features_ok_is_ignored() -> None:
    rig = Rig()
    rig.negotiate(feature_mask(Feature.VERSION_1))
    rig.transport.set_features(MODERN_FEATURES)
    assert rig.core.driver_features == feature_mask(Feature.VERSION_1)
    assert rig.recorded(FeaturesFrozen)
    rig.enable_queue()
    rig.status(*LIVE)
    assert rig.backend.context is not None
    assert rig.backend.context.features == feature_mask(Feature.VERSION_1)
    rig.assert_recovers()


@pytest.mark.spec("STATUS-DRV-002", "STATUS-DEV-002", "STATUS-DEV-003")
def test_clearing_status_bits_without_reset_needs_reset_with_a_config_interrupt() -> None:
    rig = Rig()
    rig.live()
    raised = rig.platform.irqs.raised
    rig.status(Status.ACKNOWLEDGE, Status.DRIVER_OK, Status.FEATURES_OK)
    assert rig.read(MmioReg.STATUS) == LIVE | Status.DEVICE_NEEDS_RESET
    assert rig.read(MmioReg.INTERRUPT_STATUS) == InterruptBit.CONFIG_CHANGE
    assert rig.platform.irqs.raised == raised + 1 and rig.recorded(IllegalStatusWrite)
    rig.assert_recovers()


@pytest.mark.spec("STATUS-DRV-003")
def test_setting_bits_after_failed_needs_reset() -> None:
    rig = Rig()
    rig.status(Status.FAILED)
    rig.status(Status.FAILED, Status.ACKNOWLEDGE)
    assert rig.read(MmioReg.STATUS) == Status.FAILED | Status.DEVICE_NEEDS_RESET
    rig.assert_recovers()


# --- notifications and interrupts (§2.7.10, §4.2.3.3, §4.2.3.4) ------------------------------
@pytest.mark.spec("INIT-DRV-006", "STATUS-DEV-001", "MMIO-DEV-007")
@pytest.mark.parametrize("when", ["before DRIVER_OK", "disabled queue", "no such queue"])
def test_kicks_that_are_not_live_are_ignored(when: str) -> None:
    rig = Rig()
    layout = SplitLayout.modern(8, RING)
    if when == "before DRIVER_OK":
        rig.negotiate()
        rig.enable_queue()
        rig.write(MmioReg.QUEUE_NOTIFY, 0)
    elif when == "disabled queue":
        rig.negotiate()
        rig.status(*LIVE)
        rig.write(MmioReg.QUEUE_NOTIFY, 0)
    else:
        rig.live()
        rig.write(MmioReg.QUEUE_NOTIFY, 7)
    assert rig.backend.served == 0 and rig.recorded(NotifyNotLive)
    assert rig.platform.mem.read_u16(layout.used_idx) == 0
    rig.assert_recovers()


@pytest.mark.spec("MMIO-DRV-013", "MMIO-DEV-004")
def test_interrupt_ack_with_undefined_bits_clears_only_defined_ones() -> None:
    rig = Rig()
    rig.live()
    rig.core.config_changed()
    assert rig.read(MmioReg.INTERRUPT_STATUS) == InterruptBit.CONFIG_CHANGE
    rig.write(MmioReg.INTERRUPT_ACK, 0xFFFFFFFF)
    assert rig.read(MmioReg.INTERRUPT_STATUS) == 0 and rig.recorded(BadInterruptAck)
    rig.assert_recovers()


@pytest.mark.spec("STATUS-DEV-002", "STATUS-DEV-003", "SPLIT-DRV-010")
def test_ring_corruption_after_driver_ok_needs_reset_with_a_config_interrupt() -> None:
    rig = Rig()
    layout = rig.live()
    rig.platform.mem.write_u16(layout.avail_idx, 200)  # far more than the queue holds
    rig.write(MmioReg.QUEUE_NOTIFY, 0)
    assert rig.read(MmioReg.STATUS) & Status.DEVICE_NEEDS_RESET
    assert rig.read(MmioReg.INTERRUPT_STATUS) & InterruptBit.CONFIG_CHANGE
    assert rig.recorded(AvailIndexJump)
    rig.assert_recovers()


@pytest.mark.spec("RESET-DEV-001", "MMIO-DEV-005", "RESET-DEV-002")
def test_reset_clears_status_interrupts_and_ready_and_kills_the_old_context() -> None:
    rig = Rig()
    rig.live()
    context = rig.backend.context
    assert context is not None
    rig.core.config_changed()
    rig.status()
    assert rig.read(MmioReg.STATUS) == 0 and rig.read(MmioReg.INTERRUPT_STATUS) == 0
    assert rig.read(MmioReg.QUEUE_READY) == 0
    raised = rig.platform.irqs.raised
    context.signal_used(0)
    context.config_changed()
    context.needs_reset(AvailIndexJump("stale"))
    assert rig.platform.irqs.raised == raised and rig.read(MmioReg.STATUS) == 0
    rig.assert_recovers()


# --- anything at all -------------------------------------------------------------------------
accesses = st.lists(
    st.tuples(
        st.booleans(),
        st.integers(0, 0x1FF),
        st.sampled_from([1, 2, 4, 8]),
        st.integers(0, (1 << 64) - 1),
    ),
    max_size=60,
)


@pytest.mark.spec("MMIO-DRV-001", "MMIO-DRV-002", "MMIO-DRV-003")
@given(script=accesses, legacy=st.booleans())
def test_any_register_traffic_never_raises_and_a_reset_recovers(
    script: list[tuple[bool, int, int, int]], legacy: bool
) -> None:
    rig = Rig(legacy=legacy)
    for is_write, offset, width, value in script:
        if is_write:
            rig.write(offset, value % (1 << (8 * width)), width)
        else:
            assert 0 <= rig.read(offset, width) < 1 << (8 * width)
    assert all(isinstance(v, DriverError) for v in rig.core.violations)
    rig.assert_recovers()


@pytest.mark.spec("INIT-DEV-001")
def test_a_suspend_request_is_ignored_as_suspend_is_never_offered() -> None:
    rig = Rig()
    rig.status(Status.ACKNOWLEDGE, Status.SUSPEND)
    assert rig.read(MmioReg.STATUS) == Status.ACKNOWLEDGE
    rig.status()
    rig.live()
    rig.write(MmioReg.STATUS, LIVE | Status.SUSPEND)
    assert rig.read(MmioReg.STATUS) == LIVE and rig.core.active


@pytest.mark.spec("FEAT-DEV-003")
@pytest.mark.parametrize("legacy", [False, True])
def test_the_device_never_offers_transport_features_it_does_not_implement(legacy: bool) -> None:
    platform = Platform()
    greedy = MODERN_FEATURES | feature_mask(
        Feature.RING_PACKED, Feature.NOTIFICATION_DATA, Feature.RING_RESET, Feature.IN_ORDER, 3
    )
    core = platform.add_mmio(EchoDevice(DeviceId.NET, features=greedy), legacy=legacy)
    transport = MmioTransport(platform.space, platform.windows[0])
    expected = MODERN_FEATURES | feature_mask(3)
    if legacy:
        expected &= ~feature_mask(Feature.VERSION_1)
    assert transport.get_features() == core.offered_features == expected


@pytest.mark.spec("MMIO-DRV-009", "MMIO-DRV-010")
@pytest.mark.parametrize("fault", ["no page size", "bad align", "bad size", "while ready"])
def test_legacy_queue_pfn_with_a_bad_setup_is_refused(fault: str) -> None:
    rig = Rig(legacy=True)
    rig.status(Status.ACKNOWLEDGE)
    rig.status(Status.ACKNOWLEDGE, Status.DRIVER)
    rig.write(MmioReg.QUEUE_SEL, 0)
    rig.write(MmioReg.QUEUE_NUM, 6 if fault == "bad size" else 8)
    rig.write(MmioReg.GUEST_PAGE_SIZE, 0 if fault == "no page size" else 4096)
    rig.write(MmioReg.QUEUE_ALIGN, 3000 if fault == "bad align" else 4096)
    if fault == "while ready":
        rig.write(MmioReg.QUEUE_PFN, RING // 4096)
        assert rig.read(MmioReg.QUEUE_PFN) == RING // 4096
        rig.write(MmioReg.QUEUE_PFN, 2 * RING // 4096)
        assert rig.read(MmioReg.QUEUE_PFN) == RING // 4096 and rig.recorded(QueueBusy)
    else:
        rig.write(MmioReg.QUEUE_PFN, RING // 4096)
        assert rig.read(MmioReg.QUEUE_PFN) == 0 and rig.recorded(QueueConfigInvalid)
    rig.assert_recovers()
