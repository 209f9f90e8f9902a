"""Items boxed and false alarms per bag by occlusion level, at the operating point: counts and comparison."""
import numpy as np
import pytest

from core.evaluation.alarms_by_level import (alarm_counts, alarms_table, compare_alarms_by_level,
                                             model_alarms_by_level, model_alarms_table)
from core.evaluation.operating_point import operating_point
from core.evaluation.runner import SplitPredictions, evaluate_predictions


def _image(gt, dets):
    truth = {"boxes": np.array([b for b, _ in gt], dtype=float).reshape(-1, 4),
             "labels": np.array([c for _, c in gt], dtype=np.int64)}
    det = {"boxes": np.array([d[0] for d in dets], dtype=float).reshape(-1, 4),
           "labels": np.array([d[1] for d in dets], dtype=np.int64),
           "scores": np.array([d[2] for d in dets], dtype=float)}
    return truth, det


def _predictions(images, levels):
    return SplitPredictions([f"{i:03d}" for i in range(len(images))], [t for t, _ in images],
                            [d for _, d in images], list(levels))


def test_counts_split_hits_from_false_alarms_at_a_threshold():
    images = [
        # a hit at 0.9, a duplicate of it (a false alarm) at 0.6, a wrong class at 0.4
        _image([((0, 0, 10, 10), 0)], [((0, 0, 10, 10), 0, 0.9), ((0, 0, 10, 10), 0, 0.6), ((0, 0, 10, 10), 1, 0.4)]),
        # two items, one boxed at 0.3, one missed; a box on empty space at 0.8
        _image([((0, 0, 10, 10), 2), ((50, 50, 60, 60), 3)], [((0, 0, 10, 10), 2, 0.3), ((100, 0, 120, 9), 4, 0.8)]),
    ]
    _, outcomes, _ = evaluate_predictions(_predictions(images, [1, 3]))
    assert alarm_counts(outcomes, 0.5).tolist() == [[1, 1, 1], [0, 1, 2]]
    assert alarm_counts(outcomes, 0.0).tolist() == [[1, 2, 1], [1, 1, 2]]
    assert alarm_counts(outcomes, 0.95).tolist() == [[0, 0, 1], [0, 0, 2]]

    one = model_alarms_by_level(outcomes, [1, 3], 0.5)
    rows = {row["images"]: row for row in one["rows"]}
    assert list(rows) == ["all", "OL1", "OL3"]                    # no OL2 image: no OL2 row
    assert rows["all"] == {"images": "all", "bags": 2, "recall": pytest.approx(1 / 3),
                           "false_alarms_per_bag": 1.0, "precision": 1 / 3}
    assert rows["OL3"]["recall"] == 0 and rows["OL3"]["precision"] == 0
    nothing = model_alarms_by_level(outcomes, None, 0.95)        # a split without OL lists; no box kept
    assert [row["images"] for row in nothing["rows"]] == ["all"] and nothing["rows"][0]["precision"] is None
    text = model_alarms_table(nothing)
    assert "n/a" in text and "false alarms / bag" in text


def test_recall_over_all_images_is_the_operating_point_recall():
    rng = np.random.default_rng(3)
    images = []
    for _ in range(40):
        x = rng.uniform(0, 200)
        gt = [((x, 10, x + 40, 50), int(rng.integers(5)))]
        dets = [((x + rng.uniform(-8, 8), 10, x + 40, 50), gt[0][1], rng.uniform(0.2, 1.0)),
                ((300, 300, 340, 340), int(rng.integers(5)), rng.uniform(0.0, 0.8))]
        images.append(_image(gt, dets))
    predictions = _predictions(images, rng.integers(1, 4, size=40))
    result, outcomes, levels = evaluate_predictions(predictions)
    point = operating_point(result)
    counts = alarm_counts(outcomes, point["threshold"])
    report = compare_alarms_by_level({"a": [counts], "b": [counts]}, levels, rounds=100)
    rows = {(r["images"], r["measure"]): r for r in report["rows"]}
    assert rows[("all", "recall")]["mean"]["a"] == pytest.approx(point["recall"], abs=1e-4)
    assert rows[("all", "precision")]["mean"]["a"] == pytest.approx(point["precision"], abs=1e-4)
    assert sum(rows[(f"OL{lv}", "recall")]["bags"] for lv in (1, 2, 3)) == 40
    for row in report["rows"]:           # the same model twice differs by exactly nothing
        assert row["difference"] == 0 and row["interval_seeds_and_images"] == [0.0, 0.0]


def test_an_arm_that_false_alarms_on_occluded_bags_shows_there_only():
    levels = np.repeat([1, 2, 3], 30)
    clean = np.tile([1.0, 0.0, 1.0], (90, 1))                    # every item boxed, no false alarm
    noisy = clean.copy()
    noisy[levels == 3, 1] = 2.0                                   # two false alarms on every OL3 bag
    seeds = [noisy, noisy.copy()]
    seeds[1][levels == 3, 1] = 1.0
    report = compare_alarms_by_level({"noisy": seeds, "clean": [clean]}, levels, rounds=200,
                                     thresholds={"noisy": [0.3, 0.4], "clean": [0.35]})
    rows = {(r["images"], r["measure"]): r for r in report["rows"]}
    assert rows[("OL3", "false_alarms_per_bag")]["difference"] == pytest.approx(1.5)
    assert rows[("OL3", "false_alarms_per_bag")]["seed_pairs_above_zero"] == "2 of 2"
    assert rows[("OL3", "false_alarms_per_bag")]["interval_seeds_and_images"][0] >= 1.0
    assert rows[("OL3", "precision")]["difference"] < 0
    assert rows[("OL1", "false_alarms_per_bag")]["difference"] == 0
    assert rows[("OL3", "recall")]["difference"] == 0
    assert report["thresholds"] == {"noisy": [0.3, 0.4], "clean": [0.35]}
    text = alarms_table(report)
    assert "noisy - clean" in text and "false alarms / bag" in text and "+1.50" in text


def test_shapes_and_arms_are_checked():
    levels = [1, 2, None]
    good = np.array([[1.0, 0.0, 1.0]] * 3)
    with pytest.raises(ValueError, match="exactly two arms"):
        compare_alarms_by_level({"a": [good]}, levels, rounds=100)
    with pytest.raises(ValueError, match="for each of the 3 images"):
        compare_alarms_by_level({"a": [good[:2]], "b": [good]}, levels, rounds=100)
    with pytest.raises(ValueError, match="at least one model"):
        compare_alarms_by_level({"a": [], "b": [good]}, levels, rounds=100)
    other = good.copy()
    other[0, 2] = 2
    with pytest.raises(ValueError, match="same images"):
        compare_alarms_by_level({"a": [good], "b": [other]}, levels, rounds=100)
    with pytest.raises(ValueError, match="rounds"):
        compare_alarms_by_level({"a": [good], "b": [good]}, levels, rounds=10)
