"""Small helpers shared by the clutter modules: random ranges and real-world sizes in pixels."""
from __future__ import annotations

import numpy as np

from .layers import PIXEL_CM


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _px(cm: float) -> float:
    return cm / PIXEL_CM


# --------------------------------------------------------------------------- electronics
