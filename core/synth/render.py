"""Beer-Lambert rendering of placed objects into a dual-energy pair and its pseudo-colour.

Pipeline (each step is a function so TIP, the scene and the tests can use it alone):

1. ``optical_depth``: ``tau_E = sum(mu_E(material) * thickness)`` per energy over every
   layer, added only inside each layer's window (no full-image pass per object).
2. ``transmission``: ``T_E = exp(-tau_E)``; objects compose by multiplication.
3. ``apply_detector``: focal-spot blur, signal-dependent quantum noise and per-row gain
   (scanline banding), seeded, only inside the window that holds material, so the
   empty belt stays exactly white.
4. ``transmission_to_colour``: the standard baggage-scanner pseudo-colour. Hue from the
   low/high attenuation ratio (an effective-Z proxy: organic ~1.5 orange, light
   inorganic ~2.6-4.2 green, metal > 5.4 blue, blended in between), darkness from the total
   attenuation, white below a small dead zone (scanners whiten the empty belt).

The colour of a pixel is ``255 * exp(-A * K(r)) * darkening(A)`` per channel, with ``A``
the combined attenuation, ``r`` the ratio and ``K`` a per-channel absorption vector of
the ratio's material class. For one material (fixed ``r``) every channel therefore gets
darker as thickness grows, and zero attenuation is white; the map is evaluated through a
lookup table over (ratio, attenuation) bins for speed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import cv2
import numpy as np

from .layers import SynthObject
from .materials import material

LOW, HIGH = 0, 1  # index of each energy in a (2, H, W) stack

# ---------------------------------------------------------------- colour model constants
# Combined attenuation A = W_LOW * tau_low + W_HIGH * tau_high, an equal mix: for metals
# the low channel dominates anyway (thin blades are dark because they stop low-energy
# photons), for organics both count.
W_LOW, W_HIGH = 0.5, 0.5
# Below this combined attenuation a pixel is drawn white (the scanner's belt whitening);
# above it the attenuation counts from zero so colour stays continuous.
DEAD_ZONE = 0.035
# The ratio is tau_low / tau_high, with a tiny epsilon so that an empty pixel reads 1
# (organic). It is not regularised any further: a regularisation that depends on the
# amount of material would shift the hue with thickness and break the monotonicity of
# each channel; faint pixels, where the ratio is noisy, lie in or near the dead zone.
RATIO_EPS = 1e-6
# Hue anchors in ratio (log-linear blend between neighbours): below 2.0 organic, 2.6-4.2
# inorganic, above 5.4 metal.
RATIO_ANCHORS = (2.0, 2.6, 4.2, 5.4)
# Per-channel absorption (R, G, B) per unit of combined attenuation. The three vectors
# have nearly the same luma weight (0.299, 0.587, 0.114) . K = 0.58-0.62, so brightness is a
# function of the attenuation alone and adding any object never brightens a pixel's luma,
# even where it changes the hue (checked in tests/test_synth_physics.py). A ~ 0.2 gives the
# pale tint of bags and clothes, A ~ 1.3 the deep orange of a bottle, green laptops at
# A ~ 0.5-1, and a steel blade (A ~ 2.4) dark blue.
K_ORGANIC = np.array([0.05, 0.62, 1.80], np.float32)
K_INORGANIC = np.array([0.90, 0.40, 1.00], np.float32)
K_METAL = np.array([1.10, 0.45, 0.10], np.float32)
# Dense objects go to black: extra darkening of all channels beyond DARK_START.
DARK_START, DARK_RATE = 1.8, 0.6
# Lookup table resolution.
A_MAX, A_BINS = 10.24, 2048
LOG_R_MIN, LOG_R_MAX, R_BINS = math.log(1.0), math.log(16.0), 64
# Transmission floor of the detector (its dynamic range): tau never exceeds -ln(floor).
T_FLOOR = 1e-4


@dataclass(frozen=True)
class DetectorModel:
    """Detector effects. Photon counts per pixel set the quantum noise (the low-energy
    channel receives fewer); ``blur_sigma`` is the focal-spot/afterglow blur in pixels;
    ``banding`` the standard deviation of each scan line's gain."""
    photons_low: float = 2500.0
    photons_high: float = 6000.0
    blur_sigma: float = 0.6
    banding: float = 0.006


