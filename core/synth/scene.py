"""Compose one synthetic bag: container, clutter and one or two cutters, rendered with
exact boxes and measured occlusion levels.

The scene works in optical depth: every object's ``mu * t`` is added into a (2, H, W)
pair, so "over" and "under" do not exist (a projection is commutative) and overlap is
real overlap. Each cutter's own optical depth is kept in its window so that its box is the
tight box of its visible material and its occlusion is measured against everything else
(``core.synth.occlusion``).

The object catalogue (``bags``, ``clutter``, ``cutters``) is reached through a
``Catalogue`` of plain functions so tests and other callers can substitute their own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from core.classes import CLASSES

from .layers import SynthObject
from .occlusion import Occlusion, image_level, measure_occlusion
from .render import DEFAULT_DETECTOR, DetectorModel, add_object_depth, empty_depth, render_depth, visible_mask

DEFAULT_SIZE = (1225, 954)                 # width, height of OPIXray images
# OPIXray Table II, items per class in (train, test) order of core.classes.CLASSES.
OPIXRAY_TRAIN_COUNTS = (1589, 809, 1494, 1635, 1612)
OPIXRAY_TEST_COUNTS = (404, 235, 369, 343, 430)
OPIXRAY_COUNTS = tuple(a + b for a, b in zip(OPIXRAY_TRAIN_COUNTS, OPIXRAY_TEST_COUNTS))


@dataclass(frozen=True)
class Catalogue:
    """Where objects come from. Every function returns objects in their own frame.

    ``make_cutter(class_name, rng, long_side_px, angle_deg)`` returns a cutter whose box is
    ``long_side_px`` on its long side, turned by ``angle_deg`` (None: any angle)."""
    make_container: Callable[[np.random.Generator, int, int], list[SynthObject]]
    random_clutter: Callable[[np.random.Generator, int, float], list[SynthObject]]
    make_cutter: Callable[[str, np.random.Generator, float, float | None], SynthObject]


def default_catalogue() -> Catalogue:
    """The project's object catalogue (imported lazily: it is the heavy part)."""
    from . import bags, clutter  # noqa: PLC0415

    return Catalogue(bags.make_container, clutter.random_clutter, posed_cutter)


def posed_cutter(class_name: str, rng: np.random.Generator, long_side_px: float,
                 angle_deg: float | None = None) -> SynthObject:
    """``cutters.make_cutter`` with the rotation chosen by the caller (it draws any angle).

    Built from the catalogue's public sketch API the same way make_cutter is (the box is
    fitted one pixel short for the anti-aliased rim); it can become a plain call once
    make_cutter takes an angle."""
    from . import cutters  # noqa: PLC0415

    if angle_deg is None:
        return cutters.make_cutter(class_name, rng, long_side_px)
    if not np.isfinite(long_side_px) or long_side_px < 8:
        raise ValueError(f"long_side_px must be a finite length of at least 8 px, got {long_side_px!r}")
    sketch = cutters.cutter_sketch(class_name, rng)
    flip = bool(rng.random() < 0.5)
    scale = sketch.scale_for_long_side(long_side_px - 1.0, angle_deg, flip)
    return sketch.render(class_name, angle_deg, scale, flip)


