"""Hostile input to the virtio-net device and driver: typed outcomes, and both keep working.

Device side: a raw driver (the test, through the split ring's own API) hands the
device bad transmit chains, bad receive buffers and bad control commands; each must
raise the named error into `device.errors`, count the drop, return the buffer, and
leave the device serving the next good request. Driver side: the test plays the
device on the receive ring and returns lies (num_buffers 0 or too many, short used
lengths, unfilled merged buffers, forbidden header fields, oversize frames); the
driver must drop the packet with the named error and receive the next good one.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import pytest
from direct_bus import DirectDevice, bind
from hypothesis import given, settings
from hypothesis import strategies as st
from net_rig import MAC_A, MAC_B, frame, net_side

from impl.alloc import GuestAllocator
from impl.chain import Segment
from impl.driver import DriverQueue, VirtioDevice
from impl.errors import (
    AvailIndexJump,
    DeviceError,
    DriverError,
    NetConfigWrite,
    NetCtrlBadValue,
    NetCtrlMalformed,
    NetCtrlUnsupported,
    NetRxBadHeader,
    NetRxBufferNotFilled,
    NetRxBufferNotWritable,
    NetRxBufferTooSmall,
    NetRxFrameTooLong,
    NetRxNumBuffersInvalid,
    NetRxRunt,
    NetRxUsedTooShort,
    NetTxBadChecksumOffsets,
    NetTxBadHeader,
    NetTxHeaderTooShort,
    NetTxRunt,
    NetTxTooLong,
    NetTxWritable,
)
from impl.memory import GuestMemory
from impl.net_device import DropReason, NetDevice
from impl.net_driver import DRIVER_FEATURES
from impl.net_header import NetHdr
from impl.spec import (
    NET_HDR_SIZE,
    NET_MAX_FRAME,
    NET_QUEUE_CTRL,
    NET_QUEUE_RX,
    NET_QUEUE_TX,
    NetAck,
    NetCtrlClass,
    NetCtrlRx,
    NetFeature,
    NetGso,
    NetHdrFlag,
    feature_mask,
)
from impl.testing import MockDeviceRing, MockDriverRing

MEM = 2 << 20
GOOD = frame(MAC_B, MAC_A, 100, seed=7)


class Recorder:
    """A port that keeps what the device transmits."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def attach(self, sink: Any) -> None:
        self.sink = sink

    def transmit(self, data: bytes) -> None:
        self.frames.append(data)


class RawDriver:
    """A driver that only finds the queues: the test writes every buffer itself."""

    name = "raw"
    id_table = ()

    def __init__(self, feature_table: int) -> None:
        self.feature_table = feature_table

    def validate(self, vdev: VirtioDevice, features: int) -> int:
        return features

    def probe(self, vdev: VirtioDevice) -> None:
        self.queues: list[DriverQueue] = vdev.find_vqs(["rx", "tx", "ctrl"], [None, None, None])

    def remove(self, vdev: VirtioDevice) -> None:
        pass

    def config_changed(self, vdev: VirtioDevice) -> None:
        pass


class RawGuest:
    """A NetDevice driven through raw rings by the test."""

    def __init__(self, known: int = DRIVER_FEATURES, **options: Any) -> None:
        self.mem = GuestMemory(MEM)
        self.alloc = GuestAllocator(0x1000, MEM)
        self.port = Recorder()
        self.device = NetDevice(MAC_A, self.port, queue_size=16, **options)
        self.driver = RawDriver(known)
        self.handle: DirectDevice = bind(self.driver, self.device, self.mem, self.alloc)

    def put(self, data: bytes) -> Segment:
        addr = self.alloc.alloc(max(len(data), 1), 8)
        assert addr is not None
        self.mem.write(addr, data)
        return Segment(addr, len(data))

    def room(self, length: int) -> Segment:
        return self.put(bytes(length))

    def submit(self, queue: int, out: list[Segment], in_: list[Segment]) -> Hashable:
        token = object()
        q = self.driver.queues[queue]
        q.add_sgs(out, in_, token)
        q.kick()
        return token

    def used(self, queue: int) -> list[tuple[Hashable, int]]:
        q = self.driver.queues[queue]
        got = []
        while (item := q.get_buf()) is not None:
            got.append(item)
        return got

    def tx(self, *pieces: bytes, writable: int = 0) -> list[tuple[Hashable, int]]:
        in_ = [self.room(writable)] if writable else []
        self.submit(NET_QUEUE_TX, [self.put(p) for p in pieces], in_)
        return self.used(NET_QUEUE_TX)

    def last_error(self) -> Exception:
        return self.device.errors[-1]

    def assert_tx_works(self) -> None:
        before = len(self.port.frames)
        self.tx(NetHdr().pack(), GOOD)
        assert self.port.frames[before:] == [GOOD]


