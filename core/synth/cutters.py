"""The five OPIXray cutter classes as material sketches with real variation.

Each builder draws in a canonical frame (the object lying along +x, y down, units in pixels
at a nominal length of 200 px) with parameters drawn from the generator, and
``make_cutter`` poses it (any rotation, sometimes mirrored) and scales it so that the
axis-aligned box of the posed object is ``length_px`` on its long side, which is how
OPIXray's boxes are measured (PAPER.md: 100-270 px long side).

Thicknesses are centimetres along the beam: blades 0.1-0.3 cm of steel ground to a thin
edge (dark blue), snap-off blades 0.05-0.07 cm, plastic handles 1-2.5 cm (orange), pivots
and rivets that go through a handle as long steel rods (near black dots).
"""
from __future__ import annotations

import numpy as np

from ..classes import CLASSES
from .layers import SynthObject
from .shapes import Sketch, arc_points, bezier, ellipse_points, rounded_rect_points, serrated

NOMINAL = 200.0   # canonical drawing length, px


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


# --------------------------------------------------------------------------- blades
def knife_blade(length: float, width: float, style: str) -> tuple[np.ndarray, np.ndarray]:
    """Outline and cutting-edge polyline of a blade from its heel at (0, 0) towards +x.
    The spine is at y < 0, the edge at y > 0 (a dagger has edges on both sides)."""
    L, w = length, width
    top, bot = -0.5 * w, 0.5 * w
    if style == "dagger":
        spine = np.vstack([[0, top], bezier((0, top), (0.5 * L, top), (0.8 * L, top * 0.6), (L, 0.0), 14)])
        edge = bezier((0, bot), (0.5 * L, bot), (0.8 * L, bot * 0.6), (L, 0.0), 14)
        return np.vstack([spine, edge[::-1]]), np.vstack([spine[::-1], edge])
    if style == "chef":
        tip = (L, top * 0.55)
        spine = np.array([[0, top], [0.75 * L, top], tip])
        edge = np.vstack([[[0, bot]], bezier((0.35 * L, bot), (0.75 * L, bot), (0.95 * L, bot * 0.2), tip, 16)])
    elif style == "clip":
        tip = (L, top * 0.15)
        spine = np.vstack([[[0, top], [0.58 * L, top]], bezier((0.58 * L, top), (0.72 * L, top * 0.35),
                                                                (0.88 * L, top * 0.3), tip, 8)])
        edge = np.vstack([[[0, bot]], bezier((0.45 * L, bot), (0.85 * L, bot), (0.97 * L, bot * 0.3), tip, 16)])
    elif style == "tanto":
        tip = (L, top * 0.8)
        spine = np.array([[0, top], [0.97 * L, top], tip])
        edge = np.array([[0, bot], [0.82 * L, bot], tip])
    elif style == "sheepsfoot":
        tip = (L, bot * 0.9)
        spine = np.vstack([[[0, top]], bezier((0.6 * L, top), (0.9 * L, top), (L, top * 0.2), tip, 12)])
        edge = np.array([[0, bot], tip])
    else:  # drop point
        tip = (L, top * 0.05)
        spine = np.vstack([[[0, top]], bezier((0.55 * L, top), (0.8 * L, top), (0.95 * L, top * 0.5), tip, 14)])
        edge = np.vstack([[[0, bot]], bezier((0.5 * L, bot), (0.85 * L, bot), (0.97 * L, bot * 0.4), tip, 16)])
    return np.vstack([spine, edge[::-1]]), edge


