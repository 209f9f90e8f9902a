"""Occlusion levels measured on constructed cases, in isolation and inside composed scenes."""
import numpy as np
import pytest

from core.synth.layers import Layer, SynthObject
from core.synth.occlusion import OL2_FROM, OL3_FROM, image_level, level_from_opacity, measure_occlusion
from core.synth.render import optical_depth
from core.synth.scene import Catalogue, SceneConfig, compose_scene

H, W = 80, 120
BLADE = (30, 35, 60, 10)   # x, y, w, h of the cutter in the test canvas


def slab(material: str, x: int, y: int, w: int, h: int, t: float, kind: str = "") -> SynthObject:
    return SynthObject(kind or material, [Layer(material, np.full((h, w), t, np.float32), x, y)])


def blade() -> SynthObject:
    x, y, w, h = BLADE
    return slab("steel", x, y, w, h, 0.2, "Straight_Knife")


def occlusion_under(*others: SynthObject):
    return measure_occlusion(optical_depth([blade()], H, W), optical_depth(list(others), H, W))


def test_nothing_else_is_ol1_with_zero_opacity():
    occ = occlusion_under()
    assert (occ.level, occ.opacity, occ.covered) == (1, 0.0, 0.0)
    assert occ.mask_pixels == BLADE[2] * BLADE[3]


def test_overlap_elsewhere_does_not_count():
    occ = occlusion_under(slab("steel", 0, 0, 25, 80, 1.0), slab("battery", 95, 0, 25, 80, 2.0))
    assert occ.level == 1 and occ.opacity == 0.0


def test_a_thin_tray_underneath_is_still_ol1():
    occ = occlusion_under(slab("plastic", 0, 0, W, H, 0.4))
    assert occ.level == 1 and 0.0 < occ.opacity < OL2_FROM
    assert occ.covered == 0.0


def test_a_laptop_shell_over_the_whole_blade_is_ol2():
    occ = occlusion_under(slab("aluminium", 20, 20, 90, 45, 0.4))
    assert occ.level == 2
    assert occ.covered == 1.0


def test_a_thick_steel_plate_over_it_is_ol3():
    occ = occlusion_under(slab("steel", 0, 0, W, H, 0.6))
    assert occ.level == 3 and occ.opacity > 0.95 and occ.covered == 1.0


def test_opacity_grows_with_the_covered_part():
    x, y, w, h = BLADE
    results = [occlusion_under(slab("steel", x, y, cw, h, 0.6)) for cw in (0, 20, 45, 60)]
    opacities = [r.opacity for r in results]
    assert opacities == sorted(opacities) and len(set(opacities)) == 4
    assert [r.level for r in results] == [1, 2, 3, 3]
    assert results[1].covered == pytest.approx(1 / 3)


def test_level_thresholds_and_image_level():
    assert level_from_opacity(0.0) == 1
    assert level_from_opacity(OL2_FROM - 1e-6) == 1
    assert level_from_opacity(OL2_FROM) == 2
    assert level_from_opacity(OL3_FROM) == 3
    assert 0 < OL2_FROM < OL3_FROM < 1
    assert image_level([1, 3, 2]) == 3
    with pytest.raises(ValueError):
        image_level([])
    with pytest.raises(ValueError, match="optical depth windows"):
        measure_occlusion(np.zeros((2, 4, 4), np.float32), np.zeros((2, 4, 5), np.float32))


# -- inside composed scenes, with a catalogue built here --------------------------------------
def tray(rng, w, h):
    return [slab("plastic", 0, 0, w, h, 0.3, "tray")]


def no_clutter(rng, n, scale):
    return []


def plate_over_everything(rng, n, scale):
    return [slab("steel", 0, 0, 1400, 1100, 0.5, "plate")]


def bar_cutter(name, rng, length, angle=None):
    return slab("steel", 0, 0, int(length), 12, 0.2, name)


@pytest.mark.parametrize("clutter, level", [(no_clutter, 1), (plate_over_everything, 3)])
def test_scene_levels_follow_what_covers_the_cutter(clutter, level):
    config = SceneConfig(width=400, height=300, two_cutter_rate=1.0, detector=None)
    scene = compose_scene(np.random.default_rng(0), config, Catalogue(tray, clutter, bar_cutter))
    assert len(scene.occlusions) == 2
    assert scene.levels == [level, level] and scene.image_level == level
