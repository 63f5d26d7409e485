"""What a virtio-net link means: frames cross in order, or are counted as dropped.

Rules:
- No bytes of headers, rings or descriptors: a frame is an opaque value with a length.
  Each side of a link is a NIC with a receive backlog of bounded length and some
  number of receive buffers the driver has posted; a frame needs `need(length)`
  buffers (1 without mergeable buffers).
- A driver learns its link state from the configuration interrupt: until that is
  delivered it believes the old state. A frame sent by a driver that believes its link
  down is refused; one sent while the device's link is down (the driver not yet told)
  is dropped by the sending device as `tx_link_down`. Otherwise it arrives at the
  peer: dropped there as `link_down` if the peer's link is down, `oversize` if longer
  than the peer accepts, `backlog_full` if the backlog is full; else it joins the
  backlog.
- The receive filter: a NIC in promiscuous mode (the state after reset) accepts every
  frame; otherwise only frames whose destination (an Ethernet frame's first six
  bytes) is its own address or broadcast; the others are dropped as `filtered`
  (multicast tables and the other modes are not modelled).
- The backlog drains in order while the posted buffers suffice for its oldest frame
  (head-of-line: a frame never overtakes another). A frame that needs more buffers
  than the whole ring holds is dropped as `no_room` once the ring is fully posted.
- A delivered frame waits, unchanged, until the driver polls; a poll hands every
  waiting frame over in order and gives back their buffers for the next refill.
- A link going down drops the backlog as `link_down`. A reset (the driver unbound and
  bound again) drops it as `reset` and discards the frames not yet polled.
- So for every side: frames sent towards it = received + waiting + backlog + drops
  + discarded at a reset
  (transmit drops are counted apart, at the sender).

Spec: §5.1 (the device's link, receive queue and buffers), §5.1.9.3 and §5.1.9.4
(receive buffers and num_buffers), §5.1.4 (LINK_UP).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

Frame = bytes
SIDES = ("a", "b")
ADDRESS_LEN = 6
BROADCAST = b"\xff" * ADDRESS_LEN


@dataclass
class NicModel:
    """One side's receive path: link, backlog, posted buffers, frames not yet polled."""

    address: bytes = b""
    promisc: bool = True
    link_up: bool = True
    driver_link: bool = True
    config_pending: bool = False
    backlog: deque[Frame] = field(default_factory=deque)
    posted: int = 0
    unreclaimed: int = 0
    waiting: list[Frame] = field(default_factory=list)
    received: list[Frame] = field(default_factory=list)
    drops: Counter[str] = field(default_factory=Counter)
    tx_drops: Counter[str] = field(default_factory=Counter)
    discarded: int = 0
    arrived: int = 0


class LinkModel:
    """Two NICs, `a` and `b`, joined by a wire.

    `capacity` is the receive ring's buffer count, `backlog_limit` the backlog bound,
    `max_frame` the longest frame a side accepts, `need(length)` the buffers a frame
    of that length takes, `mergeable` whether a frame may take several, `addresses`
    the two NICs' MAC addresses.
    """

    def __init__(
        self,
        *,
        capacity: int,
        backlog_limit: int,
        max_frame: int,
        need: Callable[[int], int],
        mergeable: bool,
        addresses: tuple[bytes, bytes] = (b"", b""),
    ) -> None:
        self.capacity = capacity
        self.backlog_limit = backlog_limit
        self.max_frame = max_frame
        self.need = need
        self.mergeable = mergeable
        self.nics = {
            side: NicModel(address=addr) for side, addr in zip(SIDES, addresses, strict=True)
        }

    @staticmethod
    def peer(side: str) -> str:
        """The other end of the wire."""
        return SIDES[1 - SIDES.index(side)]

    def send(self, side: str, frame: Frame) -> bool:
        """`side`'s driver sends `frame`; False if it refuses (it believes its link down)."""
        nic = self.nics[side]
        if not nic.driver_link:
            return False
        if not nic.link_up:
            nic.tx_drops["tx_link_down"] += 1
        else:
            self.arrive(self.peer(side), frame)
        return True

    def arrive(self, side: str, frame: Frame) -> None:
        """`frame` reaches `side`'s NIC from the wire."""
        nic = self.nics[side]
        nic.arrived += 1
        self.flush(side)
        if not nic.link_up:
            nic.drops["link_down"] += 1
        elif len(frame) > self.max_frame:
            nic.drops["oversize"] += 1
        elif not self.accepts(nic, frame):
            nic.drops["filtered"] += 1
        elif len(nic.backlog) >= self.backlog_limit:
            nic.drops["backlog_full"] += 1
        else:
            nic.backlog.append(frame)
            self.flush(side)

    @staticmethod
    def accepts(nic: NicModel, frame: Frame) -> bool:
        """Whether `nic`'s filter lets `frame` through."""
        destination = frame[:ADDRESS_LEN]
        return nic.promisc or destination in (nic.address, BROADCAST)

    def set_promisc(self, side: str, on: bool) -> None:
        """`side`'s driver switches promiscuous mode."""
        self.nics[side].promisc = on

    def flush(self, side: str) -> None:
        """Deliver backlog frames, oldest first, while the posted buffers suffice."""
        nic = self.nics[side]
        while nic.backlog:
            needed = self.need(len(nic.backlog[0]))
            if needed <= nic.posted:
                nic.posted -= needed
                nic.unreclaimed += needed
                nic.waiting.append(nic.backlog.popleft())
            elif self.mergeable and nic.posted >= self.capacity:
                nic.backlog.popleft()
                nic.drops["no_room"] += 1
            else:
                return

    def refill(self, side: str) -> None:
        """The driver posts every buffer it holds: the ring less the unpolled ones."""
        nic = self.nics[side]
        nic.posted = self.capacity - nic.unreclaimed
        self.flush(side)

    def poll(self, side: str) -> list[Frame]:
        """The driver takes every delivered frame, in order, and reclaims their buffers."""
        nic = self.nics[side]
        taken, nic.waiting = nic.waiting, []
        nic.received.extend(taken)
        nic.unreclaimed = 0
        return taken

    def set_link(self, side: str, up: bool) -> None:
        """`side`'s link goes up or down (a config interrupt if it changed).

        Down drops the backlog.
        """
        nic = self.nics[side]
        nic.config_pending |= nic.link_up != up
        nic.link_up = up
        if not up:
            nic.drops["link_down"] += len(nic.backlog)
            nic.backlog.clear()

    def reset(self, side: str) -> None:
        """`side`'s driver unbinds (the device is reset) and binds again.

        The backlog is dropped as `reset`; frames delivered but not yet polled are
        discarded with the buffers the driver takes back; the new driver posts a full
        ring, knows the current link state, and the filter is promiscuous again.
        """
        nic = self.nics[side]
        nic.drops["reset"] += len(nic.backlog)
        nic.backlog.clear()
        nic.discarded += len(nic.waiting)
        nic.waiting = []
        nic.unreclaimed = 0
        nic.posted = self.capacity
        nic.driver_link, nic.config_pending = nic.link_up, False
        nic.promisc = True

    def interrupt(self, side: str) -> None:
        """`side`'s pending interrupts are delivered: its driver reads the link state."""
        nic = self.nics[side]
        if nic.config_pending:
            nic.driver_link = nic.link_up
            nic.config_pending = False

    def accounted(self, side: str) -> bool:
        """Every frame that reached `side` is received, waiting, in the backlog or dropped."""
        nic = self.nics[side]
        total = len(nic.received) + len(nic.waiting) + len(nic.backlog) + nic.drops.total()
        total += nic.discarded
        return total == nic.arrived
