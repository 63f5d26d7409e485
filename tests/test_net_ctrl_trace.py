"""What the virtio-net driver sends on the control queue, over many operations and features.

A recording device keeps every control command it reads off the control queue (class,
command, and the features negotiated at that moment). Hypothesis drives the driver
through every operation it has (receive modes, MAC tables and address, VLANs,
announcements, link changes, traffic) under random driver feature tables and device
offers, including a device that also offers every virtio-net bit the driver does not
know (MQ, RSS, coalescing, statistics, ...). Each
recorded command must be one the spec allows with the features negotiated, by the
table below, written from §5.1.9.5 and not from `impl.net_ctrl`:

- a class/command the table lacks is never sent;
- MQ, RSS, hash, offloads, coalescing, inner-hash, statistics and RSS-context commands
  never appear without their features (NET-DRV-055, 072, 077, 083, 084), which here
  means never, since the driver accepts none of those features;
- receive-mode and MAC commands only with CTRL_RX / CTRL_RX_EXTRA (NET-DRV-058/059/060).

Spec: §5.1.9.5 (control virtqueue) and its subsections.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from net_rig import MAC_A, MAC_B, frame, net_side

from impl.chain import Chain
from impl.errors import NetFeatureMissing, NetLinkDown
from impl.net_device import NetDevice
from impl.net_driver import DRIVER_FEATURES, NetDriver
from impl.spec import (
    NET_CTRL_ANNOUNCE_ACK,
    NetCtrlClass,
    NetCtrlMac,
    NetCtrlMq,
    NetCtrlNotfCoal,
    NetCtrlRx,
    NetCtrlUnimplementedClass,
    NetCtrlVlan,
    NetFeature,
    NetUnimplementedFeature,
    feature_mask,
    has_feature,
)

Gate = tuple[int, ...]
"""Feature bits that must all be negotiated for a command."""

Op = tuple[Any, ...]
"""One driver operation: a kind, then its arguments (see `run`)."""

_ANY = -1
"""Stands for every command of a class whose commands share one gate."""

_RX_BASIC, _RX_EXTRA = NetFeature.CTRL_RX, NetFeature.CTRL_RX_EXTRA
GATES: dict[tuple[int, int], Gate] = {
    (NetCtrlClass.RX, NetCtrlRx.PROMISC): (_RX_BASIC,),
    (NetCtrlClass.RX, NetCtrlRx.ALLMULTI): (_RX_BASIC,),
    (NetCtrlClass.RX, NetCtrlRx.ALLUNI): (_RX_EXTRA,),
    (NetCtrlClass.RX, NetCtrlRx.NOMULTI): (_RX_EXTRA,),
    (NetCtrlClass.RX, NetCtrlRx.NOUNI): (_RX_EXTRA,),
    (NetCtrlClass.RX, NetCtrlRx.NOBCAST): (_RX_EXTRA,),
    (NetCtrlClass.MAC, NetCtrlMac.TABLE_SET): (_RX_BASIC,),
    (NetCtrlClass.MAC, NetCtrlMac.ADDR_SET): (_RX_BASIC, NetFeature.CTRL_MAC_ADDR),
    (NetCtrlClass.VLAN, NetCtrlVlan.ADD): (NetFeature.CTRL_VLAN,),
    (NetCtrlClass.VLAN, NetCtrlVlan.DEL): (NetFeature.CTRL_VLAN,),
    (NetCtrlClass.ANNOUNCE, NET_CTRL_ANNOUNCE_ACK): (NetFeature.GUEST_ANNOUNCE,),
    (NetCtrlClass.MQ, NetCtrlMq.VQ_PAIRS_SET): (NetFeature.MQ,),
    (NetCtrlClass.MQ, NetCtrlMq.RSS_CONFIG): (NetFeature.RSS,),
    (NetCtrlClass.MQ, NetCtrlMq.HASH_CONFIG): (NetFeature.HASH_REPORT,),
    (NetCtrlUnimplementedClass.GUEST_OFFLOADS, _ANY): (NetFeature.CTRL_GUEST_OFFLOADS,),
    (NetCtrlUnimplementedClass.NOTF_COAL, NetCtrlNotfCoal.TX_SET): (
        NetUnimplementedFeature.NOTF_COAL,
    ),
    (NetCtrlUnimplementedClass.NOTF_COAL, NetCtrlNotfCoal.RX_SET): (
        NetUnimplementedFeature.NOTF_COAL,
    ),
    (NetCtrlUnimplementedClass.NOTF_COAL, NetCtrlNotfCoal.VQ_SET): (
        NetUnimplementedFeature.VQ_NOTF_COAL,
    ),
    (NetCtrlUnimplementedClass.NOTF_COAL, NetCtrlNotfCoal.VQ_GET): (
        NetUnimplementedFeature.VQ_NOTF_COAL,
    ),
    (NetCtrlUnimplementedClass.HASH_TUNNEL, _ANY): (NetUnimplementedFeature.HASH_TUNNEL,),
    (NetCtrlUnimplementedClass.STATS, _ANY): (NetUnimplementedFeature.DEVICE_STATS,),
    (NetCtrlUnimplementedClass.RSS_CTX, _ANY): (NetUnimplementedFeature.RSS_CONTEXT,),
}
"""(class, command) -> the features §5.1.9.5 asks to be negotiated before it is sent
(besides CTRL_VQ, without which there is no control queue)."""

UNKNOWN_NET_BITS = feature_mask(*NetFeature, *NetUnimplementedFeature) & ~DRIVER_FEATURES
"""Every virtio-net feature bit the spec defines that the driver does not know: a device
offering them shows the driver declines them and sends none of their commands."""


def gate(cls: int, cmd: int) -> Gate | None:
    """The features command (`cls`, `cmd`) needs, or None if the driver may never send it."""
    return GATES.get((cls, cmd), GATES.get((cls, _ANY)))


@dataclass(frozen=True)
class Sent:
    """One control command as the device read it, with the features then negotiated."""

    cls: int
    cmd: int
    features: int


class RecordingDevice(NetDevice):
    """A NetDevice that keeps every control command before serving it."""

    offer_everything = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[Sent] = []

    def offered_features(self) -> int:
        offered = super().offered_features()
        return offered | UNKNOWN_NET_BITS if self.offer_everything else offered

    def _control(self, chain: Chain) -> None:
        assert self.context is not None
        command = chain.read_payload(self.context.mem)
        if len(command) >= 2:
            self.sent.append(Sent(command[0], command[1], self.features))
        super()._control(chain)


class OfferingDevice(RecordingDevice):
    """A recording device also offering every net bit the driver does not know."""

    offer_everything = True


def run(driver: NetDriver, device: NetDevice, deliver: Callable[[], int], op: Op) -> None:
    """One driver operation; refusals for unnegotiated features or a down link are fine."""
    kind = op[0]
    try:
        if kind == "rx":
            driver.set_rx_mode(NetCtrlRx(op[1]), bool(op[2]))
        elif kind == "table":
            driver.set_mac_table([MAC_B] * int(op[1]), [b"\x01\x00\x5e\x00\x00\x01"] * int(op[2]))
        elif kind == "addr":
            driver.set_mac_address(MAC_B if op[1] else MAC_A)
        elif kind == "vlan":
            (driver.add_vlan if op[1] else driver.del_vlan)(int(op[2]))
        elif kind == "announce":
            device.announce()
        elif kind == "link":
            device.set_link(bool(op[1]))
        elif kind == "send":
            driver.send(frame(MAC_B, driver.mac, 60 + int(op[1])))
        else:
            driver.poll()
    except (NetFeatureMissing, NetLinkDown):
        pass
    deliver()


OPS = st.one_of(
    st.tuples(st.just("rx"), st.sampled_from(list(NetCtrlRx)), st.booleans()),
    st.tuples(st.just("table"), st.integers(0, 3), st.integers(0, 3)),
    st.tuples(st.just("addr"), st.booleans()),
    st.tuples(st.just("vlan"), st.booleans(), st.integers(0, 4095)),
    st.tuples(st.just("announce")),
    st.tuples(st.just("link"), st.booleans()),
    st.tuples(st.just("send"), st.integers(0, 100)),
    st.tuples(st.just("poll")),
)
KNOWN = st.sets(st.sampled_from([b for b in NetFeature if has_feature(DRIVER_FEATURES, b)]))


def check_trace(sent: list[Sent]) -> None:
    """Every recorded command is in the table and its features were negotiated."""
    for command in sent:
        needed = gate(command.cls, command.cmd)
        assert needed is not None, f"driver sent unknown command {command}"
        missing = [bit for bit in (NetFeature.CTRL_VQ, *needed)
                   if not has_feature(command.features, bit)]
        assert not missing, f"driver sent {command} without {missing}"


@pytest.mark.spec(
    "NET-DRV-055", "NET-DRV-058", "NET-DRV-059", "NET-DRV-060",
    "NET-DRV-072", "NET-DRV-077", "NET-DRV-083", "NET-DRV-084",
)
@given(
    dropped=KNOWN,
    ctrl_vq=st.booleans(),
    offer_everything=st.booleans(),
    transport=st.sampled_from(["direct", "mmio"]),
    ops=st.lists(OPS, max_size=25),
)
def test_driver_sends_only_commands_of_negotiated_features(
    dropped: set[NetFeature],
    ctrl_vq: bool,
    offer_everything: bool,
    transport: str,
    ops: list[Op],
) -> None:
    known = DRIVER_FEATURES & ~feature_mask(*dropped)
    device_class = OfferingDevice if offer_everything else RecordingDevice
    side = net_side(
        MAC_A, None, transport=transport, known=known, device_class=device_class,
        ctrl_vq=ctrl_vq,
    )
    device = side.device
    assert isinstance(device, RecordingDevice)
    for op in ops:
        run(side.driver, device, side.deliver, op)
    check_trace(device.sent)


ALL_OPS: list[Op] = [
    *[("rx", mode, on) for mode in NetCtrlRx for on in (True, False)],
    ("table", 2, 1), ("addr", True), ("vlan", True, 7), ("vlan", False, 7),
    ("announce",), ("link", False), ("link", True), ("send", 0), ("poll",),
]


@pytest.mark.parametrize("device_class", [RecordingDevice, OfferingDevice])
def test_the_trace_sees_every_command_the_driver_has(device_class: type[NetDevice]) -> None:
    """With every feature it knows, the driver sends each of its commands; the trace sees them.

    This keeps the property above from passing on an empty trace; it names no spec id.
    """
    side = net_side(MAC_A, None, device_class=device_class)
    device = side.device
    assert isinstance(device, RecordingDevice)
    for op in ALL_OPS:
        run(side.driver, device, side.deliver, op)
    seen = {(c.cls, c.cmd) for c in device.sent}
    sendable = {key for key, needed in GATES.items()
                if all(has_feature(DRIVER_FEATURES, bit) for bit in needed)}
    assert seen == sendable
    check_trace(device.sent)
    assert not has_feature(device.features, NetFeature.MQ)


def test_check_trace_flags_a_gated_command() -> None:
    """The check itself: an RSS_CONFIG or a coalescing command without its feature fails."""
    negotiated = feature_mask(NetFeature.CTRL_VQ, NetFeature.CTRL_RX)
    check_trace([Sent(NetCtrlClass.RX, NetCtrlRx.PROMISC, negotiated)])
    for bad in (
        Sent(NetCtrlClass.MQ, NetCtrlMq.RSS_CONFIG, negotiated),
        Sent(NetCtrlUnimplementedClass.NOTF_COAL, NetCtrlNotfCoal.VQ_GET, negotiated),
        Sent(NetCtrlClass.RX, NetCtrlRx.NOBCAST, negotiated),
        Sent(42, 0, negotiated),
    ):
        with pytest.raises(AssertionError):
            check_trace([bad])
