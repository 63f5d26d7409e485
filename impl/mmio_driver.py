"""virtio-mmio, driver side: the register accessor and the discovery scan (§4.2.3).

Rules:
- Every access follows the driver's width rules: control registers with aligned 32-bit
  accesses (MMIO-DRV-002), config space with 8/16/32-bit accesses at natural
  alignment and 64-bit fields as two 32-bit ones (MMIO-DRV-003).
- The scan checks MagicValue and Version before anything else (MMIO-DRV-017); a window
  with the wrong magic or an unknown version is skipped with a `NotAVirtioDevice`
  record (MMIO-DRV-004/005), and DeviceID 0 is skipped silently, with nothing else
  read (MMIO-DRV-006, MMIO-DRV-018).
- Feature selectors are written before each feature read or write (MMIO-DRV-007/008).

Spec: §4.2.2, §4.2.3.1 (initialization), §4.2.3.2 (virtqueue configuration),
§4.2.3.3 and §4.2.3.4 (notifications), §4.2.4 (legacy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .bus import BusDevice, VirtioBus
from .errors import NotAVirtioDevice
from .mmio import MmioSpace, MmioWindow
from .spec import (
    FEATURE_WORD_BITS,
    FEATURE_WORDS,
    LEGACY_PAGE_SIZE,
    LEGACY_QUEUE_ALIGN,
    MMIO_CONFIG_OFFSET,
    MMIO_MAGIC,
    MMIO_REGISTER_WIDTH,
    MMIO_VERSION_LEGACY,
    MMIO_VERSION_MODERN,
    DeviceId,
    MmioReg,
)
from .transport import QueueAreas, area_addresses

_WORD_MASK = (1 << FEATURE_WORD_BITS) - 1
_CONFIG_WIDTHS = (4, 2, 1)


class MmioTransport:
    """The guest's accessor for the virtio-mmio device in `window` of `space`."""

    def __init__(self, space: MmioSpace, window: MmioWindow) -> None:
        self._space = space
        self._base = window.base
        self.irq = window.irq
        self.version = self._read(MmioReg.VERSION)
        self.legacy = self.version == MMIO_VERSION_LEGACY
        self.device_id = self._read(MmioReg.DEVICE_ID)
        self.vendor_id = self._read(MmioReg.VENDOR_ID)

    def _read(self, reg: MmioReg) -> int:
        return self._space.read(self._base + reg, MMIO_REGISTER_WIDTH)

    def _write(self, reg: MmioReg, value: int) -> None:
        self._space.write(self._base + reg, MMIO_REGISTER_WIDTH, value)

    # --- status and features (§4.2.3.1) ---------------------------------------------------
    def get_status(self) -> int:
        """Read Status."""
        return self._read(MmioReg.STATUS)

    def set_status(self, value: int) -> None:
        """Write Status."""
        self._write(MmioReg.STATUS, value)

    def _feature_words(self) -> int:
        return 1 if self.legacy else FEATURE_WORDS

    def get_features(self) -> int:
        """DeviceFeaturesSel then DeviceFeatures, per 32-bit word (MMIO-DRV-007)."""
        features = 0
        for select in range(self._feature_words()):
            self._write(MmioReg.DEVICE_FEATURES_SEL, select)
            features |= self._read(MmioReg.DEVICE_FEATURES) << (FEATURE_WORD_BITS * select)
        return features

    def set_features(self, value: int) -> None:
        """DriverFeaturesSel then DriverFeatures, per 32-bit word (MMIO-DRV-008)."""
        for select in range(self._feature_words()):
            self._write(MmioReg.DRIVER_FEATURES_SEL, select)
            word = value >> (FEATURE_WORD_BITS * select) & _WORD_MASK
            self._write(MmioReg.DRIVER_FEATURES, word)

    # --- queues (§4.2.3.2) ---------------------------------------------------------------------
    def queue_max(self, index: int) -> int:
        """QueueSel then QueueNumMax."""
        self._write(MmioReg.QUEUE_SEL, index)
        return self._read(MmioReg.QUEUE_NUM_MAX)

    def setup_queue(self, index: int, layout: QueueAreas) -> bool:
        """Program size and addresses, then QueueReady = 1 (legacy: QueuePFN); read it back.

        QueueDesc, QueueDriver and QueueDevice take the layout's three areas, split or
        packed (§4.2.2). Legacy places only the page of `desc` (a split ring: a legacy
        device never negotiates RING_PACKED, which needs VERSION_1).

        A queue already ready is left alone and False returned, as Linux refuses to set
        up an active queue (MMIO-DRV-010: its registers are not written).
        """
        if self.queue_ready(index):
            return False
        self._write(MmioReg.QUEUE_NUM, layout.size)
        if self.legacy:
            self._write(MmioReg.GUEST_PAGE_SIZE, LEGACY_PAGE_SIZE)
            self._write(MmioReg.QUEUE_ALIGN, LEGACY_QUEUE_ALIGN)
            self._write(MmioReg.QUEUE_PFN, layout.desc // LEGACY_PAGE_SIZE)
            return self._read(MmioReg.QUEUE_PFN) != 0
        desc, driver, device = area_addresses(layout)
        for low, high, addr in (
            (MmioReg.QUEUE_DESC_LOW, MmioReg.QUEUE_DESC_HIGH, desc),
            (MmioReg.QUEUE_DRIVER_LOW, MmioReg.QUEUE_DRIVER_HIGH, driver),
            (MmioReg.QUEUE_DEVICE_LOW, MmioReg.QUEUE_DEVICE_HIGH, device),
        ):
            self._write(low, addr & _WORD_MASK)
            self._write(high, addr >> FEATURE_WORD_BITS)
        self._write(MmioReg.QUEUE_READY, 1)
        return self._read(MmioReg.QUEUE_READY) == 1

    def queue_ready(self, index: int) -> bool:
        """QueueSel then QueueReady (legacy: QueuePFN non-zero)."""
        self._write(MmioReg.QUEUE_SEL, index)
        if self.legacy:
            return self._read(MmioReg.QUEUE_PFN) != 0
        return self._read(MmioReg.QUEUE_READY) == 1

    def teardown_queue(self, index: int) -> None:
        """QueueReady = 0 and read it back (MMIO-DRV-011); legacy: QueuePFN = 0."""
        self._write(MmioReg.QUEUE_SEL, index)
        if self.legacy:
            self._write(MmioReg.QUEUE_PFN, 0)
            return
        self._write(MmioReg.QUEUE_READY, 0)
        self._read(MmioReg.QUEUE_READY)

    # --- notifications (§4.2.3.3, §4.2.3.4) ---------------------------------------------------
    def notify(self, index: int) -> None:
        """QueueNotify with the queue index (VIRTIO_F_NOTIFICATION_DATA is never offered)."""
        self._write(MmioReg.QUEUE_NOTIFY, index)

    def read_interrupt_status(self) -> int:
        """InterruptStatus."""
        return self._read(MmioReg.INTERRUPT_STATUS)

    def ack_interrupt(self, bits: int) -> None:
        """InterruptACK."""
        self._write(MmioReg.INTERRUPT_ACK, bits)

    # --- configuration space (§4.2.2, MMIO-DRV-003) --------------------------------------------
    def config_generation(self) -> int | None:
        """ConfigGeneration; legacy devices have none."""
        return None if self.legacy else self._read(MmioReg.CONFIG_GENERATION)

    def read_config(self, offset: int, length: int) -> bytes:
        """Config bytes, each piece read with the widest aligned access that fits."""
        out = bytearray()
        for at, width in _config_pieces(offset, length):
            value = self._space.read(self._base + MMIO_CONFIG_OFFSET + at, width)
            out += value.to_bytes(width, "little")
        return bytes(out)

    def write_config(self, offset: int, data: bytes) -> None:
        """Config bytes, each piece written with the widest aligned access that fits."""
        for at, width in _config_pieces(offset, len(data)):
            piece = data[at - offset : at - offset + width]
            addr = self._base + MMIO_CONFIG_OFFSET + at
            self._space.write(addr, width, int.from_bytes(piece, "little"))


def _config_pieces(offset: int, length: int) -> list[tuple[int, int]]:
    """Split [offset, offset+length) into naturally aligned 4/2/1-byte accesses."""
    pieces: list[tuple[int, int]] = []
    at, end = offset, offset + length
    while at < end:
        width = next(w for w in _CONFIG_WIDTHS if at % w == 0 and at + w <= end)
        pieces.append((at, width))
        at += width
    return pieces


@dataclass
class ScanResult:
    """What a scan found: devices registered, and windows skipped (with why, if an error)."""

    registered: list[BusDevice] = field(default_factory=list)
    skipped: list[tuple[MmioWindow, NotAVirtioDevice | None]] = field(default_factory=list)


def scan_mmio(space: MmioSpace, windows: Sequence[MmioWindow], bus: VirtioBus) -> ScanResult:
    """Probe each window as a device tree would list them and register what is there."""
    result = ScanResult()
    for window in windows:
        magic = space.read(window.base + MmioReg.MAGIC_VALUE, MMIO_REGISTER_WIDTH)
        if magic != MMIO_MAGIC:
            result.skipped.append((window, NotAVirtioDevice(f"magic {magic:#x}")))
            continue
        version = space.read(window.base + MmioReg.VERSION, MMIO_REGISTER_WIDTH)
        if version not in (MMIO_VERSION_LEGACY, MMIO_VERSION_MODERN):
            result.skipped.append((window, NotAVirtioDevice(f"version {version}")))
            continue
        device_id = space.read(window.base + MmioReg.DEVICE_ID, MMIO_REGISTER_WIDTH)
        if device_id == DeviceId.RESERVED:
            result.skipped.append((window, None))
            continue
        result.registered.append(bus.register_virtio_device(MmioTransport(space, window)))
    return result
