"""Drawing primitives for the object catalogue.

An object is drawn as a ``Sketch``: parts in float coordinates (polygons, rounded
rectangles, ellipses, rings, thick polylines and curves), each with a material, an amount
in centimetres along the beam and a thickness profile:

- ``flat``: a plate (a tray floor, a coin);
- ``dome``: a rounded body, the chord length of a cylinder near its outline (bottles,
  handles, cables, rolled clothes);
- ``edge``: a blade ground from its spine down to a thin cutting edge;
- ``shell``: a hollow case, two faces plus side walls that the beam crosses lengthwise
  (a darker rim, as laptops, chargers and suitcases show).

The sketch is rasterised once in its final pose (rotation, scale, mirror), with
OpenCV's anti-aliasing at 1/8-pixel precision, into per-material maps (``Canvas``) that
are cropped into ``Layer``s. Drawing in the pose keeps edges and score lines crisp, and lets
a cutter's posed box be fitted to a requested length before anything is drawn.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from .layers import Layer, SynthObject
from .materials import MATERIALS

_SHIFT = 3                     # fixed-point bits for sub-pixel vertices
_ONE = 1 << _SHIFT

Point = tuple[float, float]


def _fixed(pts: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(pts, dtype=np.float64) * _ONE).astype(np.int32).reshape(-1, 1, 2)


# --------------------------------------------------------------------------- masks
def polygon_mask(hw: tuple[int, int], pts: Sequence[Point] | np.ndarray) -> np.ndarray:
    """Filled polygon, anti-aliased."""
    canvas = np.zeros(hw, np.uint8)
    cv2.fillPoly(canvas, [_fixed(pts)], 255, cv2.LINE_AA, _SHIFT)
    return canvas.astype(np.float32) * (1.0 / 255.0)


def rounded_rect_points(x: float, y: float, w: float, h: float, r: float, n: int = 6) -> np.ndarray:
    """Vertices of a rounded rectangle, corner radius clipped to fit."""
    r = max(0.0, min(r, w / 2, h / 2))
    unit = _corner_table(n)
    centres = np.array([(x + w - r, y + r), (x + w - r, y + h - r), (x + r, y + h - r), (x + r, y + r)])
    return (centres[:, None, :] + r * unit).reshape(-1, 2)


@functools.lru_cache(maxsize=16)
def _corner_table(n: int) -> np.ndarray:
    """Unit quarter circles for the four corners, clockwise from the top right (read-only)."""
    quarters = []
    for a0 in (-90, 0, 90, 180):
        ang = np.radians(a0 + np.linspace(0, 90, n))
        quarters.append(np.stack([np.cos(ang), np.sin(ang)], axis=1))
    table = np.stack(quarters)
    table.flags.writeable = False
    return table


def wobbly_outline(rng: np.random.Generator, w: float, h: float, r: float, amount: float) -> np.ndarray:
    """A rounded rectangle pushed in and out smoothly: a soft bag's outline."""
    pts = rounded_rect_points(0, 0, w, h, r, n=10)
    n = len(pts)
    phase = rng.uniform(0, 2 * np.pi, 3)
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    bump = sum(np.sin(t * f + p) / f for f, p in zip((2, 3, 5), phase)) * amount
    centre = np.array([w / 2, h / 2])
    d = pts - centre
    d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-9
    return pts + d * bump[:, None]


def arc_points(cx: float, cy: float, rx: float, ry: float, a0_deg: float, a1_deg: float,
               n: int = 16) -> np.ndarray:
    ang = np.radians(np.linspace(a0_deg, a1_deg, n))
    return np.stack([cx + rx * np.cos(ang), cy + ry * np.sin(ang)], axis=1)


