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
