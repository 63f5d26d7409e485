"""What a device type gives a transport, and what a transport gives it back.

A device type (virtio-net, virtio-blk, a test stub) is a `DeviceBackend`: it names its
device id, offers feature bits, sizes its queues and serves its configuration space.
It knows nothing about registers or status bits: a transport (virtio-mmio, the
descriptor page) owns those, negotiates features, tells the backend which features
were accepted (`features_accepted`) when it grants FEATURES_OK, and hands the backend
a `DeviceContext` once the driver has set DRIVER_OK. From then on the transport forwards
each queue notification to `queue_notify(index)`; the backend pops chains from
`context.queues[index]`, serves them, pushes used elements and calls
`context.signal_used(index)`, which raises the interrupt when the ring says the driver
wants one.

Rules:
- Sans-IO: a backend touches guest memory only through `context.mem` and the queues.
- A backend never sees the status register; a reset reaches it as `reset()`, after
  which it holds nothing (every chain it held is forgotten with the queue).
- Config space is little-endian bytes at offsets from 0 (§2.5); the transport adds the
  generation counter around `read_config` (§2.5.1) and raises the config-change
  interrupt when a backend calls `context.config_changed()`.
- `features_accepted(features)` runs once per initialization, when the device grants
  FEATURES_OK (a legacy device has no FEATURES_OK: then at DRIVER_OK, just before
  `activate`; a backend tells the two apart by VERSION_1, which only a modern driver
  accepts). It is where a device settles what the negotiated features decide about
  its config space before the driver reads it (§3.1.1 step 5; e.g. virtio-blk's
  `writeback`, BLK-DEV-002).
- A backend that finds the driver broke a rule it cannot recover from calls
  `context.needs_reset(error)`: the transport sets DEVICE_NEEDS_RESET (§2.1.2).
- Optional: a backend may define `config_size` (int, bytes of config space). The
  descriptor page publishes that many bytes; without it, 256, and `read_config` must
  then answer zeros beyond its fields (`impl/device_core.DeviceCore.read_config`
  pads a short answer with zeros and treats a raised `VirtioError` as zeros).

Spec: §2.1 (status), §2.2 (features), §2.5 (config space), §2.6 (virtqueues),
§4.2.3 (how virtio-mmio drives a device), §5.1 and §5.2 (the device types).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .chain import Chain
from .errors import VirtioError
from .memory import GuestMemory
from .spec import DeviceId


class DeviceQueue(Protocol):
    """The device half of one virtqueue, whatever its ring type (split or packed)."""

    size: int

    def pop(self) -> Chain | None:
        """The next available chain, or None (raises a DriverError on hostile input)."""
        ...

    def push_used(self, head: int, written: int) -> None:
        """Return chain `head` to the driver with `written` bytes written."""
        ...

    def needs_notification(self) -> bool:
        """Whether the driver asked to be interrupted for what was just used."""
        ...

    def enable_notification(self) -> bool:
        """Ask for kicks again; True if buffers arrived meanwhile (re-check the ring)."""
        ...

    def disable_notification(self) -> None:
        """Ask the driver not to kick."""
        ...


@dataclass
class DeviceContext:
    """Everything a live device gets from its transport at DRIVER_OK.

    `queues[i]` is None for a queue the driver did not enable. `features` is the
    negotiated feature word (frozen at FEATURES_OK, §2.2).
    """

    mem: GuestMemory
    features: int
    queues: Sequence[DeviceQueue | None]
    signal_used: Callable[[int], None]
    config_changed: Callable[[], None]
    needs_reset: Callable[[VirtioError], None]


class DeviceBackend(Protocol):
    """A device type as a transport sees it (rust-vmm's `VirtioDevice`, QEMU's VirtIODevice)."""

    @property
    def device_id(self) -> DeviceId:
        """The §5 device id the transport publishes."""
        ...

    @property
    def vendor_id(self) -> int:
        """The vendor id the transport publishes (drivers may match on it)."""
        ...

    def offered_features(self) -> int:
        """The feature bits this device offers (device-type bits and §6 reserved bits)."""
        ...

    def queue_max_sizes(self) -> Sequence[int]:
        """One maximum size per virtqueue, in queue-index order (§2.6)."""
        ...

    def read_config(self, offset: int, length: int) -> bytes:
        """`length` bytes of config space at `offset` (little-endian fields, §2.5)."""
        ...

    def write_config(self, offset: int, data: bytes) -> None:
        """A driver write into config space; read-only fields ignore it (§2.5)."""
        ...

    def features_accepted(self, features: int) -> None:
        """The device granted FEATURES_OK for `features` (legacy: DRIVER_OK, before
        `activate`); settle what they decide in config space (§3.1.1 step 5)."""
        ...

    def activate(self, context: DeviceContext) -> None:
        """The driver set DRIVER_OK: start serving the queues in `context`."""
        ...

    def queue_notify(self, index: int) -> None:
        """The driver kicked queue `index`: serve what is available."""
        ...

    def reset(self) -> None:
        """The device was reset (§2.1): forget the queues and all in-flight requests."""
        ...