def hdr(**fields: int) -> bytes:
    return NetHdr(**fields).pack()


# --- transmit ---------------------------------------------------------------------------
@pytest.mark.spec("NET-DRV-014")
def test_tx_header_shorter_than_negotiated() -> None:
    guest = RawGuest()
    used = guest.tx(hdr()[:5])
    assert [n for _, n in used] == [0]
    assert isinstance(guest.last_error(), NetTxHeaderTooShort)
    assert guest.device.stats.drops[DropReason.TX_MALFORMED] == 1
    guest.assert_tx_works()


def test_tx_with_device_writable_descriptor() -> None:
    guest = RawGuest()
    used = guest.tx(hdr(), GOOD, writable=64)
    assert [n for _, n in used] == [0]
    assert isinstance(guest.last_error(), NetTxWritable)
    assert guest.port.frames == []
    guest.assert_tx_works()


@pytest.mark.spec("NET-DRV-008", "NET-DEV-006")
def test_tx_above_mtu_dropped_at_mtu_forwarded() -> None:
    guest = RawGuest(mtu=1500)
    guest.tx(hdr(), frame(MAC_B, MAC_A, 1515))
    assert isinstance(guest.last_error(), NetTxTooLong)
    guest.tx(hdr(), frame(MAC_B, MAC_A, 1514))
    assert [len(f) for f in guest.port.frames] == [1514]
    guest.assert_tx_works()


def test_tx_above_64k_dropped() -> None:
    guest = RawGuest()
    guest.tx(hdr(), frame(MAC_B, MAC_A, NET_MAX_FRAME + 1))
    assert isinstance(guest.last_error(), NetTxTooLong)
    guest.tx(hdr(), frame(MAC_B, MAC_A, NET_MAX_FRAME))
    assert [len(f) for f in guest.port.frames] == [NET_MAX_FRAME]


def test_tx_runt_dropped() -> None:
    guest = RawGuest()
    guest.tx(hdr(), b"\x01" * 13)
    assert isinstance(guest.last_error(), NetTxRunt)
    guest.assert_tx_works()


@pytest.mark.spec("NET-DRV-018", "NET-DRV-019", "NET-DRV-020", "NET-DRV-021", "NET-DRV-034")
@pytest.mark.parametrize("gso", [NetGso.TCPV4, NetGso.UDP, NetGso.TCPV6, NetGso.UDP_L4])
def test_tx_gso_without_feature(gso: NetGso) -> None:
    guest = RawGuest()
    guest.tx(hdr(gso_type=gso, gso_size=1400, flags=NetHdrFlag.NEEDS_CSUM), GOOD)
    assert isinstance(guest.last_error(), NetTxBadHeader)
    assert guest.port.frames == []
    guest.assert_tx_works()


@pytest.mark.spec("NET-DRV-016")
def test_tx_needs_csum_without_csum_feature() -> None:
    guest = RawGuest(csum=False)
    guest.tx(hdr(flags=NetHdrFlag.NEEDS_CSUM, csum_start=14, csum_offset=2), GOOD)
    assert isinstance(guest.last_error(), NetTxBadHeader)
    guest.assert_tx_works()


