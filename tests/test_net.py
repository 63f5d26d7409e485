"""virtio-net one rule at a time: header, config, filter, control queue, link, backends."""

from __future__ import annotations

import io
from typing import Any

import pytest
from direct_bus import bind
from hypothesis import given
from hypothesis import strategies as st
from net_rig import BUS_TRANSPORTS, MAC_A, MAC_B, frame, net_pair, net_side

from impl.alloc import GuestAllocator
from impl.errors import (
    NetBadConfig,
    NetDeviceSetup,
    NetFeatureMissing,
    NetFrameSize,
    NetLinkDown,
    PcapFormatError,
)
from impl.memory import GuestMemory
from impl.net_backend import Loopback, Wire
from impl.net_config import NetConfig
from impl.net_csum import checksums_valid, complete_checksum, ones_complement_sum
from impl.net_device import DropReason, NetDevice
from impl.net_driver import DRIVER_FEATURES, LOCAL_ADMIN_MAC, NetDriver
from impl.net_filter import BROADCAST, RxFilter
from impl.net_header import NetHdr, net_hdr_size
from impl.pcap import PcapWriter, read_pcap
from impl.spec import (
    NET_HDR_LEGACY_SIZE,
    NET_HDR_SIZE,
    Feature,
    NetCtrlRx,
    NetDuplex,
    NetFeature,
    NetHdrFlag,
    NetStatus,
    feature_mask,
    has_feature,
)

u16 = st.integers(0, 0xFFFF)
u8 = st.integers(0, 0xFF)
MCAST = bytes.fromhex("01005e000001")
OTHER = bytes.fromhex("525400000009")


# --- header -----------------------------------------------------------------------------
@given(st.tuples(u8, u8, u16, u16, u16, u16, u16))
def test_header_round_trips_in_both_forms(fields: tuple[int, ...]) -> None:
    names = ("flags", "gso_type", "hdr_len", "gso_size", "csum_start", "csum_offset")
    hdr = NetHdr(**dict(zip(names, fields[:6], strict=True)), num_buffers=fields[6])
    assert NetHdr.unpack(hdr.pack(NET_HDR_SIZE)) == hdr
    legacy = NetHdr.unpack(hdr.pack(NET_HDR_LEGACY_SIZE))
    assert legacy == NetHdr(**dict(zip(names, fields[:6], strict=True)))
    assert hdr.pack(NET_HDR_SIZE)[:NET_HDR_LEGACY_SIZE] == hdr.pack(NET_HDR_LEGACY_SIZE)


def test_header_layout_is_little_endian() -> None:
    raw = NetHdr(flags=1, gso_type=4, hdr_len=0x0102, csum_start=0x0304, num_buffers=5).pack()
    assert raw == bytes((1, 4, 2, 1, 0, 0, 4, 3, 0, 0, 5, 0))


@pytest.mark.spec("NET-DRV-053")
def test_header_size_follows_features() -> None:
    assert net_hdr_size(feature_mask(Feature.VERSION_1)) == NET_HDR_SIZE
    assert net_hdr_size(feature_mask(NetFeature.MRG_RXBUF)) == NET_HDR_SIZE
    assert net_hdr_size(0) == NET_HDR_LEGACY_SIZE


# --- config and probe -------------------------------------------------------------------
@pytest.mark.spec(
    "NET-DEV-002", "NET-DEV-004", "NET-DRV-002", "NET-DRV-003", "NET-DRV-005", "NET-DRV-006"
)
def test_probe_reads_mac_mtu_and_link() -> None:
    side = net_side(MAC_A, None, mtu=9000, link_up=False)
    assert side.handle.has_feature(NetFeature.MAC)
    assert side.driver.mac == MAC_A and side.driver.mtu == 9000
    assert side.driver.link_up is False
    assert side.handle.has_feature(NetFeature.MTU)
    assert side.handle.read_config(10, 2) == (9000).to_bytes(2, "little")
    with pytest.raises(NetDeviceSetup):
        NetDevice(MAC_A, mtu=67)


IPV6_MIN_MTU = 1280
"""RFC 8200's minimum link MTU, the figure §5.1.4.1 asks an offered mtu to reach."""


@pytest.mark.spec("NET-DEV-003")
@given(st.integers(0, 70000))
def test_an_offered_mtu_is_at_least_the_ipv6_minimum(mtu: int) -> None:
    try:
        device = NetDevice(MAC_A, mtu=mtu)
    except NetDeviceSetup:
        assert not IPV6_MIN_MTU <= mtu <= 0xFFFF
        return
    assert device.offered_features() >> NetFeature.MTU & 1
    assert IPV6_MIN_MTU <= int.from_bytes(device.read_config(10, 2), "little") == mtu


