"""What an ordering scenario needs to know about a ring type: split (§2.7) or packed (§2.8).

The scenarios, their checks and their set-up (`support.ordering`) are written once;
everything that differs between the two ring types goes through a `RingType`:

* the layout of a ring of a given size, and the reference driver and device (or a
  variant of either) built over it from the scenario's start position;
* the model beside them (`model.queue.VirtqueueModel`): the split ring counts 16-bit
  indices and one position per buffer, the packed ring counts positions modulo twice
  the size and one per descriptor (§2.8.7: a list takes as many slots as it has
  descriptors);
* the chain the device holds for a head (to write a device-writable buffer's data);
* how much work the consumer has left at quiescence: buffers the driver made
  available and the device did not take (split: `avail.idx` ahead of the device's
  position, §2.7.6; packed: heads marked available for their lap, §2.8.1), used
  buffers the driver did not reclaim (split: `used.idx` ahead, §2.7.8; packed: heads
  marked used, §2.8.1);
* how the memory decodes to the model's view (`impl.observer.abstract`,
  `impl.packed_observer.abstract_packed`), the refinement check;
* the names of the ring's fields, so a counterexample trace reads like the layout;
* whether the explorer runs in hand-over mode: the packed device writes used
  descriptors over available ones (§2.8.6), the split ring has one writer per byte.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from impl.chain import Chain
from impl.layout import SplitLayout
from impl.memory import GuestMemory
from impl.observer import abstract
from impl.packed_device import PackedDevice
from impl.packed_driver import PackedDriver
from impl.packed_layout import PackedLayout
from impl.packed_observer import abstract_packed
from impl.ring_math import distance
from impl.spec import DESC_SIZE
from impl.split_device import SplitDevice
from impl.split_driver import SplitDriver
from impl.wrap_math import advance, is_available, is_used, offset_of, wrap_of
from model.queue import QueueView, VirtqueueModel

if TYPE_CHECKING:
    from support.geometry import Geometry

Layout = SplitLayout | PackedLayout
Namer = Callable[[int], str]


class RingType(ABC):
    """One ring type as the scenarios see it (module docstring)."""

    prefix: ClassVar[str]
    """What a scenario's name starts with on this ring type."""
    handover: ClassVar[bool]
    """Whether descriptor bytes change writer (the explorer's hand-over mode)."""
    reference_driver: ClassVar[type[Any]]
    reference_device: ClassVar[type[Any]]

    @abstractmethod
    def layout(self, size: int) -> Layout:
        """The ring of `size` entries, from address 0."""

    @abstractmethod
    def build(self, cls: type[Any], mem: GuestMemory, g: Geometry, features: int,
              **extra: Any) -> Any:
        """A driver or device of class `cls` over the ring, from the geometry's start
        (`extra`: keyword arguments, such as a driver's allocator)."""

    @abstractmethod
    def model(self, g: Geometry, event_idx: bool) -> VirtqueueModel:
        """The model queue beside the driver and device."""

    @abstractmethod
    def slots(self, descriptors: int) -> int:
        """How many ring positions a buffer of `descriptors` descriptors takes."""

    @abstractmethod
    def held(self, device: Any, head: int) -> Chain:
        """The chain the device holds under `head`."""

    @abstractmethod
    def available(self, mem: GuestMemory, g: Geometry, device: Any) -> int:
        """How many buffers are available that the device has not taken."""

    @abstractmethod
    def unreclaimed(self, mem: GuestMemory, g: Geometry, driver: Any) -> int:
        """How many used buffers the driver has not reclaimed."""

    @abstractmethod
    def view(
        self, mem: GuestMemory, g: Geometry, driver: Any, device: Any, *, event_idx: bool
    ) -> QueueView:
        """The memory decoded to the model's view (raises `NotConforming` if it cannot)."""

    @abstractmethod
    def fields(self, g: Geometry) -> dict[int, str]:
        """The ring's fields by address, as the spec names them."""

    def names(self, g: Geometry) -> Namer:
        """Name an address: a ring field, a buffer's data, or a descriptor and offset."""
        lay = g.layout
        named = self.fields(g)
        for i in range(g.buffers + 1):
            named[g.data(i)] = f"data of buffer {i}"
        tables, end = g.tables

        def name(addr: int) -> str:
            if addr in named:
                return named[addr]
            if lay.desc <= addr < lay.desc_addr(g.size):
                index, offset = divmod(addr - lay.desc, DESC_SIZE)
                return f"desc[{index}]+{offset}"
            if tables <= addr < end:
                index, offset = divmod(addr - tables, DESC_SIZE)
                return f"indirect entry {index}+{offset}"
            return hex(addr)

        return name


