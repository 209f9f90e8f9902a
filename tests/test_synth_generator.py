"""The dataset generator: OPIXray layout, exact labels, determinism across worker counts, CLI."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.classes import CLASSES
from core.cli import main
from core.data.opixray import OutputDirError, load_split, read_id_list, read_occlusion_levels, split_dirs
from core.imaging.decode import read_image
from core.synth.generator import GenerationError, generate_dataset, image_seed
from core.synth.layers import Layer, SynthObject
from core.synth.preview import look_statistics
from core.synth.scene import OPIXRAY_TEST_COUNTS, Catalogue, SceneConfig, compose_scene, posed_cutter

SMALL = SceneConfig(width=320, height=250)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "w1"
    generate_dataset(root, 4, 4, seed=11, workers=1, config=SMALL, progress=False)
    return root


def test_one_and_two_workers_write_byte_identical_datasets(one_worker, tmp_path):
    two = tmp_path / "w2"
    generate_dataset(two, 4, 4, seed=11, workers=2, config=SMALL, progress=False)
    a, b = tree_bytes(one_worker), tree_bytes(two)
    # 8 images and their annotations, 5 list files, 2 per-item occlusion tables
    assert a.keys() == b.keys() and len(a) == 8 * 2 + 5 + 2
    assert {"train/train_occlusion.csv", "test/test_occlusion.csv"} <= a.keys()
    assert [k for k in a if a[k] != b[k]] == []


def test_another_seed_gives_other_images(one_worker, tmp_path):
    other = tmp_path / "s12"
    generate_dataset(other, 1, 0, seed=12, workers=1, config=SMALL, progress=False)
    name = "train/train_image/000001.jpg"
    assert (other / name).read_bytes() != (one_worker / name).read_bytes()


def test_layout_labels_and_levels_are_complete_and_consistent(one_worker):
    train, test = load_split(one_worker, "train"), load_split(one_worker, "test")
    assert [s.image_id for s in train] == ["000001", "000002", "000003", "000004"]
    assert [s.image_id for s in test] == ["000005", "000006", "000007", "000008"]
    levels = read_occlusion_levels(one_worker)
    assert sorted(levels) == [s.image_id for s in test]
    assert set(levels.values()) <= {1, 2, 3}
    for sample in train + test:
        image = read_image(sample.image_path)
        assert image.shape == (250, 320, 3)
        assert sample.image_path.suffix == ".jpg" and len(sample.image_id) == 6
        assert 1 <= len(sample.boxes) <= 2
        for box in sample.boxes:
            assert box.label in CLASSES
            assert 0 <= box.x1 < box.x2 < 320 and 0 <= box.y1 < box.y2 < 250
            # the box holds the cutter: its pixels are darker than the belt
            assert image[box.y1:box.y2 + 1, box.x1:box.x2 + 1].min() < 150
    ann = (split_dirs(one_worker, "test")[1] / "000005.txt").read_text()
    assert ann.startswith("000005.jpg ") and ann.endswith("\n")


def test_images_match_their_scene_seed(one_worker):
    """An image can be regenerated alone from (seed, split, index): its labels agree."""
    rng = np.random.default_rng(image_seed(11, "test", 2))
    scene = compose_scene(rng, replace(SMALL, class_weights=OPIXRAY_TEST_COUNTS))
    sample = load_split(one_worker, "test")[2]
    assert [(b.label, b.x1, b.y1, b.x2, b.y2) for b in sample.boxes] == \
        [(label, *box) for label, box in zip(scene.labels, scene.boxes)]
    assert read_occlusion_levels(one_worker)[sample.image_id] == scene.image_level


def test_refuses_a_non_empty_output_directory(one_worker):
    before = tree_bytes(one_worker)
    with pytest.raises(OutputDirError):
        generate_dataset(one_worker, 1, 1, seed=0, config=SMALL, progress=False)
    assert tree_bytes(one_worker) == before


def test_cli_writes_dataset_and_preview(tmp_path, capsys):
    out, sheet = tmp_path / "ds", tmp_path / "sheet.png"
    code = main(["synth", "--out", str(out), "--train", "2", "--test", "3", "--seed", "5", "--size", "320x250",
                 "--preview", str(sheet), "--no-progress"])
    assert code == 0
    assert len(read_id_list(out / "test" / "test_knife.txt")) == 3
    assert read_image(sheet).shape[2] == 3
    assert "test occlusion levels" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--size", "12x"], "WIDTHxHEIGHT"),
    (["--size", "10x10"], "between 64 and 8192"),
    (["--train", "-3"], ">= 0"),
    (["--workers", "0"], "at least 1 worker"),
    (["--seed", "-1"], ">= 0"),
])
def test_cli_rejects_bad_arguments_with_a_message(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(["synth", "--out", str(tmp_path / "x")] + argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_refuses_non_empty_output_without_traceback(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("user data")
    assert main(["synth", "--out", str(tmp_path), "--train", "1", "--test", "1", "--no-progress"]) == 2
    assert "not an empty directory" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "user data"
    assert main(["synth", "--out", str(tmp_path / "n"), "--preview", str(tmp_path / "p.gif")]) == 2


# -- the scene composer, with a catalogue built here ------------------------------------------
def _tray(rng, w, h):
    return [SynthObject("tray", [Layer("plastic", np.full((h, w), 0.3, np.float32), 0, 0)])]


def _two_boxes(rng, n, scale):
    return [SynthObject("box", [Layer("clothing", np.full((60, 90), 3.0, np.float32), 0, 0)]) for _ in range(2)]


def _bar(name, rng, length, angle=None):
    t = np.zeros((16, int(length) + 4), np.float32)
    t[4:12, 2:2 + int(length)] = 0.2
    return SynthObject(name, [Layer("steel", t, 0, 0)])


def _broken(name, rng, length, angle=None):
    raise ArithmeticError("catalogue bug")


FAKE = Catalogue(_tray, _two_boxes, _bar)


def test_scene_boxes_are_the_tight_boxes_of_the_cutters_material():
    config = SceneConfig(width=400, height=300, two_cutter_rate=1.0, detector=None,
                         class_weights=(0, 0, 1, 0, 0), cutter_long_side=(60, 60, 60))
    scene = compose_scene(np.random.default_rng(1), config, FAKE)
    assert scene.labels == ["Scissor", "Scissor"]
    for x1, y1, x2, y2 in scene.boxes:
        assert (x2 - x1 + 1, y2 - y1 + 1) == (int(60 * config.scale), 8)
        assert scene.image[y1:y2 + 1, x1:x2 + 1].max(axis=2).min() < 200       # the steel itself
        ring = np.concatenate([scene.image[y1 - 1, x1:x2 + 1], scene.image[y2 + 1, x1:x2 + 1]])
        assert ring.min() > 100                                               # no steel beyond the box


def test_scene_is_reproducible_from_its_seed_and_white_outside_the_bag():
    config = SceneConfig(width=400, height=300)
    a = compose_scene(np.random.default_rng(5), config, FAKE)
    b = compose_scene(np.random.default_rng(5), config, FAKE)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.boxes == b.boxes and a.levels == b.levels
    x1, y1, x2, y2 = a.bag_box
    outside = np.ones(a.image.shape[:2], bool)
    outside[max(y1 - 3, 0):y2 + 4, max(x1 - 3, 0):x2 + 4] = False
    assert (a.image[outside] == 255).all()


def test_scene_with_the_real_catalogue_keeps_cutters_in_opixray_sizes():
    config = SceneConfig(detector=None)
    for i in range(3):
        scene = compose_scene(np.random.default_rng(i), config, render_image=False)
        for label, (x1, y1, x2, y2) in zip(scene.labels, scene.boxes):
            assert label in CLASSES
            assert 95 <= max(x2 - x1, y2 - y1) + 1 <= 275
            assert 0 <= x1 < x2 < config.width and 0 <= y1 < y2 < config.height


def test_a_failing_image_is_named_in_the_error(tmp_path):
    with pytest.raises(GenerationError, match=r"image 000001 \(train #0 of seed 3\).*catalogue bug"):
        generate_dataset(tmp_path / "d", 1, 1, seed=3, config=SMALL, catalogue=Catalogue(_tray, _two_boxes, _broken),
                         progress=False)


def test_scene_config_rejects_nonsense():
    with pytest.raises(ValueError, match="class_weights"):
        SceneConfig(class_weights=(1, 2))
    with pytest.raises(ValueError, match="two_cutter_rate"):
        SceneConfig(two_cutter_rate=1.5)
    with pytest.raises(ValueError, match="at least 64x64"):
        SceneConfig(width=10, height=10)


def test_look_statistics_counts_white_and_hue_shares():
    img = np.full((100, 100, 3), 255, np.uint8)
    img[:10, :50] = (240, 150, 40)     # orange
    img[10:20, :30] = (80, 180, 70)    # green
    img[20:30, :20] = (30, 60, 200)    # blue
    stats = look_statistics([img])
    assert stats["white"] == pytest.approx(1 - 0.1, abs=1e-3)
    assert (stats["orange"], stats["green"], stats["blue"]) == (0.5, 0.3, 0.2)


def test_cutters_lie_near_the_axes_like_opixray():
    rng = np.random.default_rng(0)
    knife = posed_cutter("Straight_Knife", rng, 200.0, 90.0)
    x1, y1, x2, y2 = knife.tight_box()
    assert y2 - y1 + 1 == pytest.approx(200, abs=2) and x2 - x1 < 100
    areas = []
    config = SceneConfig(detector=None)
    for i in range(16):
        scene = compose_scene(np.random.default_rng(100 + i), config, render_image=False)
        areas += [(b[2] - b[0] + 1) * (b[3] - b[1] + 1) / (config.width * config.height) for b in scene.boxes]
    assert 0.004 < float(np.median(areas)) < 0.013   # OPIXray: median ~0.8% of the image