@pytest.mark.spec("NET-DEV-003")
def test_the_smallest_offered_mtu_reaches_the_driver() -> None:
    side = net_side(MAC_A, None, mtu=IPV6_MIN_MTU)
    assert side.driver.mtu == IPV6_MIN_MTU and side.handle.has_feature(NetFeature.MTU)
    with pytest.raises(NetDeviceSetup):
        NetDevice(MAC_A, mtu=IPV6_MIN_MTU - 1)


@pytest.mark.spec("NET-DRV-004")
def test_without_mac_feature_the_driver_uses_a_local_address() -> None:
    side = net_side(MAC_A, None, known=DRIVER_FEATURES & ~feature_mask(NetFeature.MAC))
    assert side.driver.mac == LOCAL_ADMIN_MAC
    assert side.driver.mac[0] & 0x02 and not side.driver.mac[0] & 0x01


@pytest.mark.spec("NET-DRV-005")
def test_without_status_feature_the_link_is_assumed_up() -> None:
    known = DRIVER_FEATURES & ~feature_mask(NetFeature.STATUS)
    side = net_side(MAC_A, None, known=known, link_up=False)
    assert side.driver.link_up is True


class MtuOutOfRange(NetDevice):
    """A device offering VIRTIO_NET_F_MTU with an mtu of 20 (it breaks NET-DEV-002)."""

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, mtu=1500, **options)
        self.mtu = 20


@pytest.mark.spec("NET-DEV-002", "FEAT-DRV-002")
@pytest.mark.parametrize("transport", ["direct", *BUS_TRANSPORTS])
def test_driver_validates_mtu_and_does_not_accept_it_out_of_range(transport: str) -> None:
    """`validate` reads the offered mtu before FEATURES_OK and clears VIRTIO_NET_F_MTU:
    the device is still bound, without an mtu, and frames of the default size flow."""
    a = net_side(MAC_A, None, transport=transport, device_class=MtuOutOfRange)
    assert has_feature(a.device.offered_features(), NetFeature.MTU)
    assert not a.handle.has_feature(NetFeature.MTU)
    assert a.driver.mtu is None and a.driver.error_counts["NetBadConfig"] == 1
    assert isinstance(a.driver.errors[-1], NetBadConfig)


@pytest.mark.spec("NET-DEV-002")
def test_driver_rejects_mtu_changed_out_of_range_after_validate() -> None:
    """An mtu in range when validated and out of range when probe reads it (the device
    also broke NET-DEV-004) fails probe."""

    class Changing(NetDevice):
        def features_accepted(self, features: int) -> None:
            self.mtu = 20

    with pytest.raises(NetBadConfig):
        net_side_with(Changing(MAC_A, mtu=1500))


def net_side_with(device: NetDevice) -> None:
    mem = GuestMemory(1 << 20)
    alloc = GuestAllocator(0x1000, 1 << 20)
    bind(NetDriver(mem, alloc), device, mem, alloc)


# --- link status (config interrupt) ---------------------------------------------------
@pytest.mark.spec("NET-DRV-005")
def test_link_down_reaches_driver_and_stops_delivery() -> None:
    a, b, _ = net_pair()
    b.device.set_link(False)
    assert b.driver.link_up is False and b.handle.config_interrupts == 1
    a.driver.send(frame(MAC_B, MAC_A, 64))
    assert b.driver.receive() is None
    assert b.device.stats.drops[DropReason.LINK_DOWN] == 1
    with pytest.raises(NetLinkDown):
        b.driver.send(frame(MAC_A, MAC_B, 64))
    b.device.set_link(True)
    a.driver.send(frame(MAC_B, MAC_A, 64))
    assert b.driver.receive() == frame(MAC_B, MAC_A, 64)


@pytest.mark.spec("NET-DEV-052", "NET-DRV-066", "NET-DRV-067")
def test_announce_is_acknowledged_through_the_control_queue() -> None:
    side = net_side(MAC_A, None)
    side.device.announce()
    assert side.driver.announces == 1
    assert not side.device.status & NetStatus.ANNOUNCE