# --------------------------------------------------------------------------- straight knife
def _straight_knife(rng: np.random.Generator) -> Sketch:
    s = Sketch()
    style = str(rng.choice(["chef", "drop", "dagger", "clip", "chef", "drop", "sheepsfoot"]))
    blade_frac = _u(rng, 0.55, 0.66)
    bl = NOMINAL * blade_frac
    bw = NOMINAL * (_u(rng, 0.09, 0.13) if style != "chef" else _u(rng, 0.13, 0.2))
    guard = style == "dagger" or rng.random() < 0.3
    gw = NOMINAL * _u(rng, 0.025, 0.045) if guard else 0.0
    hl = NOMINAL - bl - gw
    hh = max(bw * _u(rng, 0.6, 0.85), NOMINAL * 0.08)
    handle_mat = str(rng.choice(["plastic", "food", "plastic", "steel", "rubber"]))
    # Handle: a slightly bellied grip from x=0 to hl, centred on y=0.
    top = np.vstack([bezier((0, -hh * 0.45), (hl * 0.3, -hh * 0.6), (hl * 0.7, -hh * 0.5), (hl, -hh * 0.42), 12)])
    bot = bezier((hl, hh * 0.45), (hl * 0.7, hh * 0.55), (hl * 0.3, hh * 0.62), (0, hh * 0.48), 12)
    end_cap = arc_points(0, 0, hh * 0.12, hh * 0.47, 110, 250, 8)
    handle = np.vstack([top, bot, end_cap])
    if handle_mat == "steel":   # hollow stainless handle: two thin walls, thicker along the sides
        s.shell("steel", handle, _u(rng, 0.08, 0.14), _u(rng, 0.3, 0.6), 2.0)
    else:
        t = _u(rng, 1.4, 2.4) if handle_mat != "rubber" else _u(rng, 1.8, 2.6)
        s.polygon(handle_mat, handle, t, round_px=hh * 0.5)
        if rng.random() < 0.65:  # full tang with rivets
            s.polygon("steel", rounded_rect_points(hh * 0.1, -hh * 0.33, hl, hh * 0.66, hh * 0.1), _u(rng, 0.18, 0.28))
            n_rivets = int(rng.integers(2, 4))
            rivet_mat = "copper" if rng.random() < 0.3 else "steel"
            for i in range(n_rivets):
                x = hl * (0.2 + 0.6 * i / max(n_rivets - 1, 1))
                s.circle(rivet_mat, (x, 0.0), hh * _u(rng, 0.09, 0.13), _u(rng, 1.0, 1.8))
        else:  # hidden rat-tail tang
            s.polygon("steel", [(hl * 0.25, -hh * 0.1), (hl + 1, -hh * 0.18), (hl + 1, hh * 0.18), (hl * 0.25, hh * 0.1)],
                      _u(rng, 0.3, 0.5), round_px=hh * 0.12)
        if rng.random() < 0.4:   # a hanging hole
            s.cut(handle_mat, ellipse_points((hl * 0.1, 0), (hh * 0.12, hh * 0.12)), 1.0)
    x0 = hl
    if guard:
        gh = bw * (_u(rng, 1.6, 2.4) if style == "dagger" else _u(rng, 1.05, 1.3))
        s.rounded_rect("steel", x0, -gh / 2 + (0 if style == "dagger" else bw * 0.05), gw, gh, gw * 0.4,
                       _u(rng, 0.5, 0.9), round_px=gw * 0.4)
        x0 += gw
    outline, edge = knife_blade(bl, bw, style)
    yoff = 0.0 if style == "dagger" else -hh * 0.1
    outline = outline + (x0, yoff)
    edge = edge + (x0, yoff)
    spine = _u(rng, 0.15, 0.28)
    s.blade("steel", outline, edge, spine, grind_px=bw * (0.5 if style == "dagger" else 0.9))
    if style == "dagger" and rng.random() < 0.5:   # fuller: a groove down the middle
        s.cut("steel", np.array([[x0 + bl * 0.05, yoff], [x0 + bl * 0.55, yoff]]), 0.35, width_px=bw * 0.15)
    return s


