"""Feature bits (§2.2, §6): what a device may offer and what a driver makes of an offer.

The device rules are checked on what the transports show the guest (the DeviceFeatures
registers, the page entry), the driver rules on what the bus accepts. Requirement tables
here are written from the spec's text (§5.1.3.1), independently of `impl/`.
"""

from __future__ import annotations

import itertools

import pytest
from net_rig import MAC_A, net_side
from transport_rig import PAGE_ADDR, Platform

from impl.bus import BusDevice, without_unmet_requirements
from impl.chain import Segment
from impl.devpage_driver import scan_devpage
from impl.mmio_driver import MmioTransport, scan_mmio
from impl.net_device import NetDevice
from impl.spec import DeviceId, Feature, NetFeature, Status, feature_mask, has_feature
from impl.stubs import MODERN_FEATURES, EchoDevice, EchoDriver

LIVE = Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK

NET_REQUIRES: dict[int, tuple[tuple[int, ...], ...]] = {
    NetFeature.GUEST_TSO4: ((NetFeature.GUEST_CSUM,),),
    NetFeature.GUEST_TSO6: ((NetFeature.GUEST_CSUM,),),
    NetFeature.GUEST_ECN: ((NetFeature.GUEST_TSO4,), (NetFeature.GUEST_TSO6,)),
    NetFeature.GUEST_UFO: ((NetFeature.GUEST_CSUM,),),
    NetFeature.HOST_TSO4: ((NetFeature.CSUM,),),
    NetFeature.HOST_TSO6: ((NetFeature.CSUM,),),
    NetFeature.HOST_ECN: ((NetFeature.HOST_TSO4,), (NetFeature.HOST_TSO6,)),
    NetFeature.HOST_UFO: ((NetFeature.CSUM,),),
    NetFeature.HOST_USO: ((NetFeature.CSUM,),),
    NetFeature.CTRL_RX: ((NetFeature.CTRL_VQ,),),
    NetFeature.CTRL_VLAN: ((NetFeature.CTRL_VQ,),),
    NetFeature.GUEST_ANNOUNCE: ((NetFeature.CTRL_VQ,),),
    NetFeature.MQ: ((NetFeature.CTRL_VQ,),),
    NetFeature.CTRL_MAC_ADDR: ((NetFeature.CTRL_VQ,),),
    NetFeature.RSS: ((NetFeature.CTRL_VQ,),),
}
"""§5.1.3.1: each bit and its alternatives, each alternative a tuple of bits all needed."""

CTRL_DEPENDENT = (
    NetFeature.CTRL_RX, NetFeature.CTRL_VLAN, NetFeature.GUEST_ANNOUNCE, NetFeature.CTRL_MAC_ADDR,
)


def unmet(offer: int, requires: dict[int, tuple[tuple[int, ...], ...]]) -> list[int]:
    """Bits of `offer` none of whose alternatives is wholly in `offer`."""
    return [
        bit for bit, alternatives in requires.items()
        if has_feature(offer, bit)
        and not any(all(has_feature(offer, need) for need in alt) for alt in alternatives)
    ]


def offered_through_mmio(backend: NetDevice | EchoDevice) -> int:
    platform = Platform()
    platform.add_mmio(backend)
    return MmioTransport(platform.space, platform.windows[0]).get_features()


@pytest.mark.spec("FEAT-DEV-001")
@pytest.mark.parametrize(
    ("mrg_rxbuf", "ctrl_vq", "csum", "mtu"), list(itertools.product([False, True], repeat=4))
)
def test_the_net_device_offers_no_feature_without_what_it_requires(
    mrg_rxbuf: bool, ctrl_vq: bool, csum: bool, mtu: bool
) -> None:
    device = NetDevice(
        MAC_A, mrg_rxbuf=mrg_rxbuf, ctrl_vq=ctrl_vq, csum=csum, mtu=1500 if mtu else None
    )
    offer = offered_through_mmio(device)
    assert has_feature(offer, NetFeature.CTRL_RX) == ctrl_vq  # the table is exercised
    assert unmet(offer, NET_REQUIRES) == []


