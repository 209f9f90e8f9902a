"""Threat image projection (TIP): put a synthetic cutter into a colour X-ray image of a bag.

Screening sites test inspectors by projecting threats into real bag images. Transmission
composes by multiplication, and the pseudo-colour of one material is a per-channel
transmission (white = 1, see ``core.synth.render``), so the projection is done per
colour channel: ``new = bag * threat / 255``, with ``threat`` the noise-free colour
rendering of the cutter alone, blurred like the scanner's focal spot. A pixel where the
threat renders white is left exactly as it was, and the returned box is the exact tight
box of the pixels the threat changes (or could change: a black bag pixel stays black).
"""
from __future__ import annotations

import logging

import cv2
import numpy as np

from core.classes import CLASSES

from .layers import SynthObject
from .render import DEFAULT_DETECTOR, add_object_depth, empty_depth, transmission, transmission_to_colour
from .scene import DEFAULT_SIZE, OPIXRAY_COUNTS, SceneConfig, default_catalogue, sample_angle

log = logging.getLogger(__name__)

# A bag pixel counts as "inside the bag" when its darkest channel is below this value.
BAG_PIXEL_MAX = 235
# Long side of a random threat's box at OPIXray's 1225x954, pixels (min, max).
RANDOM_LONG_SIDE = (110.0, 250.0)


def threat_colour(threat: SynthObject, blur_sigma: float = DEFAULT_DETECTOR.blur_sigma) -> tuple[np.ndarray, int, int]:
    """Noise-free colour rendering of a threat alone, in a window around its material.

    Returns (rgb, x, y): the window's image and the position of its top-left pixel in the
    threat's own frame."""
    if not threat.layers:
        raise ValueError(f"threat {threat.kind!r} has no layers")
    margin = int(np.ceil(3 * blur_sigma)) + 1
    x1, y1, x2, y2 = threat.extent()
    x1, y1 = x1 - margin, y1 - margin
    tau = empty_depth(y2 + margin - y1, x2 + margin - x1)
    add_object_depth(tau, threat, -x1, -y1)
    trans = transmission(tau)
    if blur_sigma > 0:
        for channel in range(2):
            trans[channel] = cv2.GaussianBlur(trans[channel], (0, 0), blur_sigma, borderType=cv2.BORDER_REPLICATE)
    return transmission_to_colour(trans), x1, y1


def _check_image(bag_rgb: np.ndarray) -> None:
    if not isinstance(bag_rgb, np.ndarray) or bag_rgb.dtype != np.uint8 or bag_rgb.ndim != 3 or bag_rgb.shape[2] != 3:
        shape = getattr(bag_rgb, "shape", None)
        dtype = getattr(bag_rgb, "dtype", type(bag_rgb).__name__)
        raise ValueError(f"TIP needs an HxWx3 uint8 RGB image, got shape {shape} of {dtype}")


def random_threat(rng: np.random.Generator, image_size: tuple[int, int], class_name: str | None = None) -> SynthObject:
    """A cutter of a random class (OPIXray's mix) and size fitting an image of (width, height)."""
    if class_name is None:
        p = np.asarray(OPIXRAY_COUNTS, np.float64)
        class_name = CLASSES[int(rng.choice(len(CLASSES), p=p / p.sum()))]
    scale = min(image_size[0] / DEFAULT_SIZE[0], image_size[1] / DEFAULT_SIZE[1])
    long_side = float(rng.uniform(*RANDOM_LONG_SIDE)) * scale
    return default_catalogue().make_cutter(class_name, rng, max(long_side, 8.0), sample_angle(rng, SceneConfig()))


