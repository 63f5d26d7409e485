"""Every number in impl/spec.py against Linux's uapi headers, compiled and printed by C.

A tiny C program is generated from impl.spec, compiled against the uapi headers of the
kernel tree the peer build extracted (`include/uapi/linux/virtio_*.h`), and run; each
value it prints must equal ours. Names map by rule (enum class -> macro prefix,
`VIRTQ_` -> `VRING_`), with a few explicit expressions (structure sizes through
`sizeof`, packed flags that Linux gives as bit numbers). A constant with no Linux
counterpart must be listed in NO_UAPI with the reason (a class name covers its
members), and one Linux only gained after some release in NEWER_THAN_SOME_TREES; any
other constant the program cannot find fails the test, so a new constant in
impl/spec.py is checked or explained.
"""

from __future__ import annotations

import enum
import shutil
import subprocess
from pathlib import Path

import pytest
from peers.build import source_tree
from peers.linux import require_library

import impl.spec as spec

HEADERS = ("virtio_ring.h", "virtio_config.h", "virtio_net.h", "virtio_blk.h",
           "virtio_mmio.h", "virtio_ids.h", "virtio_pci.h", "if_ether.h", "ethtool.h")

CLASS_PREFIXES = {
    "DescFlag": ("VRING_DESC_F_",),
    "AvailFlag": ("VRING_AVAIL_F_",),
    "UsedFlag": ("VRING_USED_F_",),
    "PackedDescFlag": ("VRING_DESC_F_",),
    "PackedEventFlag": ("VRING_PACKED_EVENT_FLAG_",),
    "Feature": ("VIRTIO_F_", "VIRTIO_RING_F_"),
    "Status": ("VIRTIO_CONFIG_S_",),
    "DeviceId": ("VIRTIO_ID_",),
    "MmioReg": ("VIRTIO_MMIO_",),
    "BlkFeature": ("VIRTIO_BLK_F_",),
    "BlkReqType": ("VIRTIO_BLK_T_",),
    "BlkStatus": ("VIRTIO_BLK_S_",),
    "NetFeature": ("VIRTIO_NET_F_",),
    "UnimplementedFeature": ("VIRTIO_F_",),
    "NetUnimplementedFeature": ("VIRTIO_NET_F_",),
    "NetStatus": ("VIRTIO_NET_S_",),
    "NetHdrFlag": ("VIRTIO_NET_HDR_F_",),
    "NetGso": ("VIRTIO_NET_HDR_GSO_",),
    "NetCtrlClass": ("VIRTIO_NET_CTRL_",),
    "NetCtrlRx": ("VIRTIO_NET_CTRL_RX_",),
    "NetCtrlMac": ("VIRTIO_NET_CTRL_MAC_",),
    "NetCtrlVlan": ("VIRTIO_NET_CTRL_VLAN_",),
    "NetCtrlUnimplementedClass": ("VIRTIO_NET_CTRL_",),
    "NetCtrlMq": ("VIRTIO_NET_CTRL_MQ_",),
    "NetCtrlNotfCoal": ("VIRTIO_NET_CTRL_NOTF_COAL_",),
    "NetAck": ("VIRTIO_NET_",),
    "NetDuplex": ("DUPLEX_",),
}