# --- receive filter ----------------------------------------------------------------------
@pytest.mark.spec(
    "NET-DEV-033",
    "NET-DEV-034",
    "NET-DEV-035",
    "NET-DEV-037",
    "NET-DEV-038",
    "NET-DEV-039",
    "NET-DEV-040",
    "NET-DEV-041",
    "NET-DEV-042",
    "NET-DEV-043",
    "NET-DEV-044",
    "NET-DEV-048",
)
def test_filter_rules() -> None:
    f = RxFilter(mac=MAC_A, promisc=False)
    assert f.accepts(MAC_A) and f.accepts(BROADCAST) and not f.accepts(OTHER)
    assert not f.accepts(MCAST)
    f.allmulti = True
    assert f.accepts(MCAST)
    f.nomulti = True
    assert not f.accepts(MCAST) and f.accepts(BROADCAST)
    f.nobcast = True
    assert not f.accepts(BROADCAST)
    f.alluni = True
    assert f.accepts(OTHER)
    f.nouni = True
    assert not f.accepts(OTHER) and not f.accepts(MAC_A)
    f.promisc = True
    assert all(f.accepts(mac) for mac in (OTHER, MCAST, BROADCAST))


@pytest.mark.spec("NET-DEV-032", "NET-DEV-036")
def test_every_rx_mode_command_is_supported() -> None:
    side = net_side(MAC_A, None)
    names = {
        NetCtrlRx.PROMISC: "promisc",
        NetCtrlRx.ALLMULTI: "allmulti",
        NetCtrlRx.ALLUNI: "alluni",
        NetCtrlRx.NOMULTI: "nomulti",
        NetCtrlRx.NOUNI: "nouni",
        NetCtrlRx.NOBCAST: "nobcast",
    }
    for mode, name in names.items():
        for on in (True, False, True):
            assert side.driver.set_rx_mode(mode, on)
            assert getattr(side.device.rx_filter, name) is on
    assert not side.device.errors


@pytest.mark.spec("NET-DRV-051", "NET-DRV-052")
def test_default_receive_buffer_sizes() -> None:
    plain = net_side(MAC_A, None, known=DRIVER_FEATURES & ~feature_mask(NetFeature.MRG_RXBUF))
    assert plain.driver.rx_format.buf_size >= NET_HDR_SIZE + 1514
    merged = net_side(MAC_A, None)
    assert merged.driver.rx_format.buf_size >= NET_HDR_SIZE


@pytest.mark.spec("NET-DEV-045", "NET-DEV-046", "NET-DRV-062")
def test_mac_table_through_the_control_queue() -> None:
    a, b, _ = net_pair()
    assert b.driver.set_rx_mode(NetCtrlRx.PROMISC, False)
    assert b.device.rx_filter.unicast == frozenset()
    assert b.driver.set_mac_table([OTHER], [MCAST])
    for dst in (OTHER, MCAST, bytes.fromhex("525400000077")):
        a.driver.send(frame(dst, MAC_A, 64))
    got = [b.driver.receive(), b.driver.receive(), b.driver.receive()]
    assert got == [frame(OTHER, MAC_A, 64), frame(MCAST, MAC_A, 64), None]
    assert b.device.stats.drops[DropReason.FILTERED] == 1
    b.device.reset()
    assert b.device.rx_filter.unicast == frozenset() and b.device.rx_filter.promisc


@pytest.mark.spec("NET-DEV-047", "NET-DRV-061")
def test_mac_addr_set_updates_config_space() -> None:
    side = net_side(MAC_A, None)
    assert side.driver.set_mac_address(OTHER)
    assert side.handle.read_config(0, 6) == OTHER and side.driver.mac == OTHER


@pytest.mark.spec("NET-DRV-058", "NET-DRV-059", "NET-DRV-060")
def test_driver_refuses_commands_not_negotiated() -> None:
    known = DRIVER_FEATURES & ~feature_mask(NetFeature.CTRL_RX, NetFeature.CTRL_RX_EXTRA)
    side = net_side(MAC_A, None, known=known)
    with pytest.raises(NetFeatureMissing):
        side.driver.set_rx_mode(NetCtrlRx.PROMISC, False)
    with pytest.raises(NetFeatureMissing):
        side.driver.set_rx_mode(NetCtrlRx.NOBCAST, True)
    with pytest.raises(NetFeatureMissing):
        side.driver.set_mac_table([], [])


# --- transmit -----------------------------------------------------------------------------
@pytest.mark.spec("NET-DRV-008")
def test_driver_refuses_frames_outside_the_mtu() -> None:
    side = net_side(MAC_A, Loopback(), mtu=1500)
    with pytest.raises(NetFrameSize):
        side.driver.send(frame(MAC_A, MAC_B, 1515))
    with pytest.raises(NetFrameSize):
        side.driver.send(b"\0" * 13)


