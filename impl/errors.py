"""One hierarchy for every rejection, named for the violation and for who is at fault.

Rules:
- `VirtioError` is abstract: only its leaves are raised.
- `DriverError`: the driver broke a rule of the spec. The reference *device* raises it
  when the guest hands it something hostile; it is never a crash of ours.
- `DeviceError`: the device broke a rule. The reference *driver* raises it when the
  device's used ring or registers lie.
- `UsageError`: the local caller misused this library's API (it is neither side's
  protocol violation); `NoSpace` is the ring-full back-pressure signal.
- `MemoryFault`: an access outside guest memory. Who is at fault depends on who gave
  the address, so the ring code translates it into a DriverError or DeviceError
  where an address came from the other side.
- Every class names the requirement ids (`shared/spec/requirements.tsv`) it enforces in
  `spec_ids`, and the spec section in `section`. Those ids feed the conformance matrix.

Spec: §2.7 (split virtqueues), §2.1 (DEVICE_NEEDS_RESET on device error).
"""

from __future__ import annotations

from typing import ClassVar

from .spec import BlkStatus


class VirtioError(Exception):
    """Root of every error this project raises on purpose.

    Attributes (class level): `spec_ids`, the requirement ids this error enforces;
    `section`, the VIRTIO 1.4 section the rule lives in.
    """

    spec_ids: ClassVar[tuple[str, ...]] = ()
    section: ClassVar[str] = ""
    _abstract: ClassVar[bool] = True

    def __init_subclass__(cls, abstract: bool = False, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls._abstract = abstract

    def __init__(self, message: str) -> None:
        if type(self)._abstract:
            raise TypeError(f"{type(self).__name__} is abstract; raise one of its subclasses")
        super().__init__(message)

    def __str__(self) -> str:
        message = super().__str__()
        ref = f"§{self.section}" if self.section else ""
        ids = ", ".join(self.spec_ids)
        suffix = " ".join(part for part in (ref, f"[{ids}]" if ids else "") if part)
        return f"{message} ({suffix})" if suffix else message


class DriverError(VirtioError, abstract=True):
    """The driver broke a rule; detected by a device."""


class DeviceError(VirtioError, abstract=True):
    """The device broke a rule; detected by a driver."""


class UsageError(VirtioError, abstract=True):
    """The library's own caller misused an API (not a protocol violation)."""


class MemoryFault(VirtioError):
    """An access to guest memory fell outside the region or wrapped 64 bits."""

    def __init__(self, addr: int, length: int, size: int) -> None:
        super().__init__(f"access of {length} bytes at {addr:#x} outside guest memory of {size:#x}")
        self.addr = addr
        self.length = length


class QueueBroken(VirtioError):
    """The queue saw ring-level corruption earlier and needs a reset (§2.1, DEVICE_NEEDS_RESET)."""

    section = "2.1"
    spec_ids = ("STATUS-DEV-002",)


# --- Device side: what a hostile driver can do -----------------------------------------
class ChainError(DriverError, abstract=True):
    """A malformed descriptor chain. Recovery: the head is returned used with length 0.

    `head` is the chain's head index, set by the device before it raises.
    """

    head: int | None = None


class NextOutOfRange(ChainError):
    """A descriptor's `next` names an index at or beyond the table size (no MUST names this)."""

    section = "2.7.5"


class DescriptorLoop(ChainError):
    """A chain (direct or inside an indirect table) visits a descriptor twice."""

    section = "2.7.5.2"
    spec_ids = ("SPLIT-DRV-004",)


class ChainTooLong(ChainError):
    """A chain has more descriptors than the queue size allows."""

    section = "2.7.5.3"
    spec_ids = ("SPLIT-DRV-007", "SPLIT-DEV-002")


class ChainLengthOverflow(ChainError):
    """A chain's total byte length reaches 2^32."""

    section = "2.7.5.2"
    spec_ids = ("SPLIT-DRV-004",)


class IndirectNotNegotiated(ChainError):
    """VIRTQ_DESC_F_INDIRECT set although VIRTIO_F_INDIRECT_DESC was not negotiated."""

    section = "2.7.5.3"
    spec_ids = ("SPLIT-DRV-005",)


class NestedIndirect(ChainError):
    """VIRTQ_DESC_F_INDIRECT set inside an indirect table."""

    section = "2.7.5.3"
    spec_ids = ("SPLIT-DRV-006",)


class IndirectWithNext(ChainError):
    """VIRTQ_DESC_F_INDIRECT and VIRTQ_DESC_F_NEXT set on the same descriptor."""

    section = "2.7.5.3"
    spec_ids = ("SPLIT-DRV-008",)


class BadIndirectTable(ChainError):
    """An indirect table whose length is 0 or not a multiple of 16 bytes (no MUST names this)."""

    section = "2.7.5.3"


class ReadableAfterWritable(ChainError):
    """A device-readable descriptor follows a device-writable one."""

    section = "2.7.4.2"
    spec_ids = ("SPLIT-DRV-002",)


class BufferOutOfBounds(ChainError):
    """A buffer or indirect table whose addr+len lies outside guest memory (no MUST names this)."""

    section = "2.7.5"


class RingCorruption(DriverError, abstract=True):
    """The available ring itself is inconsistent: the queue is broken until reset."""


class HeadOutOfRange(RingCorruption):
    """An available ring entry names a head at or beyond the queue size (no MUST names this)."""

    section = "2.7.6"


class AvailIndexJump(RingCorruption):
    """avail.idx ran more than the queue size ahead of the device's next_avail.

    Either the driver overwrote ring entries of buffers still exposed (INIT-DRV-007) or
    it moved avail.idx back by more than the queue size (SPLIT-DRV-010): modulo 2^16
    the device cannot tell the two apart.
    """

    section = "2.7.6"
    spec_ids = ("INIT-DRV-007", "SPLIT-DRV-010")


class AvailIndexDecrement(RingCorruption):
    """avail.idx moved backwards: the driver tried to take back exposed buffers."""

    section = "2.7.6.1"
    spec_ids = ("SPLIT-DRV-010",)


class InvalidLayout(DriverError):
    """Queue size not a power of two in 1..32768, a misaligned part, or a part outside memory."""

    section = "2.7.1"
    spec_ids = ("SPLIT-DRV-001",)


# --- Driver side: what a hostile device can do -----------------------------------------
class UsedIdOutOfRange(DeviceError):
    """A used element's id is at or beyond the queue size."""

    section = "2.7.8"


class UsedIdNotOutstanding(DeviceError):
    """A used element's id is not the head of a buffer the device holds (or was used twice)."""

    section = "2.7.8"


class UsedIndexJump(DeviceError):
    """used.idx ran ahead by more than the number of buffers outstanding."""

    section = "2.7.8"


class UsedLengthTooLong(DeviceError):
    """A used element's len exceeds the writable bytes of its buffer."""

    section = "2.7.8"
    spec_ids = ("SPLIT-DEV-014",)


# --- Local API misuse ------------------------------------------------------------------
class NoSpace(UsageError):
    """Not enough free descriptors for this buffer: back-pressure, try after get_buf."""

    section = "2.7.13.1"


class BadBuffer(UsageError):
    """A buffer the caller asked to add breaks a driver rule (empty, too long, too many parts)."""

    section = "2.7.5.2"
    spec_ids = ("SPLIT-DRV-004", "SPLIT-DRV-007")


class NotInFlight(UsageError):
    """The device was asked to complete a head it does not hold."""

    section = "2.7.8"


class PayloadTooLarge(UsageError):
    """A device tried to write more bytes than a chain's writable segments hold (§2.7.5.1)."""

    section = "2.7.5.1"
    spec_ids = ("SPLIT-DEV-003",)


class HeadAlreadyInFlight(RingCorruption):
    """An available entry names a head the device already holds: one buffer exposed twice."""

    section = "3.3.1"
    spec_ids = ("INIT-DRV-007",)


class NotConforming(VirtioError):
    """An observed ring is not in a state a conforming pair can reach (the oracle's verdict)."""

    section = "2.7"


# --- Block device (§5.2) -------------------------------------------------------------
class BlkRequestRejected(DriverError, abstract=True):
    """A virtio-blk request the device refuses; `status` is the byte it answers with.

    The device answers the request with `status` when it can find a status byte, or
    returns the chain with length 0 when it cannot; the disk is never touched.
    """

    status: ClassVar[int] = BlkStatus.IOERR


class BlkNoStatusByte(BlkRequestRejected):
    """The request has no device-writable byte at its end to carry the status."""

    section = "5.2.6"


class BlkHeaderTooShort(BlkRequestRejected):
    """Fewer than 16 device-readable bytes: no complete `type, reserved, sector` header."""

    section = "5.2.6"


class BlkBadDataLength(BlkRequestRejected):
    """The data of an IN/OUT request is not a whole number of 512-byte sectors."""

    section = "5.2.6.1"
    spec_ids = ("BLK-DRV-016",)


class BlkBadSegmentsLength(BlkRequestRejected):
    """DISCARD/WRITE_ZEROES data is empty or not a whole number of 16-byte segments."""

    section = "5.2.6.1"
    spec_ids = ("BLK-DRV-017",)


class BlkBadIdLength(BlkRequestRejected):
    """A GET_ID request whose writable data is not exactly 20 bytes."""

    section = "5.2.6.1"
    spec_ids = ("BLK-DRV-018",)


class BlkWrongDirection(BlkRequestRejected):
    """Data where the request type has none: readable data for IN/GET_ID, writable for OUT."""

    section = "5.2.6"


class BlkBeyondCapacity(BlkRequestRejected):
    """A request (or a discard/write-zeroes segment) reaching past `capacity` or 2^64 bytes."""

    section = "5.2.6.1"
    spec_ids = ("BLK-DRV-012",)


class BlkFlushNotEmpty(BlkRequestRejected):
    """A FLUSH request with a nonzero sector or with data."""

    section = "5.2.6.1"
    spec_ids = ("BLK-DRV-014", "BLK-DRV-015")


class BlkUnsupportedType(BlkRequestRejected):
    """An unknown, legacy (SCSI, barrier) or not negotiated request type: answered UNSUPP."""

    section = "5.2.6"
    status = BlkStatus.UNSUPP


class BlkWriteToReadOnly(BlkRequestRejected):
    """A write (OUT, DISCARD, WRITE_ZEROES) to a device that offers VIRTIO_BLK_F_RO."""

    section = "5.2.6.2"
    spec_ids = ("BLK-DEV-020",)


class BlkTooManySegments(BlkRequestRejected):
    """More discard / write-zeroes segments than max_discard_seg / max_write_zeroes_seg."""

    section = "5.2.6.1"
    spec_ids = ("BLK-DRV-019", "BLK-DRV-021")


class BlkSegmentTooLarge(BlkRequestRejected):
    """A segment of more sectors than max_discard_sectors / max_write_zeroes_sectors."""

    section = "5.2.4"


class BlkUnknownSegmentFlags(BlkRequestRejected):
    """A discard / write-zeroes segment with a reserved flag bit set: answered UNSUPP."""

    section = "5.2.6.2"
    spec_ids = ("BLK-DEV-021",)
    status = BlkStatus.UNSUPP


class BlkUnmapOnDiscard(BlkRequestRejected):
    """A DISCARD segment with the unmap bit set: answered UNSUPP."""

    section = "5.2.6.2"
    spec_ids = ("BLK-DEV-022", "BLK-DRV-024")
    status = BlkStatus.UNSUPP


class BlkBackendFailed(BlkRequestRejected):
    """The disk behind the device failed the operation (an OSError): answered IOERR."""

    section = "5.2.6"


class BlkBadStatus(DeviceError):
    """The device wrote a status byte other than OK, IOERR or UNSUPP."""

    section = "5.2.6"


class BlkBadUsedLength(DeviceError):
    """The used length of a request is not what its status implies (data + status byte)."""

    section = "5.2.6"


class BlkBadConfig(DeviceError):
    """The device's config space holds a value no device may offer (e.g. zero queues)."""

    section = "5.2.4"


class BlkIOError(UsageError):
    """The device answered VIRTIO_BLK_S_IOERR: the request failed."""

    section = "5.2.6"


class BlkUnsupported(UsageError):
    """The device answered VIRTIO_BLK_S_UNSUPP: it does not support the request."""

    section = "5.2.6"


class BlkOutOfRange(UsageError):
    """The driver refuses to send a request reaching past capacity."""

    section = "5.2.6.1"
    spec_ids = ("BLK-DRV-012",)


class BlkReadOnly(UsageError):
    """The driver refuses to send a write to a device that offers VIRTIO_BLK_F_RO."""

    section = "5.2.6.1"


class BlkBadRequest(UsageError):
    """A request the driver may not form: data not in whole 512-byte sectors, or no ranges."""

    section = "5.2.6.1"
    spec_ids = ("BLK-DRV-016",)