@pytest.mark.spec("NET-DRV-026", "NET-DRV-044", "NET-DRV-046")
@pytest.mark.parametrize(
    "flag", [NetHdrFlag.DATA_VALID, NetHdrFlag.RSC_INFO, NetHdrFlag.UDP_TUNNEL_CSUM]
)
def test_tx_flags_a_driver_may_not_set(flag: NetHdrFlag) -> None:
    guest = RawGuest()
    guest.tx(hdr(flags=flag), GOOD)
    assert isinstance(guest.last_error(), NetTxBadHeader)
    assert guest.port.frames == []
    guest.assert_tx_works()


TUNNEL_V4, TUNNEL_V6 = NetGso.UDP_TUNNEL_IPV4, NetGso.UDP_TUNNEL_IPV6


@pytest.mark.spec(
    "NET-DEV-022", "NET-DEV-024", "NET-DRV-027", "NET-DRV-028", "NET-DRV-043", "NET-DRV-047"
)
@pytest.mark.parametrize(
    ("gso", "flags"),
    [
        (TUNNEL_V4 | TUNNEL_V6 | NetGso.TCPV4, NetHdrFlag.NEEDS_CSUM),
        (TUNNEL_V4, NetHdrFlag.NEEDS_CSUM),
        (TUNNEL_V6 | NetGso.UDP, NetHdrFlag.NEEDS_CSUM),
        (TUNNEL_V4 | NetGso.TCPV4, NetHdrFlag.NEEDS_CSUM | NetHdrFlag.DATA_VALID),
    ],
)
def test_tx_udp_tunnel_gso_refused(gso: int, flags: int) -> None:
    guest = RawGuest()
    guest.tx(hdr(gso_type=gso, gso_size=1400, flags=flags, csum_start=14, csum_offset=6), GOOD)
    assert isinstance(guest.last_error(), NetTxBadHeader)
    assert guest.port.frames == []
    guest.assert_tx_works()


@pytest.mark.spec("NET-DRV-015")
def test_tx_num_buffers_not_zero() -> None:
    guest = RawGuest()
    guest.tx(hdr(num_buffers=1), GOOD)
    assert isinstance(guest.last_error(), NetTxBadHeader)
    guest.assert_tx_works()


@pytest.mark.spec("NET-DRV-033")
def test_tx_checksum_offsets_outside_frame() -> None:
    guest = RawGuest()
    guest.tx(hdr(flags=NetHdrFlag.NEEDS_CSUM, csum_start=90, csum_offset=20), GOOD)
    assert isinstance(guest.last_error(), NetTxBadChecksumOffsets)
    guest.assert_tx_works()


@pytest.mark.spec("NET-DEV-015", "NET-DEV-016", "NET-DEV-021")
def test_tx_unknown_flag_bits_and_hdr_len_are_ignored() -> None:
    guest = RawGuest()
    guest.tx(hdr(flags=0x40, hdr_len=9999, csum_start=5000, csum_offset=5000), GOOD)
    assert guest.port.frames == [GOOD]
    assert not guest.device.errors


def test_tx_ring_corruption_asks_for_reset() -> None:
    guest = RawGuest()
    ring = guest.handle.queues[NET_QUEUE_TX].ring
    hostile = MockDriverRing(guest.mem, ring.size, ring_base=ring.layout.desc)
    assert hostile.layout == ring.layout
    hostile.set_avail_idx(100)
    guest.device.queue_notify(NET_QUEUE_TX)
    assert isinstance(guest.handle.reset_requests[0], AvailIndexJump)
    guest.device.queue_notify(NET_QUEUE_TX)
    assert len(guest.handle.reset_requests) >= 1


# --- receive buffers ------------------------------------------------------------------
def test_rx_buffer_not_writable_is_returned_and_next_used() -> None:
    guest = RawGuest()
    guest.submit(NET_QUEUE_RX, [guest.room(2048)], [])
    guest.submit(NET_QUEUE_RX, [], [guest.room(2048)])
    guest.device.receive_frame(GOOD)
    used = guest.used(NET_QUEUE_RX)
    assert [n for _, n in used] == [0, NET_HDR_SIZE + len(GOOD)]
    assert isinstance(guest.device.errors[0], NetRxBufferNotWritable)
    assert guest.device.stats.rx_frames == 1


