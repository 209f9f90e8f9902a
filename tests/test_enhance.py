"""Screening functions for the inspector's canvas and their cache."""
from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from core.imaging import enhance
from core.imaging.enhance import (
    FUNCTIONS,
    EnhancementCache,
    black_and_white,
    canonical_chain,
    compose,
    edge_enhance,
    gamma_lut,
    high_penetration,
    inorganic_only,
    low_penetration,
    negative,
    organic_only,
)

WHITE = (255, 255, 255)
# The dual-energy palette, thin to thick for each material class.
ORGANIC_RAMP = [(255, 225, 180), (255, 190, 120), (240, 150, 60), (190, 105, 30), (120, 60, 15), (70, 35, 10)]
MIXED_RAMP = [(200, 240, 190), (150, 215, 130), (100, 180, 80), (60, 140, 50), (30, 90, 30), (15, 50, 15)]
METAL_RAMP = [(190, 210, 250), (130, 160, 240), (80, 110, 220), (40, 70, 180), (20, 40, 120), (10, 20, 60)]
ORANGE, GREEN, BLUE, DENSE_GREY = (240, 150, 60), (100, 180, 80), (40, 70, 180), (25, 25, 25)


def patch_image(height: int = 120, width: int = 160) -> np.ndarray:
    """White belt with an orange, a green, a blue and a dense grey patch."""
    image = np.full((height, width, 3), 255, np.uint8)
    image[10:50, 10:70] = ORANGE
    image[10:50, 90:150] = BLUE
    image[70:110, 10:70] = GREEN
    image[70:110, 90:150] = DENSE_GREY
    return image


def pixels(colours) -> np.ndarray:
    return np.array([colours], dtype=np.uint8)


@pytest.fixture
def scan() -> np.ndarray:
    rng = np.random.default_rng(0)
    image = patch_image(240, 320)
    noise = rng.integers(-6, 7, image.shape)
    return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_every_function_keeps_shape_and_dtype_and_leaves_input_untouched(name, scan):
    before = scan.copy()
    out = FUNCTIONS[name](scan)
    assert out.shape == scan.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(scan, before)


@pytest.mark.parametrize("name", [n for n in FUNCTIONS if n != "negative"])
def test_white_belt_stays_white(name):
    image = np.full((40, 50, 3), 255, np.uint8)
    assert (FUNCTIONS[name](image) == 255).all()


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8),
                                 np.zeros((10, 10, 3), np.float32), np.zeros((0, 10, 3), np.uint8)])
def test_bad_images_are_refused_with_their_shape_and_dtype(bad):
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        negative(bad)


def test_negative_is_an_involution(scan):
    assert (negative(scan) == 255 - scan).all()
    np.testing.assert_array_equal(negative(negative(scan)), scan)


def test_black_and_white_is_grey_and_keeps_attenuation_order():
    for ramp in (ORGANIC_RAMP, MIXED_RAMP, METAL_RAMP):
        grey = black_and_white(pixels([WHITE, *ramp]))[0]
        assert (grey[:, 0] == grey[:, 1]).all() and (grey[:, 1] == grey[:, 2]).all()
        assert grey[0, 0] == 255
        assert (np.diff(grey[:, 0].astype(int)) < 0).all(), f"thicker must be darker: {grey[:, 0]}"


def test_organic_only_keeps_orange_and_removes_blue_and_green():
    out = organic_only(patch_image())
    np.testing.assert_array_equal(out[10:50, 10:70], np.broadcast_to(ORANGE, (40, 60, 3)))
    assert (out[10:50, 90:150] == 255).all()     # metal gone
    assert (out[70:110, 10:70] == 255).all()     # mixed gone
    assert (out[70:110, 90:150] >= 250).all()    # dense grey is not organic
    kept = organic_only(pixels(ORGANIC_RAMP))
    np.testing.assert_array_equal(kept, pixels(ORGANIC_RAMP))