# --------------------------------------------------------------------------- folding knife
def _folding_knife(rng: np.random.Generator) -> Sketch:
    s = Sketch()
    state = str(rng.choice(["open", "open", "half", "closed"]))
    hl = NOMINAL * 0.52
    bl = hl * _u(rng, 0.8, 0.92)
    bw = NOMINAL * _u(rng, 0.08, 0.12)
    hh = bw * _u(rng, 0.95, 1.2)
    style = str(rng.choice(["drop", "clip", "tanto", "sheepsfoot", "drop"]))
    # Handle from x=-hl to 0, pivot near x=0.
    pivot = (-hh * 0.45, 0.0)
    px = pivot[0]
    handle = np.vstack([bezier((-hl, -hh * 0.3), (-hl * 0.7, -hh * 0.55), (-hl * 0.3, -hh * 0.45), (px, -hh * 0.5), 12),
                        arc_points(px, 0, hh * 0.5, hh * 0.5, -90, 90, 10)[1:-1],
                        bezier((px, hh * 0.5), (-hl * 0.3, hh * 0.5), (-hl * 0.7, hh * 0.45), (-hl, hh * 0.25), 12)])
    handle_kind = str(rng.choice(["plastic", "plastic", "aluminium", "steel", "food"]))
    if handle_kind in ("plastic", "food"):
        s.polygon(handle_kind, handle, _u(rng, 1.0, 1.8), round_px=hh * 0.35)
        if rng.random() < 0.6:   # steel liners under the scales, often skeletonised
            liner = handle * (0.96, 0.75) + (-hl * 0.02, 0)
            s.polygon("steel", liner, _u(rng, 0.04, 0.1))
            if rng.random() < 0.6:
                for i in range(3):
                    x = -hl * (0.25 + 0.22 * i)
                    s.cut("steel", rounded_rect_points(x - hl * 0.08, -hh * 0.2, hl * 0.16, hh * 0.4, hh * 0.15))
    elif handle_kind == "aluminium":
        s.polygon("aluminium", handle, _u(rng, 0.6, 1.0), round_px=hh * 0.25)
        s.polygon("steel", handle * (0.96, 0.8), _u(rng, 0.08, 0.15))
    else:  # steel frame-lock handle: one thick side, one thin
        s.polygon("steel", handle, _u(rng, 0.2, 0.35), round_px=hh * 0.15)
        s.cut("steel", rounded_rect_points(-hl * 0.55, -hh * 0.05, hl * 0.4, hh * 0.1, hh * 0.05), 0.5)
    if rng.random() < 0.5:  # pocket clip
        s.polygon("steel", rounded_rect_points(-hl * 0.95, -hh * 0.42, hl * 0.6, hh * 0.16, hh * 0.08), _u(rng, 0.06, 0.1))
    if rng.random() < 0.5:  # lanyard hole
        for mat in list({handle_kind, "steel"}):
            s.cut(mat, ellipse_points((-hl * 0.9, 0), (hh * 0.11, hh * 0.11)))
    s.circle("steel", (-hl * 0.88, hh * 0.12), hh * 0.08, _u(rng, 0.8, 1.2))   # back spacer pin
    # Blade, drawn from the pivot along +x then swung about the pivot.
    outline, edge = knife_blade(bl, bw, style)
    tang = arc_points(0, 0, bw * 0.55, bw * 0.55, 90, 270, 10)
    outline = np.vstack([tang, outline[1:-1]])
    outline = outline + pivot
    edge = edge + pivot
    angle = {"open": _u(rng, -4, 4), "half": _u(rng, 50, 140), "closed": _u(rng, 176, 182)}[state]
    # Swung about the pivot: 0 open, 180 folded back over the handle (closed).
    blade = Sketch().blade("steel", outline, edge, _u(rng, 0.15, 0.3), grind_px=bw * 0.85)
    if rng.random() < 0.4:  # thumb hole
        blade.cut("steel", ellipse_points((pivot[0] + bw * 0.7, pivot[1] - bw * 0.12), (bw * 0.17, bw * 0.17)))
    s.extend(blade, -angle, pivot)
    s.circle("steel", pivot, hh * _u(rng, 0.13, 0.18), _u(rng, 0.9, 1.4))    # pivot screw through the stack
    return s


