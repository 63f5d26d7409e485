"""Where a virtio-net device's frames go: the other end of its virtual Ethernet link.

A device holds one `Port`. What the device transmits it hands to `port.transmit`;
what arrives on the link the port hands to the device's `receive_frame` (the device is
the port's `FrameSink`). Backends are the link's far side:

- `Wire`: two ports joined back to back, so what one device transmits the other
  receives, in order and unchanged; an optional `FrameTap` sees every frame crossing
  it (a pcap writer, a test's recorder).
- `Loopback`: one port whose transmitted frames come straight back to its own device.
- `CapturePort` (impl/pcap.py) and `TapPort` (impl/net_tap.py) reach files and the
  host kernel.

Rules: frames are `bytes` of a whole Ethernet frame (no virtio header, no FCS).
Delivery is synchronous: `transmit` returns after the far sink took the frame (the
sink decides whether it keeps, queues or drops it; it never refuses by raising).

Spec: §5.1 (the device's "virtual Ethernet link"); none of this is in guest memory.
"""

from __future__ import annotations

from typing import Protocol


class FrameSink(Protocol):
    """Anything that accepts frames arriving on a link (a `NetDevice`, a recorder)."""

    def receive_frame(self, frame: bytes) -> None:
        """Take one frame that arrived on the link."""
        ...


class FrameTap(Protocol):
    """An observer of frames crossing a link (a pcap writer)."""

    def record(self, frame: bytes) -> None:
        """Note one frame that crossed."""
        ...


class Port(Protocol):
    """A device's attachment point to a link."""

    def attach(self, sink: FrameSink) -> None:
        """Deliver frames arriving on this port to `sink` from now on."""
        ...

    def transmit(self, frame: bytes) -> None:
        """Send `frame` out of this port."""
        ...


class _WirePort:
    """One end of a `Wire`."""

    __slots__ = ("_peer", "_sink", "_wire")

    def __init__(self, wire: Wire) -> None:
        self._wire = wire
        self._sink: FrameSink | None = None
        self._peer: _WirePort | None = None

    def attach(self, sink: FrameSink) -> None:
        """Deliver frames arriving on this end to `sink`."""
        self._sink = sink

    def transmit(self, frame: bytes) -> None:
        """Carry `frame` to the other end (lost if nothing is attached there)."""
        self._wire.carry(self._peer, frame)

    def deliver(self, frame: bytes) -> bool:
        """Hand `frame` to this end's sink; False if none is attached."""
        if self._sink is None:
            return False
        self._sink.receive_frame(frame)
        return True


class Wire:
    """Two ports joined back to back: `a` transmits to `b` and `b` to `a`.

    `taps` see every frame that crosses, in crossing order. `unattached` counts frames
    sent towards an end with no device (nothing is lost silently).
    """

    def __init__(self, taps: tuple[FrameTap, ...] = ()) -> None:
        self.taps = taps
        self.a = _WirePort(self)
        self.b = _WirePort(self)
        self.a._peer, self.b._peer = self.b, self.a
        self.unattached = 0

    def carry(self, to: _WirePort | None, frame: bytes) -> None:
        """Show `frame` to the taps and deliver it to `to`."""
        for tap in self.taps:
            tap.record(frame)
        if to is None or not to.deliver(frame):
            self.unattached += 1


class Loopback:
    """A port that returns everything transmitted to its own sink (a cable to itself)."""

    def __init__(self) -> None:
        self._sink: FrameSink | None = None
        self.unattached = 0

    def attach(self, sink: FrameSink) -> None:
        """Deliver looped frames to `sink`."""
        self._sink = sink

    def transmit(self, frame: bytes) -> None:
        """Send `frame` back in."""
        if self._sink is None:
            self.unattached += 1
            return
        self._sink.receive_frame(frame)
