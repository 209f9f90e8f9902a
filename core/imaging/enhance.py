"""The screening functions an inspector toggles on the canvas, and a cache of their results.

Input and output are HxWx3 uint8 RGB pseudo-colour X-ray images in the usual
dual-energy palette: orange/brown for organic matter, green for mixed or light
inorganic (aluminium, glass), blue for metal, white for empty belt, dark for what the
beam hardly crosses. Thicker means darker in every hue.

Functions (names as used in chains):

- ``pseudo_colour``: the image as scanned (identity).
- ``black_and_white``: luminance (Rec. 601 luma). The palette darkens with attenuation
  in every hue, so grey levels keep the attenuation order; white stays white.
- ``negative``: 255 - value (an involution).
- ``organic_only`` / ``inorganic_only``: keep the orange hues (resp. green and blue,
  plus unsaturated dark regions, which are too dense to classify and must not vanish
  from a metal view) and fade everything else towards white, with soft hue and
  saturation ramps so boundaries do not alias.
- ``high_penetration``: gamma < 1 contrast curve, expanding the dark end to see into
  dense regions. ``low_penetration``: gamma > 1, expanding the light end to see thin
  organics. Both keep black and white fixed and are monotone.
- ``edge_enhance``: unsharp mask (Gaussian blur, sigma 1.5, amount 1).

Everything is cv2 look-up tables and saturating cv2 arithmetic on uint8, so each
function runs in a few milliseconds on a 1225 x 954 OPIXray image.

``EnhancementCache`` keeps results keyed by (image key, function chain) under a
memory cap, least recently used out first, reusing the longest cached prefix of a
chain so toggling one more function computes only that function.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from functools import lru_cache

import cv2
import numpy as np

log = logging.getLogger(__name__)

ScreeningFunction = Callable[[np.ndarray], np.ndarray]

# Hue is OpenCV's 8-bit HSV hue: degrees / 2, 0..179.
ORGANIC_HUE_DEGREES = (-20.0, 55.0)      # brownish red through orange to orange-yellow
INORGANIC_HUE_DEGREES = (75.0, 290.0)    # yellow-green through green, cyan, blue to violet
HUE_SOFTNESS_DEGREES = 10.0              # linear ramp on each side of a band
SATURATION_RAMP = (10, 40)               # below 10: grey (noise on white); above 40: coloured
DENSE_VALUE_RAMP = (160, 80)             # an unsaturated pixel darker than 80 is dense matter
HIGH_PENETRATION_GAMMA = 0.5
LOW_PENETRATION_GAMMA = 2.0
EDGE_SIGMA = 1.5
EDGE_AMOUNT = 1.0


def check_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Refuse anything but an HxWx3 uint8 array with a message naming what it got."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{what}: expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise ValueError(f"{what}: expected an HxWx3 uint8 RGB image, got shape {image.shape} dtype {image.dtype}")
    return image


# --------------------------------------------------------------------------- look-up tables
def _ramp_lut(start: float, end: float) -> np.ndarray:
    """256-entry uint8 LUT rising linearly from 0 at ``start`` to 255 at ``end`` (falling if end < start)."""
    x = np.arange(256, dtype=np.float64)
    t = np.clip((x - start) / (end - start), 0.0, 1.0)
    return np.rint(t * 255.0).astype(np.uint8)


def _hue_band_lut(low_deg: float, high_deg: float, soft_deg: float) -> np.ndarray:
    """Membership (0..255) of each 8-bit hue in a circular band of degrees with soft edges."""
    degrees = np.arange(256, dtype=np.float64) * 2.0
    centre = (low_deg + high_deg) / 2.0
    half = (high_deg - low_deg) / 2.0
    distance = np.abs((degrees - centre + 180.0) % 360.0 - 180.0)  # circular distance to the centre
    membership = np.clip((half + soft_deg - distance) / soft_deg, 0.0, 1.0)
    membership[180:] = 0.0  # hue values above 179 do not occur
    return np.rint(membership * 255.0).astype(np.uint8)


@lru_cache(maxsize=16)
def gamma_lut(gamma: float) -> np.ndarray:
    """Contrast curve 255 * (x / 255) ** gamma; monotone, 0 -> 0 and 255 -> 255."""
    if not gamma > 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    x = np.arange(256, dtype=np.float64) / 255.0
    lut = np.rint(255.0 * x ** gamma).astype(np.uint8)
    lut.flags.writeable = False
    return lut


_ORGANIC_HUE = _hue_band_lut(*ORGANIC_HUE_DEGREES, HUE_SOFTNESS_DEGREES)
_INORGANIC_HUE = _hue_band_lut(*INORGANIC_HUE_DEGREES, HUE_SOFTNESS_DEGREES)
_SATURATED = _ramp_lut(*SATURATION_RAMP)
_DENSE = _ramp_lut(*DENSE_VALUE_RAMP)


# --------------------------------------------------------------------------- functions
def pseudo_colour(image: np.ndarray) -> np.ndarray:
    """The image as scanned."""
    return check_image(image)


def black_and_white(image: np.ndarray) -> np.ndarray:
    """Grey-level luminance, replicated to three channels."""
    grey = cv2.cvtColor(check_image(image), cv2.COLOR_RGB2GRAY)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)


def negative(image: np.ndarray) -> np.ndarray:
    """Inverted intensities: dense regions become bright."""
    return cv2.bitwise_not(check_image(image))


# Per-channel LUTs applied to an HSV image in one cv2.LUT call: channel 0 becomes the hue's
# membership of the band, channel 1 how saturated (coloured) the pixel is, channel 2 how
# dense an unsaturated pixel is (used by the inorganic view only).
_ORGANIC_HSV_LUT = cv2.merge([_ORGANIC_HUE, _SATURATED, _DENSE])
_INORGANIC_HSV_LUT = cv2.merge([_INORGANIC_HUE, _SATURATED, _DENSE])


def _fade_to_white(image: np.ndarray, keep: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """255 - keep * (255 - image) / 255: keep=255 leaves a pixel, keep=0 makes it white.

    Works in place in ``scratch`` (an HxWx3 uint8 buffer the caller no longer needs) and
    in one new output array: on a 1.2 MP image each fresh 3.5 MB allocation costs about as
    much as the arithmetic itself (page faults), so the views avoid temporaries.
    """
    keep3 = cv2.cvtColor(keep, cv2.COLOR_GRAY2RGB, dst=scratch)
    out = cv2.bitwise_not(image)
    cv2.multiply(out, keep3, dst=out, scale=1.0 / 255.0)
    return cv2.bitwise_not(out, dst=out)


def _hsv_memberships(image: np.ndarray, lut: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(hue membership, saturation ramp, density ramp, scratch HxWx3 buffer)."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    cv2.LUT(hsv, lut, dst=hsv)
    return cv2.extractChannel(hsv, 0), cv2.extractChannel(hsv, 1), cv2.extractChannel(hsv, 2), hsv


def organic_only(image: np.ndarray) -> np.ndarray:
    """Keep the orange (organic) hues, fade the rest to white."""
    hue, saturated, _, scratch = _hsv_memberships(check_image(image), _ORGANIC_HSV_LUT)
    keep = cv2.multiply(hue, saturated, dst=hue, scale=1.0 / 255.0)
    return _fade_to_white(image, keep, scratch)


def inorganic_only(image: np.ndarray) -> np.ndarray:
    """Keep green and blue (mixed and metal) and dense grey regions, fade organics to white."""
    hue, saturated, dense, scratch = _hsv_memberships(check_image(image), _INORGANIC_HSV_LUT)
    coloured = cv2.multiply(hue, saturated, dst=hue, scale=1.0 / 255.0)
    # Grey pixels have no usable hue: keep them in proportion to how dark they are, so an
    # opaque block (possibly shielding a threat) stays visible in the metal view.
    grey = cv2.bitwise_not(saturated, dst=saturated)
    grey_dense = cv2.multiply(grey, dense, dst=grey, scale=1.0 / 255.0)
    keep = cv2.add(coloured, grey_dense, dst=coloured)
    return _fade_to_white(image, keep, scratch)


def high_penetration(image: np.ndarray, gamma: float = HIGH_PENETRATION_GAMMA) -> np.ndarray:
    """Brighten and spread the dark end (gamma < 1) to see into dense regions."""
    return cv2.LUT(check_image(image), gamma_lut(float(gamma)))


def low_penetration(image: np.ndarray, gamma: float = LOW_PENETRATION_GAMMA) -> np.ndarray:
    """Darken and spread the light end (gamma > 1) to see thin organics."""
    return cv2.LUT(check_image(image), gamma_lut(float(gamma)))


def edge_enhance(image: np.ndarray, sigma: float = EDGE_SIGMA, amount: float = EDGE_AMOUNT) -> np.ndarray:
    """Unsharp mask: image + amount * (image - blur); flat regions (the white belt) unchanged."""
    blurred = cv2.GaussianBlur(check_image(image), (0, 0), sigma)
    return cv2.addWeighted(image, 1.0 + amount, blurred, -amount, 0.0, dst=blurred)


FUNCTIONS: dict[str, ScreeningFunction] = {
    "pseudo_colour": pseudo_colour,
    "black_and_white": black_and_white,
    "negative": negative,
    "organic_only": organic_only,
    "inorganic_only": inorganic_only,
    "high_penetration": high_penetration,
    "low_penetration": low_penetration,
    "edge_enhance": edge_enhance,
}
# The order a GUI should apply toggled functions in: colour selection first, then
# contrast, then edges, negative last (so the curves act on the scanned intensities).
CANONICAL_ORDER: tuple[str, ...] = ("pseudo_colour", "organic_only", "inorganic_only", "black_and_white",
                                    "high_penetration", "low_penetration", "edge_enhance", "negative")
_ALIASES = {"pseudo_color": "pseudo_colour", "black_white": "black_and_white", "bw": "black_and_white",
            "metal_only": "inorganic_only", "edge": "edge_enhance"}
_IDENTITIES = {"pseudo_colour"}


def normalise_name(name: str) -> str:
    """Canonical function name; accepts case, hyphens, spaces and a few aliases."""
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    key = _ALIASES.get(key, key)
    if key not in FUNCTIONS:
        raise ValueError(f"unknown screening function {name!r}; known: {', '.join(FUNCTIONS)}")
    return key


def normalise_chain(functions: Sequence[str]) -> tuple[str, ...]:
    """Canonical names in the given order, identities dropped (they change nothing)."""
    if isinstance(functions, str):
        raise TypeError("functions must be a sequence of names, not one string")
    return tuple(n for n in (normalise_name(f) for f in functions) if n not in _IDENTITIES)


def canonical_chain(functions: Sequence[str]) -> tuple[str, ...]:
    """A set of toggled functions in ``CANONICAL_ORDER``, each once, identities dropped."""
    chosen = set(normalise_chain(functions))
    return tuple(n for n in CANONICAL_ORDER if n in chosen)


def compose(image: np.ndarray, functions: Sequence[str]) -> np.ndarray:
    """Apply the named functions in order. An empty chain returns the image itself."""
    result = check_image(image)
    for name in normalise_chain(functions):
        result = FUNCTIONS[name](result)
    return result


# --------------------------------------------------------------------------- cache
class EnhancementCache:
    """LRU cache of screening results keyed by (image key, function chain), capped in bytes.

    ``image_key`` must identify the image's content (a bag id or content hash), never
    ``id(array)``, which Python reuses. Returned arrays are shared with the cache and
    read-only; copy one before drawing into it. Thread-safe: the lock is not held
    while computing, so a slow chain never blocks another thread's cache hit.
    """

    def __init__(self, max_bytes: int = 256 * 1024 * 1024) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[tuple[Hashable, tuple[str, ...]], np.ndarray] = OrderedDict()
        self._shapes: dict[Hashable, tuple[int, ...]] = {}
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.steps_computed = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, image_key: Hashable, image: np.ndarray, functions: Sequence[str]) -> np.ndarray:
        """The image after ``functions``, from the cache when possible."""
        check_image(image)
        chain = normalise_chain(functions)
        if not chain:
            return image
        with self._lock:
            known_shape = self._shapes.get(image_key)
            if known_shape is not None and known_shape != image.shape:
                raise ValueError(f"image key {image_key!r} was cached for shape {known_shape}, now {image.shape}: "
                                 "the key must identify the image content")
            hit = self._entries.get((image_key, chain))
            if hit is not None:
                self._entries.move_to_end((image_key, chain))
                self.hits += 1
                return hit
            self.misses += 1
            start, result = 0, image
            for length in range(len(chain) - 1, 0, -1):  # longest cached prefix
                prefix = self._entries.get((image_key, chain[:length]))
                if prefix is not None:
                    self._entries.move_to_end((image_key, chain[:length]))
                    start, result = length, prefix
                    break
        for name in chain[start:]:
            result = FUNCTIONS[name](result)
            self.steps_computed += 1
        if result is image:  # a function returned its input: never freeze the caller's array
            result = image.copy()
        result.flags.writeable = False
        self._store(image_key, chain, result, image.shape)
        return result

    def _store(self, image_key: Hashable, chain: tuple[str, ...], result: np.ndarray,
               shape: tuple[int, ...]) -> None:
        size = result.nbytes
        if size > self.max_bytes:
            log.debug("screening result of %d bytes exceeds the cache cap %d; not cached", size, self.max_bytes)
            return
        with self._lock:
            key = (image_key, chain)
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old.nbytes
            self._entries[key] = result
            self._shapes[image_key] = shape
            self.bytes += size
            while self.bytes > self.max_bytes:
                (old_image, _), evicted = self._entries.popitem(last=False)
                self.bytes -= evicted.nbytes
                if not any(k[0] == old_image for k in self._entries):
                    self._shapes.pop(old_image, None)

    def invalidate(self, image_key: Hashable | None = None) -> None:
        """Forget one image's results, or everything."""
        with self._lock:
            if image_key is None:
                self._entries.clear()
                self._shapes.clear()
                self.bytes = 0
                return
            for key in [k for k in self._entries if k[0] == image_key]:
                self.bytes -= self._entries.pop(key).nbytes
            self._shapes.pop(image_key, None)
