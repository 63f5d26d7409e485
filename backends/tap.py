"""A port onto a Linux TAP interface: the host kernel at the far end of the virtual link.

Rules:
- The one net backend that does I/O, so it lives outside the sans-IO `impl` package:
  it opens `/dev/net/tun`, asks for a TAP interface without packet information
  (IFF_TAP | IFF_NO_PI), and moves whole Ethernet frames with `os.read` / `os.write`
  on a non-blocking descriptor.
- Nothing runs by itself: frames from the kernel reach the device only when the
  caller calls `poll()`, so the caller owns every wait (no threads, no clock).
- Failures are typed: `TapUnavailable` when the interface cannot be created (no
  device node, no permission); a frame the kernel refuses is counted in
  `tx_errors`, never raised into the device.

Spec: none of VIRTIO; Linux's tun/tap interface (Documentation/networking/tuntap.rst).
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct

from impl.errors import TapUnavailable
from impl.net_backend import FrameSink
from impl.spec import NET_MAX_FRAME

TUN_PATH = "/dev/net/tun"
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFNAMSIZ = 16
_IFREQ = struct.Struct(f"{IFNAMSIZ}sH")


class TapPort:
    """A TAP interface named like `name` ("vo%d" lets the kernel pick the number)."""

    def __init__(self, name: str = "vo%d") -> None:
        try:
            self.fd = os.open(TUN_PATH, os.O_RDWR | os.O_NONBLOCK)
        except OSError as error:
            raise TapUnavailable(f"cannot open {TUN_PATH}: {error.strerror}") from error
        request = _IFREQ.pack(name.encode(), IFF_TAP | IFF_NO_PI)
        try:
            answer = fcntl.ioctl(self.fd, TUNSETIFF, request)
        except OSError as error:
            os.close(self.fd)
            raise TapUnavailable(f"TUNSETIFF refused: {error.strerror}") from error
        self.name = _IFREQ.unpack(answer)[0].rstrip(b"\0").decode()
        self._sink: FrameSink | None = None
        self.tx_errors = 0
        self.received = 0

    def attach(self, sink: FrameSink) -> None:
        """Deliver frames the kernel sends to `sink`."""
        self._sink = sink

    def transmit(self, frame: bytes) -> None:
        """Hand `frame` to the kernel; a refusal (interface down, ...) is counted."""
        try:
            os.write(self.fd, frame)
        except OSError:
            self.tx_errors += 1

    def poll(self, limit: int = 64) -> int:
        """Deliver up to `limit` frames the kernel has queued; return how many."""
        count = 0
        while count < limit:
            try:
                frame = os.read(self.fd, NET_MAX_FRAME)
            except OSError as error:
                if error.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    break
                raise TapUnavailable(f"reading the TAP failed: {error.strerror}") from error
            count += 1
            self.received += 1
            if self._sink is not None:
                self._sink.receive_frame(frame)
        return count

    def fileno(self) -> int:
        """The descriptor, for a caller's select()."""
        return self.fd

    def close(self) -> None:
        """Close the descriptor; the kernel removes the interface."""
        os.close(self.fd)
