"""Electronics in a carry-on: laptops, tablets, phones, power banks, chargers, cables, cameras...

Metal and battery-dense items that render green to dark blue and hide cutters best.
"""
from __future__ import annotations

import numpy as np

from .clutter_common import _px, _u
from .layers import PIXEL_CM
from .shapes import (
    Sketch,
    arc_points,
    bezier,
    ellipse_points,
    rounded_rect_points,
    serrated,
)


def _screws(s: Sketch, rng: np.random.Generator, x: float, y: float, w: float, h: float, r: float) -> None:
    inset = r * 3
    for cx, cy in ((x + inset, y + inset), (x + w - inset, y + inset), (x + inset, y + h - inset),
                   (x + w - inset, y + h - inset), (x + w / 2, y + inset), (x + w / 2, y + h - inset)):
        s.circle("steel", (cx, cy), r, _u(rng, 0.3, 0.5))


def _laptop(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    w, h = _px(_u(rng, 28, 36)) * k, _px(_u(rng, 19, 25)) * k
    shell_mat = "aluminium" if rng.random() < 0.6 else "abs"
    face = _u(rng, 0.25, 0.4) if shell_mat == "aluminium" else _u(rng, 0.5, 0.8)
    s.shell(shell_mat, rounded_rect_points(0, 0, w, h, h * 0.04), face, face * 3.0, 3.0)
    s.rounded_rect("glass", w * 0.02, h * 0.03, w * 0.96, h * 0.9, 4, _u(rng, 0.05, 0.1))        # screen
    s.rounded_rect("steel", w * 0.08, h * 0.05, w * 0.84, h * 0.4, 3, _u(rng, 0.02, 0.05))       # keyboard plate
    # Main board along the hinge side, with chips, a heat pipe and a fan.
    bx, by, bw, bh = w * 0.05, h * 0.06, w * _u(rng, 0.55, 0.9), h * _u(rng, 0.3, 0.42)
    s.rounded_rect("circuit", bx, by, bw, bh, 3, _u(rng, 0.2, 0.35))
    for _ in range(int(rng.integers(5, 12))):
        cw, ch = _px(_u(rng, 0.6, 3.5)) * k, _px(_u(rng, 0.6, 3.0)) * k
        cx, cy = bx + _u(rng, 0, bw - cw), by + _u(rng, 0, bh - ch)
        s.rounded_rect(str(rng.choice(["circuit", "circuit", "steel"])), cx, cy, cw, ch, 1, _u(rng, 0.1, 0.3))
    fan_c = (bx + bw * _u(rng, 0.7, 0.9), by + bh * 0.55)
    fr = min(bh * 0.42, _px(3.5) * k)
    s.ring("abs", fan_c, fr, fr * 0.35, 0.6)
    s.circle("copper", fan_c, fr * 0.3, 0.25)
    s.line("copper", [(bx + bw * 0.3, by + bh * 0.5), (fan_c[0] - fr, fan_c[1])], _px(0.8) * k, 0.3)
    # Battery: two to six cells along the front edge.
    n_cells = int(rng.choice([2, 3, 3, 4, 6]))
    cw_all, ch = w * _u(rng, 0.55, 0.8), h * _u(rng, 0.25, 0.35)
    x0 = (w - cw_all) / 2
    y0 = h * 0.94 - ch
    for i in range(n_cells):
        cw = cw_all / n_cells
        s.rounded_rect("battery", x0 + i * cw + 1, y0, cw - 2, ch, 2, _u(rng, 0.45, 0.7))
    s.rounded_rect("abs", w * 0.35, y0 - h * 0.18, w * 0.3, h * 0.14, 3, 0.3)                # touchpad bracket
    for hx in (w * 0.12, w * 0.88):                                                            # hinges
        s.rounded_rect("steel", hx - w * 0.05, -h * 0.01, w * 0.1, h * 0.05, 2, _u(rng, 0.5, 0.9))
    _screws(s, rng, 0, 0, w, h, max(_px(0.25) * k, 1.2))
    for _ in range(int(rng.integers(1, 4))):                                                   # speakers
        s.rounded_rect("steel", _u(rng, 0.02, 0.8) * w, h * 0.8, w * 0.08, h * 0.1, 2, 0.1)
    return s


def _tablet_or_phone(rng: np.random.Generator, k: float, phone: bool) -> Sketch:
    s = Sketch()
    if phone:
        w, h = _px(_u(rng, 13.5, 16.5)) * k, _px(_u(rng, 6.5, 7.8)) * k
    else:
        w, h = _px(_u(rng, 20, 28)) * k, _px(_u(rng, 14, 19)) * k
    shell = "aluminium" if rng.random() < 0.7 else "abs"
    s.shell(shell, rounded_rect_points(0, 0, w, h, h * 0.12), 0.2 if shell == "aluminium" else 0.4, 0.8, 2.0)
    s.rounded_rect("glass", 1, 1, w - 2, h - 2, h * 0.11, 0.1)
    bw = w * _u(rng, 0.45, 0.65)
    s.rounded_rect("battery", w * 0.3, h * 0.1, bw, h * 0.8, 3, _u(rng, 0.3, 0.45))
    s.rounded_rect("circuit", w * 0.05, h * 0.12, w * 0.22, h * 0.76, 2, 0.35)
    for _ in range(int(rng.integers(3, 7))):
        s.rounded_rect("steel", w * _u(rng, 0.06, 0.22), h * _u(rng, 0.15, 0.75), _px(0.5) * k, _px(0.5) * k, 1, 0.15)
    s.circle("glass", (w * 0.09, h * 0.2), min(h * 0.1, _px(0.8) * k), 0.5)               # camera
    s.rounded_rect("steel", w * 0.05, h * 0.05, w * 0.06, h * 0.04, 1, 0.2)
    return s


def _power_bank(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    n = int(rng.choice([1, 2, 2, 3, 4]))
    cyl_d = _px(1.8) * k
    w, h = _px(_u(rng, 9, 14)) * k, cyl_d * n + _px(0.6) * k
    s.shell("abs", rounded_rect_points(0, 0, w, h, h * 0.15), 0.4, 0.8, 2.0)
    cylindrical = rng.random() < 0.6
    for i in range(n):
        y = _px(0.3) * k + i * cyl_d
        if cylindrical:   # 18650 cells seen from the side: chord profile
            s.rounded_rect("battery", w * 0.04, y, w * 0.78, cyl_d, cyl_d * 0.2, 1.8, round_px=cyl_d / 2)
            s.rounded_rect("steel", w * 0.04, y, w * 0.78, cyl_d, cyl_d * 0.2, 0.04)
        else:
            s.rounded_rect("battery", w * 0.04, y, w * 0.78, cyl_d, 2, 0.6)
    s.rounded_rect("circuit", w * 0.84, h * 0.1, w * 0.13, h * 0.8, 2, 0.3)
    s.rounded_rect("steel", w * 0.93, h * 0.35, w * 0.06, h * 0.12, 1, 0.3)
    return s


def _charger(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    w, h = _px(_u(rng, 4.5, 11)) * k, _px(_u(rng, 4.5, 6.5)) * k
    s.shell("abs", rounded_rect_points(0, 0, w, h, h * 0.2), _u(rng, 1.5, 2.5), 0.8, 2.0)
    s.rounded_rect("circuit", w * 0.1, h * 0.12, w * 0.8, h * 0.76, 2, 0.4)
    # Transformer core and coils: the dark lump every charger shows.
    tx, ty = w * _u(rng, 0.3, 0.55), h * 0.3
    s.rounded_rect("steel", tx, ty, w * 0.22, h * 0.4, 1, _u(rng, 0.5, 0.9))
    s.rounded_rect("copper", tx + w * 0.04, ty + h * 0.05, w * 0.14, h * 0.3, 1, 0.4)
    s.circle("aluminium", (w * 0.2, h * 0.65), h * 0.13, 1.2, round_px=h * 0.13)    # capacitor
    if rng.random() < 0.6:  # mains pins
        for py in (h * 0.3, h * 0.7):
            s.rounded_rect("copper", -_px(1.6) * k, py - 2, _px(1.7) * k, 4, 1, 0.25)
    # Its cable trailing away.
    pts = bezier((w, h / 2), (w + _px(8) * k, h * _u(rng, -2, 2)), (w + _px(_u(rng, 4, 14)) * k, h * _u(rng, -3, 3)),
                 (w + _px(_u(rng, 10, 25)) * k, h * _u(rng, -3, 3)), 30)
    _cable(s, pts, k)
    return s


def _cable(s: Sketch, pts: np.ndarray, k: float) -> None:
    s.line("rubber", pts, _px(0.4) * k, 0.35, cylindrical=True)
    s.line("copper", pts, max(_px(0.12) * k, 1.0), 0.08)


def _cable_coil(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    n = int(rng.integers(3, 8))
    r = _px(_u(rng, 3, 7)) * k
    t = np.linspace(0, 2 * np.pi * n, 60 * n)
    wobble = 1 + 0.15 * np.sin(t * _u(rng, 0.3, 0.8)) + rng.normal(0, 0.02, t.size).cumsum() * 0.05
    pts = np.stack([r * wobble * np.cos(t) * _u(rng, 1.0, 1.8), r * wobble * np.sin(t)], axis=1)
    pts += np.linspace(0, 1, t.size)[:, None] * rng.normal(0, r * 0.4, 2)
    _cable(s, pts, k)
    # Plugs at both ends.
    for end in (pts[0], pts[-1]):
        s.rounded_rect("abs", end[0] - _px(0.8) * k, end[1] - _px(0.5) * k, _px(1.6) * k, _px(1.0) * k, 2, 0.8)
        s.rounded_rect("steel", end[0] - _px(0.4) * k, end[1] - _px(0.25) * k, _px(0.8) * k, _px(0.5) * k, 1, 0.15)
    return s


def _headphones(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    r = _px(_u(rng, 7, 9)) * k
    band = arc_points(0, 0, r, r * 1.1, 200, 340, 30)
    s.line("plastic", band, _px(2.5) * k, 0.8, cylindrical=True)
    s.line("steel", band, _px(0.5) * k, 0.15)
    for x in (band[0, 0], band[-1, 0]):
        c = (x, band[0, 1] + _px(3.5) * k)
        s.ellipse("abs", c, (_px(3.5) * k, _px(4.2) * k), 1.2, round_px=_px(1.5) * k)
        s.circle("steel", c, _px(1.5) * k, 0.5)                 # driver magnet
        s.ring("copper", c, _px(1.9) * k, _px(1.6) * k, 0.3)
    return s


# --------------------------------------------------------------------------- liquids, toiletries


def _camera(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    w, h = _px(_u(rng, 10, 14)) * k, _px(_u(rng, 6, 9)) * k
    s.shell("abs" if rng.random() < 0.6 else "aluminium", rounded_rect_points(0, 0, w, h, h * 0.15), 0.8, 1.5, 2.5)
    s.rounded_rect("battery", w * 0.05, h * 0.15, w * 0.22, h * 0.7, 2, 1.5)
    s.rounded_rect("circuit", w * 0.3, h * 0.1, w * 0.6, h * 0.8, 2, 0.3)
    lens_c, lr = (w * 0.62, h * 0.5), h * _u(rng, 0.28, 0.4)
    s.circle("glass", lens_c, lr, 2.5, round_px=lr)                      # lens elements: a glass cylinder
    for f in (1.0, 0.8, 0.6):
        s.ring("aluminium", lens_c, lr * f, lr * f - 2, 0.8)
    s.circle("steel", (w * 0.5, h * 0.9), _px(0.4) * k, 0.6)                # tripod socket
    return s


def _hair_dryer(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    L, d = _px(_u(rng, 16, 22)) * k, _px(_u(rng, 5, 7)) * k
    s.rounded_rect("abs", 0, -d / 2, L, d, d * 0.3, d * PIXEL_CM * 0.3, round_px=d / 2)
    hl = _px(_u(rng, 9, 12)) * k
    s.rounded_rect("abs", L * 0.25, d * 0.3, d * 0.75, hl, d * 0.3, d * PIXEL_CM * 0.35, round_px=d * 0.35)
    # Motor (copper windings round a steel core) and the heating element, a coiled wire.
    s.rounded_rect("steel", L * 0.12, -d * 0.3, L * 0.18, d * 0.6, 2, 0.8)
    s.rounded_rect("copper", L * 0.14, -d * 0.25, L * 0.12, d * 0.5, 2, 0.5)
    t = np.linspace(0, 1, 80)
    coil = np.stack([L * (0.4 + 0.5 * t), d * 0.3 * np.sin(t * 2 * np.pi * 12)], axis=1)
    s.line("steel", coil, 1.0, 0.06)
    s.line("steel", [(L * 0.95, -d * 0.45), (L * 0.95, d * 0.45)], 1.5, 0.2)    # grille
    _cable(s, bezier((L * 0.3, d * 0.3 + hl), (L * 0.3, d + hl * 1.5), (L, d + hl * _u(rng, 0.5, 2)),
                     (L * _u(rng, 1.0, 1.6), d + hl * _u(rng, 0.3, 1.0)), 30), k)
    return s


def _earbuds(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    w, h = _px(_u(rng, 4.5, 6.5)) * k, _px(_u(rng, 4.0, 5.5)) * k
    s.shell("abs", rounded_rect_points(0, 0, w, h, h * 0.35), 1.2, 0.8, 2.0)
    s.rounded_rect("battery", w * 0.2, h * 0.6, w * 0.6, h * 0.3, 2, 0.6)
    s.rounded_rect("circuit", w * 0.15, h * 0.45, w * 0.7, h * 0.12, 1, 0.2)
    for cx in (w * 0.3, w * 0.7):
        s.circle("battery", (cx, h * 0.28), w * 0.12, 0.6)
        s.circle("steel", (cx, h * 0.28), w * 0.05, 0.5)          # magnets holding the buds
    s.rounded_rect("steel", w * 0.35, -1, w * 0.3, h * 0.06, 1, 0.2)  # hinge
    return s


def _batteries(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    aaa = rng.random() < 0.3
    L, d = _px(4.45 if aaa else 5.0) * k, _px(1.05 if aaa else 1.45) * k
    for i in range(int(rng.integers(1, 5))):
        y = i * d * 1.05
        s.rounded_rect("battery", 0, y, L, d, d * 0.15, d * PIXEL_CM * 0.85, round_px=d / 2)
        s.rounded_rect("steel", 0, y, L, d, d * 0.15, 0.05)              # the can
        s.rounded_rect("steel", L - 1, y + d * 0.3, _px(0.15) * k + 1, d * 0.4, 1, 0.3)
    return s


def _watch(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    r = _px(_u(rng, 1.8, 2.3)) * k
    metal = rng.random() < 0.6
    s.circle("steel" if metal else "abs", (0, 0), r, 0.2 if metal else 0.9)
    s.ring("steel" if metal else "abs", (0, 0), r, r * 0.85, 0.4 if metal else 0.8)
    s.circle("battery", (r * 0.2, r * 0.1), r * 0.45, 0.3)              # coin cell
    s.circle("circuit", (0, 0), r * 0.75, 0.2)
    strap_l = _px(_u(rng, 7, 10)) * k
    for sign in (-1, 1):
        pts = [(0, sign * r * 0.9), (_u(rng, -0.5, 0.5) * r, sign * (r + strap_l))]
        if rng.random() < 0.5:
            s.line("steel", pts, r * 1.1, 0.25)
            s.cut("steel", serrated(np.array(pts, float), r * 0.5, r * 0.3), 0.4, width_px=1.0)
        else:
            s.line("leather", pts, r * 1.1, 0.5)
    return s


def _mouse(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    w, h = _px(_u(rng, 9, 11.5)) * k, _px(_u(rng, 5.5, 6.5)) * k
    s.shell("abs", ellipse_points((w / 2, h / 2), (w / 2, h / 2)), 0.6, 1.2, 2.5)
    s.rounded_rect("circuit", w * 0.2, h * 0.2, w * 0.6, h * 0.6, 2, 0.2)
    s.rounded_rect("battery", w * 0.45, h * 0.3, _px(5) * k * 0.8, _px(1.45) * k, 2, 1.0, round_px=_px(0.7) * k)
    s.circle("steel", (w * 0.2, h * 0.5), _px(0.6) * k, 0.3)    # scroll wheel axle
    return s


def _adapter(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    w, h = _px(_u(rng, 5, 7)) * k, _px(_u(rng, 4, 6)) * k
    s.shell("abs", rounded_rect_points(0, 0, w, h, h * 0.2), 2.0, 1.0, 2.0)
    for i in range(int(rng.integers(2, 4))):
        y = h * (0.25 + 0.25 * i)
        s.rounded_rect("copper", w * 0.05, y - 2, w * 0.9, 4, 1, 0.2)
        s.rounded_rect("copper", w - 2, y - 2, _px(_u(rng, 1.2, 1.8)) * k, 4, 1, 0.3)
    s.rounded_rect("steel", w * 0.3, h * 0.1, w * 0.4, h * 0.2, 1, 0.1)   # fuse
    return s
