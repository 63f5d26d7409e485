"""The virtio-net device: one receive/transmit queue pair, a control queue, a link.

Rules:
- Queues (§5.1.2): 0 receiveq1, 1 transmitq1, 2 controlq (only if CTRL_VQ is
  negotiated). Config space (§5.1.4): mac, status (LINK_UP, ANNOUNCE),
  max_virtqueue_pairs (1), mtu (if offered: at least 1280, NET-DEV-003; fixed for the
  device's life, NET-DEV-004).
- Transmit: each chain is header + frame, all device-readable. A bad chain is
  consumed (used length 0), the frame dropped as TX_MALFORMED and the error kept in
  `errors`; the device keeps serving. A good frame is checksummed if NEEDS_CSUM asks
  (VIRTIO_NET_F_CSUM) and handed to the port.
- Receive: frames from the port pass the link, size and filter checks, then wait in a
  bounded backlog (`backlog_limit`) until the driver posts buffers. Without MRG_RXBUF
  a frame takes one buffer (num_buffers 1, NET-DEV-028); with it, as many as it needs,
  each but the last filled completely, num_buffers in the first (NET-DEV-027).
  Every frame that is not delivered is counted in `stats.drops` under a `DropReason`;
  nothing is lost silently.
- Hostile receive buffers (readable parts, too small) are returned used with length 0
  and recorded; the frame waits for the next buffer. Ring corruption asks the
  transport for a reset (`context.needs_reset`).
- Work per notification is bounded by the queue size and the backlog limit.

Spec: §5.1 (network device), §5.1.9.2 (transmission), §5.1.9.3 and §5.1.9.4
(receive buffers and incoming packets), §5.1.9.5 (control queue).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence

from .chain import Chain
from .device import DeviceContext, DeviceQueue
from .errors import (
    ChainError,
    NetConfigWrite,
    NetCtrlMalformed,
    NetDeviceSetup,
    NetDriverError,
    QueueBroken,
    RingCorruption,
    VirtioError,
)
from .net_backend import Port
from .net_config import NetConfig, device_features, speed_duplex_valid
from .net_csum import checksums_valid
from .net_ctrl import execute
from .net_filter import RxFilter
from .net_header import net_hdr_size
from .net_place import rx_buffer_fault, spread
from .net_stats import DropReason, NetStats
from .net_tx import TxFrame, parse_tx
from .spec import (
    ETH_HEADER_LEN,
    MAC_LEN,
    NET_CONFIG_SIZE,
    NET_MAX_FRAME,
    NET_MTU_MAX,
    NET_MTU_RECOMMENDED_MIN,
    NET_QUEUE_CTRL,
    NET_QUEUE_RX,
    NET_QUEUE_TX,
    NET_SPEED_UNKNOWN,
    DeviceId,
    Feature,
    NetAck,
    NetDuplex,
    NetFeature,
    NetHdrFlag,
    NetStatus,
    feature_mask,
    has_feature,
)

VENDOR_ID = 0x4F524143
"""The vendor id this reference publishes ("ORAC"); drivers match any vendor."""

DEFAULT_QUEUE_SIZE = 256
CTRL_MAX_BYTES = 1 << 16
"""Longest control command the device reads; longer ones are refused unread."""


class NetDevice:
    """A virtio-net device attached to `port` (a `DeviceBackend` for any transport).

    `mac` is the config-space address; `mtu` (1280..65535: the spec allows 68 but asks
    for at least 1280, NET-DEV-003) offers VIRTIO_NET_F_MTU;
    `mrg_rxbuf`, `ctrl_vq`, `csum` choose what is offered; `backlog_limit` bounds the
    frames held while no receive buffer is posted.
    """

    config_size = NET_CONFIG_SIZE
    """Bytes of config space this device serves (the descriptor page publishes this many)."""

    def __init__(
        self,
        mac: bytes,
        port: Port | None = None,
        *,
        mtu: int | None = None,
        mrg_rxbuf: bool = True,
        ctrl_vq: bool = True,
        csum: bool = True,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        backlog_limit: int = 64,
        link_up: bool = True,
        speed: int | None = None,
        duplex: int = NetDuplex.UNKNOWN,
        ring_features: int = feature_mask(Feature.EVENT_IDX, Feature.INDIRECT_DESC),
    ) -> None:
        if len(mac) != MAC_LEN:
            raise NetDeviceSetup(f"a MAC address has 6 bytes, not {len(mac)}")
        if mtu is not None and not NET_MTU_RECOMMENDED_MIN <= mtu <= NET_MTU_MAX:
            raise NetDeviceSetup(
                f"mtu {mtu} outside {NET_MTU_RECOMMENDED_MIN}..{NET_MTU_MAX} "
                "(NET-DEV-002, NET-DEV-003)"
            )
        if backlog_limit < 1:
            raise NetDeviceSetup("the backlog must hold at least one frame")
        if speed is not None and not speed_duplex_valid(speed, duplex):
            raise NetDeviceSetup(f"speed {speed:#x} / duplex {duplex:#x} out of range")
        self.initial_mac = bytes(mac)
        self.port = port
        self.mtu = mtu
        self.queue_size = queue_size
        self.backlog_limit = backlog_limit
        self.speed = NET_SPEED_UNKNOWN if speed is None else speed
        self.duplex = duplex
        self._offered = ring_features | device_features(
            mrg_rxbuf=mrg_rxbuf,
            ctrl_vq=ctrl_vq,
            csum=csum,
            mtu=mtu is not None,
            speed_duplex=speed is not None,
        )
        self.status = NetStatus.LINK_UP if link_up else NetStatus(0)
        self.stats = NetStats()
        self.errors: deque[VirtioError] = deque(maxlen=64)
        self.error_counts: Counter[str] = Counter()
        self.context: DeviceContext | None = None
        self.backlog: deque[bytes] = deque()
        self._held: deque[Chain] = deque()
        self._used: set[int] = set()
        self.rx_filter = RxFilter(mac=self.initial_mac)
        self.features = 0
        self.guest_csum = False
        if port is not None:
            port.attach(self)

    # --- DeviceBackend ---------------------------------------------------------------
    @property
    def device_id(self) -> DeviceId:
        """Network device (§5.1.1)."""
        return DeviceId.NET

    @property
    def vendor_id(self) -> int:
        """This reference's vendor id."""
        return VENDOR_ID

    def offered_features(self) -> int:
        """VERSION_1, MAC, STATUS and what the constructor chose (§5.1.3)."""
        return self._offered

    def queue_max_sizes(self) -> Sequence[int]:
        """receiveq1, transmitq1 and, if offered, controlq (§5.1.2)."""
        count = 3 if has_feature(self._offered, NetFeature.CTRL_VQ) else 2
        return [self.queue_size] * count

    def config_bytes(self) -> bytes:
        """struct virtio_net_config as far as this device fills it (§5.1.4)."""
        config = NetConfig(
            mac=self.rx_filter.mac,
            status=int(self.status),
            mtu=self.mtu or 0,
            speed=self.speed,
            duplex=self.duplex,
        )
        return config.pack()

    def read_config(self, offset: int, length: int) -> bytes:
        """Config bytes at `offset`; bytes past the structure read as 0."""
        raw = self.config_bytes()
        start = max(offset, 0)
        return raw[start : start + max(length, 0)].ljust(max(length, 0), b"\0")

    def write_config(self, offset: int, data: bytes) -> None:
        """Every field is read-only (NET-DRV-001): the write is ignored and recorded."""
        self._record(NetConfigWrite(f"driver wrote {len(data)} config bytes at {offset}"))

    def features_accepted(self, features: int) -> None:
        """FEATURES_OK granted: nothing in virtio-net's config space depends on it."""

    def activate(self, context: DeviceContext) -> None:
        """DRIVER_OK: serve the queues; work queued before this is served now."""
        self.context = context
        self.features = context.features
        self.hdr_size = net_hdr_size(context.features)
        self.mrg = has_feature(context.features, NetFeature.MRG_RXBUF)
        self.max_frame = self._max_frame(context.features)
        self.rx_filter.vlan_filtering = has_feature(context.features, NetFeature.CTRL_VLAN)
        self.guest_csum = has_feature(context.features, NetFeature.GUEST_CSUM)
        self._process_tx()
        self._process_ctrl()
        self._flush_rx()

    def _max_frame(self, features: int) -> int:
        """Largest frame passed either way: mtu + Ethernet header after MTU (NET-DEV-005/006)."""
        if has_feature(features, NetFeature.MTU) and self.mtu is not None:
            return self.mtu + ETH_HEADER_LEN
        return NET_MAX_FRAME

    def queue_notify(self, index: int) -> None:
        """The driver kicked queue `index`."""
        if self.context is None:
            return
        if index == NET_QUEUE_RX:
            self._flush_rx()
        elif index == NET_QUEUE_TX:
            self._process_tx()
        elif index == NET_QUEUE_CTRL:
            self._process_ctrl()

    def reset(self) -> None:
        """Forget queues, held buffers, filter state; drop the backlog as RESET."""
        self.context = None
        self.features = 0
        self._drop_backlog(DropReason.RESET)
        self._held.clear()
        self._used.clear()
        self.rx_filter = RxFilter(mac=self.initial_mac)
        self.status &= ~NetStatus.ANNOUNCE

    # --- link and config changes -----------------------------------------------------
    def set_link(self, up: bool) -> None:
        """Change VIRTIO_NET_S_LINK_UP; a link going down drops the backlog as LINK_DOWN."""
        before = self.status
        self.status = self.status | NetStatus.LINK_UP if up else self.status & ~NetStatus.LINK_UP
        if not up:
            self._drop_backlog(DropReason.LINK_DOWN)
        if self.status != before:
            self._config_changed(NetFeature.STATUS)

    def set_speed_duplex(self, speed: int, duplex: int) -> None:
        """Publish a new speed and duplex (only while the link is down, NET-DEV-012)."""
        if not speed_duplex_valid(speed, duplex):
            raise NetDeviceSetup(f"speed {speed:#x} / duplex {duplex:#x} out of range")
        if self.link_up:
            raise NetDeviceSetup("speed and duplex do not change while the link is up")
        self.speed, self.duplex = speed, duplex
        self._config_changed(NetFeature.SPEED_DUPLEX)

    def announce(self) -> None:
        """Ask the driver to announce itself (VIRTIO_NET_S_ANNOUNCE, §5.1.9.5.4)."""
        self.status |= NetStatus.ANNOUNCE
        self._config_changed(NetFeature.GUEST_ANNOUNCE)

    def _config_changed(self, needs: NetFeature) -> None:
        if self.context is not None and has_feature(self.features, needs):
            self.context.config_changed()

    @property
    def link_up(self) -> bool:
        """Whether VIRTIO_NET_S_LINK_UP is set."""
        return bool(self.status & NetStatus.LINK_UP)

    # --- CtrlTarget -------------------------------------------------------------------
    def set_mac(self, mac: bytes) -> None:
        """MAC_ADDR_SET: the filter's address and config `mac` (NET-DEV-047)."""
        self.rx_filter.mac = mac

    def ack_announce(self) -> None:
        """ANNOUNCE_ACK: clear VIRTIO_NET_S_ANNOUNCE before the command is used (NET-DEV-052)."""
        self.status &= ~NetStatus.ANNOUNCE

    # --- transmit (§5.1.9.2) ---------------------------------------------------------
    def _process_tx(self) -> None:
        for chain in self._drain(NET_QUEUE_TX):
            self._transmit(chain)
        self._signal(NET_QUEUE_TX)

    def _transmit(self, chain: Chain) -> None:
        queue = self._queue(NET_QUEUE_TX)
        assert self.context is not None and queue is not None
        try:
            frame: TxFrame = parse_tx(chain, self.context.mem, self.features, self.max_frame)
        except NetDriverError as error:
            self._record(error)
            self.stats.drops[DropReason.TX_MALFORMED] += 1
        else:
            self._send(frame.data)
        queue.push_used(chain.head, 0)

    def _send(self, frame: bytes) -> None:
        if not self.link_up:
            self.stats.drops[DropReason.TX_LINK_DOWN] += 1
        elif self.port is None:
            self.stats.drops[DropReason.TX_NO_PORT] += 1
        else:
            self.stats.tx_frames += 1
            self.stats.tx_bytes += len(frame)
            self.port.transmit(frame)

    # --- control queue (§5.1.9.5) -----------------------------------------------------
    def _process_ctrl(self) -> None:
        if not has_feature(self.features, NetFeature.CTRL_VQ):
            return
        for chain in self._drain(NET_QUEUE_CTRL):
            self._control(chain)
        self._signal(NET_QUEUE_CTRL)

    def _control(self, chain: Chain) -> None:
        queue = self._queue(NET_QUEUE_CTRL)
        assert self.context is not None and queue is not None
        if chain.writable_len == 0 or chain.readable_len > CTRL_MAX_BYTES:
            self._record(NetCtrlMalformed("control command without an ack byte, or too long"))
            queue.push_used(chain.head, 0)
            return
        ack = NetAck.OK
        try:
            execute(chain.read_payload(self.context.mem), self.features, self)
        except NetDriverError as error:
            self._record(error)
            ack = NetAck.ERR
        chain.write_payload(self.context.mem, bytes((ack,)))
        queue.push_used(chain.head, 1)

    # --- receive (§5.1.9.3, §5.1.9.4) -------------------------------------------------
    def receive_frame(self, frame: bytes) -> None:
        """A frame arrived on the link: filter it, queue it, deliver what buffers allow."""
        reason = self._rx_verdict(frame)
        if reason is None:
            self._flush_rx()
            if len(self.backlog) >= self.backlog_limit:
                reason = DropReason.BACKLOG_FULL
        if reason is not None:
            self.stats.drops[reason] += 1
            return
        self.backlog.append(bytes(frame))
        self._flush_rx()

    def _rx_verdict(self, frame: bytes) -> DropReason | None:
        """The drop reason decided on arrival, or None to queue the frame."""
        if self.context is None:
            return DropReason.NOT_READY
        if not self.link_up:
            return DropReason.LINK_DOWN
        if len(frame) < ETH_HEADER_LEN:
            return DropReason.RUNT
        if len(frame) > self.max_frame:
            return DropReason.OVERSIZE
        if not self.rx_filter.accepts(frame):
            return DropReason.FILTERED
        return None

    def _drop_backlog(self, reason: DropReason) -> None:
        if self.backlog:
            self.stats.drops[reason] += len(self.backlog)
            self.backlog.clear()

    def _flush_rx(self) -> None:
        """Place backlog frames, oldest first, while buffers last; then interrupt."""
        if self.context is None or self._queue(NET_QUEUE_RX) is None:
            return
        while self.backlog:
            outcome = self._place(self.backlog[0])
            if outcome is None:
                break
            self.backlog.popleft()
            if isinstance(outcome, DropReason):
                self.stats.drops[outcome] += 1
        self._signal(NET_QUEUE_RX)

    def _place(self, frame: bytes) -> DropReason | bool | None:
        """Put one frame into receive buffers: True, a drop reason, or None (wait)."""
        needed = self.hdr_size + len(frame)
        if not self._gather(needed):
            queue = self._queue(NET_QUEUE_RX)
            if self.mrg and queue is not None and len(self._held) >= queue.size:
                return DropReason.NO_ROOM
            return None
        if not self.mrg and self._held[0].writable_len < needed:
            return DropReason.OVERSIZE
        return self._fill(frame)

    def _gather(self, needed: int) -> bool:
        """Hold enough good buffers for `needed` bytes (one buffer without MRG_RXBUF)."""
        while True:
            have = sum(c.writable_len for c in self._held)
            if self._held and (not self.mrg or have >= needed):
                return True
            chain = self._pop_rx()
            if chain is None:
                return False
            self._held.append(chain)

    def _pop_rx(self) -> Chain | None:
        """The next usable receive buffer; bad ones are returned with length 0."""
        queue = self._queue(NET_QUEUE_RX)
        while chains := self._drain(NET_QUEUE_RX, once=True):
            chain = chains[0]
            mtu_frame = self.max_frame if has_feature(self.features, NetFeature.MTU) else None
            error = rx_buffer_fault(chain, self.hdr_size, self.mrg, mtu_frame)
            if error is None:
                return chain
            self._record(error)
            assert queue is not None
            queue.push_used(chain.head, 0)
            self._used.add(NET_QUEUE_RX)
        return None

    def _fill(self, frame: bytes) -> bool:
        """Write header + `frame` over as many held buffers as it takes, and use them."""
        assert self.context is not None
        queue = self._queue(NET_QUEUE_RX)
        assert queue is not None
        flags = NetHdrFlag.DATA_VALID if self.guest_csum and checksums_valid(frame) else 0
        for piece in spread(frame, self.hdr_size, self._held, flags):
            chain = self._held.popleft()
            chain.write_payload(self.context.mem, piece)
            queue.push_used(chain.head, len(piece))
        self._used.add(NET_QUEUE_RX)
        self.stats.rx_frames += 1
        self.stats.rx_bytes += len(frame)
        return True

    # --- queue plumbing ---------------------------------------------------------------
    def _queue(self, index: int) -> DeviceQueue | None:
        if self.context is None or index >= len(self.context.queues):
            return None
        return self.context.queues[index]

    def _drain(self, index: int, *, once: bool = False) -> list[Chain]:
        """Pop available chains (one if `once`), re-arming kicks when the ring runs dry.

        Malformed chains were already returned used by the queue; they are recorded.
        Ring corruption asks for a device reset and ends the work.
        """
        queue = self._queue(index)
        chains: list[Chain] = []
        if queue is None:
            return chains
        for _ in range(queue.size + 1):
            try:
                chain = queue.pop()
            except ChainError as error:
                self._record(error)
                self._used.add(index)
                continue
            except (RingCorruption, QueueBroken) as error:
                self._broken(error)
                break
            if chain is None:
                if queue.enable_notification():
                    continue
                break
            chains.append(chain)
            if once:
                break
        if index != NET_QUEUE_RX:
            self._used.update((index,) if chains else ())
        return chains

    def _signal(self, index: int) -> None:
        """Tell the transport buffers of queue `index` were used (it checks suppression)."""
        if index in self._used and self.context is not None:
            self._used.discard(index)
            self.context.signal_used(index)

    def _broken(self, error: VirtioError) -> None:
        self._record(error)
        if self.context is not None:
            self.context.needs_reset(error)

    def _record(self, error: VirtioError) -> None:
        self.errors.append(error)
        self.error_counts[type(error).__name__] += 1