@pytest.mark.spec("NET-DRV-007")
def test_rx_buffer_too_small_for_the_mtu_without_mrg() -> None:
    guest = RawGuest(known=DRIVER_FEATURES & ~feature_mask(NetFeature.MRG_RXBUF), mtu=1500)
    guest.submit(NET_QUEUE_RX, [], [guest.room(NET_HDR_SIZE + 1513)])
    guest.submit(NET_QUEUE_RX, [], [guest.room(NET_HDR_SIZE + 1514)])
    guest.device.receive_frame(GOOD)
    used = guest.used(NET_QUEUE_RX)
    assert [n for _, n in used] == [0, NET_HDR_SIZE + len(GOOD)]
    assert isinstance(guest.device.errors[0], NetRxBufferTooSmall)


def test_rx_small_buffers_without_mrg_or_mtu() -> None:
    """Below 1526 bytes is only a SHOULD: small frames use the buffer, big ones are dropped."""
    guest = RawGuest(known=DRIVER_FEATURES & ~feature_mask(NetFeature.MRG_RXBUF))
    guest.submit(NET_QUEUE_RX, [], [guest.room(NET_HDR_SIZE + 13)])
    guest.submit(NET_QUEUE_RX, [], [guest.room(200)])
    guest.device.receive_frame(frame(MAC_A, MAC_B, 500))
    guest.device.receive_frame(GOOD)
    assert [n for _, n in guest.used(NET_QUEUE_RX)] == [0, NET_HDR_SIZE + len(GOOD)]
    assert isinstance(guest.device.errors[0], NetRxBufferTooSmall)
    assert guest.device.stats.drops[DropReason.OVERSIZE] == 1


@pytest.mark.spec("NET-DRV-052")
def test_rx_buffer_below_header_with_mrg() -> None:
    guest = RawGuest()
    guest.submit(NET_QUEUE_RX, [], [guest.room(NET_HDR_SIZE - 1)])
    guest.submit(NET_QUEUE_RX, [], [guest.room(64)])
    guest.submit(NET_QUEUE_RX, [], [guest.room(64)])
    guest.device.receive_frame(GOOD)
    used = guest.used(NET_QUEUE_RX)
    assert [n for _, n in used] == [0, 64, NET_HDR_SIZE + len(GOOD) - 64]
    assert isinstance(guest.device.errors[0], NetRxBufferTooSmall)


@pytest.mark.spec("NET-DEV-005")
def test_rx_frame_above_mtu_dropped() -> None:
    guest = RawGuest(mtu=1500)
    guest.submit(NET_QUEUE_RX, [], [guest.room(4096)])
    guest.device.receive_frame(frame(MAC_A, MAC_B, 1515))
    assert guest.device.stats.drops[DropReason.OVERSIZE] == 1
    guest.device.receive_frame(GOOD)
    assert [n for _, n in guest.used(NET_QUEUE_RX)] == [NET_HDR_SIZE + len(GOOD)]


def test_rx_frame_above_64k_and_runt_dropped() -> None:
    guest = RawGuest()
    guest.device.receive_frame(b"\0" * (NET_MAX_FRAME + 1))
    guest.device.receive_frame(b"\0" * 13)
    drops = guest.device.stats.drops
    assert drops[DropReason.OVERSIZE] == 1 and drops[DropReason.RUNT] == 1


def test_rx_backlog_bounded_then_drops_counted() -> None:
    guest = RawGuest(backlog_limit=3)
    for seed in range(5):
        guest.device.receive_frame(frame(MAC_A, MAC_B, 80, seed))
    assert len(guest.device.backlog) == 3
    assert guest.device.stats.drops[DropReason.BACKLOG_FULL] == 2
    for _ in range(3):
        guest.submit(NET_QUEUE_RX, [], [guest.room(2048)])
    assert len(guest.used(NET_QUEUE_RX)) == 3
    assert not guest.device.backlog