# --------------------------------------------------------------------------- scissors
def _scissors(rng: np.random.Generator) -> Sketch:
    s = Sketch()
    bl = NOMINAL * _u(rng, 0.48, 0.58)
    bw = NOMINAL * _u(rng, 0.055, 0.08)
    shank = NOMINAL * _u(rng, 0.08, 0.14)
    ring_r = NOMINAL * _u(rng, 0.1, 0.14)
    plastic = rng.random() < 0.7
    asymmetric = plastic and rng.random() < 0.6   # one small thumb ring, one long finger loop
    open_deg = float(rng.choice([_u(rng, 0, 8), _u(rng, 10, 35), _u(rng, 35, 70)]))
    pointed = rng.random() < 0.5
    spine = _u(rng, 0.2, 0.32)
    for side, sign in ((0, 1.0), (1, -1.0)):
        half = Sketch()
        # Blade in the half's frame: pivot at the origin, edge along y=+0.1*bw (the inner side).
        tip_y = 0.05 * bw if pointed else -0.25 * bw
        outline = np.vstack([[(-bw * 0.5, -bw * 0.55)],
                             bezier((bw * 0.3, -bw * 0.6), (bl * 0.5, -bw * 0.6), (bl * 0.9, -bw * 0.35), (bl, tip_y), 14),
                             arc_points(bl - bw * 0.15, tip_y, bw * 0.15, bw * 0.15, 0, 80, 4) if not pointed else [(bl, tip_y)],
                             [(bl * 0.2, bw * 0.12), (-bw * 0.5, bw * 0.3)]])
        edge = np.array([(bl, tip_y), (bl * 0.2, bw * 0.12), (-bw * 0.4, bw * 0.3)])
        half.blade("steel", outline, edge, spine, grind_px=bw * 0.7, edge_fraction=0.25)
        # Shank and ring behind the pivot, on the far side from the edge.
        rr = ring_r * (0.8 if asymmetric and side == 0 else 1.0)
        ring_len = 1.0 if not (asymmetric and side == 1) else 1.55
        centre = (-shank - rr * ring_len * 0.8, rr * 0.55)
        if plastic:
            th = _u(rng, 0.9, 1.4)
            half.polygon("plastic", [(-bw * 0.2, -bw * 0.5), (-shank, rr * 0.1 - bw * 0.5), (-shank - rr * 0.3, rr * 0.9),
                                      (-bw * 0.3, bw * 0.5)], th, round_px=bw * 0.3)
            half.ring("plastic", centre, rr, rr * 0.62, th, squash=1 / ring_len, round_px=rr * 0.2)
            half.polygon("steel", [(-bw * 0.3, -bw * 0.35), (-shank * 0.9, -bw * 0.25), (-shank * 0.9, bw * 0.25),
                                   (-bw * 0.3, bw * 0.35)], spine * 0.9)
        else:
            th = _u(rng, 0.3, 0.45)
            half.polygon("steel", [(-bw * 0.2, -bw * 0.45), (-shank, rr * 0.15 - bw * 0.4), (-shank - rr * 0.2, rr * 0.85),
                                   (-bw * 0.3, bw * 0.45)], th, round_px=bw * 0.2)
            half.ring("steel", centre, rr * 0.9, rr * 0.65, th, squash=1 / ring_len, round_px=rr * 0.1)
        s.extend(half, sign * open_deg / 2 * -1, (0, 0), mirror_y=(side == 1))
    s.circle("steel", (0, 0), bw * _u(rng, 0.22, 0.32), _u(rng, 0.7, 1.0))   # pivot screw
    return s


