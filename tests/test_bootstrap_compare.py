"""Recipe comparison with intervals: resampled AP equals the evaluation's, and the CLI end to end."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from core.cli import main as cli_main
from core.evaluation.bootstrap import ResamplableResult, compare_arms, comparison_table, resample_images
from core.evaluation.voc import evaluate_detections, match_images
from core.inference.modelfile import save_model
from core.models.build import build_detector
from tests.tiny_dataset import make_tiny_dataset


def random_split(seed: int, num_images: int = 60, quality: float = 0.5):
    """Ground truth with 1-3 items per image and detections that hit them with prob. ``quality``.

    Scores are rounded to two decimals so that ties across images occur, as they do in real runs.
    """
    rng = np.random.default_rng(seed)
    truth, detections, levels = [], [], []
    for i in range(num_images):
        n = int(rng.integers(1, 4))
        xy = rng.uniform(0, 300, (n, 2))
        boxes = np.hstack([xy, xy + rng.uniform(20, 80, (n, 2))])
        labels = rng.integers(0, 5, n)
        truth.append({"boxes": boxes, "labels": labels})
        det_boxes, det_labels, det_scores = [], [], []
        for box, label in zip(boxes, labels):
            hit = rng.random() < quality
            shift = rng.normal(0, 2, 2) if hit else rng.uniform(60, 120, 2)   # a miss lands beside the item
            det_boxes.append(box + np.tile(shift, 2))
            det_labels.append(label)
            det_scores.append(round(float(rng.uniform(0.5, 1.0) if hit else rng.uniform(0.0, 0.7)), 2))
        for _ in range(int(rng.integers(0, 3))):             # clutter false positives
            xy = rng.uniform(0, 300, 2)
            det_boxes.append(np.concatenate([xy, xy + 40]))
            det_labels.append(int(rng.integers(0, 5)))
            det_scores.append(round(float(rng.uniform(0, 0.6)), 2))
        detections.append({"boxes": np.array(det_boxes).reshape(-1, 4), "labels": np.array(det_labels),
                           "scores": np.array(det_scores)})
        levels.append(1 + i % 3)
    return truth, detections, levels


def resamplable(truth, detections, levels) -> ResamplableResult:
    outcomes, _ = match_images(truth, detections, occlusion_levels=levels)
    return ResamplableResult(outcomes, levels)


def level_maps(result) -> dict:
    out = {"map": result.mean_ap}
    for level, subset in result.occlusion.items():
        out[f"map_ol{level}"] = subset.mean_ap
    return out


def test_unit_weights_give_exactly_the_evaluation_numbers():
    truth, detections, levels = random_split(1)
    expected = level_maps(evaluate_detections(truth, detections, occlusion_levels=levels))
    got = resamplable(truth, detections, levels).metrics()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    assert got["fall_ol1_ol3"] == pytest.approx(expected["map_ol1"] - expected["map_ol3"], abs=1e-12)


def test_weights_count_images_like_duplicating_or_dropping_them():
    truth, detections, levels = random_split(2, num_images=30)
    weights = np.ones(30)
    weights[[0, 4, 7]] = 2.0    # counted twice
    weights[[1, 9, 13, 20]] = 0.0   # left out
    order = [i for i in range(30) for _ in range(int(weights[i]))]
    expected = level_maps(evaluate_detections([truth[i] for i in order], [detections[i] for i in order],
                                              occlusion_levels=[levels[i] for i in order]))
    got = resamplable(truth, detections, levels).metrics(weights)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key


def test_resampling_keeps_each_levels_image_count():
    levels = np.array([1] * 7 + [2] * 5 + [3] * 3 + [0] * 2)
    rng = np.random.default_rng(0)
    draws = [resample_images(levels, rng) for _ in range(50)]
    for weights in draws:
        for level in (0, 1, 2, 3):
            assert weights[levels == level].sum() == (levels == level).sum()
    assert any(w.max() > 1 for w in draws) and any((w == 0).any() for w in draws)   # it does resample


def test_a_clearly_better_arm_is_found_and_equal_arms_are_not():
    good = [resamplable(*random_split(3, quality=0.9))]
    splits = [random_split(3, quality=q) for q in (0.9, 0.85, 0.3, 0.35)]
    arms = {"good": [resamplable(*s) for s in splits[:2]], "poor": [resamplable(*s) for s in splits[2:]]}
    report = compare_arms(arms, rounds=300, seed=1)
    diff = report["difference"]["map"]
    assert diff["point"] > 0.2
    assert diff["interval_seeds_and_images"][0] > 0 and diff["interval_images"][0] > 0
    assert diff["share_above_zero"] == 1.0 and diff["seed_pairs_above_zero"] == "4 of 4"
    assert [a["name"] for a in report["arms"]] == ["good", "poor"]
    assert report["images_per_level"] == {"OL1": 20, "OL2": 20, "OL3": 20}

    same = compare_arms({"a": good, "b": good}, rounds=200)
    for metric in ("map", "map_ol3", "fall_ol1_ol3"):
        d = same["difference"][metric]
        assert d["point"] == 0.0 and d["interval_images"] == [0.0, 0.0]
    assert "good (1)" not in comparison_table(report) and "good (2)" in comparison_table(report)


def test_a_noisy_arm_widens_the_interval_over_seeds():
    steady = [resamplable(*random_split(4, quality=0.6)) for _ in range(3)]
    noisy = [resamplable(*random_split(4, quality=q)) for q in (0.3, 0.6, 0.9)]
    report = compare_arms({"noisy": noisy, "steady": steady}, rounds=400, seed=2)
    d = report["difference"]["map"]
    width = lambda pair: pair[1] - pair[0]  # noqa: E731
    assert width(d["interval_seeds_and_images"]) > 1.5 * width(d["interval_images"])
    assert report["arms"][0]["sd"]["map"] > 5 * report["arms"][1]["sd"]["map"] + 1e-9


def test_arms_must_share_the_test_images():
    a = resamplable(*random_split(5, num_images=30))
    b = resamplable(*random_split(5, num_images=33))
    with pytest.raises(ValueError, match="same test images"):
        compare_arms({"a": [a], "b": [b]}, rounds=100)
    with pytest.raises(ValueError, match="exactly two arms"):
        compare_arms({"a": [a]}, rounds=100)
    with pytest.raises(ValueError, match="no models"):
        compare_arms({"a": [a], "b": []}, rounds=100)


def test_compare_cli_predicts_once_and_reuses_the_cache(tmp_path, capsys):
    data = make_tiny_dataset(tmp_path / "data", n_train=0, n_test=9)
    paths = []
    for seed, attention in ((0, "doam"), (1, "doam"), (2, "none")):
        torch.manual_seed(seed)
        path = tmp_path / f"{attention}-{seed}.pt"
        save_model(path, build_detector("fast", attention, input_size=(96, 128)).eval())
        paths.append(str(path))
    args = ["compare", "--data", str(data), "--arm", f"doam={paths[0]},{paths[1]}", "--arm", f"none={paths[2]}",
            "--rounds", "100", "--cache", str(tmp_path / "cache"), "--device", "cpu",
            "--out", str(tmp_path / "report.json")]
    assert cli_main(args) == 0
    table = capsys.readouterr().out
    assert "doam - none" in table and "OL1 - OL3 fall" in table
    cached = sorted((tmp_path / "cache").glob("*.npz"))
    assert len(cached) == 3
    report = json.loads((tmp_path / "report.json").read_text(), parse_constant=pytest.fail)  # no NaN
    assert report["arms"][0]["models"] == paths[:2] and len(report["arms"][0]["seeds"]) == 2
    assert report["arms"][1]["sd"]["map"] is None           # one seed has no spread
    mtimes = [p.stat().st_mtime_ns for p in cached]

    assert cli_main(args + ["--json"]) == 0     # the second time every model comes from the cache
    again = json.loads(capsys.readouterr().out)
    assert [p.stat().st_mtime_ns for p in cached] == mtimes
    assert again["arms"][0]["seeds"] == report["arms"][0]["seeds"]
    assert again["difference"] == report["difference"]


def test_compare_cli_rejects_bad_arms_and_a_tampered_cache(tmp_path, capsys):
    data = make_tiny_dataset(tmp_path / "data", n_train=0, n_test=4)
    torch.manual_seed(0)
    model = tmp_path / "m.pt"
    save_model(model, build_detector("fast", "none", input_size=(96, 128)).eval())
    assert cli_main(["compare", "--data", str(data), "--arm", f"a={model}", "--rounds", "100"]) == 2
    assert "exactly twice" in capsys.readouterr().err
    assert cli_main(["compare", "--data", str(data), "--arm", "a=", "--arm", f"b={model}"]) == 2
    assert "NAME=MODEL" in capsys.readouterr().err

    cache = tmp_path / "cache"
    args = ["compare", "--data", str(data), "--arm", f"a={model}", "--arm", f"b={model}", "--rounds", "100",
            "--cache", str(cache), "--json", "--device", "cpu"]
    assert cli_main(args) == 0
    first = json.loads(capsys.readouterr().out)
    (entry,) = cache.glob("*.npz")
    entry.write_bytes(b"not a numpy archive")       # a damaged cache is predicted again, not trusted
    assert cli_main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["arms"][0]["seeds"] == first["arms"][0]["seeds"]
    assert np.load(entry)["counts"].size == 4
    entry.write_bytes(entry.read_bytes()[:200])     # a truncated copy of a real archive, too
    assert cli_main(args) == 0
    assert json.loads(capsys.readouterr().out)["arms"][0]["seeds"] == first["arms"][0]["seeds"]
    assert math.isclose(second["difference"]["map"]["point"], 0.0, abs_tol=1e-12)


def test_the_cache_key_follows_the_split_images(tmp_path):
    from core.data.opixray import load_split  # noqa: PLC0415
    from core.evaluation.prediction_cache import split_fingerprint  # noqa: PLC0415

    data = make_tiny_dataset(tmp_path / "data", n_train=0, n_test=3)
    samples = load_split(data, "test")
    before = split_fingerprint(samples)
    assert split_fingerprint(load_split(data, "test")) == before
    with open(samples[1].image_path, "ab") as image:   # a regenerated or edited image
        image.write(b"\0")
    assert split_fingerprint(load_split(data, "test")) != before
    assert split_fingerprint(samples[:2]) != split_fingerprint(samples)