DEFAULT_DETECTOR = DetectorModel()


# ---------------------------------------------------------------- optical depth
def empty_depth(height: int, width: int) -> np.ndarray:
    return np.zeros((2, height, width), np.float32)


def add_object_depth(tau: np.ndarray, obj: SynthObject, dx: int = 0, dy: int = 0) -> tuple[int, int, int, int] | None:
    """Add ``mu * t`` of every layer of ``obj`` (shifted by dx, dy) into ``tau`` in place,
    clipped to the canvas. Returns the exclusive window (x1, y1, x2, y2) touched, or None."""
    _, height, width = tau.shape
    touched = None
    for layer in obj.layers:
        x, y = layer.x + dx, layer.y + dy
        h, w = layer.shape
        x1, y1, x2, y2 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
        if x1 >= x2 or y1 >= y2:
            continue
        mat = material(layer.material)
        t = layer.thickness[y1 - y:y2 - y, x1 - x:x2 - x]
        tau[LOW, y1:y2, x1:x2] += np.float32(mat.mu_low) * t
        tau[HIGH, y1:y2, x1:x2] += np.float32(mat.mu_high) * t
        touched = (x1, y1, x2, y2) if touched is None else (
            min(touched[0], x1), min(touched[1], y1), max(touched[2], x2), max(touched[3], y2))
    return touched


def optical_depth(objects: Iterable[SynthObject], height: int, width: int) -> np.ndarray:
    """(2, H, W) float32 optical depth [low, high] of objects placed in canvas coordinates."""
    tau = empty_depth(height, width)
    for obj in objects:
        add_object_depth(tau, obj)
    return tau


