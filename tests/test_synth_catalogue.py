"""The object catalogue: cutters, clutter and containers as material thickness maps."""
from __future__ import annotations

import time

import numpy as np
import pytest

from core.classes import CLASSES
from core.synth.bags import CONTAINER_KINDS, make_container
from core.synth.clutter import CLUTTER_KINDS, make_clutter, random_clutter
from core.synth.cutters import cutter_sketch, make_cutter
from core.synth.layers import Layer, SynthObject
from core.synth.materials import MATERIALS
from core.synth.shapes import Sketch, dome_profile, polygon_mask, transform_object

SEEDS = (0, 1, 2, 3, 4, 5)


def assert_physical(obj: SynthObject, max_side: int) -> None:
    """Known materials, finite non-negative float32 thickness, no empty or oversized layers."""
    assert obj.layers, f"{obj.kind} has no layers"
    for layer in obj.layers:
        assert layer.material in MATERIALS, layer.material
        t = layer.thickness
        assert t.dtype == np.float32 and t.ndim == 2
        assert np.isfinite(t).all(), f"{obj.kind}/{layer.material} has non-finite thickness"
        assert t.min() >= 0.0, f"{obj.kind}/{layer.material} has negative thickness {t.min()}"
        assert t.max() > 0.0
        assert max(t.shape) <= max_side, f"{obj.kind}/{layer.material} array {t.shape} larger than {max_side}"
        # A layer is cropped to its material: its border rows/columns are not all empty.
        present = t > 1e-4
        assert present[0].any() and present[-1].any() and present[:, 0].any() and present[:, -1].any()
    x1, y1, _, _ = obj.extent()
    assert (x1, y1) == (0, 0), "objects come anchored at their own origin"


def same_object(a: SynthObject, b: SynthObject) -> bool:
    if a.kind != b.kind or len(a.layers) != len(b.layers):
        return False
    return all(la.material == lb.material and (la.x, la.y) == (lb.x, lb.y) and np.array_equal(la.thickness, lb.thickness)
               for la, lb in zip(a.layers, b.layers))


def material_pixels(obj: SynthObject, material: str | None = None, min_thickness: float = 1e-3) -> int:
    x1, y1, x2, y2 = obj.extent()
    union = np.zeros((y2 - y1, x2 - x1), bool)
    for layer in obj.layers:
        if material is None or layer.material == material:
            h, w = layer.shape
            union[layer.y - y1:layer.y - y1 + h, layer.x - x1:layer.x - x1 + w] |= layer.thickness > min_thickness
    return int(union.sum())


# --------------------------------------------------------------------------- cutters
@pytest.mark.parametrize("class_name", CLASSES)
def test_cutter_builds_physically_for_many_seeds(class_name):
    for seed in SEEDS:
        length = float(np.random.default_rng(seed).uniform(100, 270))
        obj = make_cutter(class_name, np.random.default_rng(seed), length)
        assert obj.kind == class_name
        assert_physical(obj, max_side=int(length) + 8)


@pytest.mark.parametrize("class_name", CLASSES)
def test_cutter_box_long_side_matches_requested_length(class_name):
    for seed in SEEDS:
        for length in (100.0, 170.0, 270.0):
            obj = make_cutter(class_name, np.random.default_rng(seed), length)
            x1, y1, x2, y2 = obj.tight_box()
            long_side = max(x2 - x1 + 1, y2 - y1 + 1)
            assert abs(long_side - length) <= max(2.0, 0.02 * length), (class_name, seed, length, long_side)


@pytest.mark.parametrize("class_name", CLASSES)
def test_cutter_is_deterministic_per_seed_and_varies_between_seeds(class_name):
    a = make_cutter(class_name, np.random.default_rng(11), 180.0)
    b = make_cutter(class_name, np.random.default_rng(11), 180.0)
    c = make_cutter(class_name, np.random.default_rng(12), 180.0)
    assert same_object(a, b)
    assert not same_object(a, c)


@pytest.mark.parametrize("class_name", CLASSES)
def test_cutter_blade_is_steel_and_dense(class_name):
    """The cutting parts are steel: steel covers a good share of the object and is thick enough
    to render blue (a few tenths of a millimetre at least), but not absurdly thick."""
    for seed in SEEDS:
        obj = make_cutter(class_name, np.random.default_rng(seed), 200.0)
        steel = [l for l in obj.layers if l.material == "steel"]
        assert steel, f"{class_name} seed {seed} has no steel"
        peak = max(float(l.thickness.max()) for l in steel)
        assert 0.04 <= peak <= 3.0, peak
        share = material_pixels(obj, "steel") / material_pixels(obj)
        assert share >= 0.25, f"{class_name} seed {seed}: steel covers only {share:.0%}"


def test_cutter_sketch_blade_thins_towards_its_edge():
    """Knife blades are ground: the thinnest steel of a straight knife is well under its spine."""
    sketch = cutter_sketch("Straight_Knife", np.random.default_rng(3))
    obj = sketch.render("Straight_Knife")
    steel = next(l for l in obj.layers if l.material == "steel").thickness
    values = steel[steel > 1e-3]
    assert np.percentile(values, 5) < 0.5 * values.max()


def test_cutter_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown cutter class 'Sword'"):
        make_cutter("Sword", np.random.default_rng(0), 150.0)
    with pytest.raises(ValueError, match="length_px"):
        make_cutter("Scissor", np.random.default_rng(0), float("nan"))


def test_cutter_poses_cover_all_orientations():
    """Rotation is over the full circle: the long axis of a straight knife takes many directions."""
    angles = []
    for seed in range(24):
        obj = make_cutter("Straight_Knife", np.random.default_rng(seed), 200.0)
        x1, y1, x2, y2 = obj.tight_box()
        angles.append((x2 - x1) >= (y2 - y1))
    assert 3 <= sum(angles) <= 21   # both landscape and portrait boxes occur