def test_inorganic_only_keeps_green_blue_and_dense_removes_orange():
    out = inorganic_only(patch_image())
    assert (out[10:50, 10:70] == 255).all()
    np.testing.assert_array_equal(out[10:50, 90:150], np.broadcast_to(BLUE, (40, 60, 3)))
    np.testing.assert_array_equal(out[70:110, 10:70], np.broadcast_to(GREEN, (40, 60, 3)))
    np.testing.assert_array_equal(out[70:110, 90:150], np.broadcast_to(DENSE_GREY, (40, 60, 3)))
    np.testing.assert_array_equal(inorganic_only(pixels(METAL_RAMP + MIXED_RAMP)), pixels(METAL_RAMP + MIXED_RAMP))
    assert (inorganic_only(pixels(ORGANIC_RAMP)) == 255).all()


def test_material_views_fade_softly_rather_than_cutting():
    # Hues between orange and green are partly kept in both views: no hard seam in the image.
    hsv = np.array([[[h, 200, 200] for h in range(0, 60)]], np.uint8)
    sweep = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    for view in (organic_only, inorganic_only):
        whiteness = view(sweep).astype(int).sum(axis=2)[0]
        assert np.abs(np.diff(whiteness)).max() < 120, view.__name__


def test_penetration_curves_are_monotone_fix_the_ends_and_expand_the_right_end():
    x = np.arange(256, dtype=np.uint8)
    ramp = np.stack([x, x, x], axis=1)[None]  # 1 x 256 x 3
    high = high_penetration(ramp)[0, :, 0].astype(int)
    low = low_penetration(ramp)[0, :, 0].astype(int)
    for curve in (high, low):
        assert (np.diff(curve) >= 0).all()
        assert curve[0] == 0 and curve[255] == 255
    assert (high >= x).all() and (low <= x).all()
    # Contrast expanded where it matters (the darkest eighth, dense, for high; the lightest,
    # thin organics, for low) and compressed at the other end.
    assert high[32] - high[0] > 1.5 * 32 and high[255] - high[223] < 32
    assert low[255] - low[223] > 1.5 * 32 and low[32] - low[0] < 32
    assert (gamma_lut(1.0) == x).all()
    with pytest.raises(ValueError, match="positive"):
        gamma_lut(0.0)


def test_edge_enhance_leaves_flat_regions_and_steepens_edges():
    image = np.full((60, 60, 3), 255, np.uint8)
    image[:, 30:] = (100, 100, 100)
    out = edge_enhance(image).astype(int)
    np.testing.assert_array_equal(out[:, :20], 255)
    np.testing.assert_array_equal(out[:, 42:], 100)
    assert out[30, 31, 0] < 100  # undershoot on the dark side of the edge
    assert out[30, 28, 0] == 255  # saturated overshoot on the white side, no wrap-around


def test_compose_applies_in_order_and_accepts_aliases(scan):
    np.testing.assert_array_equal(compose(scan, ["organic_only", "negative"]), negative(organic_only(scan)))
    np.testing.assert_array_equal(compose(scan, ["Negative", "edge-enhance"]), edge_enhance(negative(scan)))
    assert compose(scan, []) is scan and compose(scan, ["pseudo_color"]) is scan
    with pytest.raises(ValueError, match="unknown screening function 'sepia'"):
        compose(scan, ["sepia"])
    with pytest.raises(TypeError):
        compose(scan, "negative")
    assert canonical_chain(["negative", "edge", "organic_only", "negative", "pseudo_colour"]) == (
        "organic_only", "edge_enhance", "negative")


class CountingFunctions:
    """Wraps the registry to count how often each function really runs."""

    def __init__(self, monkeypatch):
        self.calls: dict[str, int] = {}
        for name, function in list(FUNCTIONS.items()):
            monkeypatch.setitem(FUNCTIONS, name, self._wrap(name, function))

    def _wrap(self, name, function):
        def counted(image):
            self.calls[name] = self.calls.get(name, 0) + 1
            return function(image)
        return counted


