"""The virtio-net driver, shaped like Linux's virtio_net: probe, fill, send, receive, NAPI.

Rules:
- Probe (§5.1.5): read mac (or make a locally administered one, NET-DRV-004), mtu
  (checked in `validate`, where an out-of-range mtu makes the driver not accept
  VIRTIO_NET_F_MTU, and again in probe, NET-DEV-002) and status (LINK_UP, or
  assume up without STATUS, NET-DRV-005); find receiveq1, transmitq1 and controlq;
  fill the receive ring.
- Receive buffers are single regions of guest memory from the driver's allocator:
  `buf_size` bytes each (at least the header with MRG_RXBUF, NET-DRV-052; room for a
  whole frame without, NET-DRV-007/051). Without ANY_LAYOUT (and VERSION_1) the
  header gets its own descriptor (§5.1.9.8). Used buffers go back to a pool; `refill`
  posts the pool.
- Interrupts follow NAPI: the receive callback disables callbacks and schedules a
  poll; `poll` reads used buffers, then re-enables callbacks and re-checks, so no
  used buffer is left without an interrupt or a poll to come.
- Everything the device returns is checked (`net_rx.assemble`); a bad packet is
  dropped, its `NetDeviceError` kept in `errors`, and receiving goes on. A lying
  used ring (a `DeviceError` from the queue) marks the driver broken.
- A checksum-offload request is checked against the frame before NEEDS_CSUM is set
  (`net_csum.offload_fault`; NET-DRV-031/032/033).
- `validate` (before FEATURES_OK) checks only that config space, when the transport
  publishes its size, holds the fields the features about to be accepted make the
  driver read; otherwise the device is refused before FEATURES_OK (CONFIG-DRV-004).
- The driver never writes config space (NET-DRV-001); control commands are only
  issued when their feature is negotiated (NET-DRV-058/059/060).

Spec: §5.1.5 (initialization), §5.1.9.2 (transmission), §5.1.9.3 and §5.1.9.4
(receive), §5.1.9.5 (control queue), §5.1.4.2 (config rules for drivers).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Hashable

from .alloc import GuestAllocator
from .chain import Segment
from .driver import DeviceMatch, DriverQueue, VirtioDevice
from .errors import (
    DeviceError,
    NetBadConfig,
    NetChecksumRequest,
    NetConfigTooSmall,
    NetCtrlNoAnswer,
    NetDeviceError,
    NetFeatureMissing,
    NetFrameSize,
    NetLinkDown,
    NoSpace,
    VirtioError,
)
from .memory import GuestMemory
from .net_config import FEATURE_REQUIRES
from .net_csum import offload_fault
from .net_ctrl import (
    encode_announce_ack,
    encode_mac_addr,
    encode_mac_table,
    encode_rx_mode,
    encode_vlan,
)
from .net_header import NetHdr, net_hdr_size
from .net_rx import RxFormat, UsedBuffer, assemble
from .spec import (
    ETH_HEADER_LEN,
    MAC_LEN,
    NET_CONFIG_DUPLEX,
    NET_CONFIG_MAC,
    NET_CONFIG_MAX_PAIRS,
    NET_CONFIG_MTU,
    NET_CONFIG_SIZE,
    NET_CONFIG_SPEED,
    NET_CONFIG_STATUS,
    NET_MAX_FRAME,
    NET_MTU_MAX,
    NET_MTU_MIN,
    NET_SMALL_RX_FRAME,
    NET_SPEED_MAX,
    DeviceId,
    Feature,
    NetAck,
    NetCtrlRx,
    NetCtrlVlan,
    NetDuplex,
    NetFeature,
    NetHdrFlag,
    NetStatus,
    feature_mask,
    has_feature,
)

CONFIG_FIELD_ENDS = (
    (NetFeature.MAC, NET_CONFIG_STATUS),
    (NetFeature.STATUS, NET_CONFIG_MAX_PAIRS),
    (NetFeature.MTU, NET_CONFIG_SPEED),
    (NetFeature.SPEED_DUPLEX, NET_CONFIG_SIZE),
)
"""Where each config field the driver reads ends (the next field's offset, §5.1.4), by the
feature that makes the driver read it."""

MRG_BUFFER_SIZE = 1536
"""Default receive buffer with MRG_RXBUF: a 1514-byte frame and header, rounded up."""
LOCAL_ADMIN_MAC = b"\x02\x00\x00\x00\x00\x01"
"""A locally administered unicast address for devices without VIRTIO_NET_F_MAC."""
_ALIGN = 8
TX_MIN_CLASS = 256
"""Smallest transmit buffer; larger ones are powers of two (kept in pools, as skbs are)."""

DRIVER_FEATURES = feature_mask(
    Feature.VERSION_1,
    Feature.ANY_LAYOUT,
    Feature.EVENT_IDX,
    Feature.INDIRECT_DESC,
    NetFeature.MAC,
    NetFeature.STATUS,
    NetFeature.MTU,
    NetFeature.MRG_RXBUF,
    NetFeature.CSUM,
    NetFeature.GUEST_CSUM,
    NetFeature.CTRL_VQ,
    NetFeature.CTRL_RX,
    NetFeature.CTRL_RX_EXTRA,
    NetFeature.CTRL_VLAN,
    NetFeature.CTRL_MAC_ADDR,
    NetFeature.GUEST_ANNOUNCE,
    NetFeature.SPEED_DUPLEX,
)


class NetDriver:
    """A virtio-net driver over guest memory `mem`, allocating buffers from `allocator`.

    Without `mem` and `allocator` it takes the ones the device handle offers
    (`VirtioDevice.mem`, `.allocator`), as Linux's driver takes the kernel's.

    `feature_table` may be narrowed to refuse features; `buf_size` overrides the
    receive buffer size; `auto_refill` refills after each poll (Linux does; a test of
    starvation turns it off and calls `refill` itself).
    """

    name = "virtio_net"
    id_table = (DeviceMatch(DeviceId.NET),)
    feature_requires = FEATURE_REQUIRES

    def __init__(
        self,
        mem: GuestMemory | None = None,
        allocator: GuestAllocator | None = None,
        *,
        feature_table: int = DRIVER_FEATURES,
        buf_size: int | None = None,
        auto_refill: bool = True,
    ) -> None:
        self._mem = mem
        self._allocator = allocator
        self.feature_table = feature_table
        self._buf_size = buf_size
        self.auto_refill = auto_refill
        self.frames: deque[bytes] = deque()
        self.errors: deque[VirtioError] = deque(maxlen=64)
        self.error_counts: Counter[str] = Counter()
        self.rx_packets = self.rx_bytes = self.tx_packets = self.tx_bytes = 0
        self.rx_csum_valid = 0
        self.napi_scheduled = False
        self.broken = False
        self.link_up = False
        self.announces = 0
        self.vdev: VirtioDevice | None = None

    # --- probe and remove (§5.1.5) --------------------------------------------------
    def validate(self, vdev: VirtioDevice, features: int) -> int:
        """Before FEATURES_OK: refuse a config space too small for the fields `features`
        make the driver read (CONFIG-DRV-004); do not accept VIRTIO_NET_F_MTU when the
        offered `mtu` is outside 68..65535 (the device broke NET-DEV-002: the driver
        goes on without it, recording `NetBadConfig`). Keeps every other proposed bit."""
        self._check_config_size(vdev.config_size, features)
        if has_feature(features, NetFeature.MTU):
            mtu = int.from_bytes(vdev.read_config(NET_CONFIG_MTU, 2), "little")
            if not NET_MTU_MIN <= mtu <= NET_MTU_MAX:
                self._record(NetBadConfig(f"offered mtu {mtu}: VIRTIO_NET_F_MTU not accepted"))
                features &= ~feature_mask(NetFeature.MTU)
        return features

    def probe(self, vdev: VirtioDevice) -> None:
        """Read config, set up the queues, fill the receive ring."""
        self.vdev = vdev
        self.mem = self._mem or vdev.mem
        self.allocator = self._allocator or vdev.allocator
        self.features = vdev.features
        self.hdr_size = net_hdr_size(self.features)
        self.split_header = not (
            vdev.has_feature(Feature.VERSION_1) or vdev.has_feature(Feature.ANY_LAYOUT)
        )
        self.mac = self._read_mac(vdev)
        self.mtu = self._read_mtu(vdev)
        self.max_frame = NET_MAX_FRAME if self.mtu is None else self.mtu + ETH_HEADER_LEN
        self.link_up = self._read_link(vdev)
        self._read_speed_duplex(vdev)
        self.mrg = vdev.has_feature(NetFeature.MRG_RXBUF)
        self.rx_format = RxFormat(
            self.hdr_size,
            self.mrg,
            self._choose_buf_size(),
            None if self.mtu is None else self.max_frame,
            vdev.has_feature(NetFeature.GUEST_CSUM),
        )
        names = ["receiveq1", "transmitq1"]
        callbacks = [self._rx_interrupt, None]
        if vdev.has_feature(NetFeature.CTRL_VQ):
            names.append("controlq")
            callbacks.append(None)
        queues = vdev.find_vqs(names, callbacks)
        self.rxq, self.txq = queues[0], queues[1]
        self.ctrlq: DriverQueue | None = queues[2] if len(queues) > 2 else None
        self._rx_pool: list[int] = []
        self._tx_pool: dict[int, list[int]] = {}
        self._tx_class: dict[int, int] = {}
        self.rx_posted = 0
        self.refill()

    @staticmethod
    def _check_config_size(size: int | None, features: int) -> None:
        """Config space must hold the fields `features` make us read; a larger one is
        fine, and a transport publishing no size is trusted (CONFIG-DRV-003/004)."""
        needed = max(
            (end for bit, end in CONFIG_FIELD_ENDS if has_feature(features, bit)), default=0
        )
        if size is not None and size < needed:
            raise NetConfigTooSmall(f"config space of {size} bytes, the fields need {needed}")

    def _read_mac(self, vdev: VirtioDevice) -> bytes:
        if vdev.has_feature(NetFeature.MAC):
            return vdev.read_config(NET_CONFIG_MAC, MAC_LEN)
        return LOCAL_ADMIN_MAC

    def _read_mtu(self, vdev: VirtioDevice) -> int | None:
        if not vdev.has_feature(NetFeature.MTU):
            return None
        mtu = int.from_bytes(vdev.read_config(NET_CONFIG_MTU, 2), "little")
        if not NET_MTU_MIN <= mtu <= NET_MTU_MAX:
            raise NetBadConfig(f"device mtu {mtu} outside {NET_MTU_MIN}..{NET_MTU_MAX}")
        return mtu

    def _read_speed_duplex(self, vdev: VirtioDevice) -> None:
        """`speed` (Mbit/s) and `duplex`, None where unknown or out of range (NET-DRV-010)."""
        self.speed: int | None = None
        self.duplex: NetDuplex | None = None
        if not vdev.has_feature(NetFeature.SPEED_DUPLEX):
            return
        speed = int.from_bytes(vdev.read_config(NET_CONFIG_SPEED, 4), "little")
        duplex = vdev.read_config(NET_CONFIG_DUPLEX, 1)[0]
        self.speed = speed if speed <= NET_SPEED_MAX else None
        known = (NetDuplex.HALF, NetDuplex.FULL)
        self.duplex = NetDuplex(duplex) if duplex in known else None

    def _read_link(self, vdev: VirtioDevice) -> bool:
        if not vdev.has_feature(NetFeature.STATUS):
            return True
        status = int.from_bytes(vdev.read_config(NET_CONFIG_STATUS, 2), "little")
        return bool(status & NetStatus.LINK_UP)

    def _choose_buf_size(self) -> int:
        if self._buf_size is not None:
            least = self.hdr_size if self.mrg else self.hdr_size + ETH_HEADER_LEN
            if self._buf_size < least:
                raise NetFrameSize(f"receive buffers of {self._buf_size} bytes are too small")
            return self._buf_size
        if self.mrg:
            return MRG_BUFFER_SIZE
        frame = NET_SMALL_RX_FRAME if self.mtu is None else max(self.max_frame, NET_SMALL_RX_FRAME)
        return self.hdr_size + frame

    def remove(self, vdev: VirtioDevice) -> None:
        """After the bus reset the device: take back and free every buffer."""
        for queue in (self.rxq, self.txq, self.ctrlq):
            while queue is not None and (token := queue.detach_unused_buf()) is not None:
                if isinstance(token, int) and token not in self._tx_class:
                    self.allocator.free(token)
        for addr in self._rx_pool + list(self._tx_class):
            self.allocator.free(addr)
        self._rx_pool.clear()
        self._tx_pool.clear()
        self._tx_class.clear()
        self.rx_posted = 0

    def config_changed(self, vdev: VirtioDevice) -> None:
        """Re-read link, speed and duplex (NET-DRV-011); acknowledge an announce request.

        The acknowledgement is ANNOUNCE_ACK on the control queue (NET-DRV-066/067).
        """
        self.link_up = self._read_link(vdev)
        self._read_speed_duplex(vdev)
        announcing = vdev.has_feature(NetFeature.GUEST_ANNOUNCE)
        if not (announcing and vdev.has_feature(NetFeature.STATUS)):
            return  # the status field exists only with VIRTIO_NET_F_STATUS (CONFIG-DRV-002)
        status = int.from_bytes(vdev.read_config(NET_CONFIG_STATUS, 2), "little")
        if status & NetStatus.ANNOUNCE:
            self.announces += 1
            self._command(encode_announce_ack())

    # --- receive buffers --------------------------------------------------------------
    def refill(self) -> int:
        """Post receive buffers until the ring or memory is full; kick; return how many."""
        if self.broken:
            return 0
        added = 0
        while True:
            addr = self._rx_pool.pop() if self._rx_pool else self._alloc(self.rx_format.buf_size)
            if addr is None:
                break
            try:
                self.rxq.add_sgs((), self._rx_segments(addr), addr)
            except NoSpace:
                self._rx_pool.append(addr)
                break
            added += 1
        self.rx_posted += added
        if added:
            self.rxq.kick()
        return added

    def _rx_segments(self, addr: int) -> list[Segment]:
        size = self.rx_format.buf_size
        if self.split_header and not self.mrg:
            return [
                Segment(addr, self.hdr_size),
                Segment(addr + self.hdr_size, size - self.hdr_size),
            ]
        return [Segment(addr, size)]

    def _alloc(self, length: int) -> int | None:
        return self.allocator.alloc(length, _ALIGN)

    def _tx_alloc(self, length: int) -> int | None:
        """A transmit buffer of at least `length` bytes, from a per-size-class pool."""
        size = max(TX_MIN_CLASS, 1 << (length - 1).bit_length())
        pool = self._tx_pool.setdefault(size, [])
        if pool:
            return pool.pop()
        addr = self._alloc(size)
        if addr is not None:
            self._tx_class[addr] = size
        return addr

    def _tx_free(self, addr: int) -> None:
        self._tx_pool[self._tx_class[addr]].append(addr)

    # --- interrupts and polling (NAPI) ----------------------------------------------
    def _rx_interrupt(self, queue: DriverQueue) -> None:
        """Used receive buffers: stop further interrupts and schedule a poll."""
        queue.disable_cb()
        self.napi_scheduled = True

    def poll(self) -> int:
        """Read every used receive buffer into `frames`; re-arm; return packets read."""
        if self.broken:
            return 0
        self.napi_scheduled = False
        packets = 0
        while True:
            packets += self._drain_rx()
            if self.broken or self.rxq.enable_cb():
                break
            self.rxq.disable_cb()
        if self.auto_refill:
            self.refill()
        return packets

    def _drain_rx(self) -> int:
        packets = 0
        while (first := self._get_rx()) is not None:
            try:
                packet = assemble(
                    self.mem,
                    self.rx_format,
                    first,
                    self.rx_posted + 1,
                    self._get_rx,
                    self._rx_pool.append,
                )
            except NetDeviceError as error:
                self._record(error)
                continue
            self.frames.append(packet.frame)
            self.rx_packets += 1
            self.rx_bytes += len(packet.frame)
            self.rx_csum_valid += packet.csum_valid
            packets += 1
        return packets

    def _get_rx(self) -> UsedBuffer | None:
        try:
            used = self.rxq.get_buf()
        except DeviceError as error:
            self._record(error)
            self.broken = True
            return None
        if used is None:
            return None
        token, written = used
        assert isinstance(token, int)
        self.rx_posted -= 1
        return token, written

    def receive(self) -> bytes | None:
        """The next received frame, polling the ring if none is waiting."""
        if not self.frames:
            self.poll()
        return self.frames.popleft() if self.frames else None

    # --- transmit (§5.1.9.2) ----------------------------------------------------------
    def send(self, frame: bytes, csum: tuple[int, int] | None = None) -> None:
        """Transmit one Ethernet frame; `csum` = (start, offset) asks the device to checksum.

        Raises NetLinkDown while the link is down, NetFrameSize for a frame the device
        may not be given (NET-DRV-008), NetChecksumRequest for a `csum` the frame does
        not fit (NET-DRV-031/032/033), NoSpace when the ring or memory is full.
        """
        if not self.link_up:
            raise NetLinkDown("the device reports the link down")
        if not ETH_HEADER_LEN <= len(frame) <= self.max_frame:
            raise NetFrameSize(
                f"frame of {len(frame)} bytes outside {ETH_HEADER_LEN}..{self.max_frame}"
            )
        hdr = self._tx_header(csum)
        self._check_offload(frame, csum)
        self.reclaim_tx()
        addr = self._tx_alloc(self.hdr_size + len(frame))
        if addr is None:
            raise NoSpace("no guest memory for the frame")
        self.mem.write(addr, hdr.pack(self.hdr_size) + frame)
        segments = [Segment(addr, self.hdr_size + len(frame))]
        if self.split_header:
            segments = [Segment(addr, self.hdr_size), Segment(addr + self.hdr_size, len(frame))]
        try:
            self.txq.add_sgs(segments, (), addr)
        except NoSpace:
            self._tx_free(addr)
            raise
        self.tx_packets += 1
        self.tx_bytes += len(frame)
        self.txq.kick()

    def _tx_header(self, csum: tuple[int, int] | None) -> NetHdr:
        """Flags 0 unless CSUM is asked for and negotiated; num_buffers 0 (NET-DRV-015/016)."""
        if csum is None:
            return NetHdr()
        if not self.vdev or not self.vdev.has_feature(NetFeature.CSUM):
            raise NetFeatureMissing("checksum offload needs VIRTIO_NET_F_CSUM")
        start, offset = csum
        return NetHdr(flags=NetHdrFlag.NEEDS_CSUM, csum_start=start, csum_offset=offset)

    @staticmethod
    def _check_offload(frame: bytes, csum: tuple[int, int] | None) -> None:
        """A NEEDS_CSUM request must leave only the one checksum to the device (§5.1.9.2.1)."""
        if csum is not None and (fault := offload_fault(frame, *csum)) is not None:
            raise NetChecksumRequest(fault)

    def reclaim_tx(self) -> int:
        """Free the buffers of transmitted frames; return how many."""
        freed = 0
        while True:
            try:
                used = self.txq.get_buf()
            except DeviceError as error:
                self._record(error)
                self.broken = True
                return freed
            if used is None:
                return freed
            token, _ = used
            assert isinstance(token, int)
            self._tx_free(token)
            freed += 1

    # --- control queue (§5.1.9.5) -----------------------------------------------------
    def set_rx_mode(self, mode: NetCtrlRx, on: bool) -> bool:
        """Switch a receive mode (PROMISC, ALLMULTI need CTRL_RX; the rest CTRL_RX_EXTRA)."""
        basic = mode in (NetCtrlRx.PROMISC, NetCtrlRx.ALLMULTI)
        self._need(NetFeature.CTRL_RX if basic else NetFeature.CTRL_RX_EXTRA)
        return self._command(encode_rx_mode(mode, on))

    def set_mac_table(self, unicast: list[bytes], multicast: list[bytes]) -> bool:
        """Replace the device's MAC filter tables (NET-DRV-062)."""
        self._need(NetFeature.CTRL_RX)
        return self._command(encode_mac_table(unicast, multicast))

    def set_mac_address(self, mac: bytes) -> bool:
        """Set the device's default MAC (CTRL_MAC_ADDR; NET-DRV-061)."""
        self._need(NetFeature.CTRL_RX)
        self._need(NetFeature.CTRL_MAC_ADDR)
        ok = self._command(encode_mac_addr(mac))
        if ok:
            self.mac = mac
        return ok

    def add_vlan(self, vid: int) -> bool:
        """Let frames tagged with VLAN `vid` through the device's filter (CTRL_VLAN)."""
        self._need(NetFeature.CTRL_VLAN)
        return self._command(encode_vlan(NetCtrlVlan.ADD, vid))

    def del_vlan(self, vid: int) -> bool:
        """Stop frames tagged with VLAN `vid` (CTRL_VLAN)."""
        self._need(NetFeature.CTRL_VLAN)
        return self._command(encode_vlan(NetCtrlVlan.DEL, vid))

    def _need(self, bit: NetFeature) -> None:
        if self.vdev is None or not self.vdev.has_feature(bit) or self.ctrlq is None:
            raise NetFeatureMissing(f"VIRTIO_NET_F_{bit.name} was not negotiated")

    def _command(self, command: bytes) -> bool:
        """Issue one control command and wait for its ack; True for VIRTIO_NET_OK."""
        if self.ctrlq is None:
            raise NetFeatureMissing("no control queue")
        addr = self._alloc(len(command) + 1)
        if addr is None:
            raise NoSpace("no guest memory for the control command")
        self.mem.write(addr, command + bytes((NetAck.ERR,)))
        token: Hashable = addr
        self.ctrlq.add_sgs([Segment(addr, len(command))], [Segment(addr + len(command), 1)], token)
        self.ctrlq.kick()
        used = self.ctrlq.get_buf()
        if used is None:
            raise NetCtrlNoAnswer("the device did not answer the control command")
        ack = self.mem.read_u8(addr + len(command))
        self.allocator.free(addr)
        return used[1] >= 1 and ack == NetAck.OK

    def _record(self, error: VirtioError) -> None:
        self.errors.append(error)
        self.error_counts[type(error).__name__] += 1