# --- control queue ----------------------------------------------------------------------
def ctrl(guest: RawGuest, command: bytes, ack_room: int = 1) -> tuple[int, int]:
    ack = guest.room(ack_room) if ack_room else None
    guest.submit(NET_QUEUE_CTRL, [guest.put(command)], [ack] if ack else [])
    [(_, written)] = guest.used(NET_QUEUE_CTRL)
    return written, guest.mem.read_u8(ack.addr) if ack else -1


@pytest.mark.spec("NET-DRV-058", "NET-DRV-060")
def test_ctrl_unknown_class_and_command() -> None:
    guest = RawGuest()
    assert ctrl(guest, bytes((9, 0))) == (1, NetAck.ERR)
    assert isinstance(guest.last_error(), NetCtrlUnsupported)
    assert ctrl(guest, bytes((NetCtrlClass.RX, 42, 1))) == (1, NetAck.ERR)
    assert isinstance(guest.last_error(), NetCtrlUnsupported)
    assert ctrl(guest, bytes((NetCtrlClass.RX, NetCtrlRx.PROMISC, 0))) == (1, NetAck.OK)
    assert guest.device.rx_filter.promisc is False


@pytest.mark.spec("NET-DRV-059")
def test_ctrl_command_of_feature_not_negotiated() -> None:
    guest = RawGuest(known=DRIVER_FEATURES & ~feature_mask(NetFeature.CTRL_RX_EXTRA))
    assert ctrl(guest, bytes((NetCtrlClass.RX, NetCtrlRx.NOBCAST, 1))) == (1, NetAck.ERR)
    assert isinstance(guest.last_error(), NetCtrlUnsupported)
    assert guest.device.rx_filter.nobcast is False


@pytest.mark.spec("NET-DRV-062")
def test_ctrl_truncated_commands() -> None:
    guest = RawGuest()
    assert ctrl(guest, bytes((NetCtrlClass.RX,))) == (1, NetAck.ERR)
    assert isinstance(guest.last_error(), NetCtrlMalformed)
    assert ctrl(guest, bytes((NetCtrlClass.RX, NetCtrlRx.PROMISC))) == (1, NetAck.ERR)
    table = bytes((NetCtrlClass.MAC, 0)) + (3).to_bytes(4, "little") + MAC_B
    assert ctrl(guest, table) == (1, NetAck.ERR)
    assert isinstance(guest.last_error(), NetCtrlMalformed)
    assert guest.device.rx_filter.unicast == frozenset()


def test_ctrl_without_ack_byte_is_returned_empty() -> None:
    guest = RawGuest()
    assert ctrl(guest, bytes((NetCtrlClass.RX, NetCtrlRx.PROMISC, 0)), ack_room=0) == (0, -1)
    assert isinstance(guest.last_error(), NetCtrlMalformed)
    assert guest.device.rx_filter.promisc is True
    assert ctrl(guest, bytes((NetCtrlClass.RX, NetCtrlRx.PROMISC, 0))) == (1, NetAck.OK)


def test_ctrl_vlan_id_out_of_range_or_truncated() -> None:
    guest = RawGuest()
    assert ctrl(guest, bytes((NetCtrlClass.VLAN, 0)) + (4096).to_bytes(2, "little")) == (1, 1)
    assert isinstance(guest.last_error(), NetCtrlBadValue)
    assert ctrl(guest, bytes((NetCtrlClass.VLAN, 0, 7))) == (1, NetAck.ERR)
    assert isinstance(guest.last_error(), NetCtrlMalformed)
    assert guest.device.rx_filter.vlans == frozenset()
    assert ctrl(guest, bytes((NetCtrlClass.VLAN, 0)) + (7).to_bytes(2, "little")) == (1, 0)
    assert guest.device.rx_filter.vlans == {7}


