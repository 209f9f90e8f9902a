"""Containers the contents lie in: screening trays, soft bags, suitcases and backpacks.

``make_container`` returns the container as a few parts (body, zips, handles, trolley,
wheels, straps) that share one frame whose origin is the top-left of the body, which spans
about ``width_px x height_px``; handles and straps may reach a little outside. The parts are
separate objects so a scene can put contents between them (inside the shell, under straps).

The look it aims at: a pale orange body with darker, thicker-looking rims where the beam runs
along walls and folds; blue-black zip teeth, wheel axles and trolley rails.
"""
from __future__ import annotations

import numpy as np

from .layers import PIXEL_CM, SynthObject
from .shapes import Sketch, arc_points, bezier, rounded_rect_points, wobbly_outline

CONTAINER_KINDS: tuple[str, ...] = ("tray", "soft_bag", "suitcase", "backpack")


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _px(cm: float) -> float:
    return cm / PIXEL_CM


def inset(pts: np.ndarray, px: float) -> np.ndarray:
    """Shrink an outline towards its centroid by about ``px``."""
    c = pts.mean(axis=0)
    half = np.maximum(np.abs(pts - c).max(axis=0), 1.0)
    return c + (pts - c) * (1.0 - px / half)


def wrinkles(s: Sketch, rng: np.random.Generator, w: float, h: float, k: float, n: int) -> None:
    """Creases of a soft lining: where fabric folds over, the beam crosses it two or three times."""
    for _ in range(n):
        p0 = (w * _u(rng, 0.05, 0.95), h * _u(rng, 0.05, 0.95))
        ang = _u(rng, 0, 2 * np.pi)
        length = min(w, h) * _u(rng, 0.15, 0.5)
        d = np.array([np.cos(ang), np.sin(ang)]) * length
        bend = rng.normal(0, length * 0.2, 2)
        pts = bezier(p0, p0 + d * 0.33 + bend, p0 + d * 0.66 - bend, p0 + d, 16)
        pts = np.clip(pts, (w * 0.03, h * 0.03), (w * 0.97, h * 0.97))
        s.line("clothing", pts, _px(_u(rng, 0.5, 1.5)) * k, _u(rng, 0.3, 0.8), cylindrical=True)


def zip_line(s: Sketch, pts: np.ndarray, k: float, rng: np.random.Generator, slider_at: float | None = None) -> None:
    """A zip: fabric tape, metal (or plastic) teeth with gaps between them, a slider and its pull."""
    metal = rng.random() < 0.7
    teeth_mat = "zinc" if metal else "plastic"
    width = _px(0.6) * k
    s.line("clothing", pts, _px(2.0) * k, 0.4)
    s.line(teeth_mat, pts, width, _u(rng, 0.12, 0.2) if metal else 0.5)
    # Gaps between teeth: a zigzag cut across the chain, one stroke per tooth pitch.
    seg = np.diff(pts, axis=0)
    lengths = np.hypot(seg[:, 0], seg[:, 1])
    total = lengths.sum()
    pitch = max(_px(0.25) * k, 2.0)
    n = int(total / pitch)
    if n >= 2:
        cum = np.concatenate([[0], np.cumsum(lengths)])
        d = np.linspace(0, total, n)
        x = np.interp(d, cum, pts[:, 0])
        y = np.interp(d, cum, pts[:, 1])
        idx = np.clip(np.searchsorted(cum, d) - 1, 0, len(seg) - 1)
        normal = np.stack([-seg[idx, 1], seg[idx, 0]], axis=1) / (lengths[idx, None] + 1e-9)
        side = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)[:, None] * width
        s.cut(teeth_mat, np.stack([x, y], axis=1) + normal * side, 0.7, width_px=1.0)
    if slider_at is not None:
        cum = np.concatenate([[0], np.cumsum(lengths)])
        d = total * slider_at
        p = (float(np.interp(d, cum, pts[:, 0])), float(np.interp(d, cum, pts[:, 1])))
        s.rounded_rect("zinc", p[0] - _px(1.2) * k, p[1] - _px(0.8) * k, _px(2.4) * k, _px(1.6) * k, 2, 0.5)
        s.rounded_rect("zinc", p[0] - _px(0.4) * k, p[1], _px(0.8) * k, _px(3.0) * k, 2, 0.2)