# --------------------------------------------------------------------------- utility knife
def _utility_knife(rng: np.random.Generator) -> Sketch:
    s = Sketch()
    snap_off = rng.random() < 0.8
    body_l = NOMINAL * _u(rng, 0.72, 0.84)
    ext = NOMINAL - body_l
    if snap_off:
        hb = NOMINAL * _u(rng, 0.1, 0.15)
        body = rounded_rect_points(0, -hb / 2, body_l, hb, hb * 0.3)
        body[:, 0] = np.where(body[:, 0] > body_l * 0.9, body_l * 0.9 + (body[:, 0] - body_l * 0.9) *
                              (0.3 + 0.7 * (body[:, 1] + hb / 2) / hb), body[:, 0])   # slanted nose
        s.shell("abs", body, _u(rng, 0.6, 1.0), _u(rng, 1.0, 1.6), hb * 0.1)
        if rng.random() < 0.6:  # rubber grip inlay
            s.rounded_rect("rubber", body_l * 0.15, -hb * 0.35, body_l * 0.45, hb * 0.7, hb * 0.2, _u(rng, 0.3, 0.5))
        # Metal inner slide (a folded steel channel) carrying the blade.
        s.shell("steel", rounded_rect_points(body_l * 0.08, -hb * 0.3, body_l * 0.86, hb * 0.62, hb * 0.05),
                _u(rng, 0.015, 0.03), _u(rng, 0.1, 0.2), 1.5)
        # Blade: a long strip with a slanted tip, sticking out by `ext`.
        blw = hb * _u(rng, 0.5, 0.62)
        b0 = body_l * _u(rng, 0.25, 0.45)
        tip = body_l + ext
        slant = blw * _u(rng, 1.3, 1.8)
        outline = np.array([(b0, -blw / 2), (tip - slant, -blw / 2), (tip, blw / 2), (b0, blw / 2)])
        th = _u(rng, 0.05, 0.07)
        s.blade("steel", outline, outline[1:3], th, grind_px=blw * 0.15, edge_fraction=0.3)
        # Score lines parallel to the tip every ~1.2 blade widths: visible grooves.
        pitch = blw * _u(rng, 0.55, 0.75)
        x = tip - slant - pitch
        while x - slant > b0:
            s.cut("steel", np.array([(x, -blw / 2), (x + slant, blw / 2)]), 0.55, width_px=1.2)
            x -= pitch
        s.cut("steel", ellipse_points((b0 + blw * 0.35, 0), (blw * 0.12, blw * 0.18)))   # slider notch
        # Slider button on the top edge and a metal end cap with the snap-off tool.
        sx = b0 + blw * 0.3
        s.rounded_rect("abs", sx - hb * 0.3, -hb * 0.72, hb * 0.7, hb * 0.32, hb * 0.12, _u(rng, 0.6, 1.0))
        s.rounded_rect("steel", sx - hb * 0.1, -hb * 0.45, hb * 0.3, hb * 0.5, hb * 0.05, _u(rng, 0.2, 0.3))
        s.rounded_rect("steel", 0, -hb * 0.42, body_l * 0.07, hb * 0.84, hb * 0.1, _u(rng, 0.2, 0.35))
    else:
        # Trapezoid-blade knife with a cast body: two halves and a screw.
        hb = NOMINAL * _u(rng, 0.15, 0.2)
        body = np.vstack([bezier((0, -hb * 0.25), (body_l * 0.3, -hb * 0.55), (body_l * 0.7, -hb * 0.6), (body_l, -hb * 0.35), 12),
                          [(body_l, hb * 0.2)],
                          bezier((body_l * 0.95, hb * 0.4), (body_l * 0.6, hb * 0.35), (body_l * 0.3, hb * 0.6), (0, hb * 0.3), 12)])
        mat = str(rng.choice(["zinc", "aluminium", "abs"]))
        t = {"zinc": _u(rng, 0.25, 0.4), "aluminium": _u(rng, 0.6, 1.0), "abs": _u(rng, 0.8, 1.2)}[mat]
        s.shell(mat, body, t, t * 1.5, hb * 0.08)
        s.circle("steel", (body_l * 0.5, 0), hb * 0.09, _u(rng, 1.2, 1.8))
        blw = hb * 0.6
        outline = np.array([(body_l * 0.55, -blw * 0.45), (body_l + ext * 0.6, -blw * 0.45), (body_l + ext, blw * 0.45),
                            (body_l * 0.45, blw * 0.45)])
        s.blade("steel", outline, outline[1:3], _u(rng, 0.06, 0.08), grind_px=blw * 0.2, edge_fraction=0.3)
        s.cut("steel", ellipse_points((body_l * 0.62, 0), (blw * 0.1, blw * 0.1)))
    return s


