"""Physics invariants of the renderer: multiplicative, monotone, white background, seeded."""
import cv2
import numpy as np
import pytest

from core.synth.layers import Layer, SynthObject
from core.synth.materials import MATERIALS
from core.synth.render import (
    DEFAULT_DETECTOR, apply_detector, depth_to_colour, optical_depth, render, transmission,
    transmission_to_colour, visible_mask,
)

H, W = 60, 80


def slab(material: str, x: int, y: int, w: int, h: int, t: float) -> SynthObject:
    return SynthObject(material, [Layer(material, np.full((h, w), t, np.float32), x, y)])


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def hue_of(rgb: tuple[int, int, int]) -> int:
    return int(cv2.cvtColor(np.uint8([[rgb]]), cv2.COLOR_RGB2HSV)[0, 0, 0]) * 2


def test_empty_canvas_is_white_with_and_without_detector():
    assert (render([], H, W) == 255).all()
    assert (render([], H, W, np.random.default_rng(0)) == 255).all()


def test_belt_far_from_objects_stays_exactly_white_after_noise():
    img = render([slab("steel", 30, 20, 10, 10, 0.3)], 200, 200, np.random.default_rng(1))
    assert (img[:, 60:] == 255).all() and (img[60:] == 255).all()
    assert img[25, 35].max() < 120  # and the steel itself is dark


def test_compositing_is_multiplicative_before_noise():
    a = slab("aluminium", 5, 5, 40, 30, 0.4)
    b = SynthObject("mix", [Layer("steel", np.linspace(0, 0.3, 50 * 20, dtype=np.float32).reshape(20, 50), 20, 25),
                            Layer("clothing", np.full((30, 30), 3.0, np.float32), 40, 10)])
    t_a = transmission(optical_depth([a], H, W))
    t_b = transmission(optical_depth([b], H, W))
    t_ab = transmission(optical_depth([a, b], H, W))
    np.testing.assert_allclose(t_ab, t_a * t_b, rtol=1e-5, atol=1e-7)


def test_adding_an_object_never_brightens_transmission():
    rng = np.random.default_rng(3)
    objs = [slab(name, int(rng.integers(0, 60)), int(rng.integers(0, 40)), 20, 20, float(rng.uniform(0.05, 3)))
            for name in MATERIALS]
    previous = transmission(optical_depth([], H, W))
    for k in range(1, len(objs) + 1):
        current = transmission(optical_depth(objs[:k], H, W))
        assert (current <= previous).all()
        assert (current < previous).any()
        previous = current


def test_layers_outside_the_canvas_are_clipped_not_wrapped():
    tau = optical_depth([slab("steel", -10, -10, 20, 20, 0.2), slab("steel", W - 5, H - 5, 20, 20, 0.2)], H, W)
    present = tau[1] > 0
    assert present[:10, :10].all() and present[H - 5:, W - 5:].all()
    assert present.sum() == 100 + 25


@pytest.mark.parametrize("name", sorted(MATERIALS))
def test_colour_darkens_channel_by_channel_with_thickness(name):
    thickness = np.linspace(0.0, 8.0, 400, dtype=np.float32)
    mat = MATERIALS[name]
    tau = np.stack([mat.mu_low * thickness, mat.mu_high * thickness])[:, None, :]
    rgb = depth_to_colour(tau)[0].astype(int)
    assert (rgb[0] == 255).all()                   # no material: white
    assert (np.diff(rgb, axis=0) <= 0).all()       # every channel non-increasing
    assert rgb[-1].max() < rgb[0].max()


def test_colour_luma_never_rises_when_an_object_is_added():
    rng = np.random.default_rng(5)
    names = sorted(MATERIALS)
    base = np.zeros((2, 1, 2000), np.float32)
    extra = np.zeros_like(base)
    for i in range(base.shape[2]):
        for arr in (base, extra):
            mat = MATERIALS[names[int(rng.integers(len(names)))]]
            t = float(rng.uniform(0.0, 3.0 if mat.mu_low < 3 else 0.4))
            arr[:, 0, i] = (mat.mu_low * t, mat.mu_high * t)
    before = luma(depth_to_colour(base)[0])
    after = luma(depth_to_colour(base + extra)[0])
    assert (after <= before + 1.0).all(), np.max(after - before)


@pytest.mark.parametrize("name, thickness, lo, hi", [
    ("plastic", 6.0, 15, 45),       # organic: orange
    ("liquid", 6.0, 15, 45),
    ("aluminium", 0.6, 80, 160),    # light inorganic: green
    ("glass", 0.8, 80, 160),
    ("steel", 0.15, 200, 250),      # metal: blue
    ("copper", 0.1, 200, 250),
])
def test_hue_follows_the_material_class(name, thickness, lo, hi):
    mat = MATERIALS[name]
    tau = np.array([mat.mu_low * thickness, mat.mu_high * thickness], np.float32).reshape(2, 1, 1)
    rgb = tuple(int(v) for v in depth_to_colour(tau)[0, 0])
    assert lo <= hue_of(rgb) <= hi, (name, rgb, hue_of(rgb))


def test_dense_metal_goes_to_black_and_thin_plastic_stays_pale():
    steel = MATERIALS["steel"]
    tau = np.array([steel.mu_low, steel.mu_high], np.float32).reshape(2, 1, 1) * 1.0
    assert depth_to_colour(tau)[0, 0].max() < 40
    plastic = MATERIALS["plastic"]
    tau = np.array([plastic.mu_low, plastic.mu_high], np.float32).reshape(2, 1, 1) * 0.3
    assert depth_to_colour(tau)[0, 0].min() > 200


def test_transmission_to_colour_matches_depth_and_rejects_bad_shapes():
    tau = optical_depth([slab("aluminium", 10, 10, 30, 20, 0.5)], H, W)
    np.testing.assert_array_equal(transmission_to_colour(transmission(tau)), depth_to_colour(tau))
    with pytest.raises(ValueError, match="transmission pair"):
        transmission_to_colour(np.ones((H, W, 3), np.float32))


def test_detector_is_seeded_and_keeps_transmission_in_range():
    trans = transmission(optical_depth([slab("steel", 10, 10, 50, 30, 0.2)], H, W))
    a = apply_detector(trans, np.random.default_rng(7))
    b = apply_detector(trans, np.random.default_rng(7))
    c = apply_detector(trans, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() > 0 and a.max() <= 1.0
    # noise is signal-dependent and adds no bias worth a colour level on average
    inside = (slice(None), slice(15, 35), slice(15, 55))
    assert abs(float(a[inside].mean() - trans[inside].mean())) < 0.01 * float(trans[inside].mean()) + 1e-3


def test_detector_only_touches_its_window():
    trans = np.full((2, H, W), 0.5, np.float32)
    out = apply_detector(trans, np.random.default_rng(0), DEFAULT_DETECTOR, window=(10, 10, 30, 30))
    outside = np.ones((H, W), bool)
    outside[10:30, 10:30] = False
    assert (out[:, outside] == 0.5).all()
    assert (out[:, 10:30, 10:30] != 0.5).any()


def test_visible_mask_is_where_the_object_alone_is_not_white():
    tau = optical_depth([slab("clothing", 5, 5, 10, 10, 2.0), slab("plastic", 40, 5, 10, 10, 1e-4)], H, W)
    mask = visible_mask(tau)
    assert mask[5:15, 5:15].all()
    assert not mask[:, 30:].any()   # far too thin to show
