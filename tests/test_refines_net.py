"""Two virtio-net drivers on two devices joined by a wire refine the link model (model/net.py).

A Hypothesis state machine sends frames of random sizes each way, lets receive rings
starve and refills them when it likes, delivers interrupts and polls when it likes,
unbinds and rebinds a driver (a device reset) on the bus transports, switches
promiscuous mode, and takes links down and up, over modern and legacy headers, with and
without MRG_RXBUF and VIRTIO_F_EVENT_IDX, with and without an MTU, over split rings and
(on "mmio-packed" and "page-packed") packed rings, whose queue sizes need not be powers
of two. After every step: the
frames each driver has received equal the model's (unchanged, in order), each
device's drop counters equal the model's, the backlogs agree, no side recorded an
error, every frame is accounted for, and used receive buffers never wait without an
interrupt having scheduled a poll (no lost wake-up).
"""

from __future__ import annotations

import pytest
from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from net_rig import MAC_A, MAC_B, PACKED_SUFFIX, PACKED_TRANSPORTS, TRANSPORTS, NetSide, net_side

from impl.errors import NetLinkDown
from impl.net_backend import Wire
from impl.net_device import DropReason, NetDevice
from impl.net_driver import DRIVER_FEATURES
from impl.spec import (
    ETH_HEADER_LEN,
    NET_HDR_LEGACY_SIZE,
    NET_HDR_SIZE,
    NET_MAX_FRAME,
    Feature,
    NetCtrlRx,
    NetFeature,
    feature_mask,
)
from model.net import SIDES, LinkModel

PATTERN = bytes(range(256)) * 300
MIN_FRAME = 60
MRG_BUFFER_SIZES = (128, 1536, 4096)
OTHER_DESTINATIONS = [
    bytes.fromhex("525400000077"), b"\xff" * 6, bytes.fromhex("01005e000001"),
]
"""A foreign unicast address, broadcast and a multicast group."""
LEGACY_OFF = feature_mask(Feature.VERSION_1, Feature.ANY_LAYOUT, NetFeature.MRG_RXBUF)


def pattern_frame(dst: bytes, src: bytes, length: int, seed: int) -> bytes:
    """A frame of `length` bytes whose body is a rotated byte ramp starting at `seed`."""
    body = PATTERN[seed : seed + length - ETH_HEADER_LEN]
    return dst + src + b"\x88\xb5" + body


