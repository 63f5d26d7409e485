"""A hostile driver setting up packed rings through virtio-mmio and the descriptor page.

The device judges a queue by the ring type of the features the driver accepted when it
enables the queue (docs/transports.md, "Packed rings"): a packed size is any value from
1 to QueueNumMax (§2.8: not only powers of two), a split size a power of two up to it;
the packed parts have their own alignments (§2.8.10.1: descriptor ring 16, each event
suppression structure 4). Each refused setup leaves the queue not ready with a
`QueueConfigInvalid` recorded; a driver that enables a queue under one ring type and
then negotiates the other gets DEVICE_NEEDS_RESET at DRIVER_OK; a legacy device never
judges a queue packed. Every case ends with a reset and the ordinary probe, which
negotiates packed rings and round-trips a buffer.

Expected verdicts come from the rules above written out here (`size_ok`), never from
the code under test.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transport_rig import PAGE_ADDR, Platform, round_trip

from impl.device_core import DeviceCore
from impl.devpage_driver import DevPageTransport, scan_devpage
from impl.errors import (
    BufferIdOutOfRange,
    DriverError,
    IllegalStatusWrite,
    NotifyNotLive,
    QueueConfigInvalid,
    UnknownHypercall,
)
from impl.layout import SplitLayout
from impl.mmio_driver import MmioTransport, scan_mmio
from impl.packed_driver import PackedDriver
from impl.packed_layout import PackedDescriptor, PackedLayout
from impl.spec import DeviceId, Feature, InterruptBit, MmioReg, Status, feature_mask
from impl.split_device import SplitDevice
from impl.stubs import MODERN_FEATURES, EchoDevice, EchoDriver
from impl.transport import PACKED_RING, RING_FEATURES, TransportAccessor
from impl.wrap_math import avail_bits

LIVE = Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK
LEGACY_LIVE = Status.ACKNOWLEDGE | Status.DRIVER | Status.DRIVER_OK
FEATURES_OK = Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK
QUEUE_MAX = 8
RING = 0x40000
DATA = 0x60000
PACKED = feature_mask(Feature.VERSION_1, Feature.RING_PACKED)
SPLIT = feature_mask(Feature.VERSION_1)
KINDS = ("mmio", "page")


class Rig:
    """One packed-capable echo device on `kind`, and the guest's raw accessor for it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.platform = Platform(ring_features=RING_FEATURES | PACKED_RING)
        self.backend = EchoDevice(DeviceId.BLOCK, queues=(QUEUE_MAX,))
        self.transport: TransportAccessor
        if kind == "page":
            self.core: DeviceCore = self.platform.add_page_device(self.backend, packed=True)
            entry, host = self.platform.page_cores[0][0], self.platform.host
            self.transport = DevPageTransport(self.platform.mem, entry, host.hypercall)
        else:
            legacy = kind == "mmio-legacy"
            self.core = self.platform.add_mmio(self.backend, legacy=legacy, packed=True)
            self.transport = MmioTransport(self.platform.space, self.platform.windows[0])

    def negotiate(self, features: int) -> None:
        """§3.1.1 up to FEATURES_OK with `features` accepted."""
        self.transport.set_status(Status.ACKNOWLEDGE)
        self.transport.set_status(Status.ACKNOWLEDGE | Status.DRIVER)
        self.transport.set_features(features)
        self.transport.set_status(FEATURES_OK)
        assert self.transport.get_status() == FEATURES_OK

    def recorded(self, kind: type[DriverError]) -> bool:
        return any(isinstance(v, kind) for v in self.core.violations)

    def kick_ignored(self) -> bool:
        """Kick queue 0: True if nothing was served and the transport recorded why."""
        self.transport.notify(0)
        if self.kind == "page":
            why = any(isinstance(v, UnknownHypercall) for v in self.platform.host.violations)
        else:
            why = self.recorded(NotifyNotLive)
        return self.backend.served == 0 and why

    def assert_recovers(self) -> None:
        """Reset, then the ordinary probe (packed rings), then a buffer round trip."""
        self.transport.set_status(0)
        driver = EchoDriver("blk", DeviceId.BLOCK, queue_count=1)
        bus = self.platform.bus
        bus.register_driver(driver)
        if self.kind == "page":
            found = scan_devpage(self.platform.mem, PAGE_ADDR, self.platform.host.hypercall, bus)
            (device,) = found.registered
        else:
            (device,) = scan_mmio(self.platform.space, self.platform.windows, bus).registered
        assert device.driver is driver, device.probe_error
        legacy = self.kind == "mmio-legacy"
        assert self.core.status == (LEGACY_LIVE if legacy else LIVE)
        assert isinstance(device.queues[0], PackedDriver) != legacy
        round_trip(self.platform, device, 0, b"again", "t")
        self.platform.irqs.deliver_all()
        assert driver.received == [("t", 5)]
        assert all(isinstance(v, DriverError) for v in self.core.violations)