@pytest.mark.spec("FEAT-DEV-013")
@pytest.mark.parametrize("transport", ["mmio", "page"])
def test_a_device_that_is_not_pci_never_offers_sr_iov(transport: str) -> None:
    greedy = MODERN_FEATURES | feature_mask(Feature.SR_IOV)
    platform = Platform()
    platform.bus.register_driver(EchoDriver("net", DeviceId.NET, feature_table=greedy))
    if transport == "mmio":
        platform.add_mmio(EchoDevice(DeviceId.NET, features=greedy))
        (device,) = scan_mmio(platform.space, platform.windows, platform.bus).registered
    else:
        platform.add_page_device(EchoDevice(DeviceId.NET, features=greedy))
        scan = scan_devpage(platform.mem, PAGE_ADDR, platform.host.hypercall, platform.bus)
        (device,) = scan.registered
    offer = device.transport.get_features()
    assert has_feature(offer, Feature.VERSION_1)
    assert not has_feature(offer, Feature.SR_IOV)
    assert not has_feature(device.features, Feature.SR_IOV)


class CtrlVqWithheld(NetDevice):
    """A broken device: offers the control-queue features but not VIRTIO_NET_F_CTRL_VQ."""

    def offered_features(self) -> int:
        return super().offered_features() & ~feature_mask(NetFeature.CTRL_VQ)


@pytest.mark.spec("FEAT-DRV-002", "FEAT-DRV-001")
@pytest.mark.parametrize("transport", ["mmio", "page"])
def test_the_net_driver_drops_offered_features_whose_prerequisite_is_missing(
    transport: str,
) -> None:
    side = net_side(MAC_A, None, transport=transport, device_class=CtrlVqWithheld)
    handle = side.handle
    assert isinstance(handle, BusDevice)
    offer = handle.transport.get_features()
    assert all(has_feature(offer, bit) for bit in CTRL_DEPENDENT)  # the device did offer them
    assert handle.driver is side.driver and handle.transport.get_status() == LIVE
    for bit in (NetFeature.CTRL_VQ, *CTRL_DEPENDENT):
        assert not has_feature(handle.features, bit), NetFeature(bit).name
    assert has_feature(handle.features, NetFeature.MAC)  # the rest of the offer is kept
    assert side.driver.ctrlq is None


@pytest.mark.spec("NET-DRV-013")
@pytest.mark.parametrize("transport", ["mmio", "page"])
def test_the_net_driver_takes_rx_extra_only_with_the_control_queue(transport: str) -> None:
    broken = net_side(MAC_A, None, transport=transport, device_class=CtrlVqWithheld).handle
    assert isinstance(broken, BusDevice)
    assert has_feature(broken.transport.get_features(), NetFeature.CTRL_RX_EXTRA)
    assert not has_feature(broken.features, NetFeature.CTRL_VQ)
    assert not has_feature(broken.features, NetFeature.CTRL_RX_EXTRA)
    good = net_side(MAC_A, None, transport=transport).handle
    assert has_feature(good.features, NetFeature.CTRL_RX_EXTRA)  # kept when it may be


@pytest.mark.spec("FEAT-DRV-001")
def test_dropping_an_unmet_bit_also_drops_the_bits_that_need_it() -> None:
    requires = {3: (4,), 4: (5,), 6: (7,)}
    assert without_unmet_requirements(feature_mask(3, 4, 6, 7, 9), requires) == feature_mask(
        6, 7, 9
    )
    assert without_unmet_requirements(feature_mask(3, 4, 5), requires) == feature_mask(3, 4, 5)