@dataclass(frozen=True)
class SceneConfig:
    """How a bag is composed. Lengths are at the default 1225x954 size and scale with it."""
    width: int = DEFAULT_SIZE[0]
    height: int = DEFAULT_SIZE[1]
    class_weights: tuple[float, ...] = OPIXRAY_COUNTS
    # OPIXray has ~35 of 8,885 images (0.4%) with two cutters; a little more here helps training.
    two_cutter_rate: float = 0.02
    # Share of bags that hold a cutter at all: 1.0 for datasets (every image has an item, as in
    # OPIXray); a demo lane uses a small share, since most real bags are clean.
    cutter_rate: float = 1.0
    # Cutter box long side (px): log-normal around the median, clipped to OPIXray's range.
    cutter_long_side: tuple[float, float, float] = (100.0, 170.0, 270.0)   # min, median, max
    cutter_long_side_sigma: float = 0.25
    # Cutters lie near one of the belt's axes, turned by a normal angle of this standard
    # deviation (degrees); None: any angle. OPIXray's boxes (long side 100-270 px, short
    # side 14-90, median area ~0.8% of the image) need mostly near-axis poses: uniform
    # angles give a median area of ~1.6%, 12 degrees ~0.9%.
    cutter_axis_sigma: float | None = 12.0
    clutter_count: tuple[int, int] = (6, 14)                               # inclusive range
    bag_width_frac: tuple[float, float] = (0.55, 0.80)
    bag_height_frac: tuple[float, float] = (0.55, 0.82)
    # Fraction of the bag's size kept free along its edges (rims, handles, wheels).
    bag_inset: float = 0.08
    detector: DetectorModel | None = DEFAULT_DETECTOR

    def __post_init__(self) -> None:
        if self.width < 64 or self.height < 64:
            raise ValueError(f"scene size must be at least 64x64 px, got {self.width}x{self.height}")
        if len(self.class_weights) != len(CLASSES) or min(self.class_weights) < 0 or sum(self.class_weights) <= 0:
            raise ValueError(f"class_weights needs {len(CLASSES)} non-negative weights, got {self.class_weights}")
        if not 0.0 <= self.cutter_rate <= 1.0:
            raise ValueError(f"cutter_rate must be in [0, 1], got {self.cutter_rate}")
        if not 0.0 <= self.two_cutter_rate <= 1.0:
            raise ValueError(f"two_cutter_rate must be in [0, 1], got {self.two_cutter_rate}")

    @property
    def scale(self) -> float:
        """Object scale relative to OPIXray's 1225x954 (objects keep their proportion to the image)."""
        return min(self.width / DEFAULT_SIZE[0], self.height / DEFAULT_SIZE[1])


@dataclass
class Scene:
    image: np.ndarray | None                       # HxWx3 uint8 RGB (None when not rendered)
    boxes: list[tuple[int, int, int, int]]         # inclusive (x1, y1, x2, y2) per cutter
    labels: list[str]
    occlusions: list[Occlusion]
    bag_box: tuple[int, int, int, int] = (0, 0, 0, 0)
    extras: dict = field(default_factory=dict)

    @property
    def levels(self) -> list[int]:
        return [o.level for o in self.occlusions]

    @property
    def image_level(self) -> int:
        return image_level(self.levels)


def _uniform_int(rng: np.random.Generator, lo: float, hi: float) -> int:
    """An integer in [lo, hi], or the middle of the range when it is empty."""
    lo_i, hi_i = int(np.ceil(lo)), int(np.floor(hi))
    if hi_i <= lo_i:
        return int(round((lo + hi) / 2))
    return int(rng.integers(lo_i, hi_i + 1))


def place_within(rng: np.random.Generator, obj: SynthObject, region: tuple[int, int, int, int]) -> SynthObject:
    """Translate ``obj`` to a uniform random position with its extent inside ``region``
    (exclusive x1, y1, x2, y2), centred when it does not fit."""
    ex1, ey1, ex2, ey2 = obj.extent()
    w, h = ex2 - ex1, ey2 - ey1
    x = _uniform_int(rng, region[0], region[2] - w)
    y = _uniform_int(rng, region[1], region[3] - h)
    return obj.translated(x - ex1, y - ey1)


def sample_long_side(rng: np.random.Generator, config: SceneConfig) -> float:
    lo, median, hi = config.cutter_long_side
    value = float(np.clip(median * np.exp(config.cutter_long_side_sigma * rng.standard_normal()), lo, hi))
    return value * config.scale


def sample_angle(rng: np.random.Generator, config: SceneConfig) -> float | None:
    """A cutter's rotation: one of the four axis directions plus a normal deviation."""
    if config.cutter_axis_sigma is None:
        return None
    return float(90.0 * rng.integers(4) + config.cutter_axis_sigma * rng.standard_normal())