# --------------------------------------------------------------------------- multi-tool
def _tool(kind: str, length: float, width: float, rng: np.random.Generator) -> Sketch:
    """One fold-out tool in its own frame: pivot at the origin, pointing to +x."""
    t = Sketch()
    th = _u(rng, 0.12, 0.22)
    if kind == "blade":
        outline, edge = knife_blade(length, width, str(rng.choice(["drop", "sheepsfoot", "clip"])))
        t.blade("steel", outline, edge, th, grind_px=width * 0.8)
    elif kind == "saw":
        teeth = serrated(np.array([(length * 0.92, width * 0.45), (width * 0.3, width * 0.45)]), width * 0.22, width * 0.22)
        outline = np.vstack([[(0, -width * 0.45), (length, -width * 0.45), (length, width * 0.1)], teeth])
        t.polygon("steel", outline, th)
    elif kind == "screwdriver":
        w = width * 0.5
        t.polygon("steel", [(0, -w / 2), (length * 0.85, -w / 2), (length, -w * 0.3), (length, w * 0.3),
                            (length * 0.85, w / 2), (0, w / 2)], th)
    elif kind == "bottle_opener":
        w = width * 0.7
        hook = arc_points(length * 0.75, w * 0.05, w * 0.3, w * 0.3, 200, 340, 8)
        t.polygon("steel", np.vstack([[(0, -w / 2), (length * 0.9, -w / 2), (length, -w * 0.2), (length, w / 2)],
                                      hook[::-1], [(length * 0.5, w / 2), (0, w / 2)]]), th)
    elif kind == "awl":
        w = width * 0.4
        t.polygon("steel", [(0, -w / 2), (length * 0.6, -w / 2), (length, 0), (length * 0.6, w / 2), (0, w / 2)], th * 1.4,
                  round_px=w * 0.4)
    else:  # file
        w = width * 0.55
        t.polygon("steel", rounded_rect_points(0, -w / 2, length, w, w * 0.4), th)
        for i in range(int(length / (w * 0.5))):
            x = w * 0.5 + i * w * 0.45
            if x < length - w * 0.3:
                t.cut("steel", np.array([(x, -w * 0.4), (x + w * 0.3, w * 0.4)]), 0.3, width_px=1.0)
    return t