def _handle(s: Sketch, a: tuple[float, float], b: tuple[float, float], rise: float, k: float, rng: np.random.Generator,
            material: str = "plastic") -> None:
    pts = bezier(a, (a[0], a[1] - rise), (b[0], b[1] - rise), b, 24)
    s.line(material, pts, _px(_u(rng, 1.6, 2.6)) * k, _u(rng, 1.0, 2.0), cylindrical=True)
    for p in (a, b):   # D-rings or stitched tabs where the handle meets the bag
        if rng.random() < 0.6:
            s.ring("zinc", p, _px(1.3) * k, _px(0.9) * k, 0.3, squash=0.6)
        else:
            s.rounded_rect("leather", p[0] - _px(1.2) * k, p[1] - _px(1.5) * k, _px(2.4) * k, _px(3) * k, 3, 0.6)


# --------------------------------------------------------------------------- containers
def _tray(rng: np.random.Generator, w: float, h: float, k: float) -> dict[str, Sketch]:
    body = Sketch()
    outline = rounded_rect_points(0, 0, w, h, min(w, h) * _u(rng, 0.05, 0.1))
    wall = _px(_u(rng, 1.2, 2.0)) * k
    body.shell("plastic", outline, _u(rng, 0.25, 0.45), _u(rng, 2.0, 3.5), wall)
    body.line("plastic", outline, _px(0.5) * k, 1.0, closed=True)                 # rolled lip
    floor = inset(outline, wall * 2.5)
    body.line("plastic", floor, _px(0.4) * k, 0.8, closed=True)
    # Ribbed floor: parallel ribs under the tray.
    x1, y1 = floor.min(axis=0)
    x2, y2 = floor.max(axis=0)
    pitch = _px(_u(rng, 2.5, 5.0)) * k
    along_x = rng.random() < 0.5
    for v in np.arange((y1 if along_x else x1) + pitch / 2, (y2 if along_x else x2), pitch):
        pts = [(x1, v), (x2, v)] if along_x else [(v, y1), (v, y2)]
        body.line("plastic", pts, _px(0.35) * k, 0.4)
    for cx in (w * 0.5,):  # hand-hold slots at both ends
        for cy in (wall * 1.6, h - wall * 1.6):
            body.cut("plastic", rounded_rect_points(cx - w * 0.08, cy - wall * 0.35, w * 0.16, wall * 0.7, wall * 0.35), 0.8)
    return {"tray": body}