def test_ctrl_on_off_byte_out_of_range() -> None:
    guest = RawGuest()
    assert ctrl(guest, bytes((NetCtrlClass.RX, NetCtrlRx.ALLMULTI, 2))) == (1, NetAck.ERR)
    assert isinstance(guest.last_error(), NetCtrlBadValue)
    assert guest.device.rx_filter.allmulti is False


@pytest.mark.spec("NET-DRV-001")
def test_config_write_ignored() -> None:
    guest = RawGuest()
    guest.handle.write_config(0, b"\xaa" * 6)
    assert guest.handle.read_config(0, 6) == MAC_A
    assert isinstance(guest.last_error(), NetConfigWrite)


# --- a lying device, seen by the driver --------------------------------------------------
class Liar:
    """A NetDriver whose receive ring the test serves as the device."""

    def __init__(self, **options: Any) -> None:
        self.side = net_side(MAC_B, None, mem_size=MEM, queue_size=8, **options)
        self.ring = self.side.handle.device_queues[NET_QUEUE_RX]
        self.driver = self.side.driver

    def use(self, *pieces: bytes) -> None:
        """Pop one buffer per piece, write it, push it used with its length."""
        for piece in pieces:
            chain = self.ring.pop()
            assert chain is not None
            chain.write_payload(self.side.mem, piece)
            self.ring.push_used(chain.head, len(piece))

    def packet(self, header: NetHdr, data: bytes) -> None:
        self.use(header.pack() + data)

    def poll_error(self) -> Exception:
        self.driver.poll()
        assert not self.driver.frames
        return self.driver.errors[-1]

    def assert_still_receives(self) -> None:
        self.packet(NetHdr(num_buffers=1), GOOD)
        self.driver.poll()
        assert list(self.driver.frames) == [GOOD]


@pytest.mark.spec("NET-DEV-027")
def test_driver_num_buffers_zero() -> None:
    liar = Liar()
    liar.packet(NetHdr(num_buffers=0), GOOD)
    assert isinstance(liar.poll_error(), NetRxNumBuffersInvalid)
    liar.assert_still_receives()


@pytest.mark.spec("NET-DEV-027")
def test_driver_num_buffers_beyond_posted() -> None:
    liar = Liar()
    liar.packet(NetHdr(num_buffers=9), GOOD)
    assert isinstance(liar.poll_error(), NetRxNumBuffersInvalid)
    liar.assert_still_receives()


@pytest.mark.spec("NET-DEV-027")
def test_driver_num_buffers_more_than_used() -> None:
    liar = Liar()
    liar.packet(NetHdr(num_buffers=3), GOOD)
    assert isinstance(liar.poll_error(), NetRxNumBuffersInvalid)
    liar.assert_still_receives()


@pytest.mark.spec("NET-DEV-028")
def test_driver_num_buffers_not_one_without_mrg() -> None:
    liar = Liar(known=DRIVER_FEATURES & ~feature_mask(NetFeature.MRG_RXBUF))
    liar.packet(NetHdr(num_buffers=2), GOOD)
    assert isinstance(liar.poll_error(), NetRxNumBuffersInvalid)
    liar.assert_still_receives()


def test_driver_used_length_below_header() -> None:
    liar = Liar()
    liar.use(b"\0" * 5)
    assert isinstance(liar.poll_error(), NetRxUsedTooShort)
    liar.assert_still_receives()


def test_driver_merged_buffer_not_filled() -> None:
    liar = Liar(buf_size=128)
    first = NetHdr(num_buffers=2).pack() + GOOD[:50]
    liar.use(first, GOOD[50:])
    assert isinstance(liar.poll_error(), NetRxBufferNotFilled)
    liar.assert_still_receives()