def size_ok(size: int, packed: bool) -> bool:
    """§2.8: packed sizes 1..max; §2.7: split sizes a power of two up to max (MMIO-DRV-009)."""
    if packed:
        return 1 <= size <= QUEUE_MAX
    return 1 <= size <= QUEUE_MAX and size & (size - 1) == 0


def packed_at(size: int) -> PackedLayout:
    """The three packed parts back to back at RING, each at its alignment (by hand)."""
    return PackedLayout(size, RING, RING + 16 * size, RING + 16 * size + 4)


def split_at(size: int) -> SplitLayout:
    """The three split parts at RING, RING + 0x1000, RING + 0x2000 (aligned, disjoint)."""
    return SplitLayout(size, RING, RING + 0x1000, RING + 0x2000)


@pytest.mark.spec("MMIO-DRV-009", "PACKED-DRV-001", "SPLIT-DRV-001")
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("size", [0, 1, 3, 5, 6, 7, 8, 9, 12, 16])
def test_queue_size_is_judged_by_the_negotiated_ring_type(
    kind: str, packed: bool, size: int
) -> None:
    """A non-power-of-two size is refused under split and accepted under packed; above
    QueueNumMax (or 0) is refused under both."""
    rig = Rig(kind)
    rig.negotiate(PACKED if packed else SPLIT)
    layout = packed_at(size) if packed else split_at(size)
    enabled = rig.transport.setup_queue(0, layout)
    assert enabled == size_ok(size, packed)
    assert rig.transport.queue_ready(0) == enabled
    assert rig.recorded(QueueConfigInvalid) != enabled
    if enabled:
        rig.transport.set_status(LIVE)
        assert rig.core.status == LIVE and rig.backend.context is not None
        (served,) = rig.backend.context.queues
        assert served is not None and served.size == size
    rig.assert_recovers()


GOOD = packed_at(QUEUE_MAX)


@pytest.mark.spec("PACKED-DRV-001")
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("desc", "driver", "device"),
    [
        (GOOD.desc + 8, GOOD.driver + 8, GOOD.device + 8),   # descriptor ring not 16-aligned
        (GOOD.desc, GOOD.driver + 2, GOOD.device + 4),       # driver area 2-aligned only
        (GOOD.desc, GOOD.driver, GOOD.device + 2),           # device area 2-aligned only
        (GOOD.desc, GOOD.desc + 16, GOOD.device),            # driver area inside the ring
        (GOOD.desc, GOOD.driver, GOOD.driver),               # the two event areas overlap
        (GOOD.desc, GOOD.driver, 1 << 40),                   # outside guest memory
        (GOOD.desc, 0, GOOD.device),                         # an area not programmed
    ],
)
def test_a_packed_layout_no_device_may_accept_leaves_the_queue_not_ready(
    kind: str, desc: int, driver: int, device: int
) -> None:
    rig = Rig(kind)
    rig.negotiate(PACKED)
    assert not rig.transport.setup_queue(0, PackedLayout(QUEUE_MAX, desc, driver, device))
    assert not rig.transport.queue_ready(0) and rig.recorded(QueueConfigInvalid)
    rig.transport.set_status(LIVE)
    assert rig.kick_ignored()
    rig.assert_recovers()


@pytest.mark.spec("PACKED-DRV-001", "SPLIT-DRV-001")
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("packed", [True, False])
def test_an_area_aligned_for_split_but_not_for_packed(kind: str, packed: bool) -> None:
    """A driver area 2-aligned is a valid available ring (§2.7) but not a packed
    event suppression structure (§2.8.10.1): the ring type decides."""
    rig = Rig(kind)
    rig.negotiate(PACKED if packed else SPLIT)
    size = 4
    driver = RING + 16 * size + 2
    device = RING + 0x1000
    enabled = rig.transport.setup_queue(0, PackedLayout(size, RING, driver, device))
    assert enabled == (not packed)
    rig.assert_recovers()


@pytest.mark.spec("STATUS-DEV-002")
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("first", ["packed", "split"])
def test_changing_ring_packed_after_enabling_a_queue_needs_reset_at_driver_ok(
    kind: str, first: str
) -> None:
    """Queue enabled under one ring type, features then rewritten to the other."""
    rig = Rig(kind)
    rig.transport.set_status(Status.ACKNOWLEDGE)
    rig.transport.set_status(Status.ACKNOWLEDGE | Status.DRIVER)
    rig.transport.set_features(PACKED if first == "packed" else SPLIT)
    assert rig.transport.setup_queue(0, packed_at(4) if first == "packed" else split_at(4))
    rig.transport.set_features(SPLIT if first == "packed" else PACKED)
    rig.transport.set_status(FEATURES_OK)
    assert rig.transport.get_status() == FEATURES_OK
    rig.transport.set_status(LIVE)
    assert rig.transport.get_status() == FEATURES_OK | Status.DEVICE_NEEDS_RESET
    assert rig.backend.context is None and rig.recorded(IllegalStatusWrite)
    rig.assert_recovers()


