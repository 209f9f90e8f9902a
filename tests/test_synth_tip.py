"""Threat image projection: exact boxes, untouched surroundings, multiplicative compositing."""
import numpy as np
import pytest

from core.classes import CLASSES
from core.synth.layers import Layer, SynthObject
from core.synth.tip import inject_random_threat, plausible_centre, project_threat, random_threat, threat_colour


def bar(w: int = 40, h: int = 8, t: float = 0.2, material: str = "steel") -> SynthObject:
    return SynthObject("Straight_Knife", [Layer(material, np.full((h, w), t, np.float32), 3, 5)])


def textured_bag(h: int = 120, w: int = 160, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 255, np.uint8)
    img[20:100, 30:130] = rng.integers(60, 240, size=(80, 100, 3), dtype=np.uint8)
    return img


def changed_box(before: np.ndarray, after: np.ndarray):
    diff = (before != after).any(axis=2)
    rows, cols = np.flatnonzero(diff.any(axis=1)), np.flatnonzero(diff.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def test_box_is_exactly_what_changes_on_a_white_image():
    white = np.full((120, 160, 3), 255, np.uint8)
    out, box = project_threat(white, bar(), np.random.default_rng(0), position=(80, 60))
    assert changed_box(white, out) == box
    x1, y1, x2, y2 = box
    # 40x8 px of steel plus at most the focal-spot blur's fringe on each side
    assert 40 <= x2 - x1 + 1 <= 44 and 8 <= y2 - y1 + 1 <= 12
    assert abs((x1 + x2) / 2 - 80) <= 1 and abs((y1 + y2) / 2 - 60) <= 1


def test_pixels_outside_the_box_are_unchanged_and_inside_never_brighter():
    bag = textured_bag()
    out, (x1, y1, x2, y2) = project_threat(bag, bar(), np.random.default_rng(1), position=(70, 50))
    outside = np.ones(bag.shape[:2], bool)
    outside[y1:y2 + 1, x1:x2 + 1] = False
    np.testing.assert_array_equal(out[outside], bag[outside])
    assert (out <= bag).all()
    assert (out[y1:y2 + 1, x1:x2 + 1] < bag[y1:y2 + 1, x1:x2 + 1]).any()
    assert out.dtype == np.uint8 and out.shape == bag.shape


def test_compositing_is_the_per_channel_product_with_the_threat_colour():
    bag = textured_bag(seed=2)
    threat = bar(material="aluminium", t=0.5)
    colour, _, _ = threat_colour(threat)
    covered = (colour < 255).any(axis=2)
    rows, cols = np.flatnonzero(covered.any(axis=1)), np.flatnonzero(covered.any(axis=0))
    out, (x1, y1, x2, y2) = project_threat(bag, threat, np.random.default_rng(0), position=(80, 60))
    patch = colour[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.uint32)
    expected = (bag[y1:y2 + 1, x1:x2 + 1].astype(np.uint32) * patch + 127) // 255
    np.testing.assert_array_equal(out[y1:y2 + 1, x1:x2 + 1], expected)


def test_threat_at_the_border_is_clipped_and_its_box_stays_inside():
    white = np.full((100, 100, 3), 255, np.uint8)
    out, box = project_threat(white, bar(60, 10), np.random.default_rng(0), position=(5, 95))
    assert box[0] == 0 and box[3] == 99
    assert changed_box(white, out) == box
    with pytest.raises(ValueError, match="outside"):
        project_threat(white, bar(), np.random.default_rng(0), position=(500, 500))


def test_bad_images_get_a_clear_error():
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        project_threat(np.zeros((50, 50), np.uint8), bar(), np.random.default_rng(0))
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        project_threat(np.zeros((50, 50, 3), np.float32), bar(), np.random.default_rng(0))


def test_plausible_centre_lies_in_the_bag_where_the_box_fits():
    bag = textured_bag()
    rng = np.random.default_rng(3)
    for _ in range(20):
        x, y = plausible_centre(bag, rng, (40, 10))
        assert bag[y, x].min() < 235
        assert 20 <= x < 140 and 5 <= y < 115
    assert plausible_centre(np.full((50, 60, 3), 255, np.uint8), rng, (10, 10)) == (30, 25)


def test_random_threat_from_the_catalogue_goes_into_the_bag():
    bag = textured_bag(480, 640)
    bag[:] = 255
    bag[100:400, 100:540] = (250, 200, 150)
    rng = np.random.default_rng(4)
    out, (x1, y1, x2, y2) = project_threat(bag, None, rng)
    assert 0 <= x1 <= x2 < 640 and 0 <= y1 <= y2 < 480
    assert changed_box(bag, out) == (x1, y1, x2, y2)
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    assert 95 <= cx <= 545 and 95 <= cy <= 405
    threat = random_threat(rng, (640, 480), CLASSES[2])
    assert threat.kind == CLASSES[2]


def test_inject_random_threat_reports_its_class():
    bag = np.full((300, 400, 3), 255, np.uint8)
    bag[50:250, 50:350] = (245, 210, 160)
    rng = np.random.default_rng(9)
    seen = set()
    for _ in range(6):
        out, box, name = inject_random_threat(bag, rng)
        assert name in CLASSES and changed_box(bag, out) == box
        seen.add(name)
    assert len(seen) >= 2
    assert inject_random_threat(bag, rng, "Scissor")[2] == "Scissor"
