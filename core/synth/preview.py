"""Contact sheets of a dataset (thumbnails with boxes, class and OL) and colour statistics
to compare a synthetic set with OPIXray's look.

PAPER.md's measurements of real OPIXray images: about 80% of pixels are empty white belt;
of the others about 60% are orange, 16% green and 15% blue by hue. ``look_statistics``
measures the same shares with the same kind of rule (white: bright and unsaturated; hue
bands in OpenCV's 0-180 hue scale) so the renderer's colours can be checked against them.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from core.classes import CLASSES, SHORT_NAMES
from core.data.opixray import Box, load_split
from core.imaging.decode import read_image, write_image

log = logging.getLogger(__name__)

# Hue bands (OpenCV hue, degrees / 2).
ORANGE_HUES = (5, 35)       # 10-70 degrees: orange to yellow
GREEN_HUES = (35, 85)       # 70-170 degrees
BLUE_HUES = (85, 150)       # 170-300 degrees
# A pixel is belt-white when it is this bright (max channel) and this unsaturated.
WHITE_VALUE, WHITE_SATURATION = 235, 30

BOX_COLOUR = (220, 0, 0)
OL_COLOURS = {1: (0, 150, 0), 2: (230, 140, 0), 3: (220, 0, 0)}
SHORT = dict(zip(CLASSES, SHORT_NAMES))


@dataclass(frozen=True)
class Thumb:
    image: np.ndarray              # HxWx3 uint8 RGB
    boxes: Sequence[Box]
    level: int | None = None
    title: str = ""


def look_statistics(images: Iterable[np.ndarray]) -> dict[str, float]:
    """Share of white pixels, and of orange/green/blue among the non-white ones."""
    white = orange = green = blue = total = 0
    for rgb in images:
        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
        h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
        is_white = (v >= WHITE_VALUE) & (s <= WHITE_SATURATION)
        rest = ~is_white
        total += h.size
        white += int(is_white.sum())
        hr = h[rest]
        orange += int(((hr >= ORANGE_HUES[0]) & (hr < ORANGE_HUES[1])).sum())
        green += int(((hr >= GREEN_HUES[0]) & (hr < GREEN_HUES[1])).sum())
        blue += int(((hr >= BLUE_HUES[0]) & (hr < BLUE_HUES[1])).sum())
    coloured = max(total - white, 1)
    return {
        "white": round(white / max(total, 1), 3),
        "orange": round(orange / coloured, 3),
        "green": round(green / coloured, 3),
        "blue": round(blue / coloured, 3),
    }


def draw_thumb(thumb: Thumb, width: int) -> np.ndarray:
    """One thumbnail of ``width`` px with its boxes and 'FO OL2' labels drawn in."""
    img = thumb.image
    scale = width / img.shape[1]
    small = cv2.resize(img, (width, max(1, round(img.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    font, font_scale = cv2.FONT_HERSHEY_SIMPLEX, max(0.35, width / 700)
    for box in thumb.boxes:
        p1 = (int(round(box.x1 * scale)), int(round(box.y1 * scale)))
        p2 = (int(round(box.x2 * scale)), int(round(box.y2 * scale)))
        cv2.rectangle(small, p1, p2, BOX_COLOUR, 2 if width >= 300 else 1, cv2.LINE_AA)
        text = SHORT.get(box.label, box.label[:2]) + (f" OL{thumb.level}" if thumb.level else "")
        (tw, th), _ = cv2.getTextSize(text, font, font_scale, 1)
        ty = p1[1] - 4 if p1[1] - th - 6 > 0 else p2[1] + th + 4
        cv2.rectangle(small, (p1[0], ty - th - 3), (p1[0] + tw + 4, ty + 3), (255, 255, 255), -1)
        colour = OL_COLOURS.get(thumb.level or 0, BOX_COLOUR)
        cv2.putText(small, text, (p1[0] + 2, ty), font, font_scale, colour, 1, cv2.LINE_AA)
    if thumb.title:
        cv2.putText(small, thumb.title, (6, int(18 * font_scale / 0.5)), font, font_scale, (90, 90, 90), 1, cv2.LINE_AA)
    return small


def contact_sheet(thumbs: Sequence[Thumb], columns: int = 4, thumb_width: int = 400, gap: int = 6) -> np.ndarray:
    """A grid of thumbnails on a light grey background."""
    if not thumbs:
        raise ValueError("a contact sheet needs at least one image")
    tiles = [draw_thumb(t, thumb_width) for t in thumbs]
    tile_h = max(t.shape[0] for t in tiles)
    rows = (len(tiles) + columns - 1) // columns
    sheet = np.full((rows * tile_h + (rows + 1) * gap, columns * thumb_width + (columns + 1) * gap, 3), 200, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        y, x = gap + r * (tile_h + gap), gap + c * (thumb_width + gap)
        sheet[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
    return sheet


def dataset_thumbs(root: Path, count: int, split: str = "test") -> list[Thumb]:
    """The first ``count`` images of a split in the OPIXray layout, with their labels."""
    samples = load_split(Path(root), split)[:count]
    return [Thumb(read_image(s.image_path), s.boxes, s.occlusion_level, s.image_id) for s in samples]


def write_contact_sheet(root: Path, out: Path, count: int = 12, columns: int = 4, thumb_width: int = 400,
                        split: str = "test") -> Path:
    """Contact sheet of a dataset's first images (test split by default, which has OLs)."""
    thumbs = dataset_thumbs(root, count, split)
    if not thumbs and split == "test":
        thumbs = dataset_thumbs(root, count, "train")
    if not thumbs:
        raise ValueError(f"{root}: no images to put on a contact sheet")
    write_image(out, contact_sheet(thumbs, columns, thumb_width))
    log.info("wrote contact sheet of %d images to %s", len(thumbs), out)
    return Path(out)
