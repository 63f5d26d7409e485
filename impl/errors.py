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
    spec_ids: ClassVar[tuple[str, ...]] = ("SPLIT-DRV-004", "SPLIT-DRV-007")  # wider: subclass


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


# --- Interleavings (§2.7.13, §2.7.7) ---------------------------------------------------
class DroppedBarrierNotFound(UsageError):
    """The explorer was asked to remove a barrier that no side made in any execution.

    A removal is named by side, label and optionally the function making the barrier;
    one that matches nothing would make a "passes without it" result vacuous.
    """

    section = "2.7"


class StepLimitExceeded(UsageError):
    """A side under the interleaving explorer made more shared accesses than its bound.

    The explorer needs every side to finish on every history of values it can read; a
    side that loops for ever on some history is reported with this error.
    """

    section = "2.7"


class MultipleWriters(UsageError):
    """Two sides under the interleaving explorer wrote the same bytes.

    The explorer's reductions rely on every shared byte having one writer, as every
    field of a split ring has (§2.7); a pair that breaks that cannot be explored soundly.
    """

    section = "2.7"

# --- Transports: status, features, registers, discovery (§2.1, §2.2, §3.1, §4.2) --------
# Device side: what a hostile driver does to our device. The device core never lets
# these escape a register access; it records them (`DeviceCore.violations`) and applies
# the outcome docs/transports.md gives each (ignored, FEATURES_OK refused, or
# DEVICE_NEEDS_RESET with a configuration change interrupt).
class IllegalStatusWrite(DriverError):
    """A status write that clears a driver bit without a reset, or sets one out of order."""

    section = "2.1"
    spec_ids = ("STATUS-DRV-001", "STATUS-DRV-002", "INIT-DRV-001")


class FeaturesNotOffered(DriverError):
    """FEATURES_OK with accepted bits the device never offered (or VERSION_1 missing)."""

    section = "2.2"
    spec_ids = ("FEAT-DRV-001", "FEAT-DRV-006", "FEAT-DEV-002")


class FeaturesFrozen(DriverError):
    """A feature write after FEATURES_OK: the negotiated set is frozen."""

    section = "3.1.1"
    spec_ids = ("INIT-DRV-003",)


class QueueConfigInvalid(DriverError):
    """QueueReady (or QueuePFN) with a size or addresses no device may accept."""

    section = "4.2.2"
    spec_ids = ("MMIO-DRV-009", "SPLIT-DRV-001")


class QueueBusy(DriverError):
    """A queue register written while the queue is ready, or after DRIVER_OK."""

    section = "4.2.2"
    spec_ids = ("MMIO-DRV-010",)


class NotifyNotLive(DriverError):
    """A notification before DRIVER_OK, for a queue not enabled, or for no queue at all."""

    section = "3.1.1"
    spec_ids = ("INIT-DRV-006", "STATUS-DEV-001", "MMIO-DEV-007")


class BadRegisterAccess(DriverError):
    """A register access of the wrong width or alignment, at an undefined offset, or to
    a register that does not allow it (a write to a read-only one, a read of a write-only
    one)."""

    section = "4.2.2"
    spec_ids = ("MMIO-DRV-001", "MMIO-DRV-002", "MMIO-DRV-003")


class BadInterruptAck(DriverError):
    """InterruptACK with bits that name no event (undefined bits)."""

    section = "4.2.2"
    spec_ids = ("MMIO-DRV-013",)


class UnknownHypercall(DriverError):
    """A descriptor-page hypercall with an unknown number or an address naming nothing."""

    section = "4.2"


# Driver side: what a hostile device does to our driver (probe fails cleanly).
class FeaturesRefused(DeviceError):
    """The device cleared FEATURES_OK: the driver sets FAILED and gives up (§3.1.1 step 6)."""

    section = "3.1.1"
    spec_ids = ("INIT-DRV-004", "INIT-DRV-005", "FEAT-DRV-004")


class NoVersion1(DeviceError):
    """A modern transport's device did not offer VIRTIO_F_VERSION_1."""

    section = "6"
    spec_ids = ("FEAT-DEV-005", "FEAT-DRV-007")


class QueueUnavailable(DeviceError):
    """A queue the driver needs reports maximum size 0 (or one below 1)."""

    section = "4.2.3.2"


class QueueNotEnabled(DeviceError):
    """The device did not report a queue ready after the driver enabled it."""

    section = "4.2.2"
    spec_ids = ("MMIO-DRV-011",)