@dataclass(frozen=True)
class SplitRing(RingType):
    """The split ring (§2.7): descriptor table, available ring, used ring."""

    prefix: ClassVar[str] = ""
    handover: ClassVar[bool] = False
    reference_driver: ClassVar[type[Any]] = SplitDriver
    reference_device: ClassVar[type[Any]] = SplitDevice

    def layout(self, size: int) -> SplitLayout:
        """The modern layout (§2.7, areas in one block)."""
        return SplitLayout.modern(size)

    def build(self, cls: type[Any], mem: GuestMemory, g: Geometry, features: int,
              **extra: Any) -> Any:
        """Both indices start at `g.start`."""
        return cls(mem, g.layout, features, initial_index=g.start, **extra)

    def model(self, g: Geometry, event_idx: bool) -> VirtqueueModel:
        """16-bit indices from `g.start`."""
        return VirtqueueModel(g.size, event_idx, initial=g.start)

    def slots(self, descriptors: int) -> int:
        """One available-ring entry per buffer, however long its chain (§2.7.6)."""
        return 1

    def held(self, device: Any, head: int) -> Chain:
        """The chain popped under `head`."""
        chain: Chain = device.in_flight[head]
        return chain

    def available(self, mem: GuestMemory, g: Geometry, device: Any) -> int:
        """`avail.idx` ahead of the device's next position (§2.7.6)."""
        return int(distance(mem.read_u16(self.layout(g.size).avail_idx), device.next_avail))

    def unreclaimed(self, mem: GuestMemory, g: Geometry, driver: Any) -> int:
        """`used.idx` ahead of the driver's last seen position (§2.7.8)."""
        return int(distance(mem.read_u16(self.layout(g.size).used_idx), driver.last_used_idx))

    def view(
        self, mem: GuestMemory, g: Geometry, driver: Any, device: Any, *, event_idx: bool
    ) -> QueueView:
        """`impl.observer.abstract`."""
        return abstract(mem, self.layout(g.size), driver, device, event_idx=event_idx)

    def fields(self, g: Geometry) -> dict[int, str]:
        """§2.7.5 descriptors, §2.7.6 available ring, §2.7.8 used ring, §2.7.7/§2.7.10 events."""
        lay = self.layout(g.size)
        named = {
            lay.avail_flags: "avail.flags",
            lay.avail_idx: "avail.idx",
            lay.used_event: "used_event",
            lay.used_flags: "used.flags",
            lay.used_idx: "used.idx",
            lay.avail_event: "avail_event",
        }
        for i in range(g.size):
            named[lay.avail_ring(i)] = f"avail.ring[{i}]"
            named[lay.used_ring(i)] = f"used.ring[{i}]"
            named[lay.used_ring(i) + 4] = f"used.ring[{i}].len"
            named[lay.desc_addr(i)] = f"desc[{i}]"
        return named


@dataclass(frozen=True)
class PackedRing(RingType):
    """The packed ring (§2.8): one descriptor ring and two event suppression structures."""

    prefix: ClassVar[str] = "packed-"
    handover: ClassVar[bool] = True
    reference_driver: ClassVar[type[Any]] = PackedDriver
    reference_device: ClassVar[type[Any]] = PackedDevice

    def layout(self, size: int) -> PackedLayout:
        """The ring and both event suppression structures (§2.8.10)."""
        return PackedLayout.modern(size)

    def build(self, cls: type[Any], mem: GuestMemory, g: Geometry, features: int,
              **extra: Any) -> Any:
        """Both positions start at offset `g.start` with wrap counters 1."""
        return cls(mem, g.layout, features, initial_offset=g.start, **extra)

    def model(self, g: Geometry, event_idx: bool) -> VirtqueueModel:
        """Positions modulo twice the size: an offset and its wrap counter (§2.8.1)."""
        return VirtqueueModel(g.size, event_idx, g.start, positions=2 * g.size)

    def slots(self, descriptors: int) -> int:
        """A list takes one position per descriptor (§2.8.7)."""
        return descriptors

    def held(self, device: Any, head: int) -> Chain:
        """The chain of the list whose buffer id is `head`."""
        chain: Chain = device.held_chain(head)
        return chain

    def available(self, mem: GuestMemory, g: Geometry, device: Any) -> int:
        """The race's lists from the device's next position whose head is available."""
        return _marked_run(mem, g, device.next_avail, is_available)

    def unreclaimed(self, mem: GuestMemory, g: Geometry, driver: Any) -> int:
        """The lists from the driver's next position whose head is marked used."""
        return _marked_run(mem, g, driver.last_used_idx, is_used) if driver.outstanding else 0

    def view(
        self, mem: GuestMemory, g: Geometry, driver: Any, device: Any, *, event_idx: bool
    ) -> QueueView:
        """`impl.packed_observer.abstract_packed`."""
        return abstract_packed(mem, self.layout(g.size), driver, device, event_idx=event_idx)

    def fields(self, g: Geometry) -> dict[int, str]:
        """Descriptor fields (§2.8.13) and the event suppression structures (§2.8.10)."""
        lay = self.layout(g.size)
        named = {
            lay.driver_off_wrap: "driver_event.off_wrap",
            lay.driver_flags: "driver_event.flags",
            lay.device_off_wrap: "device_event.off_wrap",
            lay.device_flags: "device_event.flags",
        }
        for i in range(g.size):
            named[lay.desc_addr(i)] = f"desc[{i}].addr"
            named[lay.desc_len(i)] = f"desc[{i}].len"
            named[lay.desc_id(i)] = f"desc[{i}].id"
            named[lay.desc_flags(i)] = f"desc[{i}].flags"
        return named


def _marked_run(
    mem: GuestMemory, g: Geometry, pos: int, marked: Callable[[int, int], Any]
) -> int:
    """How many of the race's lists from `pos` on have their head marked for its lap."""
    layout, count = PackedLayout.modern(g.size), 0
    while count < g.buffers:
        flags = mem.read_u16(layout.desc_flags(offset_of(pos, g.size)))
        if not marked(flags, wrap_of(pos, g.size)):
            break
        pos, count = advance(pos, g.descriptors(count + 1), g.size), count + 1
    return count


SPLIT = SplitRing()
PACKED = PackedRing()