def material_window(tau: np.ndarray, margin: int = 3) -> tuple[int, int, int, int] | None:
    """Exclusive (x1, y1, x2, y2) of where any optical depth is present, grown by ``margin``."""
    present = tau[HIGH] > 0
    rows = np.flatnonzero(present.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(present.any(axis=0))
    _, height, width = tau.shape
    return (max(int(cols[0]) - margin, 0), max(int(rows[0]) - margin, 0),
            min(int(cols[-1]) + 1 + margin, width), min(int(rows[-1]) + 1 + margin, height))


def transmission(tau: np.ndarray) -> np.ndarray:
    """T = exp(-tau), per energy."""
    return np.exp(-tau)


# ---------------------------------------------------------------- detector
NOISE_BANK_SIZE = 1280
_noise_bank: np.ndarray | None = None


def noise_bank() -> np.ndarray:
    """The fixed (2, N, N) bank of unit normal noise (made on first use, ~13 MB)."""
    global _noise_bank
    if _noise_bank is None:
        _noise_bank = np.random.default_rng(0x5EED).standard_normal(
            (2, NOISE_BANK_SIZE, NOISE_BANK_SIZE), dtype=np.float32)
    return _noise_bank


def noise_field(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Unit normal noise for the two channels, as ((h, w), (h, w), sign).

    Drawing a million normals per image costs more than the rest of the rendering, so
    images up to the bank's size take windows (views, no copy) of a fixed bank of white
    noise at a random offset, orientation, channel order and sign: statistically the same
    white noise, still fully determined by ``rng``. Larger images draw fresh noise."""
    if height > NOISE_BANK_SIZE or width > NOISE_BANK_SIZE:
        fresh = rng.standard_normal((2, height, width), dtype=np.float32)
        return fresh[0], fresh[1], 1.0
    bank = noise_bank()
    transpose = bool(rng.integers(2))
    hh, ww = (width, height) if transpose else (height, width)
    oy = int(rng.integers(0, NOISE_BANK_SIZE - hh + 1))
    ox = int(rng.integers(0, NOISE_BANK_SIZE - ww + 1))
    swap = int(rng.integers(2))
    sign = 1.0 if rng.integers(2) else -1.0
    low, high = bank[swap, oy:oy + hh, ox:ox + ww], bank[1 - swap, oy:oy + hh, ox:ox + ww]
    if transpose:
        low, high = low.T, high.T
    return low, high, sign


def apply_detector(trans: np.ndarray, rng: np.random.Generator, model: DetectorModel = DEFAULT_DETECTOR,
                   window: tuple[int, int, int, int] | None = None, in_place: bool = False) -> np.ndarray:
    """Blur, quantum noise and banding on a (2, H, W) transmission pair, inside ``window``
    (default: the whole image). Outside the window the pair is returned untouched, so an
    empty belt stays exactly 1. Values are clipped to [T_FLOOR, 1]. ``in_place`` writes
    into ``trans`` itself (a float32 array the caller owns) instead of a copy."""
    out = trans if in_place else trans.copy()
    _, height, width = trans.shape
    x1, y1, x2, y2 = window if window is not None else (0, 0, width, height)
    if x1 >= x2 or y1 >= y2:
        return out
    win = out[:, y1:y2, x1:x2]
    h, w = y2 - y1, x2 - x1
    noise_low, noise_high, sign = noise_field(rng, h, w)
    row_gain = 1.0 + np.float32(model.banding) * rng.standard_normal((h, 1), dtype=np.float32)
    for channel, photons, noise in ((LOW, model.photons_low, noise_low), (HIGH, model.photons_high, noise_high)):
        sig = win[channel]
        if model.blur_sigma > 0:
            sig = cv2.GaussianBlur(sig, (0, 0), model.blur_sigma, borderType=cv2.BORDER_REPLICATE)
        # Poisson counts are ~ normal with variance = mean for these photon numbers:
        # T + noise * sqrt(T / photons), in place to spare full-window temporaries.
        noisy = np.multiply(sig, np.float32(1.0 / photons))
        np.sqrt(noisy, out=noisy)
        noisy *= noise
        if sign < 0:
            np.negative(noisy, out=noisy)
        noisy += sig
        noisy *= row_gain
        np.clip(noisy, T_FLOOR, 1.0, out=win[channel])
    return out


# ---------------------------------------------------------------- pseudo-colour
def _hue_weights(log_r: np.ndarray) -> np.ndarray:
    """(n, 3) weights of organic, inorganic, metal for log ratios (piecewise linear in log r)."""
    a0, a1, a2, a3 = (math.log(v) for v in RATIO_ANCHORS)
    to_inorganic = np.clip((log_r - a0) / (a1 - a0), 0.0, 1.0)
    to_metal = np.clip((log_r - a2) / (a3 - a2), 0.0, 1.0)
    w_org = 1.0 - to_inorganic
    w_metal = to_metal
    w_inorg = to_inorganic - to_metal
    return np.stack([w_org, w_inorg, w_metal], axis=-1)


def _build_lut() -> np.ndarray:
    log_r = LOG_R_MIN + (np.arange(R_BINS) + 0.5) * (LOG_R_MAX - LOG_R_MIN) / R_BINS
    k = _hue_weights(log_r) @ np.stack([K_ORGANIC, K_INORGANIC, K_METAL])     # (R_BINS, 3)
    a = np.arange(A_BINS, dtype=np.float64) * (A_MAX / A_BINS)                 # bin starts: A=0 -> white
    dark = np.maximum(a - DARK_START, 0.0) * DARK_RATE
    colour = 255.0 * np.exp(-(a[None, :, None] * k[:, None, :]) - dark[None, :, None])
    return np.clip(np.rint(colour), 0, 255).astype(np.uint8).reshape(R_BINS * A_BINS, 3)


_LUT = _build_lut()


def attenuation_and_ratio(tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Combined attenuation A (dead zone removed) and the low/high ratio r."""
    tau_l, tau_h = tau[LOW], tau[HIGH]
    a = W_LOW * tau_l + W_HIGH * tau_h - np.float32(DEAD_ZONE)
    np.maximum(a, 0.0, out=a)
    r = (tau_l + np.float32(RATIO_EPS)) / (tau_h + np.float32(RATIO_EPS))
    return a, r


def depth_to_colour(tau: np.ndarray) -> np.ndarray:
    """Pseudo-colour (H, W, 3) uint8 RGB of a (2, H, W) optical depth pair.

    Same as looking up ``attenuation_and_ratio`` in the table, written with in-place
    operations because it runs over every pixel of every image."""
    if tau.min(initial=0.0) < 0:  # callers may pass differences of depths with rounding below 0
        tau = np.maximum(tau, 0.0)
    return _lookup_colour(tau)


def _lookup_colour(tau: np.ndarray) -> np.ndarray:
    tau_l, tau_h = tau[LOW], tau[HIGH]
    a_scale = A_BINS / A_MAX
    a = np.multiply(tau_l, np.float32(W_LOW * a_scale))
    tmp = np.multiply(tau_h, np.float32(W_HIGH * a_scale))
    a += tmp
    a -= np.float32(DEAD_ZONE * a_scale)
    np.clip(a, 0.0, A_BINS - 1, out=a)
    index = a.astype(np.int32)
    np.add(tau_l, np.float32(RATIO_EPS), out=tmp)
    np.add(tau_h, np.float32(RATIO_EPS), out=a)
    np.divide(tmp, a, out=tmp)
    np.log(tmp, out=tmp)
    tmp -= np.float32(LOG_R_MIN)
    tmp *= np.float32(R_BINS / (LOG_R_MAX - LOG_R_MIN))
    np.clip(tmp, 0.0, R_BINS - 1, out=tmp)
    r_idx = tmp.astype(np.int32)
    r_idx *= A_BINS
    index += r_idx
    return np.take(_LUT, index, axis=0)


def transmission_to_colour(trans: np.ndarray) -> np.ndarray:
    """Pseudo-colour (H, W, 3) uint8 RGB of a (2, H, W) transmission pair in (0, 1]."""
    trans = np.asarray(trans, np.float32)
    if trans.ndim != 3 or trans.shape[0] != 2:
        raise ValueError(f"expected a (2, H, W) transmission pair [low, high], got shape {trans.shape}")
    tau = np.clip(trans, T_FLOOR, 1.0)
    np.log(tau, out=tau)
    np.negative(tau, out=tau)
    np.maximum(tau, 0.0, out=tau)  # -log(1) may come out as -0.0
    return _lookup_colour(tau)


def visible_mask(tau: np.ndarray) -> np.ndarray:
    """Pixels where the material alone renders other than white (noise-free): the 'visible'
    part of an object. Its tight box is an object's label box, in scenes and in TIP alike."""
    if tau.shape[1] == 0 or tau.shape[2] == 0:
        return np.zeros(tau.shape[1:], bool)
    return (depth_to_colour(tau) < 255).any(axis=-1)


def render(objects: Iterable[SynthObject], height: int, width: int, rng: np.random.Generator | None = None,
           detector: DetectorModel | None = DEFAULT_DETECTOR) -> np.ndarray:
    """Objects in canvas coordinates -> pseudo-colour RGB. Without ``rng`` or ``detector``
    the image is noise-free (what TIP composites and the tests compare)."""
    tau = optical_depth(objects, height, width)
    return render_depth(tau, rng, detector)


def render_depth(tau: np.ndarray, rng: np.random.Generator | None = None,
                 detector: DetectorModel | None = DEFAULT_DETECTOR,
                 material_box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Optical depth pair -> pseudo-colour RGB, with detector effects when ``rng`` is given.

    ``material_box`` (exclusive x1, y1, x2, y2), when the caller knows it, bounds where
    material lies and spares a search over the whole image."""
    if rng is None or detector is None:
        return depth_to_colour(tau)
    margin = int(math.ceil(3 * detector.blur_sigma)) + 1
    if material_box is None:
        window = material_window(tau, margin)
    else:
        _, height, width = tau.shape
        x1, y1, x2, y2 = material_box
        window = (max(x1 - margin, 0), max(y1 - margin, 0), min(x2 + margin, width), min(y2 + margin, height))
    if window is None or window[0] >= window[2] or window[1] >= window[3]:
        return np.full(tau.shape[1:] + (3,), 255, np.uint8)
    # Only the window holding material is processed; the rest of the belt is white.
    x1, y1, x2, y2 = window
    trans = transmission(tau[:, y1:y2, x1:x2])
    noisy = apply_detector(trans, rng, detector, in_place=True)
    image = np.full(tau.shape[1:] + (3,), 255, np.uint8)
    image[y1:y2, x1:x2] = transmission_to_colour(noisy)
    return image