def test_cache_hit_returns_the_same_array_without_recomputing(monkeypatch, scan):
    counter = CountingFunctions(monkeypatch)
    cache = EnhancementCache()
    first = cache.get("bag-1", scan, ["organic_only", "edge_enhance"])
    second = cache.get("bag-1", scan, ["organic_only", "edge_enhance"])
    assert second is first
    assert counter.calls == {"organic_only": 1, "edge_enhance": 1}
    assert (cache.hits, cache.misses) == (1, 1)
    np.testing.assert_array_equal(first, edge_enhance(organic_only(scan)))
    assert not first.flags.writeable  # shared with the cache: callers must copy to draw
    assert cache.get("bag-1", scan, []) is scan and scan.flags.writeable


def test_cache_reuses_the_longest_cached_prefix(monkeypatch, scan):
    counter = CountingFunctions(monkeypatch)
    cache = EnhancementCache()
    cache.get("bag", scan, ["organic_only"])
    out = cache.get("bag", scan, ["organic_only", "high_penetration", "negative"])
    assert counter.calls == {"organic_only": 1, "high_penetration": 1, "negative": 1}
    np.testing.assert_array_equal(out, negative(high_penetration(organic_only(scan))))
    cache.get("other bag", scan, ["organic_only"])  # different image key: computed again
    assert counter.calls["organic_only"] == 2


def test_cache_evicts_least_recently_used_under_its_memory_cap(monkeypatch):
    counter = CountingFunctions(monkeypatch)
    image = patch_image()
    cache = EnhancementCache(max_bytes=3 * image.nbytes)
    for key in ("a", "b", "c"):
        cache.get(key, image, ["negative"])
    cache.get("a", image, ["negative"])          # a becomes most recent
    cache.get("d", image, ["negative"])          # evicts b, the least recent
    assert len(cache) == 3 and cache.bytes == 3 * image.nbytes
    assert counter.calls["negative"] == 4
    cache.get("a", image, ["negative"])
    cache.get("c", image, ["negative"])
    assert counter.calls["negative"] == 4        # still cached
    cache.get("b", image, ["negative"])
    assert counter.calls["negative"] == 5        # was evicted
    tiny = EnhancementCache(max_bytes=10)
    assert tiny.get("x", image, ["negative"]).shape == image.shape and len(tiny) == 0
    cache.invalidate("a")
    assert len(cache) == 2 and cache.bytes == 2 * image.nbytes
    cache.invalidate()
    assert len(cache) == 0 and cache.bytes == 0


def test_cache_refuses_a_key_reused_for_a_different_image():
    cache = EnhancementCache()
    cache.get("bag", patch_image(), ["negative"])
    with pytest.raises(ValueError, match="must identify the image content"):
        cache.get("bag", patch_image(60, 80), ["negative"])


def test_cache_is_safe_from_several_threads(scan):
    cache = EnhancementCache()
    expected = compose(scan, ["inorganic_only", "low_penetration"])
    errors: list[BaseException] = []

    def worker():
        try:
            for _ in range(20):
                np.testing.assert_array_equal(cache.get("bag", scan, ["inorganic_only", "low_penetration"]), expected)
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and cache.hits + cache.misses == 80 and len(cache) == 1


def test_each_function_is_fast_on_an_opixray_sized_image():
    """Generous bound for a shared CI core; measured numbers are in the report."""
    rng = np.random.default_rng(1)
    image = cv2.resize(patch_image(), (1225, 954), interpolation=cv2.INTER_NEAREST)
    image = np.clip(image.astype(np.int16) + rng.integers(-6, 7, image.shape), 0, 255).astype(np.uint8)
    for name, function in FUNCTIONS.items():
        function(image)
        best = min(_timed(function, image) for _ in range(5))
        assert best < 0.05, f"{name} took {best * 1e3:.1f} ms"


def _timed(function, image) -> float:
    start = time.perf_counter()
    function(image)
    return time.perf_counter() - start


def test_module_has_no_qt_dependency():
    assert "PySide6" not in enhance.__dict__