class ConfigUnstable(DeviceError):
    """The configuration generation kept changing across every bounded retry of a read."""

    section = "2.5.1"
    spec_ids = ("CONFIG-DRV-001", "MMIO-DEV-006")


class ResetIncomplete(DeviceError):
    """After writing 0 to status, the device never read back 0."""

    section = "2.4"
    spec_ids = ("RESET-DEV-001", "RESET-DRV-001")


class NotAVirtioDevice(DeviceError):
    """A discovered window or page entry whose magic, version or layout is not virtio's."""

    section = "4.2.3.1"
    spec_ids = ("MMIO-DRV-004", "MMIO-DRV-005", "MMIO-DRV-017")


class BusMisuse(UsageError):
    """A driver or device registered twice, or unregistered without being registered."""

    section = "3.1"


class DevicePageFull(UsageError):
    """The host tried to publish a device whose entry does not fit in the descriptor page."""

    section = "4"


class FeaturesBeyondPage(UsageError):
    """The host tried to publish a device offering feature bits beyond the page's 64-bit field."""

    section = "2.2"


# --- native peers (§2.7.5, §2.7.6) -------------------------------------------------------
class PeerRejectedChain(ChainError):
    """A native peer device (Linux vringh) refused a chain and gave only an errno (§2.7.5).

    The peer does not say which rule broke; `errno` is what it returned. The adapter
    applies the project's recovery (head returned used with length 0) before raising.
    """

    section = "2.7.5"

    def __init__(self, message: str, errno: int) -> None:
        super().__init__(message)
        self.errno = errno


class PeerRejectedRing(RingCorruption):
    """A native peer device refused the available ring itself (a head out of range, §2.7.6)."""

    section = "2.7.6"

    def __init__(self, message: str, errno: int) -> None:
        super().__init__(message)
        self.errno = errno
# --- Packed virtqueue (§2.8) -------------------------------------------------------------
class InvalidPackedLayout(InvalidLayout):
    """Packed queue size outside 1..32768, a misaligned part, or a part outside memory."""

    section = "2.8.11"
    spec_ids = ("PACKED-DRV-001",)


class DescriptorNotAvailable(RingCorruption):
    """A chain runs into a descriptor not marked available for its lap, or a head whose
    AVAIL and USED bits both equal the wrap counter: the flags do not match the counter.

    The device will not use a descriptor it has not seen made available (PACKED-DEV-005);
    a head exposed before the rest of its list breaks PACKED-DRV-011.
    """

    section = "2.8"
    spec_ids = ("PACKED-DEV-005", "PACKED-DRV-011")


class ChainLongerThanRing(RingCorruption):
    """Every descriptor of the ring carries NEXT: the list has no end within the queue size."""

    section = "2.8.17"
    spec_ids = ("PACKED-DRV-007",)


class BufferIdOutOfRange(RingCorruption):
    """An available list's Buffer ID is at or beyond the queue size (no MUST names this)."""

    section = "2.8.13"


class BufferIdInFlight(RingCorruption):
    """An available list reuses a Buffer ID the device still holds: one id in flight twice."""

    section = "2.8.6"


class IndirectInList(ChainError):
    """An INDIRECT descriptor inside a NEXT-linked list (with NEXT, or after other entries)."""

    section = "2.8.19"
    spec_ids = ("PACKED-DRV-015",)


class PackedIndirectNotNegotiated(IndirectNotNegotiated):
    """VIRTQ_DESC_F_INDIRECT in the packed ring without VIRTIO_F_INDIRECT_DESC."""

    section = "2.8.19"
    spec_ids = ("PACKED-DRV-012",)


class PackedReadableAfterWritable(ReadableAfterWritable):
    """A device-readable element follows a device-writable one in a packed list."""

    section = "2.8.17"
    spec_ids = ("PACKED-DRV-008",)


class PackedUsedIdOutOfRange(UsedIdOutOfRange):
    """A used descriptor's Buffer ID is at or beyond the queue size."""

    section = "2.8.22"


class PackedUsedIdNotOutstanding(UsedIdNotOutstanding):
    """A used descriptor names a Buffer ID the driver has not handed out (or was used twice)."""

    section = "2.8.22"


class PackedUsedLengthTooLong(DeviceError):
    """A used descriptor's len exceeds the writable bytes of its buffer (no MUST names this)."""

    section = "2.8.4"


# --- virtio-net (§5.1) -----------------------------------------------------------------
class NetDriverError(DriverError, abstract=True):
    """A virtio-net driver broke a rule; the device drops the request and keeps working."""


