"""Where a DOAM model's attention map looks: inside the ground-truth items, around them, overall.

The paper's claim is that the de-occlusion attention "perceives" prohibited items even when
other objects overlap them. AP cannot tell whether the map takes part in that; this can. For
every ground-truth box it measures the map's mean inside the box and in the ring around it
(the box grown by half its size on each side, minus the box: the clutter next to the item),
and per image the map's mean over the whole image. Per subset (all, OL1, OL2, OL3):

- ``inside`` / ``around`` / ``image``: the means of those;
- ``contrast``: mean of (inside - around) per item, how much brighter the item is than its
  surroundings;
- ``highlighted``: the share of items whose inside is brighter than their ring.

A map that holds up under occlusion keeps its contrast from OL1 to OL3. The map must already
be at the image's size (``Prediction.attention`` is).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

RING_GROWTH = 0.5     # the ring reaches this fraction of the box's width / height beyond each side


def box_and_ring_means(attention: np.ndarray, box: Sequence[float]) -> tuple[float, float] | None:
    """The map's mean inside ``box`` (x1, y1, x2, y2 in pixels) and in its ring; None if empty or degenerate."""
    h, w = attention.shape
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 <= x1 or y2 <= y1:
        return None
    grow_x, grow_y = int(round((x2 - x1) * RING_GROWTH)), int(round((y2 - y1) * RING_GROWTH))
    gx1, gy1, gx2, gy2 = max(0, x1 - grow_x), max(0, y1 - grow_y), min(w, x2 + grow_x), min(h, y2 + grow_y)
    inner = attention[y1:y2, x1:x2]
    outer = attention[gy1:gy2, gx1:gx2]
    ring_pixels = outer.size - inner.size
    if ring_pixels <= 0:          # the box fills the image: there is no surrounding to compare with
        return None
    inner_sum = float(inner.sum(dtype=np.float64))
    return inner_sum / inner.size, (float(outer.sum(dtype=np.float64)) - inner_sum) / ring_pixels


class AttentionFocus:
    """Accumulates one image at a time; ``summary()`` gives the numbers per subset."""

    def __init__(self) -> None:
        self._items: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self._images: dict[str, list[float]] = defaultdict(list)

    def add(self, attention: np.ndarray | None, boxes: np.ndarray, occlusion_level: int | None = None) -> None:
        if attention is None:
            return
        attention = np.asarray(attention, dtype=np.float32)
        if attention.ndim != 2:
            raise ValueError(f"attention map must be H x W at the image's size, got shape {attention.shape}")
        subsets = ["all"] + ([f"OL{occlusion_level}"] if occlusion_level is not None else [])
        image_mean = float(attention.mean(dtype=np.float64))
        pairs = [pair for pair in (box_and_ring_means(attention, box) for box in np.asarray(boxes).reshape(-1, 4))
                 if pair is not None]
        for subset in subsets:
            self._images[subset].append(image_mean)
            self._items[subset].extend(pairs)

    def summary(self) -> dict[str, dict[str, float | int | None]]:
        """{subset: {items, images, inside, around, image, contrast, highlighted}}; None where nothing was seen."""
        out = {}
        for subset in sorted(self._images, key=lambda s: (s != "all", s)):
            items = np.asarray(self._items[subset], dtype=np.float64).reshape(-1, 2)
            seen = len(items) > 0
            out[subset] = {
                "items": int(len(items)),
                "images": len(self._images[subset]),
                "inside": round(float(items[:, 0].mean()), 4) if seen else None,
                "around": round(float(items[:, 1].mean()), 4) if seen else None,
                "image": round(float(np.mean(self._images[subset])), 4),
                "contrast": round(float((items[:, 0] - items[:, 1]).mean()), 4) if seen else None,
                "highlighted": round(float((items[:, 0] > items[:, 1]).mean()), 4) if seen else None,
            }
        return out


def focus_table(summary: dict[str, dict]) -> str:
    """The summary as a Markdown table (one row per subset)."""
    def cell(value) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines = ["| Subset | Items | Inside boxes | Around boxes | Whole image | Contrast | Items highlighted |",
             "|---|---|---|---|---|---|---|"]
    for subset, row in summary.items():
        highlighted = "n/a" if row["highlighted"] is None else f"{row['highlighted'] * 100:.0f} %"
        lines.append(f"| {subset} | {row['items']} | {cell(row['inside'])} | {cell(row['around'])} | "
                     f"{cell(row['image'])} | {cell(row['contrast'])} | {highlighted} |")
    return "\n".join(lines)
