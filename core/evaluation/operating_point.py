"""The score threshold at which a detector should alarm: the best F1 over all classes pooled.

AP is threshold-free, but the lane has to draw boxes from some score up, and a heat-map
detector trained for an hour scores its true positives at 0.2-0.4, not above 0.5. So each
model carries its own operating point, measured on held-out data when it is evaluated: the
threshold that maximises F1 of the pooled detections of every class (a detection counts as
a hit under the same VOC matching as AP). The lane starts its score slider there.
"""
from __future__ import annotations

import numpy as np

from core.evaluation.voc import EvalResult

GRID = np.round(np.arange(0.05, 0.96, 0.01), 2)


def saved_threshold(metrics: dict | None) -> float | None:
    """The operating threshold kept in a model's metrics (file or registry), if one was measured."""
    point = metrics.get("operating_point") if isinstance(metrics, dict) else None
    value = point.get("threshold") if isinstance(point, dict) else None
    return float(value) if isinstance(value, (int, float)) and 0.0 < value < 1.0 else None


def operating_point(result: EvalResult, grid: np.ndarray = GRID) -> dict[str, float] | None:
    """{"threshold", "precision", "recall", "f1", "false_alarms_per_image"} at the pooled-F1 maximum;
    None without ground truth."""
    classes = [c for c in result.overall.classes if c.num_ground_truth > 0]
    positives = sum(c.num_ground_truth for c in classes)
    if positives == 0:
        return None
    hits = np.zeros(len(grid))
    detections = np.zeros(len(grid))
    for c in result.overall.classes:
        if len(c.scores) == 0:
            continue
        # Detections are ranked by descending score: the first k are those scoring >= t.
        kept = np.searchsorted(-np.asarray(c.scores), -grid, side="right")
        detections += kept
        if c.num_ground_truth > 0:
            cumulative_hits = np.concatenate([[0.0], np.asarray(c.recall) * c.num_ground_truth])
            hits += cumulative_hits[kept]
    precision = np.divide(hits, detections, out=np.zeros_like(hits), where=detections > 0)
    recall = hits / positives
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(hits), where=precision + recall > 0)
    best = int(np.argmax(f1))
    # What an inspector pays for that recall: boxes on no item of their class, per bag screened.
    false_alarms = (detections[best] - hits[best]) / max(result.overall.num_images, 1)
    return {"threshold": float(grid[best]), "precision": round(float(precision[best]), 4),
            "recall": round(float(recall[best]), 4), "f1": round(float(f1[best]), 4),
            "false_alarms_per_image": round(float(false_alarms), 4)}