# --------------------------------------------------------------------------- clutter
@pytest.mark.parametrize("kind", CLUTTER_KINDS)
def test_clutter_kind_builds_physically_and_deterministically(kind):
    for seed in SEEDS[:4]:
        obj = make_clutter(kind, np.random.default_rng(seed))
        assert obj.kind == kind
        assert_physical(obj, max_side=600)
    assert same_object(make_clutter(kind, np.random.default_rng(5)), make_clutter(kind, np.random.default_rng(5)))


def test_clutter_scale_shrinks_objects():
    big = make_clutter("book", np.random.default_rng(2), 1.0)
    small = make_clutter("book", np.random.default_rng(2), 0.5)
    assert material_pixels(small) < 0.4 * material_pixels(big)


def test_laptop_has_battery_board_and_steel():
    obj = make_clutter("laptop", np.random.default_rng(0))
    materials = {l.material for l in obj.layers}
    assert {"battery", "circuit", "steel"} <= materials
    assert materials & {"aluminium", "abs"}


def test_random_clutter_count_and_at_most_one_laptop():
    for seed in range(6):
        items = random_clutter(np.random.default_rng(seed), 15, 1.0)
        assert len(items) == 15
        assert sum(i.kind == "laptop" for i in items) <= 1
        assert all(i.kind in CLUTTER_KINDS for i in items)


def test_clutter_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown clutter kind 'piano'"):
        make_clutter("piano", np.random.default_rng(0))
    with pytest.raises(ValueError, match="scale"):
        make_clutter("phone", np.random.default_rng(0), scale=0.0)


# --------------------------------------------------------------------------- containers
@pytest.mark.parametrize("kind", CONTAINER_KINDS)
def test_container_parts_share_a_frame_of_the_requested_size(kind):
    for seed in SEEDS[:3]:
        w, h = 640, 480
        parts = make_container(np.random.default_rng(seed), w, h, kind=kind)
        assert parts and all(p.kind.startswith(kind) for p in parts)
        boxes = []
        for part in parts:
            for layer in part.layers:
                assert layer.material in MATERIALS
                assert np.isfinite(layer.thickness).all() and layer.thickness.min() >= 0
            boxes.append(part.tight_box())
        body = boxes[0]
        # The body starts at the frame origin and spans about the requested size (small tilt allowed).
        assert abs(body[0]) <= 4 and abs(body[1]) <= 4
        assert 0.88 * w <= body[2] - body[0] + 1 <= w + 4
        assert 0.88 * h <= body[3] - body[1] + 1 <= h + 4
        # Fittings stay near the body.
        for b in boxes[1:]:
            assert b[0] >= -0.25 * w and b[2] <= 1.25 * w and b[1] >= -0.3 * h and b[3] <= 1.25 * h


def test_container_is_deterministic_and_varied():
    a = make_container(np.random.default_rng(4), 600, 450)
    b = make_container(np.random.default_rng(4), 600, 450)
    assert len(a) == len(b) and all(same_object(x, y) for x, y in zip(a, b))
    kinds = {make_container(np.random.default_rng(s), 600, 450)[0].kind.split(":")[0] for s in range(20)}
    assert len(kinds) >= 3


def test_suitcase_has_metal_fittings():
    parts = make_container(np.random.default_rng(1), 700, 500, kind="suitcase")
    materials = {l.material for p in parts for l in p.layers}
    assert {"aluminium", "rubber", "steel"} <= materials


def test_container_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 40x40"):
        make_container(np.random.default_rng(0), 10, 500)
    with pytest.raises(ValueError, match="unknown container kind"):
        make_container(np.random.default_rng(0), 500, 400, kind="crate")


# --------------------------------------------------------------------------- primitives
def test_dome_profile_is_a_cylinder_chord():
    mask = polygon_mask((41, 200), [(0, 0), (199, 0), (199, 40), (0, 40)])
    prof = dome_profile(mask, 20.0)
    column = prof[:, 100]
    assert column.argmax() in range(18, 23) and column.max() == pytest.approx(1.0, abs=0.02)
    assert column[2] < 0.6 and column[2] > 0.2          # thin near the rim, as a chord would be


def test_transform_object_keeps_thickness_and_area():
    t = np.zeros((20, 100), np.float32)
    t[5:15, 10:90] = 0.25
    obj = SynthObject("bar", [Layer("steel", t, 3, 4)])
    rotated = transform_object(obj, 37.0)
    r = rotated.layers[0].thickness
    assert r.max() == pytest.approx(0.25, abs=1e-3)
    assert r.sum() == pytest.approx(t.sum(), rel=0.03)     # material is conserved
    assert rotated.extent()[:2] == (0, 0)


def test_sketch_renders_in_pose_with_exact_long_side():
    s = Sketch().rounded_rect("plastic", 0, 0, 100, 20, 4, 1.0)
    for angle in (0.0, 30.0, 90.0, 135.0):
        scale = s.scale_for_long_side(149.0, angle)
        obj = s.render("bar", angle, scale)
        x1, y1, x2, y2 = obj.tight_box()
        assert abs(max(x2 - x1, y2 - y1) + 1 - 150) <= 2


def test_catalogue_is_fast():
    """Each object well under 10 ms on an idle core; the bound is loose for a shared machine."""
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    n = 0
    for name in CLASSES:
        for _ in range(4):
            make_cutter(name, rng, 200.0)
            n += 1
    items = random_clutter(rng, 40, 1.0)
    n += len(items)
    elapsed_ms = (time.perf_counter() - t0) * 1000 / n
    assert elapsed_ms < 25, f"{elapsed_ms:.1f} ms per object"