EXPRESSIONS = {
    "DESC_SIZE": "sizeof(struct vring_desc)",
    "USED_ELEM_SIZE": "sizeof(struct vring_used_elem)",
    "AVAIL_ELEM_SIZE": "sizeof(((struct vring_avail *)0)->ring[0])",
    "RING_HEADER_SIZE": "offsetof(struct vring_avail, ring)",
    "EVENT_FIELD_SIZE": "sizeof(__virtio16)",
    "INDEX_BITS": "8 * sizeof(((struct vring_avail *)0)->idx)",
    "INDEX_MODULUS": "1ULL << (8 * sizeof(((struct vring_used *)0)->idx))",
    "DESC_ALIGN": "VRING_DESC_ALIGN_SIZE",
    "AVAIL_ALIGN": "VRING_AVAIL_ALIGN_SIZE",
    "USED_ALIGN": "VRING_USED_ALIGN_SIZE",
    "LEGACY_QUEUE_ALIGN": "VIRTIO_PCI_VRING_ALIGN",
    "PackedDescFlag.AVAIL": "1ULL << VRING_PACKED_DESC_F_AVAIL",
    "PackedDescFlag.USED": "1ULL << VRING_PACKED_DESC_F_USED",
    "Status.DEVICE_NEEDS_RESET": "VIRTIO_CONFIG_S_NEEDS_RESET",
    "InterruptBit.USED_BUFFER": "VIRTIO_MMIO_INT_VRING",
    "InterruptBit.CONFIG_CHANGE": "VIRTIO_MMIO_INT_CONFIG",
    "DRIVER_STATUS_BITS": "VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER"
                          " | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK"
                          " | VIRTIO_CONFIG_S_FAILED",
    "INTERRUPT_BITS": "VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG",
    # not a uapi macro: Linux's virtio_mmio.c spells the magic as these four letters
    "MMIO_MAGIC": "'v' | 'i' << 8 | 'r' << 16 | 't' << 24",
    "MMIO_CONFIG_OFFSET": "VIRTIO_MMIO_CONFIG",
    "BLK_T_BARRIER": "VIRTIO_BLK_T_BARRIER",
    "BLK_ID_BYTES": "VIRTIO_BLK_ID_BYTES",
    "BLK_DWZ_F_UNMAP": "VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP",
    "BLK_REQ_HEADER_SIZE": "sizeof(struct virtio_blk_outhdr)",
    "BLK_DWZ_SEGMENT_SIZE": "sizeof(struct virtio_blk_discard_write_zeroes)",
    "EVENT_SUPPRESS_SIZE": "sizeof(struct vring_packed_desc_event)",
    "EVENT_WRAP_SHIFT": "VRING_PACKED_EVENT_F_WRAP_CTR",
    "NET_HDR_SIZE": "sizeof(struct virtio_net_hdr_mrg_rxbuf)",
    "NET_HDR_LEGACY_SIZE": "sizeof(struct virtio_net_hdr)",
    "MAC_LEN": "ETH_ALEN",
    "ETH_HEADER_LEN": "ETH_HLEN",
    "NET_MTU_MIN": "ETH_MIN_MTU",
    "NET_MTU_MAX": "ETH_MAX_MTU",
    "NET_SMALL_RX_FRAME": "ETH_FRAME_LEN",
    "VLAN_TPID": "ETH_P_8021Q",
    "NET_CONFIG_MAC": "offsetof(struct virtio_net_config, mac)",
    "NET_CONFIG_STATUS": "offsetof(struct virtio_net_config, status)",
    "NET_CONFIG_MAX_PAIRS": "offsetof(struct virtio_net_config, max_virtqueue_pairs)",
    "NET_CONFIG_MTU": "offsetof(struct virtio_net_config, mtu)",
    "NET_CONFIG_SPEED": "offsetof(struct virtio_net_config, speed)",
    "NET_CONFIG_DUPLEX": "offsetof(struct virtio_net_config, duplex)",
    # the fields served end with `duplex`
    "NET_CONFIG_SIZE": "offsetof(struct virtio_net_config, duplex)"
                       " + sizeof(((struct virtio_net_config *)0)->duplex)",
    # what ethtool_validate_speed() accepts: 0..INT_MAX, or SPEED_UNKNOWN as a u32
    "NET_SPEED_MAX": "INT_MAX",
    "NET_SPEED_UNKNOWN": "(__u32)SPEED_UNKNOWN",
    "NET_CTRL_ANNOUNCE_ACK": "VIRTIO_NET_CTRL_ANNOUNCE_ACK",
    "NET_CTRL_HEADER_SIZE": "sizeof(struct virtio_net_ctrl_hdr)",
    "NET_CTRL_MAC_ENTRIES_SIZE": "offsetof(struct virtio_net_ctrl_mac, macs)",
    "MmioReg.QUEUE_DRIVER_LOW": "VIRTIO_MMIO_QUEUE_AVAIL_LOW",
    "MmioReg.QUEUE_DRIVER_HIGH": "VIRTIO_MMIO_QUEUE_AVAIL_HIGH",
    "MmioReg.QUEUE_DEVICE_LOW": "VIRTIO_MMIO_QUEUE_USED_LOW",
    "MmioReg.QUEUE_DEVICE_HIGH": "VIRTIO_MMIO_QUEUE_USED_HIGH",
}