@given(st.binary(min_size=20, max_size=200), st.integers(0, 10))
def test_completed_checksum_verifies(payload: bytes, start: int) -> None:
    data = payload[:start] + b"\0\0" + payload[start + 2 :]
    done = complete_checksum(data, start, 0)
    assert done is not None and ones_complement_sum(done[start:]) == 0xFFFF
    assert complete_checksum(data, len(data) - 1, 0) is None


# --- backends -----------------------------------------------------------------------------
def test_loopback_returns_frames_to_the_sender() -> None:
    side = net_side(MAC_A, Loopback())
    sent = [frame(MAC_A, MAC_A, n, n) for n in (14, 60, 1514, 9000)]
    for f in sent:
        side.driver.send(f)
    got = [side.driver.receive() for _ in sent]
    assert got == sent


def test_wire_counts_frames_to_an_empty_end() -> None:
    wire = Wire()
    side = net_side(MAC_A, wire.a)
    side.driver.send(frame(MAC_B, MAC_A, 64))
    assert wire.unattached == 1 and side.device.stats.tx_frames == 1


def test_pcap_round_trip_and_bad_files() -> None:
    stream = io.BytesIO()
    writer = PcapWriter(stream)
    frames = [frame(MAC_A, MAC_B, n) for n in (14, 64, 1514)]
    for f in frames:
        writer.record(f)
    stream.seek(0)
    assert [f for _, f in read_pcap(stream)] == frames
    with pytest.raises(PcapFormatError):
        list(read_pcap(io.BytesIO(b"\0" * 24)))
    with pytest.raises(PcapFormatError):
        list(read_pcap(io.BytesIO(stream.getvalue()[:-3])))


def test_frames_before_driver_ok_and_after_reset_are_counted() -> None:
    device = NetDevice(MAC_A)
    device.receive_frame(frame(MAC_A, MAC_B, 64))
    assert device.stats.drops[DropReason.NOT_READY] == 1
    side = net_side(MAC_A, None, auto_refill=False)
    for _ in range(side.handle.queues[0].size + 2):
        side.device.receive_frame(frame(MAC_A, MAC_B, 64))
    assert len(side.device.backlog) == 2
    side.device.reset()
    assert side.device.stats.drops[DropReason.RESET] == 2


@pytest.mark.spec("NET-DEV-013", "NET-DEV-014")
def test_no_control_queue_means_no_rx_extra_or_hash_report() -> None:
    offered = NetDevice(MAC_A, ctrl_vq=False).offered_features()
    for bit in (NetFeature.CTRL_RX_EXTRA, NetFeature.HASH_REPORT, NetFeature.CTRL_VQ):
        assert not offered >> bit & 1
    assert NetDevice(MAC_A).offered_features() >> NetFeature.CTRL_RX_EXTRA & 1


@pytest.mark.spec("NET-DEV-025", "NET-DEV-049")
def test_vlan_tagged_and_badly_checksummed_frames_pass_unchanged() -> None:
    a, b, _ = net_pair(known=DRIVER_FEATURES & ~feature_mask(NetFeature.CTRL_VLAN))
    tagged = MAC_B + MAC_A + bytes.fromhex("8100 0064 0800") + bytes(46)
    bad_ip = MAC_B + MAC_A + bytes.fromhex("0800 4500 001c 0001 0000 4001 dead") + bytes(28)
    for f in (tagged, bad_ip):
        a.driver.send(f)
        assert b.driver.receive() == f


@pytest.mark.spec("NET-DRV-063")
def test_empty_mac_tables_are_accepted() -> None:
    side = net_side(MAC_A, None)
    assert side.driver.set_mac_table([], [])
    assert side.device.rx_filter.unicast == frozenset() == side.device.rx_filter.multicast


@given(st.binary(min_size=6, max_size=6), u16, u16, u16, st.integers(0, 0xFFFFFFFF), u8)
def test_config_round_trips(
    mac: bytes, status: int, pairs: int, mtu: int, speed: int, duplex: int
) -> None:
    config = NetConfig(
        mac=mac, status=status, max_virtqueue_pairs=pairs, mtu=mtu, speed=speed, duplex=duplex
    )
    assert NetConfig.unpack(config.pack()) == config
    assert len(config.pack()) == NetConfig.SIZE


def tagged_frame(vid: int) -> bytes:
    return MAC_B + MAC_A + (0x8100).to_bytes(2, "big") + vid.to_bytes(2, "big") + bytes(48)


