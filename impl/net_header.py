"""`struct virtio_net_hdr`: the header in front of every virtio-net packet, both forms.

Rules:
- The modern header is 12 bytes and ends with `num_buffers`; the legacy one stops 2
  bytes earlier. Which one a queue uses is a function of the negotiated features only
  (`net_hdr_size`): VERSION_1 or MRG_RXBUF give 12, neither gives 10 (§5.1.9.1).
  Larger headers (hash report, UDP tunnel, IPsec) belong to features this reference
  never offers.
- Every bit pattern decodes (a hostile header is a valid `NetHdr`); checking it against
  the features is the reader's job. Encoding refuses values that do not fit a field.

Spec: §5.1.9 (struct virtio_net_hdr), §5.1.9.1 (legacy form), §5.1.9.3.1 (NET-DRV-053).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from .spec import NET_HDR_LEGACY_SIZE, NET_HDR_SIZE, Feature, NetFeature, NetGso, has_feature


def net_hdr_size(features: int) -> int:
    """Bytes of virtio_net_hdr for these negotiated features (§5.1.9, §5.1.9.1)."""
    modern = has_feature(features, Feature.VERSION_1) or has_feature(features, NetFeature.MRG_RXBUF)
    return NET_HDR_SIZE if modern else NET_HDR_LEGACY_SIZE


@dataclass(frozen=True, slots=True, kw_only=True)
class NetHdr:
    """`struct virtio_net_hdr` (§5.1.9): flags, gso_type, hdr_len, gso_size,
    csum_start, csum_offset and (modern form only) num_buffers, all little-endian."""

    flags: int = 0
    gso_type: int = NetGso.NONE
    hdr_len: int = 0
    gso_size: int = 0
    csum_start: int = 0
    csum_offset: int = 0
    num_buffers: int = 0

    SIZE: ClassVar[int] = NET_HDR_SIZE
    LEGACY_SIZE: ClassVar[int] = NET_HDR_LEGACY_SIZE
    _STRUCT: ClassVar[struct.Struct] = struct.Struct("<BBHHHHH")
    _LEGACY: ClassVar[struct.Struct] = struct.Struct("<BBHHHH")

    def pack(self, size: int = NET_HDR_SIZE) -> bytes:
        """The `size` (12 or 10) little-endian bytes; the legacy form drops num_buffers."""
        fields = (
            self.flags,
            self.gso_type,
            self.hdr_len,
            self.gso_size,
            self.csum_start,
            self.csum_offset,
        )
        if size == NET_HDR_LEGACY_SIZE:
            return self._LEGACY.pack(*fields)
        if size != NET_HDR_SIZE:
            raise ValueError(f"virtio_net_hdr is 10 or 12 bytes, not {size}")
        return self._STRUCT.pack(*fields, self.num_buffers)

    @classmethod
    def unpack(cls, raw: bytes) -> NetHdr:
        """Decode a 12-byte (modern) or 10-byte (legacy, num_buffers read as 0) header."""
        if len(raw) == NET_HDR_LEGACY_SIZE:
            flags, gso, hdr_len, gso_size, start, offset = cls._LEGACY.unpack(raw)
            nbuf = 0
        else:
            flags, gso, hdr_len, gso_size, start, offset, nbuf = cls._STRUCT.unpack(raw)
        return cls(
            flags=flags,
            gso_type=gso,
            hdr_len=hdr_len,
            gso_size=gso_size,
            csum_start=start,
            csum_offset=offset,
            num_buffers=nbuf,
        )
