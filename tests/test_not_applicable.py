"""The feature claims of model/not_applicable.tsv hold: nothing here implements those features.

An entry whose reason starts `feature:NAME[,NAME...]` says its statement matters only
once one of the named features is negotiated. That is true for this project only while
no device offers, and no driver accepts, any of them. These tests check it against every
device type in `impl` (each `DeviceBackend`, in every configuration its constructor
allows, alone and behind `DeviceCore`, which is what a transport publishes) and every
driver (each `VirtioDriver`'s feature table, through the bus's acceptance rule). Whoever
implements a named feature makes these tests fail and must replace the entries by tests.

The roster of device types and drivers is checked against the classes `impl` defines, so
a new device type (virtio-blk, say) fails here until it is listed below.

Spec: §2.2 (feature negotiation), §6 (reserved bits), §5.1.3 (virtio-net bits); the
statements themselves are the not-applicable entries, so no `spec` marks.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import pkgutil
from collections.abc import Callable, Iterator, Sequence
from enum import IntEnum
from typing import Protocol

import pytest

import impl
from impl.bus import accepted_features
from impl.device import DeviceBackend
from impl.device_core import DeviceCore
from impl.driver import DeviceMatch
from impl.memory import GuestMemory
from impl.net_device import NetDevice
from impl.net_driver import NetDriver
from impl.spec import (
    DeviceId,
    Feature,
    NetDuplex,
    NetFeature,
    NetUnimplementedFeature,
    UnimplementedFeature,
)
from impl.stubs import EchoDevice, EchoDriver
from model.conformance_matrix import (
    ConformanceError,
    Requirement,
    Status,
    build,
    feature_claims,
    load_not_applicable,
    reason_features,
)

ALL_BITS = (1 << 128) - 1
"""Every bit of the four feature words the spec defines so far (bits 0..127)."""

MAC = b"\x52\x54\x00\x12\x34\x56"
MTU = 1500
SPEED_MBPS = 10_000

NAME_SCOPES: dict[str, tuple[DeviceId | None, tuple[type[IntEnum], ...]]] = {
    "VIRTIO_F_": (None, (Feature, UnimplementedFeature)),
    "VIRTIO_NET_F_": (DeviceId.NET, (NetFeature, NetUnimplementedFeature)),
}
"""Spelling prefix -> (the device type whose bits these are, None for every type; enums)."""


def feature_bit(name: str) -> tuple[DeviceId | None, int]:
    """The device type (None: any) and bit number of a feature as the spec spells it."""
    for prefix, (device_type, enums) in NAME_SCOPES.items():
        if name.startswith(prefix):
            member = name[len(prefix) :]
            for enum in enums:
                if member in enum.__members__:
                    return device_type, int(enum[member])
    raise KeyError(name)


def named_features() -> dict[str, tuple[DeviceId | None, int]]:
    """Every feature named by a not-applicable entry, resolved to its bit."""
    names = {n for ns in feature_claims(load_not_applicable()).values() for n in ns}
    return {name: feature_bit(name) for name in sorted(names)}


# --- the roster ------------------------------------------------------------------------
def net_devices() -> Iterator[NetDevice]:
    """A NetDevice in every configuration its constructor's offer switches allow."""
    switches = itertools.product((False, True), repeat=5)
    for mrg, ctrl, csum, with_mtu, with_speed in switches:
        yield NetDevice(
            MAC,
            mrg_rxbuf=mrg,
            ctrl_vq=ctrl,
            csum=csum,
            mtu=MTU if with_mtu else None,
            speed=SPEED_MBPS if with_speed else None,
            duplex=NetDuplex.FULL if with_speed else NetDuplex.UNKNOWN,
        )


def echo_devices() -> Iterator[EchoDevice]:
    """The transport stand-in with its default offer, as every device type."""
    for device_id in DeviceId:
        yield EchoDevice(device_id)


DEVICES: dict[type, Callable[[], Iterator[DeviceBackend]]] = {
    NetDevice: net_devices,
    EchoDevice: echo_devices,
}
"""Every DeviceBackend class of `impl`, with its configurations."""


class Accepting(Protocol):
    """The part of a `VirtioDriver` negotiation reads: what it drives, the bits it knows."""

    @property
    def id_table(self) -> Sequence[DeviceMatch]: ...

    feature_table: int


DRIVERS: dict[type, Callable[[], Accepting]] = {
    NetDriver: NetDriver,
    EchoDriver: lambda: EchoDriver("echo", DeviceId.NET),
}
"""Every VirtioDriver class of `impl`, built with its default feature table."""