@pytest.mark.spec("NET-DEV-050")
def test_vlan_table_through_the_control_queue() -> None:
    a, b, _ = net_pair()
    a.driver.send(tagged_frame(100))
    assert b.driver.receive() is None
    assert b.device.stats.drops[DropReason.FILTERED] == 1
    assert b.driver.add_vlan(100)
    for vid in (100, 101):
        a.driver.send(tagged_frame(vid))
    a.driver.send(frame(MAC_B, MAC_A, 64))
    got = [b.driver.receive() for _ in range(3)]
    assert got == [tagged_frame(100), frame(MAC_B, MAC_A, 64), None]
    assert b.driver.del_vlan(100)
    a.driver.send(tagged_frame(100))
    assert b.driver.receive() is None
    assert b.device.stats.drops[DropReason.FILTERED] == 3


def test_driver_finishes_a_partial_checksum_it_receives() -> None:
    side = net_side(MAC_A, None)
    ring = side.handle.device_queues[0]
    chain = ring.pop()
    assert chain is not None
    data = MAC_A + MAC_B + b"\x88\xb5" + bytes(2) + bytes(range(1, 39))
    hdr = NetHdr(flags=NetHdrFlag.NEEDS_CSUM, csum_start=14, csum_offset=0, num_buffers=1)
    chain.write_payload(side.mem, hdr.pack() + data)
    ring.push_used(chain.head, NET_HDR_SIZE + len(data))
    got = side.driver.receive()
    assert got is not None and ones_complement_sum(got[14:]) == 0xFFFF
    assert not side.driver.errors


def test_checksums_valid_only_for_verified_ipv4() -> None:
    ip = bytes.fromhex("4500001c00010000400100000a0000010a000002")
    ip = ip[:10] + (~ones_complement_sum(ip) & 0xFFFF).to_bytes(2, "big") + ip[12:]
    icmp = bytes.fromhex("0800000012340001")
    icmp = icmp[:2] + (~ones_complement_sum(icmp) & 0xFFFF).to_bytes(2, "big") + icmp[4:]
    good = MAC_A + MAC_B + b"\x08\x00" + ip + icmp
    assert checksums_valid(good)
    assert not checksums_valid(good[:-1] + b"\x02")
    assert not checksums_valid(MAC_A + MAC_B + b"\x88\xb5" + ip + icmp)


@pytest.mark.parametrize("transport", BUS_TRANSPORTS)
def test_driver_on_a_bus_uses_its_memory_and_unbinds_cleanly(transport: str) -> None:
    """Bound by the bus with no memory of its own; unbinding frees every buffer and ring;
    binding again (a reset and a new probe) works."""
    side = net_side(MAC_A, Loopback(), transport=transport, give_memory=False)
    sent = [frame(MAC_A, MAC_B, n, n) for n in (60, 1514, 9000)]
    for f in sent:
        side.driver.send(f)
    assert [side.driver.receive() for _ in sent] == sent
    assert side.driver.allocator.allocated
    assert side.bus is not None
    side.bus.unregister_driver(side.driver)
    assert side.driver.allocator.allocated == {}
    assert side.handle.detached == []
    side.bus.register_driver(side.driver)
    assert side.handle.driver is side.driver
    side.driver.send(sent[1])
    assert side.driver.receive() == sent[1]


@pytest.mark.spec("NET-DEV-010", "NET-DEV-011", "NET-DEV-012", "NET-DRV-010", "NET-DRV-011")
def test_speed_and_duplex() -> None:
    side = net_side(MAC_A, None, speed=1000, duplex=NetDuplex.FULL)
    assert (side.driver.speed, side.driver.duplex) == (1000, NetDuplex.FULL)
    with pytest.raises(NetDeviceSetup):
        NetDevice(MAC_A, speed=0x8000_0000)
    with pytest.raises(NetDeviceSetup):
        side.device.set_speed_duplex(100, NetDuplex.HALF)
    side.device.set_link(False)
    side.device.set_speed_duplex(100, NetDuplex.HALF)
    assert (side.driver.speed, side.driver.duplex) == (100, NetDuplex.HALF)
    side.device.speed, side.device.duplex = 0x8000_0000, 0x05
    side.device.set_link(True)
    assert (side.driver.speed, side.driver.duplex) == (None, None)
    plain = net_side(MAC_A, None)
    assert not plain.handle.has_feature(NetFeature.SPEED_DUPLEX) and plain.driver.speed is None
