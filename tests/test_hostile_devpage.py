"""A hostile guest against the descriptor-page host, and a corrupt page against the scan.

Outcomes (docs/transports.md, "Hostile driver" and "Descriptor page"): a hypercall
naming nothing returns -1 and is recorded as `UnknownHypercall`; a guest scribbling on
host-owned fields changes nothing (the host re-publishes them at the next hypercall);
status, feature and queue edits get the device core's outcomes, exactly as on
virtio-mmio. Each case ends with a RESET hypercall and the ordinary probe bringing the
device back with a buffer round-tripping.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from transport_rig import PAGE_ADDR, Platform, round_trip

from impl.devpage import VQ_DESC, VQ_MAX_SIZE, VQ_READY, VQ_SIZE, EntryLayout
from impl.devpage_driver import DevPageTransport, scan_devpage
from impl.errors import (
    DevicePageFull,
    DriverError,
    FeaturesBeyondPage,
    IllegalStatusWrite,
    QueueConfigInvalid,
    UnknownHypercall,
)
from impl.layout import SplitLayout
from impl.spec import DeviceId, Feature, Hypercall, Status, feature_mask
from impl.stubs import MODERN_FEATURES, EchoDevice, EchoDriver

LIVE = Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK
RING = 0x40000


class Rig:
    """One echo device in the page, the guest's accessor for it, and raw page access."""

    def __init__(self) -> None:
        self.platform = Platform()
        self.backend = EchoDevice(DeviceId.BLOCK, queues=(8,))
        self.core = self.platform.add_page_device(self.backend)
        self.entry: EntryLayout = self.platform.page_cores[0][0]
        self.mem = self.platform.mem
        self.host = self.platform.host
        self.transport = DevPageTransport(self.mem, self.entry, self.host.hypercall)

    def live(self) -> SplitLayout:
        t = self.transport
        t.set_status(Status.ACKNOWLEDGE)
        t.set_status(Status.ACKNOWLEDGE | Status.DRIVER)
        t.set_features(feature_mask(Feature.VERSION_1))
        t.set_status(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK)
        layout = SplitLayout.modern(8, RING)
        assert t.setup_queue(0, layout)
        t.set_status(LIVE)
        assert self.core.active
        return layout

    def assert_recovers(self) -> None:
        assert self.host.hypercall(Hypercall.RESET, self.entry.base) == 0
        driver = EchoDriver("blk", DeviceId.BLOCK, queue_count=1)
        self.platform.bus.register_driver(driver)
        scan = scan_devpage(self.mem, PAGE_ADDR, self.host.hypercall, self.platform.bus)
        (device,) = scan.registered
        assert device.driver is driver and self.core.status == LIVE
        round_trip(self.platform, device, 0, b"again", "t")
        self.platform.irqs.deliver_all()
        assert driver.received == [("t", 5)]
        assert all(isinstance(v, DriverError) for v in self.core.violations)


def test_an_unknown_hypercall_number_is_refused() -> None:
    rig = Rig()
    assert rig.host.hypercall(99, rig.entry.base) == -1
    assert isinstance(rig.host.violations[-1], UnknownHypercall)
    assert rig.core.status == 0
    rig.assert_recovers()


@pytest.mark.parametrize("number", [Hypercall.SET_STATUS, Hypercall.ACK_INTERRUPT,
                                    Hypercall.CONFIG_WRITE, Hypercall.RESET])
@pytest.mark.parametrize("addr", [0, PAGE_ADDR + 1, 1 << 40])
def test_a_hypercall_naming_no_entry_is_refused(number: Hypercall, addr: int) -> None:
    rig = Rig()
    rig.live()
    assert rig.host.hypercall(number, addr, 0xFF, 0xFF) == -1
    assert rig.core.status == LIVE and isinstance(rig.host.violations[-1], UnknownHypercall)
    rig.assert_recovers()


@pytest.mark.spec("INIT-DRV-006", "STATUS-DEV-001")
@pytest.mark.parametrize("live", [False, True])
def test_notify_of_an_address_naming_no_live_queue_is_refused(live: bool) -> None:
    rig = Rig()
    layout = SplitLayout.modern(8, RING)
    if live:
        rig.live()
        target = layout.desc + 16
    else:
        target = layout.desc
    assert rig.host.hypercall(Hypercall.NOTIFY, target) == -1
    assert rig.backend.served == 0
    rig.assert_recovers()


def test_host_owned_fields_scribbled_by_the_guest_are_restored() -> None:
    rig = Rig()
    entry, mem = rig.entry, rig.mem
    mem.write_u8(entry.num_vq_field, 200)
    mem.write_u16(entry.config_len_field, 0xFFFF)
    mem.write_u32(entry.isr, 0xFF)
    mem.write_u32(entry.generation, 77)
    mem.write_u64(entry.device_features, (1 << 64) - 1)
    mem.write_u16(entry.vq(0) + VQ_MAX_SIZE, 0xFFFF)
    mem.write(entry.config, b"\xEE" * 8)
    rig.transport.set_status(Status.ACKNOWLEDGE)
    assert mem.read_u8(entry.num_vq_field) == 1
    assert mem.read_u16(entry.config_len_field) == 8
    assert mem.read_u32(entry.isr) == 0 and mem.read_u32(entry.generation) == 0
    assert mem.read_u64(entry.device_features) == MODERN_FEATURES
    assert mem.read_u16(entry.vq(0) + VQ_MAX_SIZE) == 8
    assert mem.read(entry.config, 8) == bytes(range(1, 9))
    assert rig.core.status == Status.ACKNOWLEDGE
    rig.assert_recovers()


