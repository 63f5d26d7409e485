"""virtio-mmio, device side: the register file (§4.2.2, legacy §4.2.4) over a `DeviceCore`.

Rules:
- `REGISTERS` is the register map as data: each offset, whether the driver may read
  and/or write it, and in which versions (2 modern, 1 legacy) it exists. Every access
  is decided from that table first; only then does a handler run.
- Control registers (below 0x100) are 32 bits wide and aligned (MMIO-DRV-002); config
  space takes 8-, 16- and 32-bit aligned accesses (MMIO-DRV-003). Any other access,
  an undefined offset, a write to a read-only or a read of a write-only register is
  *ignored*: a read returns 0, a write has no effect, and a `BadRegisterAccess` is
  recorded in the core's `violations` (MMIO-DRV-001).
- Everything stateful (status, features, queues, interrupts) lives in the core; this
  module only decodes (selectors, 32-bit halves of 64-bit addresses, page numbers).
- `MmioSpace` maps register windows into a guest-physical address space; unmapped
  addresses read 0 and ignore writes, so a scan over empty windows finds no magic.

Spec: §4.2.2 (register layout, MMIO-DEV-001..007), §4.2.3 (initialization,
notifications), §4.2.4 (legacy interface: GuestPageSize, QueueAlign, QueuePFN).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Flag

from .device_core import DeviceCore, QueueConfig
from .errors import BadRegisterAccess
from .interrupts import InterruptController
from .spec import (
    FEATURE_WORD_BITS,
    MMIO_CONFIG_OFFSET,
    MMIO_MAGIC,
    MMIO_REGISTER_WIDTH,
    MMIO_VERSION_LEGACY,
    MMIO_VERSION_MODERN,
    MMIO_WINDOW_SIZE,
    SHM_NO_REGION,
    MmioReg,
)

_LOW_MASK = (1 << FEATURE_WORD_BITS) - 1


class Access(Flag):
    """What the driver may do with a register."""

    R = 1
    W = 2
    RW = 3


BOTH = frozenset({MMIO_VERSION_LEGACY, MMIO_VERSION_MODERN})
MODERN = frozenset({MMIO_VERSION_MODERN})
LEGACY = frozenset({MMIO_VERSION_LEGACY})

REGISTERS: dict[int, tuple[Access, frozenset[int]]] = {
    MmioReg.MAGIC_VALUE: (Access.R, BOTH),
    MmioReg.VERSION: (Access.R, BOTH),
    MmioReg.DEVICE_ID: (Access.R, BOTH),
    MmioReg.VENDOR_ID: (Access.R, BOTH),
    MmioReg.DEVICE_FEATURES: (Access.R, BOTH),
    MmioReg.DEVICE_FEATURES_SEL: (Access.W, BOTH),
    MmioReg.DRIVER_FEATURES: (Access.W, BOTH),
    MmioReg.DRIVER_FEATURES_SEL: (Access.W, BOTH),
    MmioReg.GUEST_PAGE_SIZE: (Access.W, LEGACY),
    MmioReg.QUEUE_SEL: (Access.W, BOTH),
    MmioReg.QUEUE_NUM_MAX: (Access.R, BOTH),
    MmioReg.QUEUE_NUM: (Access.W, BOTH),
    MmioReg.QUEUE_ALIGN: (Access.W, LEGACY),
    MmioReg.QUEUE_PFN: (Access.RW, LEGACY),
    MmioReg.QUEUE_READY: (Access.RW, MODERN),
    MmioReg.QUEUE_NOTIFY: (Access.W, BOTH),
    MmioReg.INTERRUPT_STATUS: (Access.R, BOTH),
    MmioReg.INTERRUPT_ACK: (Access.W, BOTH),
    MmioReg.STATUS: (Access.RW, BOTH),
    MmioReg.QUEUE_DESC_LOW: (Access.W, MODERN),
    MmioReg.QUEUE_DESC_HIGH: (Access.W, MODERN),
    MmioReg.QUEUE_DRIVER_LOW: (Access.W, MODERN),
    MmioReg.QUEUE_DRIVER_HIGH: (Access.W, MODERN),
    MmioReg.QUEUE_DEVICE_LOW: (Access.W, MODERN),
    MmioReg.QUEUE_DEVICE_HIGH: (Access.W, MODERN),
    MmioReg.SHM_SEL: (Access.W, MODERN),
    MmioReg.SHM_LEN_LOW: (Access.R, MODERN),
    MmioReg.SHM_LEN_HIGH: (Access.R, MODERN),
    MmioReg.SHM_BASE_LOW: (Access.R, MODERN),
    MmioReg.SHM_BASE_HIGH: (Access.R, MODERN),
    MmioReg.CONFIG_GENERATION: (Access.R, MODERN),
}
"""The register map (§4.2.2; §4.2.4 for the legacy-only rows)."""

CONFIG_WIDTHS = (1, 2, 4)
"""Access widths config space accepts, each naturally aligned (MMIO-DRV-003)."""

_ADDRESS_HALVES: dict[int, tuple[str, int]] = {
    MmioReg.QUEUE_DESC_LOW: ("desc", 0),
    MmioReg.QUEUE_DESC_HIGH: ("desc", FEATURE_WORD_BITS),
    MmioReg.QUEUE_DRIVER_LOW: ("driver", 0),
    MmioReg.QUEUE_DRIVER_HIGH: ("driver", FEATURE_WORD_BITS),
    MmioReg.QUEUE_DEVICE_LOW: ("device", 0),
    MmioReg.QUEUE_DEVICE_HIGH: ("device", FEATURE_WORD_BITS),
}


class MmioDevice:
    """The register window of one virtio-mmio device; `version` 2 (modern) or 1 (legacy)."""

    def __init__(self, core: DeviceCore, *, version: int = MMIO_VERSION_MODERN) -> None:
        self.core = core
        self.version = version
        self.device_features_sel = 0
        self.driver_features_sel = 0
        self.queue_sel = 0
        self.guest_page_size = 0
        self.shm_sel = 0

    # --- access decoding -----------------------------------------------------------------
    def read(self, offset: int, width: int) -> int:
        """A driver read of `width` bytes at `offset`; bad accesses read 0 (recorded)."""
        if offset >= MMIO_CONFIG_OFFSET:
            if not self._config_access_ok(offset, width):
                return 0
            data = self.core.read_config(offset - MMIO_CONFIG_OFFSET, width)
            return int.from_bytes(data, "little")
        if not self._register_access_ok(offset, width, Access.R):
            return 0
        return self._read_register(offset)

    def write(self, offset: int, width: int, value: int) -> None:
        """A driver write of `width` bytes at `offset`; bad accesses are ignored (recorded)."""
        value &= (1 << (8 * width)) - 1 if width > 0 else 0
        if offset >= MMIO_CONFIG_OFFSET:
            if self._config_access_ok(offset, width):
                data = value.to_bytes(width, "little")
                self.core.write_config(offset - MMIO_CONFIG_OFFSET, data)
            return
        if self._register_access_ok(offset, width, Access.W):
            self._write_register(offset, value)

    def _register_access_ok(self, offset: int, width: int, want: Access) -> bool:
        entry = REGISTERS.get(offset)
        if width != MMIO_REGISTER_WIDTH or offset % MMIO_REGISTER_WIDTH:
            return self._bad(f"{width}-byte access to register {offset:#x}")
        if entry is None or self.version not in entry[1]:
            return self._bad(f"undefined register {offset:#x} in version {self.version}")
        if not entry[0] & want:
            return self._bad(f"{want.name} of register {MmioReg(offset).name} not allowed")
        return True

    def _config_access_ok(self, offset: int, width: int) -> bool:
        if width not in CONFIG_WIDTHS or offset % width:
            return self._bad(f"{width}-byte config access at {offset:#x}")
        if offset + width > MMIO_WINDOW_SIZE:
            return self._bad(f"access at {offset:#x} beyond the register window")
        return True

    def _bad(self, message: str) -> bool:
        self.core.violations.append(BadRegisterAccess(message))
        return False

    # --- reads ------------------------------------------------------------------------------
    def _read_register(self, offset: int) -> int:
        core = self.core
        queue = core.queue_config(self.queue_sel)
        readers: dict[int, Callable[[], int]] = {
            MmioReg.MAGIC_VALUE: lambda: MMIO_MAGIC,
            MmioReg.VERSION: lambda: self.version,
            MmioReg.DEVICE_ID: lambda: int(core.backend.device_id),
            MmioReg.VENDOR_ID: lambda: core.backend.vendor_id,
            MmioReg.DEVICE_FEATURES: lambda: core.device_features_word(self.device_features_sel),
            MmioReg.QUEUE_NUM_MAX: lambda: 0 if queue is None else queue.max_size,
            MmioReg.QUEUE_READY: lambda: int(queue is not None and queue.ready),
            MmioReg.QUEUE_PFN: lambda: self._queue_pfn(queue),
            MmioReg.INTERRUPT_STATUS: lambda: core.interrupt_status,
            MmioReg.STATUS: lambda: core.status,
            MmioReg.CONFIG_GENERATION: lambda: core.config_generation & _LOW_MASK,
        }
        reader = readers.get(offset)
        return SHM_NO_REGION if reader is None else reader()

    def _queue_pfn(self, queue: QueueConfig | None) -> int:
        if queue is None or not queue.ready or not self.guest_page_size:
            return 0
        return queue.legacy_base // self.guest_page_size

    # --- writes ------------------------------------------------------------------------------
    def _write_register(self, offset: int, value: int) -> None:
        core = self.core
        if offset in _ADDRESS_HALVES:
            self._write_address_half(offset, value)
            return
        simple: dict[int, Callable[[int], None]] = {
            MmioReg.DEVICE_FEATURES_SEL: lambda v: setattr(self, "device_features_sel", v),
            MmioReg.DRIVER_FEATURES_SEL: lambda v: setattr(self, "driver_features_sel", v),
            MmioReg.DRIVER_FEATURES: lambda v: core.write_driver_features_word(
                self.driver_features_sel, v
            ),
            MmioReg.GUEST_PAGE_SIZE: lambda v: setattr(self, "guest_page_size", v),
            MmioReg.QUEUE_SEL: lambda v: setattr(self, "queue_sel", v),
            MmioReg.QUEUE_NUM: self._write_queue_num,
            MmioReg.QUEUE_ALIGN: self._write_queue_align,
            MmioReg.QUEUE_PFN: self._write_queue_pfn,
            MmioReg.QUEUE_READY: self._write_queue_ready,
            MmioReg.QUEUE_NOTIFY: core.notify,
            MmioReg.INTERRUPT_ACK: core.ack_interrupt,
            MmioReg.STATUS: core.write_status,
            MmioReg.SHM_SEL: lambda v: setattr(self, "shm_sel", v),
        }
        simple[offset](value)

    def _writable_queue(self) -> QueueConfig | None:
        return self.core.queue_writable(self.queue_sel)

    def _write_queue_num(self, value: int) -> None:
        queue = self._writable_queue()
        if queue is not None:
            queue.size = value

    def _write_queue_align(self, value: int) -> None:
        queue = self._writable_queue()
        if queue is not None:
            queue.align = value

    def _write_address_half(self, offset: int, value: int) -> None:
        queue = self._writable_queue()
        if queue is None:
            return
        name, shift = _ADDRESS_HALVES[offset]
        old = int(getattr(queue, name))
        setattr(queue, name, old & ~(_LOW_MASK << shift) | value << shift)

    def _write_queue_ready(self, value: int) -> None:
        if value:
            self.core.enable_queue(self.queue_sel)
        else:
            self.core.disable_queue(self.queue_sel)

    def _write_queue_pfn(self, value: int) -> None:
        """Legacy: a page number places the whole ring (§4.2.4); 0 stops the queue."""
        if value == 0:
            self.core.disable_queue(self.queue_sel)
            return
        queue = self._writable_queue()
        if queue is None:
            return
        queue.legacy_base = value * self.guest_page_size
        if not self.core.enable_queue(self.queue_sel):
            queue.legacy_base = 0


@dataclass(frozen=True)
class MmioWindow:
    """Where a device's registers sit and which interrupt line it raises (a DT node)."""

    base: int
    size: int = MMIO_WINDOW_SIZE
    irq: int = 0


