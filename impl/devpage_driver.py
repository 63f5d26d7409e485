"""The descriptor-page bus, guest side: the scan and the per-entry accessor.

Rules:
- The scan walks entries from the start of the page until a type-0 entry; an entry
  that would run past the page ends the scan with a `NotAVirtioDevice` record (a
  corrupt page never makes the guest read outside it).
- The accessor edits only guest-owned fields of its entry (status request,
  driver_features, queue size/addresses/ready, config bytes being written) and then
  makes the hypercall that hands the edit to the host; it reads host-owned fields
  straight from the page. Notifications are a hypercall with the queue's descriptor
  table address, so a queue is always named by where its ring lives.
- Every device is modern (VERSION_1 required by the bus); there is no legacy form.

Spec: the format is this project's own (docs/transports.md); the facilities carried
are §2.1, §2.2, §2.5 and §2.6.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .bus import BusDevice, VirtioBus
from .devpage import VQ_DESC, VQ_DEVICE, VQ_DRIVER, VQ_MAX_SIZE, VQ_READY, VQ_SIZE, EntryLayout
from .errors import NotAVirtioDevice
from .memory import GuestMemory
from .spec import DEVPAGE_SIZE, Hypercall
from .transport import QueueAreas, area_addresses

HypercallFn = Callable[..., int]
"""`hypercall(number, arg0=0, arg1=0, arg2=0) -> int`, the guest's trap into the host."""


class DevPageTransport:
    """The guest's accessor for one entry of the descriptor page."""

    legacy = False

    def __init__(self, mem: GuestMemory, entry: EntryLayout, hypercall: HypercallFn) -> None:
        self._mem = mem
        self.entry = entry
        self._hypercall = hypercall
        self.device_id = mem.read_u8(entry.type)
        self.vendor_id = mem.read_u32(entry.vendor_id)
        self.irq = mem.read_u8(entry.irq)
        self._desc: dict[int, int] = {}

    def get_status(self) -> int:
        """The status byte as the host last wrote it."""
        return self._mem.read_u8(self.entry.status)

    def set_status(self, value: int) -> None:
        """Request a status and hand it to the host (SET_STATUS); 0 is the RESET hypercall."""
        if value == 0:
            self._hypercall(Hypercall.RESET, self.entry.base)
            return
        self._mem.write_u8(self.entry.status, value)
        self._hypercall(Hypercall.SET_STATUS, self.entry.base)

    def get_features(self) -> int:
        """The offered feature word."""
        return self._mem.read_u64(self.entry.device_features)

    def set_features(self, value: int) -> None:
        """The accepted word; the host takes it at the next SET_STATUS (FEATURES_OK)."""
        self._mem.write_u64(self.entry.driver_features, value)

    def queue_max(self, index: int) -> int:
        """The queue's max_size; 0 for a queue the entry does not list."""
        if not 0 <= index < self.entry.num_vq:
            return 0
        return self._mem.read_u16(self.entry.vq(index) + VQ_MAX_SIZE)

    def setup_queue(self, index: int, layout: QueueAreas) -> bool:
        """Write size, the three areas and ready = 1, hand it over, and read ready back.

        The record's desc/driver/device take the layout's areas, split or packed.

        A queue already ready is left alone and False returned, as Linux refuses to set
        up an active queue.
        """
        if not 0 <= index < self.entry.num_vq:
            return False
        if self.queue_ready(index):
            return False
        record, mem = self.entry.vq(index), self._mem
        desc, driver, device = area_addresses(layout)
        mem.write_u16(record + VQ_SIZE, layout.size)
        mem.write_u64(record + VQ_DESC, desc)
        mem.write_u64(record + VQ_DRIVER, driver)
        mem.write_u64(record + VQ_DEVICE, device)
        mem.write_u32(record + VQ_READY, 1)
        self._hypercall(Hypercall.SET_STATUS, self.entry.base)
        self._desc[index] = layout.desc
        return mem.read_u32(record + VQ_READY) == 1

    def queue_ready(self, index: int) -> bool:
        """The ready word the host last wrote for queue `index`."""
        if not 0 <= index < self.entry.num_vq:
            return False
        return self._mem.read_u32(self.entry.vq(index) + VQ_READY) == 1

    def teardown_queue(self, index: int) -> None:
        """ready = 0 and hand it over."""
        if 0 <= index < self.entry.num_vq:
            self._mem.write_u32(self.entry.vq(index) + VQ_READY, 0)
            self._hypercall(Hypercall.SET_STATUS, self.entry.base)
        if not self.queue_ready(index):
            self._desc.pop(index, None)

    def notify(self, index: int) -> None:
        """NOTIFY with the queue's descriptor-table address."""
        self._hypercall(Hypercall.NOTIFY, self._desc.get(index, 0))

    def read_interrupt_status(self) -> int:
        """The isr word."""
        return self._mem.read_u32(self.entry.isr)

    def ack_interrupt(self, bits: int) -> None:
        """ACK_INTERRUPT with the handled bits."""
        self._hypercall(Hypercall.ACK_INTERRUPT, self.entry.base, bits)

    def config_generation(self) -> int | None:
        """The generation word."""
        return self._mem.read_u32(self.entry.generation)

    @property
    def config_size(self) -> int:
        """The entry's `config_len`: how many config bytes the host publishes."""
        return self.entry.config_len

    def read_config(self, offset: int, length: int) -> bytes:
        """Config bytes from the page; beyond config_len reads as zeros."""
        inside = max(0, min(length, self.entry.config_len - offset))
        data = self._mem.read(self.entry.config + offset, inside) if offset >= 0 else b""
        return data.ljust(length, b"\0")

    def write_config(self, offset: int, data: bytes) -> None:
        """Write the bytes into the page, then CONFIG_WRITE."""
        if 0 <= offset and offset + len(data) <= self.entry.config_len:
            self._mem.write(self.entry.config + offset, data)
            self._hypercall(Hypercall.CONFIG_WRITE, self.entry.base, offset, len(data))


@dataclass
class PageScan:
    """What a page scan registered, and the error that ended it early (if any)."""

    registered: list[BusDevice] = field(default_factory=list)
    error: NotAVirtioDevice | None = None


def read_entry(mem: GuestMemory, base: int, page: int) -> EntryLayout | None:
    """The entry at `base`, or None at the end of the list; raises if it overruns the page."""
    if base + 1 > page + DEVPAGE_SIZE or mem.read_u8(base) == 0:
        return None
    entry = EntryLayout(base, mem.read_u8(base + 1), mem.read_u16(base + 2))
    if entry.end > page + DEVPAGE_SIZE:
        raise NotAVirtioDevice(f"entry at {base:#x} runs past the descriptor page")
    return entry


def scan_devpage(mem: GuestMemory, page: int, hypercall: HypercallFn, bus: VirtioBus) -> PageScan:
    """Register every device the page lists, in order."""
    result = PageScan()
    base = page
    try:
        while (entry := read_entry(mem, base, page)) is not None:
            result.registered.append(
                bus.register_virtio_device(DevPageTransport(mem, entry, hypercall))
            )
            base = entry.end
    except NotAVirtioDevice as error:
        result.error = error
    return result