def impl_classes() -> Iterator[type]:
    """Every concrete class defined in a module of `impl` (Protocols left out)."""
    for info in pkgutil.iter_modules(impl.__path__):
        module = importlib.import_module(f"impl.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and not getattr(cls, "_is_protocol", False):
                yield cls


def defines(cls: type, *methods: str) -> bool:
    """Whether `cls` itself defines each of `methods` as a plain function."""
    return all(inspect.isfunction(vars(cls).get(name)) for name in methods)


def test_the_roster_lists_every_device_type_and_driver() -> None:
    classes = list(impl_classes())
    backends = {c for c in classes if defines(c, "offered_features", "queue_max_sizes")}
    drivers = {c for c in classes if defines(c, "probe", "remove", "config_changed")}
    assert backends == set(DEVICES), "list every DeviceBackend in DEVICES"
    assert drivers == set(DRIVERS), "list every VirtioDriver in DRIVERS"


# --- the claims ------------------------------------------------------------------------
def test_every_named_feature_is_a_spec_feature() -> None:
    names = {n for ns in feature_claims(load_not_applicable()).values() for n in ns}
    assert names, "no not-applicable entry names a feature"
    unknown = []
    for name in sorted(names):
        try:
            feature_bit(name)
        except KeyError:
            unknown.append(name)
    assert not unknown, f"not spelled as in impl/spec.py's feature enums: {unknown}"


def applies_to(device_type: DeviceId | None, device: DeviceBackend) -> bool:
    """Whether a bit of `device_type` means anything on `device` (None: any type)."""
    return device_type is None or device.device_id == device_type


def cores(device: DeviceBackend) -> Iterator[DeviceCore]:
    """`device` behind a DeviceCore in every combination of the core's on/off options."""
    switches = [
        p.name
        for p in inspect.signature(DeviceCore).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and isinstance(p.default, bool)
    ]
    for values in itertools.product((False, True), repeat=len(switches)):
        yield DeviceCore(device, GuestMemory(0), **dict(zip(switches, values, strict=True)))


def offered_named(
    devices: list[DeviceBackend], named: dict[str, tuple[DeviceId | None, int]]
) -> list[tuple[str, str]]:
    """(device class, feature) for each named bit a device offers or its transport publishes."""
    found = []
    for device in devices:
        published = 0
        for core in cores(device):
            published |= core.offered_features
        for name, (device_type, bit) in named.items():
            offered = (device.offered_features() | published) >> bit & 1
            if offered and applies_to(device_type, device):
                found.append((type(device).__name__, name))
    return found


@pytest.mark.parametrize("cls", list(DEVICES), ids=lambda c: c.__name__)
def test_no_device_offers_a_feature_named_not_applicable(cls: type) -> None:
    devices = list(DEVICES[cls]())
    assert devices
    assert offered_named(devices, named_features()) == []


def test_no_transport_publishes_a_named_reserved_feature_whatever_the_backend_offers() -> None:
    reserved = {n: bit for n, (t, bit) in named_features().items() if t is None}
    assert reserved
    for core in cores(EchoDevice(DeviceId.NET, features=ALL_BITS)):
        for name, bit in reserved.items():
            assert not core.offered_features >> bit & 1, name


def accepted_named(driver: Accepting, named: dict[str, tuple[DeviceId | None, int]]) -> list[str]:
    """The named features `driver` would accept from a device offering every bit."""
    drives = {match.device for match in driver.id_table}
    accepted = accepted_features(ALL_BITS, driver.feature_table, ALL_BITS, legacy=False)
    return [
        name
        for name, (device_type, bit) in named.items()
        if (device_type is None or device_type in drives) and accepted >> bit & 1
    ]


@pytest.mark.parametrize("cls", list(DRIVERS), ids=lambda c: c.__name__)
def test_no_driver_accepts_a_feature_named_not_applicable(cls: type) -> None:
    driver = DRIVERS[cls]()
    assert driver.id_table
    assert accepted_named(driver, named_features()) == []


# --- the format ------------------------------------------------------------------------
def test_feature_prefix_is_parsed_and_malformed_ones_are_refused() -> None:
    assert reason_features("legacy interface only") == ()
    assert reason_features("feature:VIRTIO_NET_F_RSS RSS commands") == ("VIRTIO_NET_F_RSS",)
    assert reason_features("feature:VIRTIO_F_A,VIRTIO_NET_F_B why") == (
        "VIRTIO_F_A",
        "VIRTIO_NET_F_B",
    )
    for bad in ("feature: VIRTIO_F_A why", "feature:VIRTIO_F_A, VIRTIO_F_B", "feature:RSS x"):
        with pytest.raises(ConformanceError):
            reason_features(bad)
    table = {"A-1": "legacy", "A-2": "feature:VIRTIO_F_X,VIRTIO_F_Y because"}
    assert feature_claims(table) == {"A-2": ("VIRTIO_F_X", "VIRTIO_F_Y")}


def test_a_device_offering_a_named_feature_is_caught() -> None:
    """The device check can fail: a NetDevice made to offer a named net bit is reported."""
    named = named_features()
    name, (_, bit) = next((n, v) for n, v in named.items() if v[0] == DeviceId.NET)
    device = NetDevice(MAC, ring_features=1 << bit)
    assert ("NetDevice", name) in offered_named([device], named)


def test_a_section_key_matches_a_label_with_a_trailing_space() -> None:
    """requirements.tsv spells a few block labels with a trailing space (the RSS block)."""
    label = "Toy / Scaling (RSS) "
    rows = [Requirement("TOY-DRV-001", "TOY", "driver", "MUST", label, "toy.tex:1")]
    na = {"section:Toy / Scaling (RSS)": "feature:VIRTIO_F_X never offered"}
    matrix = build(rows, [], na, {})
    assert matrix.rows[0].status == Status.NOT_APPLICABLE
    assert matrix.unknown_keys == ()


def test_a_driver_accepting_a_named_feature_is_caught() -> None:
    """The driver check can fail: a NetDriver whose table knows a named net bit is reported."""
    named = named_features()
    name, (_, bit) = next((n, v) for n, v in named.items() if v[0] == DeviceId.NET)
    assert accepted_named(NetDriver(feature_table=1 << bit), named) == [name]