class NetTxHeaderTooShort(NetDriverError):
    """A transmit chain carries fewer readable bytes than the negotiated virtio_net_hdr."""

    section = "5.1.9.2"
    spec_ids = ("NET-DRV-014",)


class NetTxWritable(NetDriverError):
    """A transmit chain has device-writable descriptors (no MUST names this)."""

    section = "5.1.9.2"


class NetTxRunt(NetDriverError):
    """A transmitted frame is shorter than an Ethernet header (no MUST names this)."""

    section = "5.1.9.2"


class NetTxTooLong(NetDriverError):
    """A transmitted frame exceeds mtu plus the Ethernet header, or 64 KiB."""

    section = "5.1.4.2"
    spec_ids = ("NET-DRV-008",)


class NetTxBadHeader(NetDriverError):
    """A transmit header the negotiated features forbid: gso_type, flags or num_buffers."""

    section = "5.1.9.2.1"
    spec_ids = (
        "NET-DRV-015", "NET-DRV-016", "NET-DRV-018", "NET-DRV-019", "NET-DRV-020",
        "NET-DRV-021", "NET-DRV-026", "NET-DRV-027", "NET-DRV-028", "NET-DRV-034",
        "NET-DRV-043", "NET-DRV-044", "NET-DRV-046", "NET-DRV-047", "NET-DEV-022",
        "NET-DEV-024",
    )


class NetTxBadChecksumOffsets(NetDriverError):
    """NEEDS_CSUM with csum_start + csum_offset + 2 beyond the frame."""

    section = "5.1.9.2.1"
    spec_ids = ("NET-DRV-033",)


class NetRxBufferNotWritable(NetDriverError):
    """A receive buffer has device-readable descriptors (no MUST names this)."""

    section = "5.1.9.3"


class NetRxBufferTooSmall(NetDriverError):
    """A receive buffer too small: below the header with MRG_RXBUF, below the packet without."""

    section = "5.1.9.3.1"
    spec_ids = ("NET-DRV-052", "NET-DRV-007")


class NetCtrlMalformed(NetDriverError):
    """A control command without room for its ack, or truncated before its data ends."""

    section = "5.1.9.5"
    spec_ids = ("NET-DRV-062",)


class NetCtrlUnsupported(NetDriverError):
    """A control command of an unknown class or command, or of a feature not negotiated."""

    section = "5.1.9.5"
    spec_ids = ("NET-DRV-058", "NET-DRV-059", "NET-DRV-060")


class NetCtrlBadValue(NetDriverError):
    """A receive-mode command whose on/off byte is neither 0 nor 1."""

    section = "5.1.9.5.1"


class NetConfigWrite(NetDriverError):
    """The driver wrote the read-only virtio-net configuration space."""

    section = "5.1.4.2"
    spec_ids = ("NET-DRV-001",)


class NetDeviceError(DeviceError, abstract=True):
    """A virtio-net device broke a rule; the driver drops the packet and counts it."""


class NetRxUsedTooShort(NetDeviceError):
    """A used receive buffer's length is below the header, or 0 for a continuation buffer."""

    section = "5.1.9.4"


class NetRxNumBuffersInvalid(NetDeviceError):
    """num_buffers is 0, more than the buffers posted, or not 1 without MRG_RXBUF."""

    section = "5.1.9.3.2"
    spec_ids = ("NET-DEV-027", "NET-DEV-028")


class NetRxBufferNotFilled(NetDeviceError):
    """A merged packet left one of its first num_buffers - 1 buffers short of full."""

    section = "5.1.9.4"


class NetRxBadHeader(NetDeviceError):
    """Receive header flags or gso_type the negotiated features do not allow."""

    section = "5.1.9.4"


class NetRxFrameTooLong(NetDeviceError):
    """A received frame exceeds mtu plus the Ethernet header after VIRTIO_NET_F_MTU."""

    section = "5.1.4.1"
    spec_ids = ("NET-DEV-005",)


class NetRxRunt(NetDeviceError):
    """A received frame is shorter than an Ethernet header (Linux counts a length error)."""

    section = "5.1.9.4"


class NetBadConfig(NetDeviceError):
    """Config space out of range: mtu outside 68..65535."""

    section = "5.1.4.1"
    spec_ids = ("NET-DEV-002",)


class NetUsageError(UsageError, abstract=True):
    """The local caller misused the virtio-net driver API."""


