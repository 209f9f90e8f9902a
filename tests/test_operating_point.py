"""The operating point: the pooled-F1 best score threshold, on hand-made cases."""
from __future__ import annotations

import numpy as np

from core.evaluation.operating_point import operating_point
from core.evaluation.runner import summarise
from core.evaluation.voc import evaluate_detections


def case(scores_hits: list[tuple[float, bool]], misses: int = 0):
    """One image per detection: a hit lies on its image's item, a false alarm is on an image without one."""
    truths, found = [], []
    for score, hit in scores_hits:
        truths.append({"boxes": np.array([[10, 10, 50, 50]] if hit else np.zeros((0, 4)), float),
                       "labels": np.array([0] if hit else [], int)})
        found.append({"boxes": np.array([[10, 10, 50, 50]], float), "labels": np.array([0]), "scores": np.array([score])})
    for _ in range(misses):
        truths.append({"boxes": np.array([[10, 10, 50, 50]], float), "labels": np.array([0])})
        found.append({"boxes": np.zeros((0, 4)), "labels": np.zeros(0, int), "scores": np.zeros(0)})
    return evaluate_detections(truths, found)


def test_threshold_sits_above_the_false_alarms_and_keeps_the_hits() -> None:
    # Hits score 0.3-0.4, false alarms 0.1-0.2: the best F1 (1.0) keeps every hit and no false alarm.
    point = operating_point(case([(0.4, True), (0.35, True), (0.3, True), (0.2, False), (0.1, False)]))
    assert 0.2 < point["threshold"] <= 0.3
    assert point["precision"] == point["recall"] == point["f1"] == 1.0 and point["false_alarms_per_image"] == 0


def test_misses_lower_recall_and_the_balance_moves_the_threshold() -> None:
    # Hits at 0.9 and 0.5; false alarms at 0.6 and 0.55; two items never found.
    point = operating_point(case([(0.9, True), (0.6, False), (0.55, False), (0.5, True)], misses=2))
    # At t <= 0.5 all four detections: P 0.5, R 0.5 -> F1 0.5; at t in (0.6, 0.9]: P 1, R 0.25 -> F1 0.4.
    assert point["threshold"] <= 0.5 and point["f1"] == 0.5 and point["recall"] == 0.5
    assert point["false_alarms_per_image"] == round(2 / 6, 4)     # two false alarms over six bags


def test_no_ground_truth_gives_no_operating_point_and_summarise_carries_it() -> None:
    empty = evaluate_detections([{"boxes": np.zeros((0, 4)), "labels": np.zeros(0, int)}],
                                [{"boxes": np.array([[0, 0, 5, 5]], float), "labels": np.array([1]),
                                  "scores": np.array([0.7])}])
    assert operating_point(empty) is None
    assert summarise(case([(0.8, True)]))["operating_point"]["threshold"] <= 0.8
