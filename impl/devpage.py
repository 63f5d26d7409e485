"""The descriptor-page bus, host side: a page of device entries plus four hypercalls.

This is this project's own transport, modelled on lguest's device page and s390's
kvm_virtio: the host publishes one page in guest memory listing its devices; the guest
scans it, edits an entry (status, accepted features, queue records, config bytes) and
makes a hypercall naming the entry; the host applies the edit to the device and
writes the result back into the page. Notifications are a hypercall carrying the
queue's descriptor-table address. The byte format is in docs/transports.md.

Rules:
- Every field has one owner. The host owns type, num_vq, config_len, vendor_id,
  irq, isr, generation, device_features, each queue's max_size, and (between
  hypercalls) status and the queue ready words it writes back; the guest owns
  driver_features, the queue size and addresses, and its requests in status and
  ready. The host re-publishes every field it owns after each hypercall and each
  interrupt, so a guest scribbling on them changes nothing (outcome: ignored).
- The host reads only the entry a hypercall names, and each read is bounds-checked;
  a hypercall with an unknown number or an address naming no entry or queue is
  recorded as `UnknownHypercall` and otherwise ignored.
- All device semantics (status order, features, queue validity, interrupts) are the
  `DeviceCore`'s; this module only moves fields between the page and the core.

Spec: no section defines this bus; it carries the facilities of §2.1, §2.2, §2.5 and
§2.6 as §4 transports do. docs/transports.md defines the format.
"""

from __future__ import annotations

from dataclasses import dataclass

from .device_core import DeviceCore
from .errors import DevicePageFull, FeaturesBeyondPage, UnknownHypercall
from .interrupts import InterruptController
from .layout import align_up
from .memory import GuestMemory
from .spec import (
    DEVPAGE_ALIGN,
    DEVPAGE_HEADER_SIZE,
    DEVPAGE_SIZE,
    DEVPAGE_VQ_SIZE,
    FEATURE_WORD_BITS,
    FEATURE_WORDS,
    Hypercall,
    Status,
)

_WORD_MASK = (1 << FEATURE_WORD_BITS) - 1
CONFIG_LIMIT = 256
"""Config bytes the host publishes per device (a backend without `config_size`)."""


@dataclass(frozen=True)
class EntryLayout:
    """Field addresses of one device entry at `base` with `num_vq` queues (docs/transports.md)."""

    base: int
    num_vq: int
    config_len: int

    # header fields
    @property
    def type(self) -> int:
        """u8 device id; 0 ends the list."""
        return self.base

    @property
    def num_vq_field(self) -> int:
        """u8 number of queue records."""
        return self.base + 1

    @property
    def config_len_field(self) -> int:
        """u16 bytes of config space."""
        return self.base + 2

    @property
    def vendor_id(self) -> int:
        """u32 vendor id."""
        return self.base + 4

    @property
    def status(self) -> int:
        """u8 device status."""
        return self.base + 8

    @property
    def irq(self) -> int:
        """u8 interrupt line."""
        return self.base + 9

    @property
    def isr(self) -> int:
        """u32 interrupt status."""
        return self.base + 12

    @property
    def generation(self) -> int:
        """u32 configuration generation."""
        return self.base + 16

    @property
    def device_features(self) -> int:
        """u64 offered features."""
        return self.base + 24

    @property
    def driver_features(self) -> int:
        """u64 accepted features."""
        return self.base + 32

    # queue records
    def vq(self, index: int) -> int:
        """Queue record `index`: u16 max_size, u16 size, u32 ready, u64 desc, driver, device."""
        return self.base + DEVPAGE_HEADER_SIZE + DEVPAGE_VQ_SIZE * index

    @property
    def config(self) -> int:
        """Start of the config bytes."""
        return self.vq(self.num_vq)

    @property
    def end(self) -> int:
        """Where the next entry starts."""
        return align_up(self.config + self.config_len, DEVPAGE_ALIGN)


VQ_MAX_SIZE, VQ_SIZE, VQ_READY, VQ_DESC, VQ_DRIVER, VQ_DEVICE = 0, 2, 4, 8, 16, 24
"""Offsets inside a queue record."""


