"""Everyday carry-on contents as material sketches: the clutter that surrounds and hides cutters.

Sizes are real-world sizes at ``PIXEL_CM`` (0.09 cm/px) times ``scale``; thicknesses are
centimetres along the beam, chosen so that the scanner colours come out as in OPIXray:
laptops green/blue with dark battery cells, cables as thin blue curves, bottles and clothes
orange, keys and coins dark blue. Every item gets a random rotation (and mirror).
"""
from __future__ import annotations

import math

import numpy as np

from .clutter_electronics import (
    _adapter,
    _batteries,
    _cable_coil,
    _camera,
    _charger,
    _earbuds,
    _hair_dryer,
    _headphones,
    _laptop,
    _mouse,
    _power_bank,
    _tablet_or_phone,
    _watch,
)
from .clutter_household import (
    _belt,
    _blister,
    _book,
    _bottle,
    _can,
    _coins,
    _cutlery,
    _folded_clothes,
    _food_box,
    _glasses,
    _jar,
    _keys,
    _lighter,
    _pens,
    _razor,
    _shoe,
    _snack_bag,
    _toiletry_bag,
    _toothbrush,
    _tube,
    _umbrella,
    _wallet,
)
from .layers import SynthObject
from .shapes import posed

_MAKERS = {
    "laptop": _laptop,
    "tablet": lambda rng, k: _tablet_or_phone(rng, k, phone=False),
    "phone": lambda rng, k: _tablet_or_phone(rng, k, phone=True),
    "power_bank": _power_bank,
    "charger": _charger,
    "cable": _cable_coil,
    "headphones": _headphones,
    "bottle": _bottle,
    "can": _can,
    "tube": _tube,
    "folded_clothes": _folded_clothes,
    "shoe": _shoe,
    "belt": _belt,
    "umbrella": _umbrella,
    "keys": _keys,
    "coins": _coins,
    "glasses": _glasses,
    "book": _book,
    "food_box": _food_box,
    "wallet": _wallet,
    "pens": _pens,
    "camera": _camera,
    "hair_dryer": _hair_dryer,
    "earbuds": _earbuds,
    "batteries": _batteries,
    "watch": _watch,
    "jar": _jar,
    "snack_bag": _snack_bag,
    "cutlery": _cutlery,
    "mouse": _mouse,
    "adapter": _adapter,
    "blister": _blister,
    "lighter": _lighter,
    "toiletry_bag": _toiletry_bag,
    "razor": _razor,
    "toothbrush": _toothbrush,
}
CLUTTER_KINDS: tuple[str, ...] = tuple(_MAKERS)

# How often each kind turns up in a carry-on (relative weights for random_clutter).
_FREQUENCY = {"laptop": 0.5, "tablet": 0.4, "phone": 0.8, "power_bank": 0.7, "charger": 1.0, "cable": 1.5,
              "headphones": 0.5, "bottle": 1.0, "can": 0.7, "tube": 0.9, "folded_clothes": 1.6, "shoe": 0.5,
              "belt": 0.4, "umbrella": 0.5, "keys": 0.8, "coins": 0.7, "glasses": 0.6, "book": 0.8,
              "food_box": 0.6, "wallet": 0.7, "pens": 0.7, "camera": 0.3, "hair_dryer": 0.3, "earbuds": 0.5,
              "batteries": 0.4, "watch": 0.3, "jar": 0.3, "snack_bag": 0.6, "cutlery": 0.4, "mouse": 0.3,
              "adapter": 0.5, "blister": 0.4, "lighter": 0.3, "toiletry_bag": 0.6,
              "razor": 0.3, "toothbrush": 0.4}


assert set(_FREQUENCY) == set(_MAKERS), "every clutter kind needs a frequency"


def make_clutter(kind: str, rng: np.random.Generator, scale: float = 1.0) -> SynthObject:
    """One clutter item of ``kind`` (see CLUTTER_KINDS) at real size times ``scale``, randomly posed."""
    if kind not in _MAKERS:
        raise ValueError(f"unknown clutter kind {kind!r}; known: {', '.join(CLUTTER_KINDS)}")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    return posed(_MAKERS[kind](rng, scale), kind, rng)


def random_clutter(rng: np.random.Generator, n: int, scale: float = 1.0) -> list[SynthObject]:
    """``n`` items drawn with realistic frequencies (at most one laptop)."""
    kinds = list(CLUTTER_KINDS)
    weights = np.array([_FREQUENCY[k] for k in kinds])
    out = []
    for _ in range(n):
        kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
        if kind == "laptop":
            weights[kinds.index("laptop")] = 0.0
        out.append(make_clutter(kind, rng, scale))
    return out