@pytest.mark.spec("FEAT-DEV-003")
def test_a_legacy_device_judges_every_queue_split_whatever_bit_34_says() -> None:
    """A legacy driver writing RING_PACKED through DriverFeaturesSel 1 gets no packed ring."""
    rig = Rig("mmio-legacy")
    assert rig.core.offered_features == MODERN_FEATURES & 0xFFFFFFFF
    space, base = rig.platform.space, rig.platform.windows[0].base
    rig.transport.set_status(Status.ACKNOWLEDGE | Status.DRIVER)
    space.write(base + MmioReg.DRIVER_FEATURES_SEL, 4, 1)
    space.write(base + MmioReg.DRIVER_FEATURES, 4, 1 << (Feature.RING_PACKED - 32))
    assert not rig.transport.setup_queue(0, SplitLayout.legacy(3, RING))
    assert rig.transport.setup_queue(0, SplitLayout.legacy(QUEUE_MAX, RING))
    rig.transport.set_status(LEGACY_LIVE)
    assert rig.backend.context is not None
    assert isinstance(rig.backend.context.queues[0], SplitDevice)
    rig.assert_recovers()


@pytest.mark.spec("STATUS-DEV-002", "STATUS-DEV-003")
@pytest.mark.parametrize("kind", KINDS)
def test_a_corrupt_packed_ring_after_driver_ok_needs_reset_with_a_config_interrupt(
    kind: str,
) -> None:
    """A list whose Buffer ID is beyond the queue size: the ring cannot be trusted."""
    rig = Rig(kind)
    rig.negotiate(PACKED)
    layout = packed_at(5)
    assert rig.transport.setup_queue(0, layout)
    rig.transport.set_status(LIVE)
    bad = PackedDescriptor(addr=DATA, len=8, id=5, flags=avail_bits(1))
    rig.platform.mem.write(layout.desc_addr(0), bad.pack())
    rig.transport.notify(0)
    assert rig.transport.get_status() == LIVE | Status.DEVICE_NEEDS_RESET
    assert rig.transport.read_interrupt_status() & InterruptBit.CONFIG_CHANGE
    assert rig.recorded(BufferIdOutOfRange)
    rig.assert_recovers()


# --- anything at all -------------------------------------------------------------------------
OPS = ("features", "status", "queue", "ring", "ring", "ring", "kick", "kick", "live", "live")
"""Ring bytes, kicks and bring-ups repeated: they weigh more in a drawn script."""
FEATURE_CHOICES = (PACKED, SPLIT, PACKED | 1 << 3, 0)
steps = st.lists(
    st.tuples(
        st.sampled_from(OPS),
        st.integers(0, 40),
        st.integers(0, 0xFF),
        st.binary(min_size=16, max_size=16),
    ),
    max_size=40,
)


def bring_up(rig: Rig, size: int) -> None:
    """Reset, negotiate RING_PACKED, enable queue 0 as a packed ring of `size`, DRIVER_OK."""
    rig.transport.set_status(0)
    rig.negotiate(PACKED)
    assert rig.transport.setup_queue(0, packed_at(size))
    rig.transport.set_status(LIVE)
    assert rig.core.active


def marked(raw: bytes, byte: int) -> bytes:
    """`raw` as a descriptor, half the time with its flags marked available for lap 1."""
    if not byte & 1:
        return raw
    desc = PackedDescriptor.unpack(raw)
    flags = desc.flags & ~(avail_bits(0) | avail_bits(1)) | avail_bits(1)
    return PackedDescriptor(addr=desc.addr, len=desc.len, id=desc.id, flags=flags).pack()


@pytest.mark.spec("PACKED-DRV-001", "MMIO-DRV-009")
@settings(max_examples=80)
@given(script=steps, kind=st.sampled_from(KINDS), live=st.booleans())
def test_any_packed_setup_and_ring_bytes_never_raise_and_a_reset_recovers(
    script: list[tuple[str, int, int, bytes]], kind: str, live: bool
) -> None:
    """Random features, status, queue programming, raw descriptor bytes and kicks on a
    packed core (live from the start or not): only typed driver errors are recorded,
    nothing escapes, a reset recovers."""
    rig = Rig(kind)
    if live:
        bring_up(rig, QUEUE_MAX - 3)
    for op, small, byte, raw in script:
        if op == "features":
            rig.transport.set_features(FEATURE_CHOICES[small % len(FEATURE_CHOICES)])
        elif op == "status":
            rig.transport.set_status(byte)
        elif op == "queue":
            desc = RING + ((byte & 0xF) << 2)
            driver = desc + 16 * small + (byte >> 4)
            rig.transport.setup_queue(0, PackedLayout(small, desc, driver, driver + raw[0] % 8))
        elif op == "ring":
            rig.platform.mem.write(RING + 16 * (small % 8 if byte & 2 else 0), marked(raw, byte))
            rig.transport.notify(0)
        elif op == "kick":
            rig.transport.notify(int(small % 4 == 3))
        else:
            bring_up(rig, 1 + small % QUEUE_MAX)
    assert all(isinstance(v, DriverError) for v in rig.core.violations)
    rig.assert_recovers()
