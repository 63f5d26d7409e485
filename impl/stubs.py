"""Stand-in device types and drivers for transport tests: an echo device and its driver.

Until the virtio-net and virtio-blk device types land, the transports are exercised
with these: `EchoDevice` carries any device id, offers chosen features, serves each
queue by copying a chain's readable bytes into its writable part, and has a small
config space the host can change; `EchoDriver` matches one device id, reads config,
finds its queues and collects what comes back through the interrupt path.

Rules: these implement the public contracts (`DeviceBackend`, `VirtioDriver`) and
nothing more; a transport test that passes with them passes for any device type that
keeps those contracts. They are not models of net or blk.

Spec: §2.6 (virtqueues), §2.5 (config space); no device-type semantics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Sequence

from .device import DeviceContext
from .driver import DeviceMatch, DriverQueue, VirtioDevice
from .errors import ChainError, DeviceError
from .spec import DeviceId, Feature, feature_mask

ECHO_VENDOR = 0x4F524143
"""Vendor id the stubs publish ("CARO" little-endian: oracle's own)."""

MODERN_FEATURES = feature_mask(Feature.VERSION_1, Feature.EVENT_IDX, Feature.INDIRECT_DESC)
"""What a stub offers by default: a modern device with both ring features."""


class EchoDevice:
    """A `DeviceBackend` that echoes each buffer's readable bytes into its writable part."""

    def __init__(
        self,
        device_id: DeviceId,
        *,
        queues: Sequence[int] = (8, 8),
        features: int = MODERN_FEATURES,
        config: bytes = b"\x01\x02\x03\x04\x05\x06\x07\x08",
        vendor_id: int = ECHO_VENDOR,
    ) -> None:
        self._device_id = device_id
        self._vendor_id = vendor_id
        self._queue_sizes = tuple(queues)
        self._features = features
        self.config = bytearray(config)
        self.context: DeviceContext | None = None
        self.served = 0
        self.resets = 0
        self.accepted: list[int] = []

    @property
    def device_id(self) -> DeviceId:
        """The device id published."""
        return self._device_id

    @property
    def vendor_id(self) -> int:
        """The vendor id published."""
        return self._vendor_id

    @property
    def config_size(self) -> int:
        """Bytes of config space."""
        return len(self.config)

    def offered_features(self) -> int:
        """The offered feature word."""
        return self._features

    def queue_max_sizes(self) -> Sequence[int]:
        """One maximum size per queue."""
        return self._queue_sizes

    def read_config(self, offset: int, length: int) -> bytes:
        """Config bytes; beyond the end reads as zeros."""
        return bytes(self.config[offset : offset + length]).ljust(length, b"\0")

    def write_config(self, offset: int, data: bytes) -> None:
        """Config is read-only here: writes are ignored (§2.5)."""

    def features_accepted(self, features: int) -> None:
        """FEATURES_OK granted: remembered, nothing in config depends on it."""
        self.accepted.append(features)

    def activate(self, context: DeviceContext) -> None:
        """Start serving."""
        self.context = context

    def reset(self) -> None:
        """Forget the context (and with it every queue and held chain)."""
        self.context = None
        self.resets += 1

    def queue_notify(self, index: int) -> None:
        """Serve everything available on queue `index`, then signal once."""
        context = self.context
        if context is None or not 0 <= index < len(context.queues):
            return
        queue = context.queues[index]
        if queue is None:
            return
        while True:
            try:
                chain = queue.pop()
            except ChainError:
                continue
            if chain is None:
                if not queue.enable_notification():
                    break
                continue
            payload = chain.read_payload(context.mem)[: chain.writable_len]
            written = chain.write_payload(context.mem, payload)
            queue.push_used(chain.head, written)
            self.served += 1
        context.signal_used(index)

    def change_config(self, offset: int, data: bytes) -> None:
        """Host-side config change; the caller tells the transport (core.config_changed)."""
        self.config[offset : offset + len(data)] = data


class EchoDriver:
    """A `VirtioDriver` for one device id: finds `queue_count` queues and collects replies."""

    def __init__(
        self,
        name: str,
        device_id: DeviceId,
        *,
        queue_count: int = 2,
        feature_table: int = 0,
        config_bytes: int = 8,
    ) -> None:
        self.name = name
        self.id_table = (DeviceMatch(device_id),)
        self.feature_table = feature_table
        self.queue_count = queue_count
        self.config_bytes = config_bytes
        self.bound: list[VirtioDevice] = []
        self.queues: dict[int, list[DriverQueue]] = {}
        self.config_seen: dict[int, bytes] = {}
        self.received: list[tuple[Hashable, int]] = []
        self.detached: list[Hashable] = []
        self.config_events = 0
        self.removed = 0

    def validate(self, vdev: VirtioDevice, features: int) -> int:
        """Keep every bit the bus proposes (the echo device has nothing to check)."""
        return features

    def probe(self, vdev: VirtioDevice) -> None:
        """Read config (§3.1.1 step 7 reads before queues), then find the queues."""
        key = id(vdev)
        self.config_seen[key] = vdev.read_config(0, self.config_bytes)
        names = [f"{self.name}{i}" for i in range(self.queue_count)]
        self.queues[key] = vdev.find_vqs(names, [self._collect] * self.queue_count)
        self.bound.append(vdev)

    def _collect(self, queue: DriverQueue) -> None:
        while (got := queue.get_buf()) is not None:
            self.received.append(got)

    def remove(self, vdev: VirtioDevice) -> None:
        """Detach every unused buffer (the bus reset the device first)."""
        for queue in self.queues.pop(id(vdev), []):
            while (token := queue.detach_unused_buf()) is not None:
                self.detached.append(token)
        self.bound = [d for d in self.bound if d is not vdev]
        self.removed += 1

    def config_changed(self, vdev: VirtioDevice) -> None:
        """Count configuration change interrupts and re-read config."""
        self.config_events += 1
        with contextlib.suppress(DeviceError):
            self.config_seen[id(vdev)] = vdev.read_config(0, self.config_bytes)