def test_driver_header_flags_without_guest_csum() -> None:
    liar = Liar(known=DRIVER_FEATURES & ~feature_mask(NetFeature.GUEST_CSUM))
    liar.packet(NetHdr(num_buffers=1, flags=NetHdrFlag.DATA_VALID), GOOD)
    assert isinstance(liar.poll_error(), NetRxBadHeader)
    liar.packet(NetHdr(num_buffers=1, gso_type=NetGso.TCPV4), GOOD)
    assert isinstance(liar.poll_error(), NetRxBadHeader)
    liar.assert_still_receives()


def test_driver_needs_csum_offsets_outside_frame() -> None:
    liar = Liar()
    flags = NetHdrFlag.NEEDS_CSUM
    liar.packet(NetHdr(num_buffers=1, flags=flags, csum_start=90, csum_offset=30), GOOD)
    assert isinstance(liar.poll_error(), NetRxBadHeader)
    liar.assert_still_receives()


@pytest.mark.spec("NET-DEV-005")
def test_driver_frame_above_mtu() -> None:
    liar = Liar(mtu=1500, buf_size=4096)
    liar.packet(NetHdr(num_buffers=1), frame(MAC_B, MAC_A, 1515))
    assert isinstance(liar.poll_error(), NetRxFrameTooLong)
    liar.assert_still_receives()


def test_driver_runt_frame() -> None:
    liar = Liar()
    liar.packet(NetHdr(num_buffers=1), b"\1" * 10)
    assert isinstance(liar.poll_error(), NetRxRunt)
    liar.assert_still_receives()


def test_driver_used_length_beyond_buffer_breaks_it() -> None:
    liar = Liar(buf_size=128)
    chain = liar.ring.pop()
    assert chain is not None
    MockDeviceRing(liar.side.mem, liar.ring.layout).push(chain.head, 999)
    liar.driver.poll()
    assert liar.driver.broken
    assert liar.driver.error_counts["UsedLengthTooLong"] == 1


# --- random hostile traffic ---------------------------------------------------------------
pieces = st.lists(st.binary(max_size=40), min_size=1, max_size=4)
hostile_action = st.one_of(
    st.tuples(st.just("tx"), pieces, st.integers(0, 16)),
    st.tuples(st.just("ctrl"), st.binary(max_size=40), st.integers(0, 2)),
    st.tuples(st.just("rx"), st.lists(st.integers(1, 300), max_size=3), st.integers(0, 64)),
    st.tuples(st.just("frame"), st.binary(max_size=200), st.just(0)),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(hostile_action, max_size=12), st.booleans())
def test_random_hostile_requests_never_escape(actions: list[Any], mrg: bool) -> None:
    """Whatever a driver puts in the rings, only recorded errors result; tx still works."""
    known = DRIVER_FEATURES if mrg else DRIVER_FEATURES & ~feature_mask(NetFeature.MRG_RXBUF)
    guest = RawGuest(known=known)
    for kind, data, extra in actions:
        if kind == "tx":
            guest.tx(*data, writable=extra)
        elif kind == "ctrl":
            ack = [guest.room(extra)] if extra else []
            guest.submit(NET_QUEUE_CTRL, [guest.put(data)], ack)
            guest.used(NET_QUEUE_CTRL)
        elif kind == "rx":
            readable = [guest.room(extra)] if extra else []
            if readable or data:
                guest.submit(NET_QUEUE_RX, readable, [guest.room(n) for n in data])
        else:
            guest.device.receive_frame(data)
    assert all(isinstance(e, DriverError) for e in guest.device.errors)
    assert not guest.handle.reset_requests
    guest.assert_tx_works()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=140), st.integers(0, 3)), max_size=8))
def test_random_lies_on_the_receive_ring_never_escape(lies: list[tuple[bytes, int]]) -> None:
    """Whatever a device writes into receive buffers, the driver drops or delivers; no crash."""
    liar = Liar(buf_size=128)
    for data, buffers in lies:
        for _ in range(max(buffers, 1)):
            liar.use(data[:128])
        liar.driver.poll()
    assert all(isinstance(e, DeviceError) for e in liar.driver.errors)
    liar.driver.frames.clear()
    liar.assert_still_receives()