@pytest.mark.spec("INIT-DRV-001", "STATUS-DEV-002")
def test_driver_ok_before_features_ok_in_the_page_needs_reset() -> None:
    rig = Rig()
    rig.transport.set_status(Status.ACKNOWLEDGE)
    rig.transport.set_status(Status.ACKNOWLEDGE | Status.DRIVER | Status.DRIVER_OK)
    assert rig.transport.get_status() == Status.ACKNOWLEDGE | Status.DEVICE_NEEDS_RESET
    assert any(isinstance(v, IllegalStatusWrite) for v in rig.core.violations)
    rig.assert_recovers()


@pytest.mark.spec("STATUS-DRV-002")
def test_a_status_request_of_zero_is_not_a_reset_but_a_clearing_write() -> None:
    rig = Rig()
    rig.live()
    rig.mem.write_u8(rig.entry.status, 0)
    rig.host.hypercall(Hypercall.SET_STATUS, rig.entry.base)
    assert rig.transport.get_status() == LIVE | Status.DEVICE_NEEDS_RESET
    rig.assert_recovers()


@pytest.mark.spec("MMIO-DRV-009", "SPLIT-DRV-001")
@pytest.mark.parametrize(("size", "desc"), [(6, RING), (16, RING), (8, 0), (8, RING + 8)])
def test_a_queue_record_with_an_invalid_layout_is_not_made_ready(size: int, desc: int) -> None:
    rig = Rig()
    rig.transport.set_status(Status.ACKNOWLEDGE)
    good = SplitLayout.modern(8, RING)
    assert not rig.transport.setup_queue(0, SplitLayout(size, desc, good.avail, good.used))
    assert rig.mem.read_u32(rig.entry.vq(0) + VQ_READY) == 0
    assert any(isinstance(v, QueueConfigInvalid) for v in rig.core.violations)
    rig.assert_recovers()


@pytest.mark.spec("MMIO-DRV-010")
def test_a_live_queue_record_rewritten_by_the_guest_keeps_its_layout() -> None:
    rig = Rig()
    layout = rig.live()
    rig.mem.write_u16(rig.entry.vq(0) + VQ_SIZE, 2)
    rig.mem.write_u64(rig.entry.vq(0) + VQ_DESC, 0x1234)
    rig.mem.write_u32(rig.entry.vq(0) + VQ_READY, 0)
    rig.host.hypercall(Hypercall.SET_STATUS, rig.entry.base)
    queue = rig.core.queues[0]
    assert queue.ready and queue.size == 8 and queue.desc == layout.desc
    assert rig.mem.read_u32(rig.entry.vq(0) + VQ_READY) == 1
    rig.assert_recovers()


def test_a_config_write_outside_config_space_is_refused() -> None:
    rig = Rig()
    rig.host.hypercall(Hypercall.CONFIG_WRITE, rig.entry.base, 4, 100)
    assert isinstance(rig.host.violations[-1], UnknownHypercall)
    assert rig.mem.read(rig.entry.config, 8) == bytes(range(1, 9))
    rig.assert_recovers()


def test_an_entry_running_past_the_page_ends_the_scan_cleanly() -> None:
    """A corrupt page (the host's fault): the guest registers what came before and stops."""
    rig = Rig()
    bad = rig.entry.end
    rig.mem.write_u8(bad, DeviceId.NET)
    rig.mem.write_u8(bad + 1, 255)  # 255 queue records cannot fit in what is left
    scan = scan_devpage(rig.mem, PAGE_ADDR, rig.host.hypercall, rig.platform.bus)
    assert len(scan.registered) == 1 and scan.error is not None
    assert "past the descriptor page" in str(scan.error)


# --- anything at all -------------------------------------------------------------------------
hypercalls = st.tuples(
    st.integers(0, 8), st.integers(0, 1 << 20), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)
)
scribbles = st.tuples(st.integers(0, 200), st.binary(min_size=1, max_size=8))


@given(script=st.lists(st.one_of(hypercalls, scribbles), max_size=40), live=st.booleans())
def test_any_page_edits_and_hypercalls_never_raise_and_a_reset_recovers(
    script: list[tuple[int, ...] | tuple[int, bytes]], live: bool
) -> None:
    rig = Rig()
    if live:
        rig.live()
    span = rig.entry.end - rig.entry.base
    for step in script:
        if isinstance(step[1], bytes):
            offset, data = step[0] % span, step[1]
            rig.mem.write(rig.entry.base + offset, data[: span - offset])
        else:
            number, arg0, arg1, arg2 = step  # type: ignore[misc]
            if arg0 % 2:
                arg0 = rig.entry.base
            assert rig.host.hypercall(number, arg0, arg1, arg2) in (0, -1)
    assert all(isinstance(v, DriverError) for v in rig.core.violations)
    rig.assert_recovers()


def test_publishing_more_than_the_page_holds_is_a_usage_error() -> None:
    platform = Platform()
    platform.add_page_device(EchoDevice(DeviceId.NET, config=bytes(200)))
    with pytest.raises(DevicePageFull):
        for _ in range(40):
            platform.add_page_device(EchoDevice(DeviceId.NET, config=bytes(200)))
    scan = scan_devpage(platform.mem, PAGE_ADDR, platform.host.hypercall, platform.bus)
    assert scan.error is None and len(scan.registered) == len(platform.host.entries)


def test_publishing_feature_bits_above_63_is_a_usage_error() -> None:
    """The page's feature field is 64 bits wide: a device offering bit 64 or above cannot
    be published on it, and the host is told so before anything is written (§2.2)."""
    platform = Platform()
    wide = MODERN_FEATURES | 1 << 67
    with pytest.raises(FeaturesBeyondPage):
        platform.add_page_device(EchoDevice(DeviceId.NET, features=wide))
    assert platform.host.entries == []
    platform.add_page_device(EchoDevice(DeviceId.NET))
    assert len(platform.host.entries) == 1