def bezier(p0: Point, p1: Point, p2: Point, p3: Point, n: int = 24) -> np.ndarray:
    """Cubic Bezier points: cables, straps and handle curves."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    p = [np.asarray(v, dtype=np.float64) for v in (p0, p1, p2, p3)]
    return ((1 - t) ** 3) * p[0] + 3 * ((1 - t) ** 2) * t * p[1] + 3 * (1 - t) * t * t * p[2] + (t ** 3) * p[3]


def serrated(pts: np.ndarray, tooth: float, depth: float) -> np.ndarray:
    """Replace a straight edge from pts[0] to pts[-1] by saw teeth pointing to +normal."""
    a, b = np.asarray(pts[0], float), np.asarray(pts[-1], float)
    d = b - a
    n_teeth = max(2, int(np.linalg.norm(d) / tooth))
    normal = np.array([-d[1], d[0]]) / (np.linalg.norm(d) + 1e-9)
    t = np.linspace(0, 1, 2 * n_teeth + 1)
    out = a + t[:, None] * d
    out[1::2] += normal * depth
    return out


def transform_points(pts: np.ndarray, angle_deg: float = 0.0, origin: Point = (0.0, 0.0),
                     offset: Point = (0.0, 0.0)) -> np.ndarray:
    """Rotate points about ``origin`` (image convention: positive angle turns clockwise on screen
    since y points down), then translate by ``offset``."""
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    p = np.asarray(pts, dtype=np.float64) - origin
    out = np.stack([p[:, 0] * c - p[:, 1] * s, p[:, 0] * s + p[:, 1] * c], axis=1)
    return out + origin + offset


# --------------------------------------------------------------------------- profiles
def inside_distance(mask: np.ndarray) -> np.ndarray:
    """Distance in pixels from each inside pixel to the shape's outline (0 outside)."""
    binary = (mask > 0.5).astype(np.uint8)
    # OpenCV treats the array border as inside; a zero frame makes it an outline like any other.
    framed = cv2.copyMakeBorder(binary, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    return cv2.distanceTransform(framed, cv2.DIST_L2, 3)[1:-1, 1:-1]


def dome_profile(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """Relative thickness of a body whose rim is rounded with radius ``radius_px``: the chord
    length of a circle (``sqrt(x(2-x))`` of the normalised depth), flat (1) further in. With
    the radius set to half the width it is exactly a cylinder's chord profile (bottles, cables,
    handles)."""
    x = np.minimum(inside_distance(mask) / max(radius_px, 0.5), 1.0)
    prof = np.sqrt(x * (2.0 - x))
    # Keep the anti-aliased rim: pixels with partial coverage but zero distance.
    return np.maximum(prof, 0.35 * np.minimum(mask, 1.0)) * (mask > 0)


def edge_distance_profile(mask: np.ndarray, edge_pts: np.ndarray, grind_px: float,
                          edge_fraction: float = 0.08) -> np.ndarray:
    """A blade ground towards the cutting edge ``edge_pts`` (a polyline): relative thickness rises
    from ``edge_fraction`` at the edge to 1 at ``grind_px`` from it (the full-flat grind of a knife)."""
    hw = mask.shape
    edge = np.full(hw, 255, np.uint8)
    cv2.polylines(edge, [np.round(edge_pts).astype(np.int32).reshape(-1, 1, 2)], False, 0, 1)
    dist = cv2.distanceTransform(edge, cv2.DIST_L2, 3)
    rel = edge_fraction + (1.0 - edge_fraction) * np.minimum(dist / max(grind_px, 0.5), 1.0)
    return rel * mask


# --------------------------------------------------------------------------- canvas
class Canvas:
    """Per-material thickness accumulators (cm) in one object frame of ``width x height`` px."""

    def __init__(self, width: int, height: int):
        self.width = int(math.ceil(width))
        self.height = int(math.ceil(height))
        self.maps: dict[str, np.ndarray] = {}

    @property
    def hw(self) -> tuple[int, int]:
        return self.height, self.width

    def map(self, material: str) -> np.ndarray:
        m = self.maps.get(material)
        if m is None:
            if material not in MATERIALS:
                raise KeyError(f"unknown material {material!r}; known: {', '.join(MATERIALS)}")
            m = self.maps[material] = np.zeros(self.hw, np.float32)
        return m

    def to_object(self, kind: str, min_thickness: float = 1e-4) -> SynthObject:
        """Crop each material map to where it has material and wrap them as layers."""
        layers = []
        for material, m in self.maps.items():
            layer = crop_layer(material, m, 0, 0, min_thickness)
            if layer is not None:
                layers.append(layer)
        return SynthObject(kind, layers)


def crop_layer(material: str, thickness: np.ndarray, x: int, y: int, min_thickness: float = 1e-4) -> Layer | None:
    present = thickness > min_thickness
    rows = np.flatnonzero(present.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(present.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    # A view, not a copy: the canvas is private to one object, and copying dominated the cost
    # of big multi-material items.
    t = thickness[r0:r1, c0:c1]
    np.maximum(t, 0.0, out=t)
    return Layer(material, t, int(x + c0), int(y + r0))


# --------------------------------------------------------------------------- pose
def transform_object(obj: SynthObject, angle_deg: float = 0.0, scale: float = 1.0,
                     flip: bool = False) -> SynthObject:
    """Rotate (clockwise on screen, degrees), scale and optionally mirror a whole object with
    ``cv2.warpAffine``. Thickness values are interpolated, not rescaled: the beam-direction depth
    of a part does not change when it turns in the belt plane. The result is re-anchored so its
    layers start at the origin."""
    if not obj.layers:
        return SynthObject(obj.kind, [])
    a = math.radians(angle_deg)
    c, s = math.cos(a) * scale, math.sin(a) * scale
    fx = -1.0 if flip else 1.0
    # Linear part maps object-frame (x, y) to (c*fx*x - s*y, s*fx*x + c*y).
    lin = np.array([[c * fx, -s], [s * fx, c]], dtype=np.float64)
    placed = []
    for layer in obj.layers:
        h, w = layer.shape
        corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], dtype=np.float64) + (layer.x, layer.y)
        mapped = corners @ lin.T
        lo = np.floor(mapped.min(axis=0)).astype(int) - 1
        hi = np.ceil(mapped.max(axis=0)).astype(int) + 1
        # Pixel centres: dst = lin @ (src + 0.5 + offset) - lo - 0.5.
        t = lin @ (np.array([layer.x, layer.y], dtype=np.float64) + 0.5) - lo - 0.5
        m = np.hstack([lin, t[:, None]]).astype(np.float64)
        out = cv2.warpAffine(layer.thickness, m, (int(hi[0] - lo[0]), int(hi[1] - lo[1])),
                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        placed.append((layer.material, out, int(lo[0]), int(lo[1])))
    x0 = min(p[2] for p in placed)
    y0 = min(p[3] for p in placed)
    layers = []
    for material, arr, x, y in placed:
        layer = crop_layer(material, arr, x - x0, y - y0)
        if layer is not None:
            layers.append(layer)
    return normalise_origin(SynthObject(obj.kind, layers))


def normalise_origin(obj: SynthObject) -> SynthObject:
    """Shift an object so that its layers' union starts at (0, 0)."""
    if not obj.layers:
        return obj
    x1, y1, _, _ = obj.extent()
    return obj.translated(-x1, -y1) if (x1 or y1) else obj


# --------------------------------------------------------------------------- sketch
@dataclass
class _Op:
    """One drawing operation in float coordinates, rasterised only when the pose is known."""
    action: str                     # "fill" (add material), "line" (add along a polyline), "cut" (remove)
    material: str
    contours: list[np.ndarray]      # (N, 2) float arrays; a fill with several contours has holes (even-odd)
    thickness: float = 0.0          # cm at relative thickness 1 (for "cut": fraction removed)
    width: float = 0.0              # line width, px
    closed: bool = False
    profile: str = "flat"           # flat | dome | edge | shell
    param: float = 0.0              # dome radius / grind width / shell wall width, px
    edge: np.ndarray | None = None  # the cutting edge polyline for profile "edge"
    extra: float = 0.0              # edge: relative thickness at the edge; shell: rim thickness in cm


class Sketch:
    """A vector drawing of one object: parts as polygons, lines and rings with a material, an
    amount and a thickness profile. It is rasterised once, directly in its final pose, so edges
    stay crisp whatever the rotation and the length can be fitted exactly before drawing."""

    def __init__(self) -> None:
        self.ops: list[_Op] = []

    # -- building
    def polygon(self, material: str, pts, thickness_cm: float, round_px: float = 0.0,
                holes: Sequence[np.ndarray] = ()) -> "Sketch":
        contours = [np.asarray(pts, np.float64)] + [np.asarray(h, np.float64) for h in holes]
        self.ops.append(_Op("fill", material, contours, thickness_cm,
                            profile="dome" if round_px > 0 else "flat", param=round_px))
        return self

    def blade(self, material: str, outline, edge, thickness_cm: float, grind_px: float,
              edge_fraction: float = 0.08) -> "Sketch":
        """A ground blade: full thickness at the spine, thinning to ``edge_fraction`` at ``edge``."""
        self.ops.append(_Op("fill", material, [np.asarray(outline, np.float64)], thickness_cm,
                            profile="edge", param=grind_px, edge=np.asarray(edge, np.float64),
                            extra=edge_fraction))
        return self

    def shell(self, material: str, pts, face_cm: float, rim_cm: float, wall_px: float) -> "Sketch":
        """A hollow moulded case seen from above: two faces (``face_cm`` in all) plus side walls
        that the beam crosses lengthwise, ``rim_cm`` more within ``wall_px`` of the outline."""
        self.ops.append(_Op("fill", material, [np.asarray(pts, np.float64)], face_cm,
                            profile="shell", param=wall_px, extra=rim_cm))
        return self

    def line(self, material: str, pts, width_px: float, thickness_cm: float, closed: bool = False,
             cylindrical: bool = False) -> "Sketch":
        self.ops.append(_Op("line", material, [np.asarray(pts, np.float64)], thickness_cm, width=width_px,
                            closed=closed, profile="dome" if cylindrical else "flat", param=width_px / 2))
        return self

    def ellipse(self, material: str, center: Point, axes: tuple[float, float], thickness_cm: float,
                angle_deg: float = 0.0, round_px: float = 0.0) -> "Sketch":
        return self.polygon(material, ellipse_points(center, axes, angle_deg), thickness_cm, round_px)

    def circle(self, material: str, center: Point, radius: float, thickness_cm: float,
               round_px: float = 0.0) -> "Sketch":
        return self.ellipse(material, center, (radius, radius), thickness_cm, 0.0, round_px)

    def ring(self, material: str, center: Point, r_out: float, r_in: float, thickness_cm: float,
             squash: float = 1.0, angle_deg: float = 0.0, round_px: float = 0.0) -> "Sketch":
        outer = ellipse_points(center, (r_out, r_out * squash), angle_deg)
        inner = ellipse_points(center, (r_in, r_in * squash), angle_deg)
        return self.polygon(material, outer, thickness_cm, round_px, holes=[inner])

    def rounded_rect(self, material: str, x: float, y: float, w: float, h: float, r: float,
                     thickness_cm: float, round_px: float = 0.0) -> "Sketch":
        return self.polygon(material, rounded_rect_points(x, y, w, h, r), thickness_cm, round_px)

    def cut(self, material: str, pts, fraction: float = 1.0, width_px: float = 0.0) -> "Sketch":
        """Remove ``fraction`` of ``material`` inside a polygon (or along a line if ``width_px``)."""
        self.ops.append(_Op("cut", material, [np.asarray(pts, np.float64)], fraction, width=width_px))
        return self

    def extend(self, other: "Sketch", angle_deg: float = 0.0, origin: Point = (0.0, 0.0),
               offset: Point = (0.0, 0.0), mirror_y: bool = False) -> "Sketch":
        """Add another sketch's parts, mirrored (y -> -y), rotated about ``origin`` and shifted."""
        for op in other.ops:
            def tf(p: np.ndarray) -> np.ndarray:
                q = p * (1.0, -1.0) if mirror_y else p
                return transform_points(q, angle_deg, origin, offset)
            self.ops.append(_Op(op.action, op.material, [tf(c) for c in op.contours], op.thickness, op.width,
                                op.closed, op.profile, op.param, None if op.edge is None else tf(op.edge),
                                op.extra))
        return self

    # -- pose
    def _affine(self, angle_deg: float, scale: float, flip: bool) -> np.ndarray:
        a = math.radians(angle_deg)
        c, s = math.cos(a) * scale, math.sin(a) * scale
        fx = -1.0 if flip else 1.0
        return np.array([[c * fx, -s], [s * fx, c]], dtype=np.float64)

    def bounds(self, angle_deg: float = 0.0, scale: float = 1.0, flip: bool = False) -> tuple[float, float, float, float]:
        """(x1, y1, x2, y2) of everything drawn (material added), in the given pose."""
        lin = self._affine(angle_deg, scale, flip)
        lo = np.full(2, np.inf)
        hi = np.full(2, -np.inf)
        for op in self.ops:
            if op.action == "cut":
                continue
            for c in op.contours:
                p = c @ lin.T
                pad = op.width * scale / 2
                lo = np.minimum(lo, p.min(axis=0) - pad)
                hi = np.maximum(hi, p.max(axis=0) + pad)
        if not np.isfinite(lo).all():
            return 0.0, 0.0, 0.0, 0.0
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])

    def scale_for_long_side(self, length_px: float, angle_deg: float = 0.0, flip: bool = False) -> float:
        """Scale at which the posed object's axis-aligned box has ``length_px`` on its long side."""
        x1, y1, x2, y2 = self.bounds(angle_deg, 1.0, flip)
        long_side = max(x2 - x1, y2 - y1)
        if long_side <= 0:
            raise ValueError("cannot fit an empty sketch to a length")
        return length_px / long_side

    def render(self, kind: str, angle_deg: float = 0.0, scale: float = 1.0, flip: bool = False,
               margin: int = 2, frame_origin: Point | None = None) -> SynthObject:
        """Rasterise in the pose (rotation clockwise on screen, uniform scale, optional mirror).
        By default the result is re-anchored at (0, 0); with ``frame_origin`` (a point of the posed
        drawing plane) layers are placed relative to it instead, so that several sketches rendered
        with the same pose and origin stay aligned (the parts of a bag)."""
        lin = self._affine(angle_deg, scale, flip)
        x1, y1, x2, y2 = self.bounds(angle_deg, scale, flip)
        origin = np.array([math.floor(x1) - margin, math.floor(y1) - margin], dtype=np.float64)
        canvas = Canvas(math.ceil(x2) - origin[0] + margin + 1, math.ceil(y2) - origin[1] + margin + 1)
        for op in self.ops:
            contours = [c @ lin.T - origin for c in op.contours]
            _rasterise(canvas, op, contours, None if op.edge is None else op.edge @ lin.T - origin, scale)
        obj = canvas.to_object(kind)
        if frame_origin is None:
            return normalise_origin(obj)
        return obj.translated(int(origin[0] - math.floor(frame_origin[0])), int(origin[1] - math.floor(frame_origin[1])))

    def posed_point(self, pt: Point, angle_deg: float = 0.0, scale: float = 1.0, flip: bool = False) -> tuple[float, float]:
        """Where a point of the drawing lands in the posed plane used by ``render``."""
        p = self._affine(angle_deg, scale, flip) @ np.asarray(pt, dtype=np.float64)
        return float(p[0]), float(p[1])


def ellipse_points(center: Point, axes: tuple[float, float], angle_deg: float = 0.0, n: int = 0) -> np.ndarray:
    """Polygon of an ellipse; vertex count grows with size so circles stay round."""
    if n <= 0:
        n = int(np.clip(2.5 * max(axes), 12, 96))
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    pts = np.stack([axes[0] * np.cos(t), axes[1] * np.sin(t)], axis=1)
    return transform_points(pts, angle_deg, (0.0, 0.0), center)


# Stroke widths (fractions of the full width) and coverage levels whose sum across a wire
# approximates a cylinder's chord: sqrt(1-u^2) averages ~0.43, 0.78 and 0.95 on the bands
# |u| in [0.75, 1], [0.45, 0.75] and [0, 0.45]; the total levels give the full thickness.
_WIRE_WIDTHS = (1.0, 0.75, 0.45)
_WIRE_LEVELS = (110, 89, 43)


def _rasterise(canvas: Canvas, op: _Op, contours: list[np.ndarray], edge: np.ndarray | None, scale: float) -> None:
    """Draw one op into the window of the canvas that it covers."""
    pad = op.width * scale / 2 + 2
    allp = np.concatenate(contours)
    x0 = max(int(math.floor(allp[:, 0].min() - pad)), 0)
    y0 = max(int(math.floor(allp[:, 1].min() - pad)), 0)
    x1 = min(int(math.ceil(allp[:, 0].max() + pad)) + 1, canvas.width)
    y1 = min(int(math.ceil(allp[:, 1].max() + pad)) + 1, canvas.height)
    if x1 <= x0 or y1 <= y0:
        return
    hw = (y1 - y0, x1 - x0)
    shift = np.array([x0, y0], dtype=np.float64)
    local = [c - shift for c in contours]
    round_wire = op.action == "fill" and op.profile == "dome" and op.width * scale >= 3
    if op.width > 0:
        buf = np.zeros(hw, np.uint8)
        cv2.polylines(buf, [_fixed(local[0])], op.closed, _WIRE_LEVELS[0] if round_wire else 255,
                      max(1, int(round(op.width * scale))), cv2.LINE_AA, _SHIFT)
        amount = op.thickness * min(op.width * scale, 1.0)   # sub-pixel wires keep their material
    else:
        buf = np.zeros(hw, np.uint8)
        cv2.fillPoly(buf, [_fixed(c) for c in local], 255, cv2.LINE_AA, _SHIFT)
        amount = op.thickness
    if op.action == "cut":
        m = canvas.maps.get(op.material)
        if m is not None:
            m[y0:y1, x0:x1] *= 1.0 - np.minimum(buf * np.float32(min(op.thickness, 1.0) / 255.0), 1.0)
        return
    target = canvas.map(op.material)[y0:y1, x0:x1]
    if op.profile == "flat" or (op.profile == "dome" and op.width > 0 and op.width * scale < 3):
        target += buf * np.float32(amount / 255.0)   # the common case: one temporary, no profile
        return
    if round_wire:
        # A round wire or strap: concentric strokes stacked into a cylinder's chord profile
        # (much cheaper than a distance transform over a long curve's whole window).
        w = op.width * scale
        for frac, level in zip(_WIRE_WIDTHS[1:], _WIRE_LEVELS[1:]):
            extra = np.zeros_like(buf)
            cv2.polylines(extra, [_fixed(local[0])], op.closed, level, max(1, int(round(w * frac))), cv2.LINE_AA, _SHIFT)
            cv2.add(buf, extra, dst=buf)
        target += buf * np.float32(amount / sum(_WIRE_LEVELS))
        return
    if op.profile == "shell":
        # Two faces everywhere, plus the side walls near the outline: a band drawn along the
        # outline (inner half kept), full within half a wall width, half out to a full one.
        wall = max(op.param * scale, 1.0)
        band = np.zeros(hw, np.uint8)
        cv2.polylines(band, [_fixed(c) for c in local], True, 128, max(1, int(round(2 * wall))), cv2.LINE_AA, _SHIFT)
        cv2.polylines(band, [_fixed(c) for c in local], True, 255, max(1, int(round(wall))), cv2.LINE_AA, _SHIFT)
        target += buf * (np.float32(op.thickness / 255.0) + band * np.float32(op.extra / 255.0 / 255.0))
        return
    mask = buf * np.float32(1.0 / 255.0)
    if op.profile == "dome":
        rel = dome_profile(mask, op.param * scale)
    elif op.profile == "edge" and edge is not None:
        rel = edge_distance_profile(mask, edge - shift, op.param * scale, op.extra)
    else:
        rel = mask
    target += rel * np.float32(amount)


def posed(sketch: Sketch, kind: str, rng: np.random.Generator, scale: float = 1.0,
          max_angle: float = 180.0, allow_flip: bool = True) -> SynthObject:
    """Render a sketch at a random rotation in [-max_angle, max_angle] and an optional mirror."""
    angle = float(rng.uniform(-max_angle, max_angle))
    flip = bool(allow_flip and rng.random() < 0.5)
    return sketch.render(kind, angle, scale, flip)