BLK_CONFIG_FIELDS = {"GEOMETRY": "geometry", "WRITEBACK": "wce", "UNUSED0": "unused"}
"""BlkConfigOffset members whose Linux field name is not the member's name in lower case."""

for _member in spec.BlkConfigOffset:
    _field = BLK_CONFIG_FIELDS.get(_member.name, _member.name.lower())
    EXPRESSIONS[f"BlkConfigOffset.{_member.name}"] = f"offsetof(struct virtio_blk_config, {_field})"

NO_UAPI = {
    "MAX_QUEUE_SIZE": "Linux's uapi has no macro for the spec's 32768 limit",
    "MAX_CHAIN_BYTES": "a spec rule on a chain's total length; Linux names no constant",
    "DeviceId.RESERVED": "id 0 is the spec's 'reserved (invalid)'; uapi names no macro",
    "FEATURE_WORD_BITS": "the width of the virtio-mmio feature window; Linux writes 32 inline",
    "FEATURE_WORDS": "how many feature windows the project serves; no uapi macro",
    "MMIO_VERSION_MODERN": "Linux's virtio_mmio.c compares the version with literals",
    "MMIO_VERSION_LEGACY": "Linux's virtio_mmio.c compares the version with literals",
    "MMIO_REGISTER_WIDTH": "the spec's 32-bit register rule; uapi names no macro",
    "MMIO_WINDOW_SIZE": "a window size chosen by the platform (device tree), not by uapi",
    "SHM_NO_REGION": "Linux tests the shared-memory length against ~0 inline",
    "LEGACY_PAGE_SIZE": "the page size a legacy driver writes to GuestPageSize (PAGE_SIZE)",
    "DEVPAGE_HEADER_SIZE": "the descriptor page is this project's own transport",
    "DEVPAGE_VQ_SIZE": "the descriptor page is this project's own transport",
    "DEVPAGE_ALIGN": "the descriptor page is this project's own transport",
    "DEVPAGE_SIZE": "the descriptor page is this project's own transport",
    "Hypercall": "the descriptor page's hypercalls are this project's own (every member)",
    "NET_MTU_RECOMMENDED_MIN": "the spec's SHOULD floor for an offered mtu (IPv6's 1280); "
    "Linux names no virtio constant for it",
    "BLK_SECTOR_SIZE": "Linux's SECTOR_SIZE is a block-layer macro, not virtio uapi",
    "BLK_STATUS_SIZE": "the status is one u8 (§5.2.6); Linux names no constant for it",
    "BLK_CONFIG_SIZE": "sizeof(struct virtio_blk_config) follows the release (6.1 lacks the "
    "zoned fields); every field offset is checked instead",
    "BLK_MAX_ADDRESS": "the 64-bit byte address limit of sector*512+len; no uapi macro",
    "BlkReqType.SCSI_CMD_OUT": "legacy SCSI passthrough; Linux's uapi defines no _OUT type",
    "PACKED_DESC_ALIGN": "a table value of the spec; Linux allocates the ring page-aligned",
    "EVENT_SUPPRESS_ALIGN": "a table value of the spec; the uapi struct's C alignment is 2",
    "EVENT_FLAGS_MASK": "uapi names the three flag values (checked), not their mask",
    "INITIAL_WRAP_COUNTER": "Linux sets its wrap counters to 1 in code, not by a macro",
    "NET_QUEUE_RX": "queue numbering is the spec's (§5.1.2); virtio_net.c counts inline",
    "NET_QUEUE_TX": "queue numbering is the spec's (§5.1.2); virtio_net.c counts inline",
    "NET_QUEUE_CTRL": "queue numbering is the spec's (§5.1.2); virtio_net.c counts inline",
    "NET_MAX_FRAME": "this reference's own cap on a frame",
    "VLAN_ID_MASK": "VLAN_VID_MASK lives in the kernel-only linux/if_vlan.h, not in uapi",
    "NetCtrlUnimplementedClass.HASH_TUNNEL": "the spec's inner header hash class; Linux has none",
    "NetCtrlUnimplementedClass.RSS_CTX": "the spec's VIRTNET_RSS_CTX_CTRL; Linux has no macro",
}