def _soft_bag(rng: np.random.Generator, w: float, h: float, k: float) -> dict[str, Sketch]:
    parts: dict[str, Sketch] = {}
    body = Sketch()
    outline = wobbly_outline(rng, w, h, min(w, h) * _u(rng, 0.12, 0.3), min(w, h) * 0.03)
    fabric = str(rng.choice(["plastic", "leather", "clothing"]))
    face = {"plastic": _u(rng, 0.15, 0.3), "leather": _u(rng, 0.15, 0.3), "clothing": _u(rng, 0.6, 1.2)}[fabric]
    body.shell(fabric, outline, face, face * _u(rng, 4, 8), _px(1.5) * k)
    body.line("plastic", outline, _px(0.5) * k, 0.6, closed=True, cylindrical=True)       # piping
    body.rounded_rect("plastic", w * 0.05, h * 0.75, w * 0.9, h * 0.2, 6, _u(rng, 0.1, 0.3))  # base stiffener
    wrinkles(body, rng, w, h, k, int(rng.integers(3, 9)))
    if rng.random() < 0.5:   # an inner pocket sewn to the lining
        px, py = w * _u(rng, 0.1, 0.5), h * _u(rng, 0.15, 0.5)
        body.shell("clothing", rounded_rect_points(px, py, w * _u(rng, 0.25, 0.4), h * _u(rng, 0.2, 0.35), 6), 0.3, 1.0,
                   _px(0.8) * k)
    for i in range(int(rng.integers(0, 5))):   # metal feet
        body.circle("zinc", (w * (0.12 + 0.76 * i / 3), h * 0.9), _px(0.7) * k, 0.4)
    parts["bag"] = body
    zips = Sketch()
    zip_line(zips, bezier((w * 0.08, h * 0.06), (w * 0.35, h * 0.03), (w * 0.65, h * 0.03), (w * 0.92, h * 0.06), 40), k, rng,
             slider_at=_u(rng, 0.1, 0.9))
    if rng.random() < 0.6:   # an outer pocket
        y = h * _u(rng, 0.4, 0.6)
        zip_line(zips, np.array([(w * 0.2, y), (w * 0.8, y)]), k, rng, slider_at=_u(rng, 0.1, 0.9))
    parts["zip"] = zips
    handles = Sketch()
    gap = w * _u(rng, 0.15, 0.3)
    for cy_off in ((0.0,) if rng.random() < 0.5 else (-_px(1.0) * k, _px(1.0) * k)):
        # Handles mostly lie folded over the bag (negative rise); sometimes they stand up a little.
        rise = h * (_u(rng, -0.4, -0.15) if rng.random() < 0.65 else _u(rng, 0.06, 0.15))
        _handle(handles, (w / 2 - gap, h * 0.03 + cy_off), (w / 2 + gap, h * 0.03 + cy_off), rise, k, rng,
                str(rng.choice(["plastic", "leather"])))
    if rng.random() < 0.5:   # shoulder strap lying across the bag
        pts = bezier((0, h * 0.1), (w * 0.3, h * _u(rng, 0.3, 1.0)), (w * 0.7, h * _u(rng, 0.3, 1.0)), (w, h * 0.1), 40)
        handles.line("clothing", pts, _px(3.5) * k, 0.6)
        c = pts[int(rng.integers(8, 32))]
        handles.ring("zinc", (c[0], c[1]), _px(2) * k, _px(1.4) * k, 0.3, squash=0.5)
    parts["handle"] = handles
    return parts