class MmioSpace:
    """A guest-physical MMIO address space holding register windows.

    `attach` maps a device into a window and wires its interrupt line to `irqs`.
    Accesses to no window read 0 and ignore writes (nothing answers there).
    """

    def __init__(self, irqs: InterruptController) -> None:
        self.irqs = irqs
        self._windows: list[tuple[MmioWindow, MmioDevice]] = []

    def attach(self, window: MmioWindow, device: MmioDevice) -> None:
        """Map `device` at `window` and connect its interrupt line."""
        self._windows.append((window, device))
        device.core.on_interrupt = lambda: self.irqs.raise_line(window.irq)

    def device_at(self, base: int) -> MmioDevice | None:
        """The device mapped at `base`, if any."""
        for window, device in self._windows:
            if window.base == base:
                return device
        return None

    def _find(self, addr: int) -> tuple[MmioWindow, MmioDevice] | None:
        for window, device in self._windows:
            if window.base <= addr < window.base + window.size:
                return window, device
        return None

    def read(self, addr: int, width: int) -> int:
        """A guest load of `width` bytes at `addr`."""
        found = self._find(addr)
        if found is None:
            return 0
        window, device = found
        return device.read(addr - window.base, width)

    def write(self, addr: int, width: int, value: int) -> None:
        """A guest store of `width` bytes at `addr`."""
        found = self._find(addr)
        if found is not None:
            window, device = found
            device.write(addr - window.base, width, value)