def _multi_tool(rng: np.random.Generator) -> Sketch:
    s = Sketch()
    body_l = NOMINAL * _u(rng, 0.45, 0.58)
    swiss = rng.random() < 0.6
    hb = body_l * (_u(rng, 0.22, 0.3) if swiss else _u(rng, 0.3, 0.38))
    body = rounded_rect_points(0, -hb / 2, body_l, hb, hb * (0.45 if swiss else 0.2))
    if swiss:
        s.polygon("plastic", body, _u(rng, 0.5, 0.8), round_px=hb * 0.3)              # red cellulose scales
        s.polygon("aluminium", rounded_rect_points(body_l * 0.02, -hb * 0.44, body_l * 0.96, hb * 0.88, hb * 0.4),
                  _u(rng, 0.15, 0.3))                                                  # liners
        s.polygon("steel", rounded_rect_points(body_l * 0.06, -hb * 0.4, body_l * 0.88, hb * 0.75, hb * 0.3),
                  _u(rng, 0.35, 0.7))                                                  # folded tool stack
        pivots = [(hb * 0.42, 0.0), (body_l - hb * 0.42, 0.0)]
        if rng.random() < 0.5:
            s.ring("steel", (-hb * 0.05, -hb * 0.3), hb * 0.18, hb * 0.12, 0.15)       # key ring
    else:
        # Pliers-type: two steel channel handles side by side, jaws out of the front.
        for y in (-hb / 2, 0.02 * hb):
            s.shell("steel", rounded_rect_points(0, y, body_l, hb * 0.48, hb * 0.1), _u(rng, 0.12, 0.2), _u(rng, 0.3, 0.5), 2.0)
        jaw_l = body_l * _u(rng, 0.35, 0.5)
        jaws = np.array([(body_l - hb * 0.1, -hb * 0.42), (body_l + jaw_l * 0.45, -hb * 0.3), (body_l + jaw_l, -hb * 0.06),
                         (body_l + jaw_l, hb * 0.06), (body_l + jaw_l * 0.45, hb * 0.3), (body_l - hb * 0.1, hb * 0.42)])
        s.polygon("steel", jaws, _u(rng, 0.6, 0.9), round_px=hb * 0.2)
        s.cut("steel", np.array([(body_l + jaw_l * 0.2, 0), (body_l + jaw_l, 0)]), 0.6, width_px=1.3)
        s.circle("steel", (body_l, 0), hb * 0.14, 1.2)
        pivots = [(hb * 0.3, -hb * 0.25), (hb * 0.3, hb * 0.25)]
    kinds = ["blade", "saw", "screwdriver", "bottle_opener", "awl", "file"]
    n_open = int(rng.integers(2, 5))
    chosen = rng.choice(kinds, size=n_open, replace=False)
    chosen = ["blade"] + [k for k in chosen if k != "blade"][: n_open - 1] if rng.random() < 0.8 else list(chosen)
    for i, kind in enumerate(chosen):
        if swiss:
            end = i % 2
            px, py = pivots[end]
            base = 0.0 if end == 1 else 180.0      # tools at the right pivot swing out to +x
        else:
            end = 0
            px, py = pivots[i % 2]
            base = 180.0
        spread = float(rng.choice([_u(rng, 0, 15), _u(rng, 20, 80), _u(rng, 80, 160)]))
        ang = base + (spread if (i // 2) % 2 == 0 else -spread) * (1 if end == 1 else -1)
        length = body_l * _u(rng, 0.7, 0.95)
        width = hb * _u(rng, 0.55, 0.8)
        s.extend(_tool(kind, length, width, rng), ang, (0, 0), (px, py))
    for px, py in pivots:
        s.circle("steel", (px, py), hb * 0.1, _u(rng, 0.9, 1.4))
    return s


_BUILDERS = {
    "Folding_Knife": _folding_knife,
    "Straight_Knife": _straight_knife,
    "Scissor": _scissors,
    "Utility_Knife": _utility_knife,
    "Multi-tool_Knife": _multi_tool,
}
assert set(_BUILDERS) == set(CLASSES), "a builder for each class in core.classes.CLASSES"


def cutter_sketch(class_name: str, rng: np.random.Generator) -> Sketch:
    """The unposed sketch of a random cutter of ``class_name`` (about NOMINAL px long along x)."""
    try:
        builder = _BUILDERS[class_name]
    except KeyError:
        raise ValueError(f"unknown cutter class {class_name!r}; known: {', '.join(CLASSES)}") from None
    return builder(rng)


def make_cutter(class_name: str, rng: np.random.Generator, length_px: float) -> SynthObject:
    """A random cutter of ``class_name`` in a random pose whose tight axis-aligned box is
    ``length_px`` (within about a pixel) on its long side; ``kind`` is the class name."""
    if not np.isfinite(length_px) or length_px < 8:
        raise ValueError(f"length_px must be a finite length of at least 8 px, got {length_px!r}")
    sketch = cutter_sketch(class_name, rng)
    angle = float(rng.uniform(-180.0, 180.0))
    flip = bool(rng.random() < 0.5)
    # The pixel box spans the outline plus one pixel, and the anti-aliased rim adds about a pixel
    # on each side (measured: +2 px median over all classes), so the outline is fitted 3 px short.
    scale = sketch.scale_for_long_side(length_px - 3.0, angle, flip)
    return sketch.render(class_name, angle, scale, flip)