@pytest.mark.spec("FEAT-DEV-004")
@pytest.mark.parametrize("transport", ["mmio", "page"])
def test_the_same_features_negotiate_again_after_a_reset(transport: str) -> None:
    platform = Platform()
    driver = EchoDriver("net", DeviceId.NET)
    platform.bus.register_driver(driver)
    if transport == "mmio":
        core = platform.add_mmio(EchoDevice(DeviceId.NET))
        (device,) = scan_mmio(platform.space, platform.windows, platform.bus).registered
    else:
        core = platform.add_page_device(EchoDevice(DeviceId.NET))
        scan = scan_devpage(platform.mem, PAGE_ADDR, platform.host.hypercall, platform.bus)
        (device,) = scan.registered
    first = device.features
    assert device.transport.get_status() == LIVE
    for _ in range(3):
        platform.bus.unregister_driver(driver)
        assert core.status == 0
        platform.bus.register_driver(driver)
        assert device.driver is driver and device.probe_error is None
        assert device.features == first == core.driver_features
        assert device.transport.get_status() == LIVE
    assert core.violations == []


class ChainRecorder(EchoDevice):
    """An echo device that keeps the segments of every chain it serves."""

    def __init__(self) -> None:
        super().__init__(DeviceId.NET, queues=(8,))
        self.chains: list[tuple[tuple[Segment, ...], tuple[Segment, ...]]] = []

    def queue_notify(self, index: int) -> None:
        context = self.context
        queue = context.queues[index] if context is not None else None
        assert context is not None and queue is not None
        while (chain := queue.pop()) is not None:
            self.chains.append((chain.readable, chain.writable))
            payload = chain.read_payload(context.mem)
            queue.push_used(chain.head, chain.write_payload(context.mem, payload))
        context.signal_used(index)


@pytest.mark.spec("FEAT-DRV-009")
def test_without_access_platform_the_driver_passes_guest_physical_addresses() -> None:
    """Every address the device is given is one it dereferences directly in guest memory.

    The ring areas programmed in the queue registers are where the driver laid its ring,
    and each descriptor names the guest address of the caller's bytes: no offset, handle
    or translation stands between them (there is no IOMMU without ACCESS_PLATFORM).
    """
    platform = Platform()
    backend = ChainRecorder()
    core = platform.add_mmio(backend)
    driver = EchoDriver("net", DeviceId.NET, queue_count=1)
    platform.bus.register_driver(driver)
    (device,) = scan_mmio(platform.space, platform.windows, platform.bus).registered
    assert not has_feature(device.transport.get_features(), Feature.ACCESS_PLATFORM)
    ring = device.queues[0].layout
    programmed = core.queues[0]
    assert (programmed.desc, programmed.driver, programmed.device) == (
        ring.desc, ring.avail, ring.used,
    )
    out, room = platform.allocator.alloc(5, 8), platform.allocator.alloc(5, 8)
    assert out is not None and room is not None
    platform.mem.write(out, b"phys!")
    device.queues[0].add_sgs([Segment(out, 5)], [Segment(room, 5)], "token")
    device.queues[0].kick()
    assert backend.chains == [((Segment(out, 5),), (Segment(room, 5),))]
    assert platform.mem.read(room, 5) == b"phys!"


@pytest.mark.spec("FEAT-DEV-006")
def test_a_device_does_not_operate_for_a_modern_driver_refusing_version_1() -> None:
    platform = Platform()
    core = platform.add_mmio(EchoDevice(DeviceId.NET))
    transport = MmioTransport(platform.space, platform.windows[0])
    transport.set_status(Status.ACKNOWLEDGE)
    transport.set_status(Status.ACKNOWLEDGE | Status.DRIVER)
    transport.set_features(transport.get_features() & ~feature_mask(Feature.VERSION_1))
    transport.set_status(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK)
    assert not transport.get_status() & Status.FEATURES_OK
    transport.set_status(LIVE)
    assert not core.active and not transport.get_status() & Status.DRIVER_OK