NEWER_THAN_SOME_TREES = {
    "BlkFeature.LIFETIME": "VIRTIO_BLK_F_LIFETIME is newer than Linux 6.1",
    "BlkFeature.ZONED": "VIRTIO_BLK_F_ZONED is newer than Linux 6.1",
    "BlkReqType.GET_LIFETIME": "VIRTIO_BLK_T_GET_LIFETIME is newer than Linux 6.1",
    "Status.SUSPEND": "VIRTIO_CONFIG_S_SUSPEND is newer than Linux 6.1",
    "Feature.NOTIFICATION_DATA": "VIRTIO_F_NOTIFICATION_DATA is newer than Linux 6.1",
    "Feature.NOTIF_CONFIG_DATA": "VIRTIO_F_NOTIF_CONFIG_DATA is newer than Linux 6.1",
    "Feature.ADMIN_VQ": "VIRTIO_F_ADMIN_VQ is newer than Linux 6.1",
    "NetFeature.HOST_USO": "VIRTIO_NET_F_HOST_USO is newer than Linux 6.1",
    "NetGso.UDP_L4": "VIRTIO_NET_HDR_GSO_UDP_L4 is newer than Linux 6.1",
    "NetGso.UDP_TUNNEL_IPV4": "VIRTIO_NET_HDR_GSO_UDP_TUNNEL_IPV4 is newer than Linux 6.1",
    "NetGso.UDP_TUNNEL_IPV6": "VIRTIO_NET_HDR_GSO_UDP_TUNNEL_IPV6 is newer than Linux 6.1",
    "NetHdrFlag.UDP_TUNNEL_CSUM": "VIRTIO_NET_HDR_F_UDP_TUNNEL_CSUM is newer than Linux 6.1",
    "UnimplementedFeature.SUSPEND": "VIRTIO_F_SUSPEND is newer than Linux 6.1",
    "NetCtrlUnimplementedClass.STATS": "VIRTIO_NET_CTRL_STATS is newer than Linux 6.1",
    "NetCtrlNotfCoal.VQ_SET": "VIRTIO_NET_CTRL_NOTF_COAL_VQ_SET is newer than Linux 6.1",
    "NetCtrlNotfCoal.VQ_GET": "VIRTIO_NET_CTRL_NOTF_COAL_VQ_GET is newer than Linux 6.1",
}
# named for model/not_applicable.tsv; not in Linux 6.1 (some newer, some in the spec only)
NEWER_THAN_SOME_TREES.update({
    f"NetUnimplementedFeature.{member}": f"VIRTIO_NET_F_{member} is not in Linux 6.1"
    for member in ("DEVICE_STATS", "HASH_TUNNEL", "VQ_NOTF_COAL", "GUEST_USO4", "GUEST_USO6",
                   "GUEST_HDRLEN", "RSS_CONTEXT", "GUEST_UDP_TUNNEL_GSO",
                   "GUEST_UDP_TUNNEL_GSO_CSUM", "HOST_UDP_TUNNEL_GSO",
                   "HOST_UDP_TUNNEL_GSO_CSUM", "OUT_NET_HEADER", "IPSEC")
})


def our_constants() -> dict[str, int]:
    """Every integer impl.spec names: module-level ints and enum members, by dotted name."""
    found: dict[str, int] = {}
    for name, value in vars(spec).items():
        if name.startswith("_"):
            continue
        if isinstance(value, type) and issubclass(value, enum.Enum):
            for member in value:
                found[f"{name}.{member.name}"] = int(member.value)
        elif isinstance(value, int) and name.isupper():
            found[name] = int(value)
    return found


def c_candidates(name: str) -> list[str]:
    """The C expressions that may define `name`, most specific first."""
    if name in EXPRESSIONS:
        return [EXPRESSIONS[name]]
    if "." in name:
        cls, member = name.split(".")
        return [prefix + member for prefix in CLASS_PREFIXES.get(cls, ())]
    return [name, name.replace("VIRTQ_", "VRING_"), name.replace("VIRTIO_F_", "VIRTIO_RING_F_")]