class DevicePageHost:
    """The host side: publishes devices in the page at `page` and serves hypercalls."""

    def __init__(self, mem: GuestMemory, page: int, irqs: InterruptController) -> None:
        mem.check(page, DEVPAGE_SIZE)
        self.mem = mem
        self.page = page
        self.irqs = irqs
        self.entries: list[tuple[EntryLayout, DeviceCore, int]] = []
        self.violations: list[UnknownHypercall] = []
        mem.fill(page, DEVPAGE_SIZE)

    def add(self, core: DeviceCore, irq: int) -> EntryLayout:
        """Publish `core` as the next entry, raising `irq` for its interrupts."""
        start = self.entries[-1][0].end if self.entries else self.page
        config_len = int(getattr(core.backend, "config_size", CONFIG_LIMIT))
        entry = EntryLayout(start, len(core.queues), config_len)
        if entry.end + 1 > self.page + DEVPAGE_SIZE:
            raise DevicePageFull(f"an entry of {entry.end - start} bytes does not fit")
        if core.offered_features >> 64:
            raise FeaturesBeyondPage(
                f"offered features {core.offered_features:#x} need more than 64 bits"
            )
        self.entries.append((entry, core, irq))
        core.on_interrupt = lambda: self._interrupt(entry, core, irq)
        core.on_publish = lambda: self.sync(entry, core, irq)
        self.sync(entry, core, irq)
        return entry

    def _interrupt(self, entry: EntryLayout, core: DeviceCore, irq: int) -> None:
        self.sync(entry, core, irq)
        self.irqs.raise_line(irq)

    def sync(self, entry: EntryLayout, core: DeviceCore, irq: int) -> None:
        """Write every host-owned field of `entry` from the device's current state."""
        mem = self.mem
        mem.write_u8(entry.type, int(core.backend.device_id))
        mem.write_u8(entry.num_vq_field, entry.num_vq)
        mem.write_u16(entry.config_len_field, entry.config_len)
        mem.write_u32(entry.vendor_id, core.backend.vendor_id)
        mem.write_u8(entry.status, core.status)
        mem.write_u8(entry.irq, irq)
        mem.write_u32(entry.isr, core.interrupt_status)
        mem.write_u32(entry.generation, core.config_generation & _WORD_MASK)
        mem.write_u64(entry.device_features, core.offered_features)
        for index, queue in enumerate(core.queues):
            mem.write_u16(entry.vq(index) + VQ_MAX_SIZE, queue.max_size)
            mem.write_u32(entry.vq(index) + VQ_READY, int(queue.ready))
        mem.write(entry.config, core.read_config(0, entry.config_len))

    def refresh(self) -> None:
        """Re-publish every entry (after a host-side change such as a config update)."""
        for entry, core, irq in self.entries:
            self.sync(entry, core, irq)

    # --- hypercalls ---------------------------------------------------------------------
    def hypercall(self, number: int, arg0: int = 0, arg1: int = 0, arg2: int = 0) -> int:
        """Serve one hypercall; returns 0, or -1 for one naming nothing (recorded)."""
        if number == Hypercall.NOTIFY:
            return self._notify(arg0)
        found = self._entry_at(arg0)
        if found is None or number not in Hypercall.__members__.values():
            self.violations.append(UnknownHypercall(f"hypercall {number} at {arg0:#x}"))
            return -1
        entry, core, irq = found
        if number == Hypercall.SET_STATUS:
            self._set_status(entry, core)
        elif number == Hypercall.RESET:
            core.write_status(0)
            self._clear_guest_fields(entry)
        elif number == Hypercall.ACK_INTERRUPT:
            core.ack_interrupt(arg1)
        elif number == Hypercall.CONFIG_WRITE:
            self._config_write(entry, core, arg1, arg2)
        self.sync(entry, core, irq)
        return 0

    def _entry_at(self, addr: int) -> tuple[EntryLayout, DeviceCore, int] | None:
        for found in self.entries:
            if found[0].base == addr:
                return found
        return None

    def _notify(self, desc_addr: int) -> int:
        """Find the enabled queue whose descriptor table is at `desc_addr` and kick it."""
        for _entry, core, _irq in self.entries:
            for index, queue in enumerate(core.queues):
                if queue.ready and queue.desc == desc_addr:
                    core.notify(index)
                    return 0
        self.violations.append(UnknownHypercall(f"notify of {desc_addr:#x}: no such queue"))
        return -1

    def _set_status(self, entry: EntryLayout, core: DeviceCore) -> None:
        """Apply the guest's edits: features, queue records, then the status request.

        Only a status byte different from the device's is a status write.
        """
        mem = self.mem
        status = mem.read_u8(entry.status)
        accepted = mem.read_u64(entry.driver_features)
        if accepted != core.driver_features:
            for select in range(FEATURE_WORDS):
                word = accepted >> (FEATURE_WORD_BITS * select) & _WORD_MASK
                core.write_driver_features_word(select, word)
        for index, queue in enumerate(core.queues):
            record = entry.vq(index)
            wants_ready = mem.read_u32(record + VQ_READY) != 0
            if wants_ready and not queue.ready:
                self._program_queue(core, index, record)
            elif queue.ready and not wants_ready:
                core.disable_queue(index)
        if status != core.status & ~int(Status.DEVICE_NEEDS_RESET):
            # A request of 0 is not a reset (that is the RESET hypercall): it clears
            # every bit, which the core judges as such when given only a device bit.
            core.write_status(status or Status.DEVICE_NEEDS_RESET)

    def _clear_guest_fields(self, entry: EntryLayout) -> None:
        """A reset re-initializes the whole entry: accepted features and queue records too."""
        self.mem.write_u64(entry.driver_features, 0)
        for index in range(entry.num_vq):
            self.mem.fill(entry.vq(index) + VQ_SIZE, DEVPAGE_VQ_SIZE - VQ_SIZE)

    def _program_queue(self, core: DeviceCore, index: int, record: int) -> None:
        queue = core.queue_writable(index)
        if queue is None:
            return
        mem = self.mem
        queue.size = mem.read_u16(record + VQ_SIZE)
        queue.desc = mem.read_u64(record + VQ_DESC)
        queue.driver = mem.read_u64(record + VQ_DRIVER)
        queue.device = mem.read_u64(record + VQ_DEVICE)
        core.enable_queue(index)

    def _config_write(self, entry: EntryLayout, core: DeviceCore, offset: int, length: int) -> None:
        if not (0 <= offset and 0 <= length and offset + length <= entry.config_len):
            self.violations.append(UnknownHypercall(f"config write [{offset}, +{length})"))
            return
        core.write_config(offset, self.mem.read(entry.config + offset, length))
