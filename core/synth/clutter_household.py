"""Household and personal items in a carry-on: bottles, clothes, shoes, keys, books, food...
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
    wobbly_outline,
)


def _bottle(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    glass = rng.random() < 0.35
    L, d = _px(_u(rng, 14, 28)) * k, _px(_u(rng, 5, 8)) * k
    neck_l, neck_d = L * _u(rng, 0.15, 0.25), d * _u(rng, 0.3, 0.45)
    body = np.vstack([rounded_rect_points(0, -d / 2, L - neck_l, d, d * 0.2)[:12],
                      [(L - neck_l * 0.4, -neck_d / 2), (L, -neck_d / 2), (L, neck_d / 2), (L - neck_l * 0.4, neck_d / 2)],
                      rounded_rect_points(0, -d / 2, L - neck_l, d, d * 0.2)[12:]])
    # Walls along a cylinder: a shell with its rim thickness the wall seen lengthwise.
    wall_mat = "glass" if glass else "plastic"
    s.polygon(wall_mat, body, (0.6 if glass else 0.15), round_px=d / 2)
    s.shell(wall_mat, body, 0.0001, (1.2 if glass else 0.6), 2.0)
    if not glass:   # thick moulded neck and thread ring
        s.rounded_rect("plastic", L - neck_l, -neck_d * 0.55, neck_l, neck_d * 1.1, 2, neck_d * PIXEL_CM * 0.4,
                       round_px=neck_d / 2)
    fill = _u(rng, 0.0, 1.0) if rng.random() < 0.85 else 0.0
    if fill > 0.05:
        liquid = rounded_rect_points(d * 0.08, -d / 2 + 1.5, (L - neck_l) * fill, d - 3, d * 0.2)
        s.polygon("liquid", liquid, d * PIXEL_CM * 0.95, round_px=d / 2)
    s.rounded_rect("plastic", L - 1, -neck_d * 0.65, neck_l * 0.35, neck_d * 1.3, 2, neck_d * PIXEL_CM, round_px=neck_d / 2)
    if glass and rng.random() < 0.5:
        s.rounded_rect("aluminium", L - 2, -neck_d * 0.65, neck_l * 0.3, neck_d * 1.3, 2, 0.05)
    return s


def _can(rng: np.random.Generator, k: float) -> Sketch:
    """Drink can or aerosol: thin aluminium cylinder, liquid inside, a valve on aerosols."""
    s = Sketch()
    aerosol = rng.random() < 0.6
    L, d = _px(_u(rng, 12, 20) if aerosol else _u(rng, 11, 16)) * k, _px(_u(rng, 4.5, 6.6)) * k
    body = rounded_rect_points(0, -d / 2, L, d, d * 0.12)
    s.polygon("aluminium", body, 0.03, round_px=d / 2)
    s.shell("aluminium", body, 0.0001, 0.6, 2.0)
    s.polygon("liquid", rounded_rect_points(2, -d / 2 + 2, L * _u(rng, 0.5, 0.95), d - 4, d * 0.1),
              d * PIXEL_CM * 0.9, round_px=d / 2)
    if aerosol:
        s.rounded_rect("plastic", L - 2, -d * 0.45, d * 0.6, d * 0.9, d * 0.2, d * PIXEL_CM * 0.2, round_px=d / 2)
        s.rounded_rect("steel", L - 2, -d * 0.08, d * 0.3, d * 0.16, 1, 0.2)
        s.line("plastic", [(L * 0.1, 0), (L, 0)], 1.0, 0.2)  # dip tube
    return s


def _tube(rng: np.random.Generator, k: float) -> Sketch:
    """Toothpaste / cream tube: flattened plastic (or aluminium) with paste, crimped end, cap."""
    s = Sketch()
    L, w = _px(_u(rng, 10, 19)) * k, _px(_u(rng, 3, 5)) * k
    mat = "plastic" if rng.random() < 0.75 else "aluminium"
    outline = np.array([(0, -w * 0.35), (L * 0.85, -w / 2), (L, -w / 2), (L, w / 2), (L * 0.85, w / 2), (0, w * 0.35)])
    s.polygon(mat, outline, 0.05 if mat == "aluminium" else 0.1, round_px=w / 3)
    s.polygon("food", outline * (0.97, 0.85) + (L * 0.02, 0), _u(rng, 1.0, 2.0), round_px=w / 2)
    s.rounded_rect(mat, -_px(1) * k, -w * 0.42, _px(1.2) * k, w * 0.84, 1, 0.3)
    s.rounded_rect("plastic", L - 1, -w * 0.3, _px(1.5) * k, w * 0.6, 2, 1.5, round_px=w * 0.2)
    return s


# --------------------------------------------------------------------------- soft goods


def _folded_clothes(rng: np.random.Generator, k: float) -> Sketch:
    """Garments: a folded stack (hems and fold edges where fabric doubles), a crumpled heap,
    or a rolled one (a soft cylinder); jeans bring copper rivets, a zip and a button."""
    s = Sketch()
    w, h = _px(_u(rng, 20, 34)) * k, _px(_u(rng, 15, 28)) * k
    style = str(rng.choice(["folded", "folded", "folded", "crumpled", "rolled"]))
    if style == "rolled":
        h *= 0.45
        s.rounded_rect("clothing", 0, 0, w, h, h * 0.4, _u(rng, 1.0, 1.6) * h * PIXEL_CM, round_px=h / 2)
        for i in range(int(rng.integers(2, 5))):   # the spiral's turns seen side-on
            x = w * _u(rng, 0.05, 0.95)
            s.line("clothing", [(x, h * 0.05), (x + rng.normal(0, 4), h * 0.95)], _px(0.6) * k, 1.0)
    elif style == "crumpled":
        for _ in range(int(rng.integers(2, 5))):
            blob = wobbly_outline(rng, w * _u(rng, 0.6, 1.0), h * _u(rng, 0.6, 1.0), h * 0.3, h * 0.12)
            s.polygon("clothing", blob + rng.normal(0, w * 0.05, 2), _u(rng, 1.0, 2.5), round_px=_px(2) * k)
        for _ in range(int(rng.integers(3, 8))):   # creases
            p0 = np.array([_u(rng, 0.1, 0.9) * w, _u(rng, 0.1, 0.9) * h])
            p3 = p0 + rng.normal(0, w * 0.25, 2)
            s.line("clothing", bezier(p0, p0 + rng.normal(0, w * 0.1, 2), p3 + rng.normal(0, w * 0.1, 2), p3, 12),
                   _px(_u(rng, 0.4, 1.0)) * k, _u(rng, 0.8, 1.6), cylindrical=True)
    else:
        for _ in range(int(rng.integers(2, 6))):
            dx, dy = rng.normal(0, w * 0.03, 2)
            lw, lh = w * _u(rng, 0.85, 1.0), h * _u(rng, 0.85, 1.0)
            pts = rounded_rect_points(dx, dy, lw, lh, h * 0.08) + rng.normal(0, 1.5, (24, 2))
            s.polygon("clothing", pts, _u(rng, 1.5, 3.5), round_px=_px(1.5) * k)
            # Fold edges (fabric turned over, seen along its thickness) and a hem line.
            s.line("clothing", [(dx, dy + lh * 0.02), (dx + lw, dy + lh * 0.02)], _px(1.0) * k, 1.5, cylindrical=True)
            y = dy + lh * _u(rng, 0.3, 0.9)
            s.line("clothing", [(dx + 2, y), (dx + lw - 2, y + rng.normal(0, 3))], _px(0.5) * k, 0.8)
    x1, y1 = 0.2 * w, 0.2 * h
    if rng.random() < 0.25:   # jeans: rivets, a shank button and a zip
        for _ in range(int(rng.integers(2, 6))):
            s.circle("copper", (_u(rng, 0.1, 0.9) * w, _u(rng, 0.1, 0.9) * h), _px(0.4) * k, 0.3)
        s.circle("zinc", (w * 0.5, y1), _px(0.8) * k, 0.35)
        s.line("zinc", [(w * 0.5, y1 + _px(1.5) * k), (w * 0.5, y1 + _px(11) * k)], _px(0.5) * k, 0.15)
    elif rng.random() < 0.5:  # shirt buttons
        for i in range(int(rng.integers(3, 7))):
            s.circle("plastic", (x1 + w * 0.3, h * (0.15 + 0.13 * i)), _px(0.6) * k, 0.3)
    return s


def _shoe(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    L, W = _px(_u(rng, 24, 31)) * k, _px(_u(rng, 8, 11)) * k
    sole = np.vstack([arc_points(W * 0.5, 0, W * 0.5, W * 0.42, 90, 270, 10),
                      bezier((W * 0.5, -W * 0.42), (L * 0.5, -W * 0.45), (L * 0.8, -W * 0.55), (L - W * 0.45, -W * 0.48), 10),
                      arc_points(L - W * 0.5, 0, W * 0.5, W * 0.5, -90, 90, 12),
                      bezier((L - W * 0.45, W * 0.48), (L * 0.7, W * 0.4), (L * 0.5, W * 0.3), (W * 0.5, W * 0.42), 10)])
    s.polygon("rubber", sole, _u(rng, 2.0, 3.5), round_px=W * 0.15)          # sole seen edge-on-ish
    s.shell("leather" if rng.random() < 0.5 else "clothing", sole * 0.97 + (L * 0.015, 0), 0.6, 3.0, 3.0)
    if rng.random() < 0.6:   # steel shank under the arch
        s.rounded_rect("steel", L * 0.3, -W * 0.08, L * 0.3, W * 0.16, 2, _u(rng, 0.08, 0.15))
    for i in range(int(rng.integers(0, 6))):  # eyelets
        for side in (-1, 1):
            s.ring("steel", (L * (0.45 + i * 0.05), side * W * 0.18), _px(0.3) * k, _px(0.15) * k, 0.2)
    return s


def _belt(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    r = _px(_u(rng, 5, 9)) * k
    t = np.linspace(0, 2 * np.pi * _u(rng, 1.2, 2.5), 120)
    rr = r * (1 + 0.12 * t)
    pts = np.stack([rr * np.cos(t), rr * np.sin(t) * _u(rng, 0.7, 1.0)], axis=1)
    s.line("leather", pts, _px(3.5) * k, _u(rng, 0.6, 0.9))
    bw, bh = _px(_u(rng, 4, 6)) * k, _px(_u(rng, 4, 5)) * k
    c = pts[0]
    s.ring("zinc", (c[0], c[1]), max(bw, bh) / 2, max(bw, bh) / 2 - _px(0.5) * k, 0.45, squash=bh / bw)
    s.line("steel", [(c[0] - bw * 0.45, c[1]), (c[0] + bw * 0.4, c[1])], _px(0.3) * k, 0.4)
    return s


# --------------------------------------------------------------------------- small hard items


def _umbrella(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    L, d = _px(_u(rng, 22, 32)) * k, _px(_u(rng, 4, 6)) * k
    canopy = np.array([(0, -d * 0.35), (L * 0.8, -d / 2), (L, -d * 0.2), (L, d * 0.2), (L * 0.8, d / 2), (0, d * 0.35)])
    s.polygon("clothing", canopy, _u(rng, 1.5, 2.5), round_px=d / 2)
    s.line("aluminium", [(-_px(2) * k, 0), (L, 0)], _px(0.9) * k, 0.9, cylindrical=True)   # telescopic shaft
    s.line("steel", [(-_px(2) * k, 0), (L * 0.6, 0)], _px(0.5) * k, 0.3)
    n_ribs = int(rng.integers(6, 9))
    for i in range(n_ribs):
        y = (i / (n_ribs - 1) - 0.5) * d * 0.8
        s.line("steel", [(L * 0.05, y * 0.7), (L * 0.95, y * 0.5)], 1.0, 0.12)
    s.rounded_rect("plastic", -_px(_u(rng, 7, 11)) * k, -d * 0.45, _px(_u(rng, 6, 10)) * k, d * 0.9, d * 0.3, 2.0,
                   round_px=d * 0.4)
    s.rounded_rect("steel", L * 0.45, -d * 0.2, _px(2) * k, d * 0.4, 2, 0.3)                # runner spring
    return s


def _keys(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    rr = _px(_u(rng, 1.2, 1.8)) * k
    s.ring("steel", (0, 0), rr, rr - _px(0.2) * k, 0.2)
    for i in range(int(rng.integers(1, 5))):
        ang = _u(rng, -60, 60) + i * _u(rng, 20, 50)
        key = Sketch()
        L, w = _px(_u(rng, 5, 7.5)) * k, _px(_u(rng, 1.8, 2.6)) * k
        bow = ellipse_points((w * 0.55, 0), (w * 0.55, w * 0.5))
        key.polygon("steel" if rng.random() < 0.7 else "zinc", bow, 0.2, holes=[ellipse_points((w * 0.3, 0), (w * 0.12, w * 0.12))])
        bit = np.vstack([[(w * 1.0, -w * 0.2), (L, -w * 0.2), (L + w * 0.1, 0)],
                         serrated(np.array([(L, w * 0.15), (w * 1.1, w * 0.15)]), w * 0.25, w * 0.18)])
        key.polygon("steel", bit, 0.22)
        s.extend(key, ang, (0, 0), (rr * 0.6, 0) if i % 2 else (-rr * 0.6, 0))
    if rng.random() < 0.5:  # fob
        s.rounded_rect("abs", rr * 0.5, -rr * 3, _px(3) * k, _px(2) * k, 4, 1.0)
    return s


def _coins(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    for _ in range(int(rng.integers(2, 9))):
        r = _px(_u(rng, 0.8, 1.3)) * k
        c = rng.normal(0, _px(1.5) * k, 2)
        mat = str(rng.choice(["copper", "steel", "zinc"]))
        s.circle(mat, (c[0], c[1]), r, _u(rng, 0.15, 0.25))
    return s


def _glasses(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    lw, lh = _px(_u(rng, 4.5, 5.8)) * k, _px(_u(rng, 3.2, 4.5)) * k
    bridge = _px(_u(rng, 1.4, 2.0)) * k
    metal = rng.random() < 0.5
    frame_mat, frame_t = ("steel", 0.15) if metal else ("plastic", 0.8)
    for cx in (-(bridge + lw) / 2, (bridge + lw) / 2):
        s.ellipse("plastic" if rng.random() < 0.5 else "glass", (cx, 0), (lw / 2, lh / 2), 0.25)   # lenses
        s.ring(frame_mat, (cx, 0), lw / 2 + 2, lw / 2 - 1, frame_t, squash=lh / lw)
    s.line(frame_mat, [(-bridge / 2 - 1, -lh * 0.2), (0, -lh * 0.3), (bridge / 2 + 1, -lh * 0.2)], 2.0, frame_t)
    folded = rng.random() < 0.6
    for side in (-1, 1):
        x = side * (bridge / 2 + lw)
        end = (x - side * lw * 1.3, -lh * 0.3) if folded else (x + side * _px(12) * k, -lh * 0.35)
        s.line(frame_mat, [(x, -lh * 0.3), end], 2.5 if metal else 4.0, frame_t)
        s.circle("steel", (x, -lh * 0.3), 2, 0.3)   # hinge
    return s


def _book(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    w, h = _px(_u(rng, 13, 24)) * k, _px(_u(rng, 18, 30)) * k
    magazine = rng.random() < 0.4
    s.rounded_rect("paper", 0, 0, w, h, 2, _u(rng, 0.8, 1.5) if magazine else _u(rng, 2.0, 5.0))
    s.rounded_rect("paper", -1, -1, w * 0.04, h + 2, 1, 0.8)    # spine / cover fold
    if magazine and rng.random() < 0.6:   # staples
        for y in (h * 0.3, h * 0.7):
            s.line("steel", [(w * 0.01, y - _px(0.6) * k), (w * 0.01, y + _px(0.6) * k)], 1.0, 0.1)
    return s


def _food_box(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    w, h = _px(_u(rng, 8, 18)) * k, _px(_u(rng, 6, 12)) * k
    s.shell("plastic", rounded_rect_points(0, 0, w, h, h * 0.15), 0.15, 1.0, 3.0)
    for _ in range(int(rng.integers(2, 7))):   # pieces of food
        c = (_u(rng, 0.15, 0.85) * w, _u(rng, 0.15, 0.85) * h)
        s.ellipse("food", c, (_u(rng, 0.1, 0.3) * w, _u(rng, 0.1, 0.3) * h), _u(rng, 1.5, 4.0),
                  angle_deg=_u(rng, 0, 180), round_px=_px(1.5) * k)
    if rng.random() < 0.3:  # a metal spoon or fork
        s.line("steel", [(w * 0.1, h * 0.1), (w * 0.9, h * 0.2)], _px(0.8) * k, 0.2)
        s.ellipse("steel", (w * 0.9, h * 0.2), (_px(2) * k, _px(1.3) * k), 0.12)
    return s


def _wallet(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    w, h = _px(_u(rng, 10, 12)) * k, _px(_u(rng, 8, 9.5)) * k
    s.rounded_rect("leather", 0, 0, w, h, 4, _u(rng, 0.6, 1.0))
    for i in range(int(rng.integers(2, 6))):   # cards, one with a chip
        s.rounded_rect("plastic", w * 0.05 + i * 2, h * 0.1 + i * 3, _px(8.5) * k, _px(5.4) * k, 3, 0.08)
    s.rounded_rect("copper", w * 0.2, h * 0.3, _px(1.1) * k, _px(0.9) * k, 1, 0.05)
    if rng.random() < 0.5:
        s.ring("zinc", (w * 0.5, h * 0.9), _px(1.5) * k, _px(0.6) * k, 0.15, squash=0.5)   # press stud / zip pull
    return s


def _pens(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    for i in range(int(rng.integers(1, 4))):
        L, d = _px(_u(rng, 13, 15)) * k, _px(_u(rng, 0.8, 1.2)) * k
        p = Sketch()
        p.rounded_rect("plastic", 0, -d / 2, L, d, d / 2, d * PIXEL_CM * 0.5, round_px=d / 2)
        p.line("plastic", [(L * 0.05, 0), (L * 0.85, 0)], max(d * 0.3, 1), 0.1)
        p.line("steel", [(L * 0.3, 0), (L * 0.45, 0)], 1.0, 0.3)                # spring
        p.polygon("steel", [(L, -d * 0.15), (L + d * 0.8, 0), (L, d * 0.15)], 0.2)   # tip
        p.line("steel", [(L * 0.05, -d * 0.6), (L * 0.35, -d * 0.6)], 1.5, 0.05)  # clip
        s.extend(p, _u(rng, -15, 15), (0, 0), (0, i * d * 1.6))
    return s



# --------------------------------------------------------------------------- more gadgets and sundries


def _jar(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    w, h = _px(_u(rng, 6, 9)) * k, _px(_u(rng, 7, 12)) * k
    body = rounded_rect_points(0, 0, w, h, w * 0.15)
    s.polygon("glass", body, 0.5, round_px=w / 2)
    s.shell("glass", body, 0.0001, 1.5, 2.5)
    s.polygon("food", rounded_rect_points(2, h * _u(rng, 0.1, 0.6), w - 4, h * 0.9, w * 0.1), w * PIXEL_CM * 0.9,
              round_px=w / 2)
    s.rounded_rect("steel", -1, -_px(1) * k, w + 2, _px(1.2) * k, 2, 0.1)    # lid
    return s


def _snack_bag(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    w, h = _px(_u(rng, 12, 20)) * k, _px(_u(rng, 15, 25)) * k
    foil = rng.random() < 0.7
    s.rounded_rect("aluminium" if foil else "plastic", 0, 0, w, h, 4, 0.003 if foil else 0.05)
    s.rounded_rect("plastic", 0, 0, w, _px(1) * k, 1, 0.2)
    s.rounded_rect("plastic", 0, h - _px(1) * k, w, _px(1) * k, 1, 0.2)
    for _ in range(int(rng.integers(8, 25))):    # crisps, biscuits, nuts
        c = (_u(rng, 0.1, 0.9) * w, _u(rng, 0.15, 0.85) * h)
        s.ellipse("food", c, (_px(_u(rng, 0.8, 2.5)) * k, _px(_u(rng, 0.6, 1.8)) * k), _u(rng, 0.2, 0.6),
                  angle_deg=_u(rng, 0, 180))
    return s


def _cutlery(rng: np.random.Generator, k: float) -> Sketch:
    """A spoon or fork: steel that is not a cutter (the detector's hard negative)."""
    s = Sketch()
    L = _px(_u(rng, 14, 20)) * k
    w = _px(_u(rng, 0.8, 1.2)) * k
    s.polygon("steel", [(0, -w * 0.6), (L * 0.65, -w * 0.3), (L * 0.65, w * 0.3), (0, w * 0.6)], _u(rng, 0.15, 0.25))
    head_w = _px(_u(rng, 2.3, 3.2)) * k
    if rng.random() < 0.5:
        s.ellipse("steel", (L * 0.82, 0), (L * 0.19, head_w / 2), 0.12)
    else:
        s.polygon("steel", [(L * 0.63, -w * 0.35), (L * 0.75, -head_w / 2), (L * 0.75, head_w / 2), (L * 0.63, w * 0.35)], 0.18)
        for i in range(4):
            y = (i - 1.5) * head_w / 4
            s.line("steel", [(L * 0.74, y), (L, y)], max(head_w / 8, 1.0), 0.18)
    return s


def _blister(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    w, h = _px(_u(rng, 8, 11)) * k, _px(_u(rng, 4, 6)) * k
    s.rounded_rect("aluminium", 0, 0, w, h, 3, 0.004)
    s.rounded_rect("plastic", 0, 0, w, h, 3, 0.03)
    cols, rows = int(rng.integers(3, 6)), int(rng.integers(2, 3))
    for i in range(cols):
        for j in range(rows):
            c = (w * (i + 0.5) / cols, h * (j + 0.5) / rows)
            s.ellipse("food", c, (w / cols * 0.3, h / rows * 0.3), 0.4, round_px=3)
    return s


def _lighter(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    L, w = _px(_u(rng, 7, 8.5)) * k, _px(_u(rng, 2.2, 2.6)) * k
    s.rounded_rect("plastic", 0, 0, L, w, 3, 1.0, round_px=w * 0.3)
    s.rounded_rect("liquid", 2, 2, L * _u(rng, 0.3, 0.75), w - 4, 2, 0.8)    # butane
    s.rounded_rect("steel", L - 1, w * 0.1, _px(1.2) * k, w * 0.8, 2, 0.3)    # hood and wheel
    s.circle("steel", (L + _px(0.4) * k, w * 0.5), _px(0.4) * k, 0.8)
    return s


def _toiletry_bag(rng: np.random.Generator, k: float) -> Sketch:
    """A wash bag: a fabric pouch with a zip holding small bottles, tubes, a razor, a toothbrush."""
    s = Sketch()
    w, h = _px(_u(rng, 20, 28)) * k, _px(_u(rng, 11, 16)) * k
    pouch = wobbly_outline(rng, w, h, h * 0.3, h * 0.04)
    s.shell("clothing" if rng.random() < 0.6 else "plastic", pouch, 0.4, 1.5, _px(1.0) * k)
    s.line("zinc", [(w * 0.08, h * 0.05), (w * 0.92, h * 0.05)], _px(0.5) * k, 0.12)
    s.rounded_rect("zinc", w * _u(rng, 0.1, 0.8), h * 0.02, _px(2) * k, _px(1.2) * k, 2, 0.4)
    small = 0.55
    makers = [lambda: _tube(rng, k * 0.8), lambda: _bottle(rng, k * small), lambda: _can(rng, k * small),
              lambda: _razor(rng, k), lambda: _toothbrush(rng, k)]
    for i in rng.permutation(len(makers))[: int(rng.integers(2, 5))]:
        item = makers[int(i)]()
        x1, y1, x2, y2 = item.bounds()
        angle = _u(rng, -25, 25)
        offset = (w * _u(rng, 0.1, 0.5) - x1 * 0.5, h * _u(rng, 0.25, 0.75))
        s.extend(item, angle, (0.0, 0.0), offset)
    return s


def _razor(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    L, w = _px(_u(rng, 11, 14)) * k, _px(1.2) * k
    s.rounded_rect("plastic", 0, -w / 2, L, w, w * 0.4, 0.9, round_px=w * 0.4)
    s.rounded_rect("steel", L * 0.1, -w * 0.15, L * 0.6, w * 0.3, 1, 0.06)
    hw = _px(_u(rng, 3.5, 4.2)) * k
    s.rounded_rect("plastic", L - 2, -hw / 2, _px(1.2) * k, hw, 2, 0.6)
    for j in range(3):   # the blades: very thin steel strips
        x = L - 2 + _px(0.3 + 0.25 * j) * k
        s.line("steel", [(x, -hw * 0.45), (x, hw * 0.45)], 1.0, 0.04)
    return s


def _toothbrush(rng: np.random.Generator, k: float) -> Sketch:
    s = Sketch()
    L, w = _px(_u(rng, 17, 19)) * k, _px(1.1) * k
    s.rounded_rect("plastic", 0, -w / 2, L, w, w * 0.4, 0.7, round_px=w * 0.4)
    s.rounded_rect("plastic", L * 0.78, -w * 0.6, L * 0.2, w * 1.2, w * 0.3, 1.2)    # bristle tufts, seen end-on
    if rng.random() < 0.3:   # electric: motor, battery, coil
        s.rounded_rect("battery", L * 0.1, -w * 0.35, L * 0.35, w * 0.7, 2, 1.0)
        s.rounded_rect("steel", L * 0.5, -w * 0.3, L * 0.12, w * 0.6, 2, 0.5)
        s.rounded_rect("copper", L * 0.02, -w * 0.3, L * 0.06, w * 0.6, 1, 0.3)
    return s