def sample_classes(rng: np.random.Generator, config: SceneConfig) -> list[str]:
    # Only draw when some bags are clean, so every dataset seed keeps its images.
    if config.cutter_rate < 1.0 and rng.random() >= config.cutter_rate:
        return []
    n = 2 if rng.random() < config.two_cutter_rate else 1
    p = np.asarray(config.class_weights, np.float64)
    p = p / p.sum()
    return [CLASSES[int(rng.choice(len(CLASSES), p=p))] for _ in range(n)]


def _tight_box(mask: np.ndarray, x0: int, y0: int) -> tuple[int, int, int, int] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]), y0 + int(rows[-1])


def _object_depth_window(obj: SynthObject, width: int, height: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The object's own optical depth over its extent clipped to the canvas, and that window."""
    x1, y1, x2, y2 = obj.extent()
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
    tau = empty_depth(max(y2 - y1, 0), max(x2 - x1, 0))
    add_object_depth(tau, obj, -x1, -y1)
    return tau, (x1, y1, x2, y2)


def compose_scene(rng: np.random.Generator, config: SceneConfig = SceneConfig(),
                  catalogue: Catalogue | None = None, render_image: bool = True) -> Scene:
    """One bag with its cutters. Every random choice comes from ``rng`` in a fixed order,
    so a seed gives the same scene on any machine and in any worker."""
    cat = catalogue or default_catalogue()
    W, H, s = config.width, config.height, config.scale

    # The bag, somewhere on the belt.
    bw = int(W * rng.uniform(*config.bag_width_frac))
    bh = int(H * rng.uniform(*config.bag_height_frac))
    bx = _uniform_int(rng, 0.02 * W, W - bw - 0.02 * W)
    by = _uniform_int(rng, 0.02 * H, H - bh - 0.02 * H)
    container = [part.translated(bx, by) for part in cat.make_container(rng, bw, bh)]
    inset_x, inset_y = int(config.bag_inset * bw), int(config.bag_inset * bh)
    interior = (bx + inset_x, by + inset_y, bx + bw - inset_x, by + bh - inset_y)

    # Contents, placed independently: overlap is whatever falls out, as in a packed bag.
    n_clutter = int(rng.integers(config.clutter_count[0], config.clutter_count[1] + 1))
    clutter = [place_within(rng, item, interior) for item in cat.random_clutter(rng, n_clutter, s)]

    # Cutters, each with its box long side drawn from OPIXray's range; kept inside the image.
    cutters = []
    for name in sample_classes(rng, config):
        long_side = sample_long_side(rng, config)
        cutter = cat.make_cutter(name, rng, long_side, sample_angle(rng, config))
        region = (max(interior[0], 0), max(interior[1], 0), min(interior[2], W), min(interior[3], H))
        cutters.append(place_within(rng, cutter, region))

    tau = empty_depth(H, W)
    windows = [add_object_depth(tau, obj) for obj in container + clutter]
    cutter_depths = [_object_depth_window(c, W, H) for c in cutters]
    windows += [add_object_depth(tau, cutter) for cutter in cutters]
    windows = [w for w in windows if w is not None]
    material_box = (min(w[0] for w in windows), min(w[1] for w in windows),
                    max(w[2] for w in windows), max(w[3] for w in windows)) if windows else None

    boxes, labels, occlusions = [], [], []
    for cutter, (own, (x1, y1, x2, y2)) in zip(cutters, cutter_depths):
        box = _tight_box(visible_mask(own), x1, y1)
        if box is None:
            raise RuntimeError(f"cutter {cutter.kind!r} has no visible material: catalogue produced an empty object")
        others = tau[:, y1:y2, x1:x2] - own
        boxes.append(box)
        labels.append(cutter.kind)
        occlusions.append(measure_occlusion(own, others))

    image = None
    if render_image:
        image = render_depth(tau, rng, config.detector, material_box)
    return Scene(image, boxes, labels, occlusions, (bx, by, bx + bw - 1, by + bh - 1),
                 {"clutter": len(clutter)})