def _suitcase(rng: np.random.Generator, w: float, h: float, k: float) -> dict[str, Sketch]:
    parts: dict[str, Sketch] = {}
    body = Sketch()
    corner_r = min(w, h) * _u(rng, 0.08, 0.15)
    outline = rounded_rect_points(0, 0, w, h, corner_r)
    hard = rng.random() < 0.5
    mat = "abs" if hard else "clothing"
    face = _u(rng, 0.3, 0.5) if hard else _u(rng, 0.8, 1.4)
    body.shell(mat, outline, face, _u(rng, 1.5, 2.5) if hard else face * 4, _px(1.8) * k)
    if hard:  # moulded ridges
        for i in range(int(rng.integers(2, 6))):
            y = h * (0.15 + 0.7 * i / 5)
            body.line("abs", [(w * 0.05, y), (w * 0.95, y)], _px(0.8) * k, 0.4)
    body.line("clothing", inset(outline, _px(2.5) * k), _px(1.5) * k, 0.8, closed=True)   # lining seam
    # Moulded corner guards along the rounded corners, a little past them on both sides.
    guard_w = _px(1.2) * k
    for (cx, cy), a0 in (((corner_r, corner_r), 180), ((w - corner_r, corner_r), 270),
                         ((w - corner_r, h - corner_r), 0), ((corner_r, h - corner_r), 90)):
        arc = arc_points(cx, cy, corner_r - guard_w / 2, corner_r - guard_w / 2, a0 - 15, a0 + 105, 12)
        body.line("plastic", arc, guard_w, 1.0)
    wrinkles(body, rng, w, h, k, int(rng.integers(2, 6)))
    parts["suitcase"] = body
    zips = Sketch()
    zip_line(zips, np.vstack([inset(outline, _px(1.0) * k), inset(outline, _px(1.0) * k)[:1]]), k, rng,
             slider_at=_u(rng, 0.0, 1.0))
    parts["zip"] = zips
    # Trolley: two aluminium tubes along one short side, a cross bar and handle at the end.
    trolley = Sketch()
    rail_w = _px(_u(rng, 1.6, 2.2)) * k
    xa, xb = w * 0.22, w * 0.78
    y_top, y_bot = _px(2.0) * k, h - _px(3.0) * k
    for x in (xa, xb):
        rail = rounded_rect_points(x - rail_w / 2, y_top, rail_w, y_bot - y_top, rail_w * 0.2)
        trolley.shell("aluminium", rail, _u(rng, 0.08, 0.14), _u(rng, 0.5, 0.9), 2.0)
        trolley.shell("aluminium", rounded_rect_points(x - rail_w * 0.35, y_top, rail_w * 0.7, (y_bot - y_top) * 0.55, 2),
                      0.08, 0.4, 1.5)   # the inner telescoping tube
        trolley.circle("steel", (x, y_top + _px(1) * k), rail_w * 0.3, 0.4)
    trolley.rounded_rect("abs", xa - rail_w, -_px(1) * k, xb - xa + 2 * rail_w, _px(3) * k, _px(1) * k, 2.0,
                         round_px=_px(1) * k)
    trolley.rounded_rect("aluminium", xa, y_bot - _px(2) * k, xb - xa, _px(1.5) * k, 2, 0.3)   # bottom bracket
    parts["trolley"] = trolley
    wheels = Sketch()
    # Wheels sit on the end opposite the trolley handle. A case lying flat is seen through its
    # depth, so a spinner's front and back wheels at each corner project onto one another.
    spinner = rng.random() < 0.6
    depth = 2 if spinner else 1
    r = _px(_u(rng, 2.0, 3.0)) * k
    for cx in (w * 0.08, w * 0.92):
        cy = h - r * 0.6
        wheels.rounded_rect("plastic", cx - r * 1.2, cy - r * 1.3, r * 2.4, r * 2.0, r * 0.4, 1.2 * depth)   # housing
        wheels.ellipse("rubber", (cx, cy), (r, r * 0.55), _u(rng, 3.0, 4.5) * depth, round_px=r * 0.5)
        wheels.line("steel", [(cx - r * 0.8, cy), (cx + r * 0.8, cy)], _px(0.5) * k, 1.2 * depth)             # axle
        wheels.circle("steel", (cx, cy), _px(0.5) * k, 1.5 * depth)                                             # bearing
    parts["wheels"] = wheels
    handles = Sketch()
    _handle(handles, (w * 0.38, h * 0.97), (w * 0.62, h * 0.97), -_px(1.5) * k, k, rng)    # side carry handle
    parts["handle"] = handles
    return parts