def plausible_centre(bag_rgb: np.ndarray, rng: np.random.Generator, box_size: tuple[int, int]) -> tuple[int, int]:
    """A centre (x, y) inside the bag's non-white region where a box of (w, h) fits in the image;
    the image centre when the image holds no bag."""
    height, width = bag_rgb.shape[:2]
    w, h = box_size
    lo_x, hi_x = w // 2, width - 1 - (w - w // 2)
    lo_y, hi_y = h // 2, height - 1 - (h - h // 2)
    bag = bag_rgb.min(axis=2) < BAG_PIXEL_MAX
    if lo_x <= hi_x and lo_y <= hi_y:
        allowed = np.zeros_like(bag)
        allowed[lo_y:hi_y + 1, lo_x:hi_x + 1] = bag[lo_y:hi_y + 1, lo_x:hi_x + 1]
        ys, xs = np.nonzero(allowed)
        if xs.size:
            k = int(rng.integers(xs.size))
            return int(xs[k]), int(ys[k])
    log.debug("no bag region fits a %dx%d threat; using the image centre", w, h)
    return width // 2, height // 2


def project_threat(bag_rgb: np.ndarray, threat: SynthObject | None, rng: np.random.Generator,
                   position: tuple[int, int] | None = None) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Project ``threat`` into ``bag_rgb`` (HxWx3 uint8 RGB, not modified).

    ``threat`` None draws a random cutter (``random_threat``). ``position`` is where the
    centre of the threat's box goes, (x, y) in image pixels; None picks a plausible place
    inside the bag. Parts falling outside the image are cut off. Returns the new image and
    the inclusive box (x1, y1, x2, y2) of the pixels the threat covers in it."""
    _check_image(bag_rgb)
    height, width = bag_rgb.shape[:2]
    if threat is None:
        threat = random_threat(rng, (width, height))
    colour, ox, oy = threat_colour(threat)
    covered = (colour < 255).any(axis=2)
    rows, cols = np.flatnonzero(covered.any(axis=1)), np.flatnonzero(covered.any(axis=0))
    if rows.size == 0:
        raise ValueError(f"threat {threat.kind!r} has no visible material")
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    box_w, box_h = c1 - c0 + 1, r1 - r0 + 1
    cx, cy = position if position is not None else plausible_centre(bag_rgb, rng, (box_w, box_h))
    # Top-left of the visible box in the image, then of the colour window.
    bx, by = int(cx) - box_w // 2, int(cy) - box_h // 2
    wx, wy = bx - c0, by - r0
    x1, y1 = max(wx, 0), max(wy, 0)
    x2, y2 = min(wx + colour.shape[1], width), min(wy + colour.shape[0], height)
    if x1 >= x2 or y1 >= y2:
        raise ValueError(f"threat placed at {position} lies entirely outside the {width}x{height} image")
    patch = colour[y1 - wy:y2 - wy, x1 - wx:x2 - wx]
    patch_cov = covered[y1 - wy:y2 - wy, x1 - wx:x2 - wx]
    if not patch_cov.any():
        raise ValueError(f"threat placed at {position} has no visible pixel inside the {width}x{height} image")
    out = bag_rgb.copy()
    region = out[y1:y2, x1:x2].astype(np.uint16)
    # Rounded product; exact identity where the threat is white (255).
    out[y1:y2, x1:x2] = ((region * patch + 127) // 255).astype(np.uint8)
    prow, pcol = np.flatnonzero(patch_cov.any(axis=1)), np.flatnonzero(patch_cov.any(axis=0))
    box = (x1 + int(pcol[0]), y1 + int(prow[0]), x1 + int(pcol[-1]), y1 + int(prow[-1]))
    return out, box


def inject_random_threat(bag_rgb: np.ndarray, rng: np.random.Generator, class_name: str | None = None
                         ) -> tuple[np.ndarray, tuple[int, int, int, int], str]:
    """TIP as a screening lane uses it: a random cutter (of ``class_name``, or of OPIXray's
    class mix) at a plausible place in the bag. Returns the image, the box and the class."""
    _check_image(bag_rgb)
    threat = random_threat(rng, (bag_rgb.shape[1], bag_rgb.shape[0]), class_name)
    image, box = project_threat(bag_rgb, threat, rng)
    return image, box, threat.kind
