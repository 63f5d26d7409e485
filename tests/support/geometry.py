"""Where an ordering scenario's ring and buffers live.

`Geometry(size, buffers, start, segments, ring, indirect)`: a ring of type `ring`
(split §2.7 or packed §2.8, `support.ring_types`) with `size` entries from address 0,
then the data of buffer 0 (the first round's) and of buffers 1..`buffers` after it,
positions starting at `start`. Buffers 1..`buffers` are `segments` descriptors each
(their data split evenly); buffer 0 is one descriptor, so with multi-descriptor
buffers the race starts at an odd offset and a packed list crosses the end of the ring.

With `indirect`, VIRTIO_F_INDIRECT_DESC is negotiated and the driver gets an allocator
over a window after the data (`tables`): a buffer of two segments or more then goes
out as one ring descriptor pointing at an indirect table the driver fills (split
§2.7.5.3, packed §2.8.7), so it takes one ring position.
"""

from __future__ import annotations

from dataclasses import dataclass

from support.ring_types import PACKED, SPLIT, Layout, RingType

from impl.alloc import GuestAllocator
from impl.chain import Segment
from impl.layout import align_up
from impl.spec import DESC_SIZE, Feature, feature_mask

SIZE = 2
LENGTH = 4
TOKENS = ("t0", "t1", "t2")
PAYLOAD = (b"\x10\x11\x12\x13", b"\xa1\xa2\xa3\xa4", b"\xb1\xb2\xb3\xb4")
"""The standard scenario's tokens and data: buffer 0 is the first round's."""


@dataclass(frozen=True)
class Geometry:
    """Where a scenario's ring and buffers live: queue `size`, `buffers` in flight."""

    size: int = SIZE
    buffers: int = 2
    start: int = 0
    segments: int = 1
    ring: RingType = SPLIT
    indirect: bool = False

    @property
    def layout(self) -> Layout:
        """The ring, from address 0."""
        return self.ring.layout(self.size)

    @property
    def is_standard(self) -> bool:
        """Whether this is the standard shape (size 2, two one-descriptor buffers, from 0)."""
        shape = (self.size, self.buffers, self.start, self.segments, self.indirect)
        return shape == (SIZE, 2, 0, 1, False)

    @property
    def shape(self) -> str:
        """The shape in words, for a scenario's name."""
        unit = "segments" if self.indirect else "descriptors"
        lists = f", {self.segments} {unit} each" if self.segments > 1 else ""
        tables = ", indirect" if self.indirect else ""
        return f"size {self.size}, {self.buffers} buffers{lists}{tables}, from {self.start}"

    def data(self, i: int) -> int:
        """Where buffer `i`'s data lives (buffer 0 is the first round's)."""
        return align_up(self.layout.end, 8) + 8 * i

    @property
    def tables(self) -> tuple[int, int]:
        """The allocator's window for indirect tables: room for one per buffer (empty
        without `indirect`)."""
        start = self.data(self.buffers + 1)
        room = DESC_SIZE * self.segments * (self.buffers + 1) if self.indirect else 0
        return start, start + room

    @property
    def memory_size(self) -> int:
        """The guest memory the scenario needs."""
        return self.tables[1]

    def features(self, event_idx: bool) -> int:
        """The negotiated features: EVENT_IDX in that mode, INDIRECT_DESC with `indirect`."""
        indirect = feature_mask(Feature.INDIRECT_DESC) if self.indirect else 0
        return features_for(event_idx) | indirect

    def allocator(self) -> GuestAllocator | None:
        """The driver's allocator over `tables` (None without `indirect`)."""
        return GuestAllocator(*self.tables) if self.indirect else None

    def descriptors(self, i: int) -> int:
        """How many ring descriptors buffer `i` takes: one for an indirect table (the
        driver uses one for two segments or more), else one per segment."""
        parts = len(self.parts(i))
        return 1 if self.indirect and parts > 1 else parts

    def parts(self, i: int) -> list[Segment]:
        """Buffer `i`'s segments: its data split into `segments` pieces (1 for buffer 0)."""
        count = 1 if i == 0 else self.segments
        piece = LENGTH // count
        return [Segment(self.data(i) + piece * k, piece) for k in range(count)]

    def pieces(self, i: int) -> tuple[bytes, ...]:
        """Buffer `i`'s data as its segments hold it."""
        return tuple(self.payload(i)[seg.addr - self.data(i) :][: seg.len] for seg in self.parts(i))

    def slots(self, i: int) -> int:
        """How many ring positions buffer `i` takes (`RingType.slots`)."""
        return self.ring.slots(self.descriptors(i))

    def token(self, i: int) -> str:
        """Buffer `i`'s token."""
        return TOKENS[i] if i < len(TOKENS) else f"t{i}"

    def buffer_of(self, token: str) -> int:
        """Which buffer carries `token`."""
        return next(i for i in range(self.buffers + 1) if self.token(i) == token)

    def payload(self, i: int) -> bytes:
        """Buffer `i`'s data."""
        return PAYLOAD[i] if i < len(PAYLOAD) else bytes([0xC0 + i]) * LENGTH


STANDARD = Geometry()
"""The standard scenario: a split ring of size 2, two buffers in flight, indices from 0."""
PACKED_STANDARD = Geometry(ring=PACKED)
"""The same on the packed ring: the race crosses the wrap (the second buffer at offset 0)."""
PACKED_LISTS = Geometry(size=4, segments=2, ring=PACKED)
"""Two lists of two descriptors in a packed ring of 4, the second crossing the ring's end."""
INDIRECT = Geometry(segments=2, indirect=True)
"""The standard split shape with each raced buffer two segments behind an indirect table."""
PACKED_INDIRECT = Geometry(segments=2, indirect=True, ring=PACKED)
"""The same on the packed ring: one ring descriptor per buffer, the race crossing the wrap."""


def features_for(event_idx: bool) -> int:
    """The negotiated features of a mode."""
    return feature_mask(Feature.EVENT_IDX) if event_idx else 0