def c_program(names: list[str]) -> str:
    """C source printing `<name> <value>` for every candidate the headers define."""
    lines = ["#include <stddef.h>", "#include <stdio.h>"]
    lines += [f"#include <linux/{header}>" for header in HEADERS]
    lines.append("int main(void) {")
    for name in names:
        for expr in c_candidates(name):
            print_it = f'  printf("%s %llu\\n", "{name}", (unsigned long long)({expr}));'
            if expr.isidentifier():
                lines += [f"#ifdef {expr}", print_it, "#endif"]
            else:
                lines.append(print_it)
    lines += ["  return 0;", "}"]
    return "\n".join(lines) + "\n"


def linux_values(tree: Path, names: list[str], work: Path) -> dict[str, list[int]]:
    """Compile and run the program against `tree`'s virtio uapi headers.

    Only `virtio_*.h`, `if_ether.h` and `ethtool.h` come from the tree; the generic ones
    they include (`linux/types.h` and below) are the system's sanitized copies, because
    the tree's raw uapi directory is not usable from userspace before headers_install.
    """
    source, binary = work / "constants.c", work / "constants"
    source.write_text(c_program(names))
    headers = work / "include" / "linux"
    headers.mkdir(parents=True)
    uapi = tree / "include" / "uapi" / "linux"
    for header in [*uapi.glob("virtio_*.h"), uapi / "if_ether.h", uapi / "ethtool.h"]:
        shutil.copy(header, headers / header.name)
    subprocess.run(
        ["gcc", "-std=gnu11", f"-I{work / 'include'}", str(source), "-o", str(binary)],
        check=True, capture_output=True, text=True,
    )
    output = subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout
    values: dict[str, list[int]] = {}
    for line in output.splitlines():
        name, value = line.split()
        values.setdefault(name, []).append(int(value))
    return values


def test_every_spec_constant_matches_linux_uapi(tmp_path: Path) -> None:
    if require_library() is None:
        pytest.skip("VIRTIO_ORACLE_NO_PEERS=1: no Linux tree to compare constants with")
    ours = our_constants()
    checked = [name for name in ours
               if name not in NO_UAPI and name.split(".")[0] not in NO_UAPI]
    linux = linux_values(source_tree(), checked, tmp_path)
    missing = [n for n in checked if n not in linux and n not in NEWER_THAN_SOME_TREES]
    assert not missing, f"no uapi counterpart found for {missing}: map them or say why not"
    wrong = {n: (ours[n], linux[n]) for n in linux if ours[n] not in linux[n]}
    assert not wrong, f"impl.spec disagrees with Linux (ours, Linux's): {wrong}"
    assert len(linux) >= len(checked) - len(NEWER_THAN_SOME_TREES)


PACKED_FIELDS = {
    "DESC_LEN_OFFSET": "offsetof(struct vring_packed_desc, len)",
    "DESC_ID_OFFSET": "offsetof(struct vring_packed_desc, id)",
    "DESC_FLAGS_OFFSET": "offsetof(struct vring_packed_desc, flags)",
    "EVENT_FLAGS_OFFSET": "offsetof(struct vring_packed_desc_event, flags)",
}
"""impl.packed_layout's field offsets and the uapi structures they must match (§2.8.13,
§2.8.14); the Linux packed peer writes these structures through the same header."""


def test_packed_field_offsets_match_linux_uapi(tmp_path: Path) -> None:
    if require_library() is None:
        pytest.skip("VIRTIO_ORACLE_NO_PEERS=1: no Linux tree to compare constants with")
    import impl.packed_layout as packed_layout

    saved = dict(EXPRESSIONS)
    EXPRESSIONS.update(PACKED_FIELDS)
    try:
        linux = linux_values(source_tree(), list(PACKED_FIELDS), tmp_path)
    finally:
        EXPRESSIONS.clear()
        EXPRESSIONS.update(saved)
    for name in PACKED_FIELDS:
        assert linux[name] == [getattr(packed_layout, name)], f"{name}: Linux {linux[name]}"