class NetLinkMachine(RuleBasedStateMachine):
    """Lockstep refinement of two net drivers/devices over a wire against `LinkModel`."""

    def __init__(
        self, device_class: type[NetDevice] = NetDevice, transport: str = "direct"
    ) -> None:
        super().__init__()
        self.device_class = device_class
        self.transport = transport
        self.ready = False

    @initialize(
        mrg=st.booleans(),
        legacy=st.booleans(),
        event_idx=st.booleans(),
        mtu=st.sampled_from([None, 1500]),
        queue_size=st.sampled_from([8, 16]),
        backlog=st.integers(min_value=1, max_value=4),
        mrg_buf=st.sampled_from(MRG_BUFFER_SIZES),
        odd_size=st.booleans(),
    )
    def setup(
        self,
        mrg: bool,
        legacy: bool,
        event_idx: bool,
        mtu: int | None,
        queue_size: int,
        backlog: int,
        mrg_buf: int,
        odd_size: bool,
    ) -> None:
        """Build both sides with one feature set; receive rings start full.

        On a packed transport `odd_size` takes a queue size that is no power of two."""
        if odd_size and self.transport.endswith(PACKED_SUFFIX):
            queue_size -= 3
        direct_legacy = legacy and self.transport == "direct"
        legacy = not mrg and (direct_legacy or self.transport == "mmio-legacy")
        known = DRIVER_FEATURES & ~(LEGACY_OFF if legacy else 0)
        if not mrg:
            known &= ~feature_mask(NetFeature.MRG_RXBUF)
        if not event_idx:
            known &= ~feature_mask(Feature.EVENT_IDX)
        hdr = NET_HDR_LEGACY_SIZE if legacy else NET_HDR_SIZE
        self.max_frame = NET_MAX_FRAME if mtu is None else mtu + ETH_HEADER_LEN
        buf = mrg_buf if mrg else hdr + self.max_frame
        note(f"transport={self.transport} mrg={mrg} legacy={legacy} event_idx={event_idx}")
        note(f"mtu={mtu} buf={buf}")
        note(f"queue_size={queue_size} backlog={backlog}")
        mem = queue_size * buf + 4 * NET_MAX_FRAME + (1 << 18)
        wire = Wire()
        options = {
            "mem_size": mem, "known": known, "buf_size": buf, "queue_size": queue_size,
            "auto_refill": False, "mtu": mtu, "backlog_limit": backlog, "immediate": False,
            "device_class": self.device_class, "transport": self.transport,
        }
        self.sides: dict[str, NetSide] = {
            "a": net_side(MAC_A, wire.a, **options),  # type: ignore[arg-type]
            "b": net_side(MAC_B, wire.b, **options),  # type: ignore[arg-type]
        }
        self.macs = {"a": MAC_A, "b": MAC_B}
        self.received: dict[str, list[bytes]] = {side: [] for side in SIDES}

        def need(length: int) -> int:
            return -(-(hdr + length) // buf) if mrg else 1

        self.model = LinkModel(
            capacity=queue_size, backlog_limit=backlog, max_frame=self.max_frame, need=need,
            mergeable=mrg, addresses=(MAC_A, MAC_B),
        )
        for side in SIDES:
            self.model.refill(side)
        self.ready = True

    # --- rules ------------------------------------------------------------------------
    @precondition(lambda self: self.ready)
    @rule(side=st.sampled_from(SIDES), data=st.data(), seed=st.integers(0, 255))
    def send(self, side: str, data: st.DataObject, seed: int) -> None:
        """`side` sends one frame of a drawn length to its peer."""
        length = data.draw(
            st.one_of(
                st.sampled_from([MIN_FRAME, 64, 1514, self.max_frame]),
                st.integers(MIN_FRAME, self.max_frame),
            ),
            label="length",
        )
        peer = LinkModel.peer(side)
        dst = data.draw(st.sampled_from([self.macs[peer]] * 3 + OTHER_DESTINATIONS), label="dst")
        frame = pattern_frame(dst, self.macs[side], length, seed)
        note(f"{side} sends {length} bytes to {dst.hex()}")
        expected = self.model.send(side, frame)
        if expected:
            self.sides[side].driver.send(frame)
        else:
            with pytest.raises(NetLinkDown):
                self.sides[side].driver.send(frame)

    @precondition(lambda self: self.ready)
    @rule(side=st.sampled_from(SIDES), count=st.integers(2, 12), data=st.data())
    def burst(self, side: str, count: int, data: st.DataObject) -> None:
        """`side` sends `count` frames of one drawn length back to back (starves the peer)."""
        length = data.draw(st.sampled_from([MIN_FRAME, 1514, self.max_frame]), label="length")
        peer = LinkModel.peer(side)
        note(f"{side} sends {count} x {length} bytes")
        for seed in range(count):
            frame = pattern_frame(self.macs[peer], self.macs[side], length, seed)
            if self.model.send(side, frame):
                self.sides[side].driver.send(frame)
            else:
                with pytest.raises(NetLinkDown):
                    self.sides[side].driver.send(frame)

    @precondition(lambda self: self.ready)
    @rule(side=st.sampled_from(SIDES))
    def refill(self, side: str) -> None:
        """`side`'s driver posts every receive buffer it has."""
        self.sides[side].driver.refill()
        self.model.refill(side)

    @precondition(lambda self: self.ready)
    @rule(side=st.sampled_from(SIDES))
    def poll(self, side: str) -> None:
        """`side`'s driver polls its receive ring (NAPI), interrupted or not."""
        driver = self.sides[side].driver
        driver.poll()
        got = list(driver.frames)
        driver.frames.clear()
        expected = self.model.poll(side)
        assert [len(f) for f in got] == [len(f) for f in expected]
        assert got == expected
        self.received[side].extend(got)

    @precondition(lambda self: self.ready)
    @rule(side=st.sampled_from(SIDES), on=st.booleans())
    def promiscuous(self, side: str, on: bool) -> None:
        """`side`'s driver switches promiscuous mode through the control queue."""
        assert self.sides[side].driver.set_rx_mode(NetCtrlRx.PROMISC, on)
        self.model.set_promisc(side, on)

    @precondition(lambda self: self.ready and self.transport != "direct")
    @rule(side=st.sampled_from(SIDES))
    def rebind(self, side: str) -> None:
        """`side`'s driver is unbound (the device reset) and bound again by the bus."""
        self.sides[side].rebind()
        self.model.reset(side)

    @precondition(lambda self: self.ready)
    @rule(side=st.sampled_from(SIDES))
    def interrupt(self, side: str) -> None:
        """`side`'s pending interrupts are delivered now (the test chooses when)."""
        self.sides[side].deliver()
        self.model.interrupt(side)

    @precondition(lambda self: self.ready)
    @rule(side=st.sampled_from(SIDES), up=st.booleans())
    def link(self, side: str, up: bool) -> None:
        """`side`'s device link goes up or down (a config interrupt tells its driver)."""
        self.sides[side].device.set_link(up)
        self.model.set_link(side, up)

    # --- invariants ---------------------------------------------------------------------
    @invariant()
    def drops_match(self) -> None:
        """Each device's drop counters equal the model's; every frame is accounted for."""
        if not self.ready:
            return
        for side in SIDES:
            nic = self.model.nics[side]
            counted = {r.value: n for r, n in self.sides[side].device.stats.drops.items() if n}
            assert counted == dict(+(nic.drops + nic.tx_drops))
            assert self.sides[side].driver.link_up == nic.driver_link
            assert len(self.sides[side].device.backlog) == len(self.model.nics[side].backlog)
            assert self.model.accounted(side)

    @invariant()
    def no_errors(self) -> None:
        """Neither a conforming driver nor a conforming device complains."""
        if not self.ready:
            return
        for side in self.sides.values():
            assert not side.driver.errors, list(side.driver.errors)
            assert not side.device.errors, list(side.device.errors)
            assert not side.reset_requested()

    @invariant()
    def no_lost_wakeup(self) -> None:
        """Used receive buffers not yet polled imply a poll scheduled or an interrupt pending."""
        if not self.ready:
            return
        for side in self.sides.values():
            if side.driver.rxq.more_used():
                assert side.driver.napi_scheduled or side.pending()


REFINEMENT_IDS = (
    "NET-DEV-005", "NET-DEV-006", "NET-DEV-027", "NET-DEV-028", "NET-DEV-033", "NET-DEV-048",
    "NET-DRV-005", "NET-DRV-007", "NET-DRV-008", "NET-DRV-014", "NET-DRV-015", "NET-DRV-016",
    "NET-DRV-034", "NET-DRV-051", "NET-DRV-052", "NET-DRV-053",
)


@pytest.mark.spec(*REFINEMENT_IDS)
@pytest.mark.parametrize("transport", TRANSPORTS + PACKED_TRANSPORTS)
def test_two_drivers_over_a_wire_refine_the_link_model(transport: str) -> None:
    run_state_machine_as_test(lambda: NetLinkMachine(transport=transport))


def test_drop_reasons_in_model_exist_in_device() -> None:
    """The model's drop reasons are names the device counts under."""
    names = {reason.value for reason in DropReason}
    assert {"link_down", "oversize", "backlog_full", "no_room", "filtered", "tx_link_down"} <= names
