"""The classic libpcap capture file format, written and read here, and a port that uses it.

A capture file is a 24-byte global header (magic, version 2.4, zone, accuracy,
snapshot length, link type) followed by records, each a 16-byte header (seconds,
microseconds, captured length, original length) and the captured bytes. This module
writes the little-endian, microsecond variant with link type Ethernet, which
tcpdump, Wireshark and dpkt read, and reads both byte orders of the microsecond
variant.

Rules: sans-IO. The writer and reader work on a binary stream they are given; no
clock is read: each record's timestamp comes from a caller's `clock` (by default one
microsecond per frame, so a file is reproducible). A malformed file raises
`PcapFormatError` naming the offset, never a bare struct error.

Spec: none of VIRTIO; the format is libpcap's ("LINKTYPE_ETHERNET" = 1).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import BinaryIO

from .errors import PcapFormatError
from .net_backend import FrameSink

PCAP_MAGIC = 0xA1B2C3D4
"""Magic of the microsecond-resolution format, in the writer's byte order."""
PCAP_VERSION = (2, 4)
LINKTYPE_ETHERNET = 1
PCAP_SNAPLEN = 65535
USEC_PER_SEC = 1_000_000

_GLOBAL_LE = struct.Struct("<IHHiIII")
_GLOBAL_BE = struct.Struct(">IHHiIII")
_RECORD_LE = struct.Struct("<IIII")
_RECORD_BE = struct.Struct(">IIII")

Clock = Callable[[int], tuple[int, int]]
"""Frame number -> (seconds, microseconds) for its record."""


def frame_counter_clock(index: int) -> tuple[int, int]:
    """The default clock: frame n is stamped n microseconds after the epoch."""
    return divmod(index, USEC_PER_SEC)


class PcapWriter:
    """Writes frames as pcap records to `stream`; it is a `FrameTap`."""

    def __init__(self, stream: BinaryIO, clock: Clock = frame_counter_clock) -> None:
        self.stream = stream
        self.clock = clock
        self.count = 0
        major, minor = PCAP_VERSION
        stream.write(
            _GLOBAL_LE.pack(PCAP_MAGIC, major, minor, 0, 0, PCAP_SNAPLEN, LINKTYPE_ETHERNET)
        )

    def record(self, frame: bytes) -> None:
        """Append one record holding `frame` (cut to the snapshot length)."""
        seconds, micros = self.clock(self.count)
        captured = frame[:PCAP_SNAPLEN]
        self.stream.write(_RECORD_LE.pack(seconds, micros, len(captured), len(frame)))
        self.stream.write(captured)
        self.count += 1


def read_pcap(stream: BinaryIO) -> Iterator[tuple[float, bytes]]:
    """Yield (timestamp in seconds, frame) for each record of a pcap `stream`."""
    head = stream.read(_GLOBAL_LE.size)
    if len(head) != _GLOBAL_LE.size:
        raise PcapFormatError("file shorter than a pcap global header")
    if _GLOBAL_LE.unpack(head)[0] == PCAP_MAGIC:
        glob, rec = _GLOBAL_LE, _RECORD_LE
    elif _GLOBAL_BE.unpack(head)[0] == PCAP_MAGIC:
        glob, rec = _GLOBAL_BE, _RECORD_BE
    else:
        raise PcapFormatError("not a microsecond pcap file (bad magic)")
    linktype = glob.unpack(head)[6]
    if linktype != LINKTYPE_ETHERNET:
        raise PcapFormatError(f"link type {linktype} is not Ethernet")
    offset = glob.size
    while True:
        raw = stream.read(rec.size)
        if not raw:
            return
        if len(raw) != rec.size:
            raise PcapFormatError(f"record header cut short at offset {offset}")
        seconds, micros, captured, _original = rec.unpack(raw)
        data = stream.read(captured)
        if len(data) != captured:
            raise PcapFormatError(f"record data cut short at offset {offset}")
        offset += rec.size + captured
        yield seconds + micros / USEC_PER_SEC, data


class CapturePort:
    """A port whose transmitted frames are written to a pcap file, and which can replay one.

    `replay(stream)` hands every frame of a capture to the attached device, as if
    it arrived on the link, and returns how many it handed over.
    """

    def __init__(self, writer: PcapWriter) -> None:
        self.writer = writer
        self._sink: FrameSink | None = None

    def attach(self, sink: FrameSink) -> None:
        """Deliver replayed frames to `sink`."""
        self._sink = sink

    def transmit(self, frame: bytes) -> None:
        """Record `frame` in the capture."""
        self.writer.record(frame)

    def replay(self, stream: BinaryIO) -> int:
        """Feed the frames of the capture in `stream` to the attached device."""
        count = 0
        for _, frame in read_pcap(stream):
            if self._sink is not None:
                self._sink.receive_frame(frame)
                count += 1
        return count
