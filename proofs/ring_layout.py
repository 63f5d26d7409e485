"""Obligation 5: split-ring layout, modern and legacy, for every size and every base.

Claims (evaluated on `impl.layout` itself: `SplitLayout.modern`, `SplitLayout.legacy`,
`align_up`, the three part-size functions and the field addresses, all on Z3 terms):
- each part's size is the §2.7 table's formula (16n, 6 + 2n, 6 + 8n);
- modern: each part starts at a multiple of its alignment (16, 2, 4: SPLIT-DRV-001),
  at or after `base`, and the three parts do not overlap;
- legacy: the descriptor table and the used ring start on Queue Align (4096)
  boundaries, the available ring follows the table directly, the used ring starts at
  the first Queue Align boundary after the available ring (§2.7.2), no overlap;
- every field address (ring entries of any slot below n, used_event, avail_event)
  lies inside its own part, and the event words are the last two bytes of their part;
- the areas the ring's accessors are made over (`desc_area`, `avail_area`,
  `used_area`, see `GuestMemory.reader`) are exactly the three parts, so the field
  claim above is the promise those accessors rely on.

Addresses are 80-bit terms with `base < 2^64`, wide enough that no sum wraps, so the
solver computes exactly what Python's integers do.

Spec: §2.7 (part sizes and alignment table), §2.7.1 (SPLIT-DRV-001), §2.7.2 (legacy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import z3

from impl import layout as lay

from .terms import bv, is_queue_size
from .verdict import Claim

ADDRESS_BITS = 80
"""Width of the address terms: 64-bit guest addresses plus room for every sum."""

SPEC_PARTS: tuple[tuple[str, int, Callable[[Any], Any]], ...] = (
    ("descriptor table", 16, lambda n: 16 * n),
    ("available ring", 2, lambda n: 6 + 2 * n),
    ("used ring", 4, lambda n: 6 + 8 * n),
)
"""The §2.7 table as printed: part, alignment, size in bytes for queue size n."""

LEGACY_ALIGN = 4096
"""Queue Align of the legacy interfaces (§2.7.2: a page)."""

Fn = Callable[..., Any]


def _disjoint(spans: list[tuple[Any, Any]]) -> Any:
    """No two half-open spans [start, start + length) share a byte."""
    return z3.And([
        z3.Or(z3.ULE(a + la, b), z3.ULE(b + lb, a))
        for i, (a, la) in enumerate(spans) for (b, lb) in spans[i + 1 :]
    ])


def _fields_inside(ring: lay.SplitLayout, n: Any, slot: Any, sizes: list[Any]) -> Any:
    """Ring entries, event words and descriptors lie inside their own parts."""
    avail_end, used_end = ring.avail + sizes[1], ring.used + sizes[2]
    desc_at, avail_at, used_at = ring.desc_addr(slot), ring.avail_ring(slot), ring.used_ring(slot)
    return z3.And(
        z3.ULE(ring.desc, desc_at), z3.ULE(desc_at + 16, ring.desc + sizes[0]),
        ring.avail_flags == ring.avail, ring.avail_idx == ring.avail + 2,
        z3.ULE(ring.avail + 4, avail_at), z3.ULE(avail_at + 2, ring.used_event),
        ring.used_event + 2 == avail_end,
        ring.used_flags == ring.used, ring.used_idx == ring.used + 2,
        z3.ULE(ring.used + 4, used_at), z3.ULE(used_at + 8, ring.avail_event),
        ring.avail_event + 2 == used_end,
        _same_span(ring.desc_area, (ring.desc, ring.desc + sizes[0])),
        _same_span(ring.avail_area, (ring.avail, avail_end)),
        _same_span(ring.used_area, (ring.used, used_end)),
    )


def _same_span(area: tuple[Any, Any], part: tuple[Any, Any]) -> Any:
    """An accessor area `[lo, hi)` is exactly the part `[start, end)`."""
    return z3.And(area[0] == part[0], area[1] == part[1])


def claims(
    modern: Fn = lay.SplitLayout.modern,
    legacy: Fn = lay.SplitLayout.legacy,
    part_sizes: tuple[Fn, Fn, Fn] = (
        lay.desc_table_bytes, lay.avail_ring_bytes, lay.used_ring_bytes
    ),
) -> list[Claim]:
    """Every claim of obligation 5, over the given (by default the real) functions."""
    n, base, slot = bv("size", ADDRESS_BITS), bv("base", ADDRESS_BITS), bv("slot", ADDRESS_BITS)
    pre = z3.And(is_queue_size(n), z3.ULT(base, 1 << 64), z3.ULT(slot, n))
    sizes = [fn(n) for fn in part_sizes]
    spec_sizes = [formula(n) for _, _, formula in SPEC_PARTS]
    result: list[Claim] = [
        Claim(f"{name} size is the §2.7 formula", pre, size == spec, {"size": n, "bytes": size})
        for (name, _, _), size, spec in zip(SPEC_PARTS, sizes, spec_sizes, strict=True)
    ]
    m = modern(n, base)
    starts = [m.desc, m.avail, m.used]
    shown = {"size": n, "base": base, "desc": m.desc, "avail": m.avail, "used": m.used}
    for (name, align, _), start in zip(SPEC_PARTS, starts, strict=True):
        result.append(Claim(f"modern {name} is {align}-aligned", pre,
                            z3.And(z3.URem(start, align) == 0, z3.UGE(start, base)), shown))
    result.append(Claim("modern parts do not overlap", pre,
                        _disjoint(list(zip(starts, spec_sizes, strict=True))), shown))
    result.append(Claim("modern fields lie inside their parts", pre,
                        _fields_inside(m, n, slot, spec_sizes), shown))
    g = legacy(n, base)
    shown = {"size": n, "base": base, "desc": g.desc, "avail": g.avail, "used": g.used}
    pad_to = z3.UDiv(g.avail + spec_sizes[1] + LEGACY_ALIGN - 1, LEGACY_ALIGN) * LEGACY_ALIGN
    legacy_shape = z3.And(
        z3.URem(g.desc, LEGACY_ALIGN) == 0, z3.UGE(g.desc, base),
        g.avail == g.desc + spec_sizes[0], g.used == pad_to,
    )
    result += [
        Claim("legacy layout is desc, avail, pad to Queue Align, used", pre, legacy_shape, shown),
        Claim("legacy parts do not overlap", pre,
              _disjoint([(g.desc, spec_sizes[0]), (g.avail, spec_sizes[1]),
                         (g.used, spec_sizes[2])]), shown),
        Claim("legacy fields lie inside their parts", pre,
              _fields_inside(g, n, slot, spec_sizes), shown),
    ]
    return result
