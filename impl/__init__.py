"""virtio-oracle's executable reference: byte-exact virtqueues over a flat guest memory.

Rules: sans-IO. Nothing here opens files or sockets, starts threads or reads clocks;
ring code operates on a `GuestMemory` it is given and returns what happened.

Spec: VIRTIO 1.4 CS01 §2.7 (split virtqueues); see each module.
"""

from .alloc import GuestAllocator
from .chain import Chain, Segment, walk_chain
from .layout import Descriptor, SplitLayout, UsedElem
from .memory import Barrier, GuestMemory
from .observer import abstract
from .split_device import SplitDevice
from .split_driver import SplitDriver

__all__ = [
    "Barrier",
    "Chain",
    "Descriptor",
    "GuestAllocator",
    "GuestMemory",
    "Segment",
    "SplitDevice",
    "SplitDriver",
    "SplitLayout",
    "UsedElem",
    "abstract",
    "walk_chain",
]