class NetFrameSize(NetUsageError):
    """send() of a frame shorter than an Ethernet header or longer than the MTU allows."""

    section = "5.1.4.2"
    spec_ids = ("NET-DRV-008",)


class NetLinkDown(NetUsageError):
    """send() while the device reports the link down (the carrier is off)."""

    section = "5.1.4.2"
    spec_ids = ("NET-DRV-005",)


class NetFeatureMissing(NetUsageError):
    """A control command whose feature was not negotiated (the driver refuses to issue it)."""

    section = "5.1.9.5"
    spec_ids = ("NET-DRV-058", "NET-DRV-059", "NET-DRV-060")


class PcapFormatError(NetUsageError):
    """A file given as a capture is not a microsecond Ethernet pcap file, or ends mid-record."""


class NetDeviceSetup(NetUsageError):
    """A NetDevice constructed with an impossible configuration (bad MAC, mtu, backlog)."""

    section = "5.1.4.1"
    spec_ids = ("NET-DEV-002", "NET-DEV-003")


class NetCtrlNoAnswer(NetDeviceError):
    """The device did not use a control command after it was kicked (§5.1.9.5)."""

    section = "5.1.9.5"


class TapUnavailable(NetUsageError):
    """A TAP interface cannot be created or read (no /dev/net/tun, no permission)."""


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


# --- net and blk conformance gaps ---
class NetChecksumRequest(NetUsageError):
    """send() asked for checksum offload on a frame the driver may not hand over with
    NEEDS_CSUM: the field outside the frame, an earlier (IPv4 header) checksum wrong, or
    a TCP/UDP checksum field not holding the pseudo-header sum."""

    section = "5.1.9.2.1"
    spec_ids = ("NET-DRV-031", "NET-DRV-032", "NET-DRV-033")


# --- config size and control-command traces (§2.5.1, §5.1.9.5) ---
class NetConfigTooSmall(NetDeviceError):
    """The transport publishes a config space too small for the fields the negotiated
    features make the driver read; probe fails rather than read zeros as values."""

    section = "2.5.1"
    spec_ids = ("CONFIG-DRV-004",)


class BlkConfigTooSmall(BlkBadConfig):
    """The transport publishes a config space too small for `capacity` and the fields of
    the negotiated features; the blk driver's probe fails rather than read zeros."""

    section = "2.5.1"
    spec_ids = ("CONFIG-DRV-004",)


# --- driver/device contract: validate and FEATURES_OK (§3.1.1) ---
class ConfigWriteTooEarly(UsageError):
    """A driver wrote config space from `validate`, before FEATURES_OK: the bus refuses
    the write (the driver may only read config space then)."""

    section = "3.1.1"
    spec_ids = ("INIT-DRV-002",)


class ValidateAddedFeatures(UsageError):
    """A driver's `validate` returned bits it was not offered to accept: it may only clear
    bits, so the probe fails before FEATURES_OK rather than accept an unoffered bit."""

    section = "2.2.1"
    spec_ids = ("FEAT-DRV-001",)


# --- packed buffers ---
class PackedBadBuffer(BadBuffer):
    """A buffer the caller asked the packed driver to add is refused: more elements than
    the queue size, as a direct list or an indirect table (the ids below), or no token,
    no segments, a segment outside memory, or 2^32 bytes or more (no PACKED-* statement
    names these; the le32 used length is why the last one holds here too)."""

    section = "2.8.17"
    spec_ids = ("PACKED-DRV-006", "PACKED-DRV-007", "PACKED-DRV-014")


# --- in-order use of descriptors (§2.7.9) ---
class NotOldestHeld(UsageError):
    """With VIRTIO_F_IN_ORDER negotiated, the device was asked to return a buffer while an
    older one it holds is still unused: buffers go back in the order they were made
    available (§2.7.9), so the request is refused before anything is written."""

    section = "6.2"
    spec_ids = ("FEAT-DEV-009",)


class BadUsedBatch(UsageError):
    """A batched return (§2.7.9) the device cannot make: VIRTIO_F_IN_ORDER not negotiated,
    a count below 1 or beyond the buffers it holds, or a batch reaching over a chain it
    rejected (that one goes back on its own element with length 0)."""

    section = "2.7.9"


class UsedOutOfOrder(DeviceError):
    """With VIRTIO_F_IN_ORDER negotiated, a used element names a buffer that was made
    available after some buffer the device has not returned: the batch it implies
    (every outstanding buffer up to the named one) is longer than used.idx advanced
    (§2.7.9)."""

    section = "6.2"
    spec_ids = ("FEAT-DEV-009",)