def _backpack(rng: np.random.Generator, w: float, h: float, k: float) -> dict[str, Sketch]:
    parts: dict[str, Sketch] = {}
    body = Sketch()
    top = np.vstack([arc_points(w * 0.5, h * 0.3, w * 0.5, h * 0.3, 180, 360, 24)])
    outline = np.vstack([top, [(w, h * 0.85)], arc_points(w * 0.85, h * 0.85, w * 0.15, h * 0.15, 0, 90, 6),
                         arc_points(w * 0.15, h * 0.85, w * 0.15, h * 0.15, 90, 180, 6)])
    body.shell("clothing", outline, _u(rng, 0.8, 1.3), _u(rng, 4, 7), _px(1.5) * k)
    body.line("plastic", outline, _px(0.4) * k, 0.5, closed=True, cylindrical=True)
    body.rounded_rect("plastic", w * 0.12, h * 0.15, w * 0.76, h * 0.75, 10, _u(rng, 0.3, 0.6))    # foam back panel
    if rng.random() < 0.4:   # aluminium frame stay
        body.line("aluminium", [(w * 0.5, h * 0.12), (w * 0.5, h * 0.88)], _px(2.0) * k, 0.2)
    wrinkles(body, rng, w, h, k, int(rng.integers(3, 8)))
    parts["backpack"] = body
    zips = Sketch()
    zip_line(zips, arc_points(w * 0.5, h * 0.32, w * 0.44, h * 0.27, 190, 350, 30), k, rng, slider_at=_u(rng, 0.05, 0.95))
    pocket = rounded_rect_points(w * 0.2, h * 0.5, w * 0.6, h * 0.35, 12)
    zips.shell("clothing", pocket, 0.4, 1.5, _px(1.0) * k)
    zip_line(zips, arc_points(w * 0.5, h * 0.56, w * 0.28, h * 0.06, 190, 350, 20), k, rng, slider_at=_u(rng, 0.05, 0.95))
    parts["zip"] = zips
    straps = Sketch()
    for side in (-1, 1):
        x0 = w * 0.5 + side * w * 0.12
        x1 = w * 0.5 + side * w * _u(rng, 0.25, 0.42)
        pts = bezier((x0, h * 0.08), (x0 + side * w * 0.1, h * 0.35), (x1, h * 0.6), (x1, h * 0.92), 30)
        straps.line("clothing", pts, _px(6) * k, _u(rng, 1.5, 2.5), cylindrical=True)   # padded strap
        c = pts[int(rng.integers(18, 28))]
        straps.rounded_rect("plastic", c[0] - _px(2) * k, c[1] - _px(1) * k, _px(4) * k, _px(2) * k, 3, 0.8)  # adjuster
    _handle(straps, (w * 0.45, h * 0.03), (w * 0.55, h * 0.03), h * 0.08, k, rng, "clothing")
    parts["strap"] = straps
    return parts


_BUILDERS = {"tray": _tray, "soft_bag": _soft_bag, "suitcase": _suitcase, "backpack": _backpack}
_WEIGHTS = {"tray": 0.2, "soft_bag": 0.35, "suitcase": 0.25, "backpack": 0.2}


def make_container(rng: np.random.Generator, width_px: int, height_px: int, kind: str | None = None) -> list[SynthObject]:
    """A random container about ``width_px x height_px``: its parts in one frame whose origin is
    the body's top-left. ``kind`` forces one of CONTAINER_KINDS. Sizes of fittings (zips, wheels,
    handles) follow the real world at ``PIXEL_CM`` per pixel, capped relative to small containers."""
    if width_px < 40 or height_px < 40:
        raise ValueError(f"container size must be at least 40x40 px, got {width_px}x{height_px}")
    if kind is None:
        names = list(_BUILDERS)
        p = np.array([_WEIGHTS[n] for n in names])
        kind = names[int(rng.choice(len(names), p=p / p.sum()))]
    elif kind not in _BUILDERS:
        raise ValueError(f"unknown container kind {kind!r}; known: {', '.join(CONTAINER_KINDS)}")
    k = float(np.clip(min(width_px / _px(55), height_px / _px(40)), 0.4, 1.5))  # fittings shrink with tiny bags
    parts = _BUILDERS[kind](rng, float(width_px), float(height_px), k)
    angle = float(rng.uniform(-3.0, 3.0))       # bags lie roughly square on the belt
    flip = bool(rng.random() < 0.5)
    body = next(iter(parts.values()))
    # Shrink the tilted body back into the requested size; the fittings follow.
    x1, y1, x2, y2 = body.bounds(angle, 1.0, flip)
    scale = min(1.0, (width_px - 2) / (x2 - x1 + 1), (height_px - 2) / (y2 - y1 + 1))
    x1, y1, _, _ = body.bounds(angle, scale, flip)
    out = []
    for name, sketch in parts.items():
        if sketch.ops:
            obj = sketch.render(f"{kind}:{name}", angle, scale, flip, margin=2, frame_origin=(x1, y1))
            if obj.layers:
                out.append(obj)
    return out
