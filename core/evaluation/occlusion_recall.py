"""Where along the occluder-opacity scale a detector loses items: recall per opacity bin.

Per-OL AP (the paper's protocol) scores whole images by their worst item, and its OL3 holds
everything from "half the signal gone" to "under a steel plate". A synthetic dataset knows each
item's occluder opacity (core.synth.occlusion_table), so the question can be asked item by item:
of the items whose surroundings remove a given fraction of the X-rays, how many does the detector
box at the score where the lane alarms (its operating point, core.evaluation.operating_point,
measured here on the split being scored, so that every model is read at its own best F1)?

An item counts as found when a detection of its class scoring at least the threshold takes it
under VOC matching (IoU > 0.5, each detection takes one box, higher scores first), the matching
AP uses. Two arms (a recipe's seeds each) are compared with ``compare_arms``' two-level bootstrap:
images redrawn within their occlusion level, the same draw for every model, and each arm's seeds
redrawn; so the per-bin differences carry intervals read the same way as compare's.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from core.classes import CLASSES
from core.data.opixray import Box
from core.evaluation.bootstrap import paired_differences, without_nan
from core.evaluation.operating_point import operating_point
from core.evaluation.voc import EvalResult, box_iou, greedy_assign
from core.synth.occlusion_table import DEFAULT_EDGES, bin_names, bin_of, check_items



def found_items(truth: Mapping[str, np.ndarray], detections: Mapping[str, np.ndarray], threshold: float,
                iou_threshold: float = 0.5) -> np.ndarray:
    """Per ground-truth box of one image (its order), whether a detection at >= threshold takes it."""
    gt_boxes = np.asarray(truth["boxes"], dtype=np.float64).reshape(-1, 4)
    gt_labels = np.asarray(truth["labels"], dtype=np.int64)
    scores = np.asarray(detections["scores"], dtype=np.float64)
    boxes = np.asarray(detections["boxes"], dtype=np.float64).reshape(-1, 4)
    labels = np.asarray(detections["labels"], dtype=np.int64)
    found = np.zeros(len(gt_labels), dtype=bool)
    for c in np.unique(gt_labels):
        members = np.flatnonzero(gt_labels == c)
        chosen = np.flatnonzero((labels == c) & (scores >= threshold))
        order = chosen[np.argsort(-scores[chosen], kind="stable")]
        _, taken = greedy_assign(box_iou(boxes[order], gt_boxes[members]), iou_threshold)
        found[members] = taken
    return found


def hits_at_operating_point(predictions, result: EvalResult) -> tuple[np.ndarray, float]:
    """(found flag of every item of a split, the threshold used): a model's own operating point,
    measured on these same predictions (``result``: their evaluation, runner.evaluate_predictions)."""
    point = operating_point(result)
    if point is None:
        raise ValueError("the split has no ground-truth items: no operating point to count recall at")
    threshold = float(point["threshold"])
    return found_in_split(predictions, threshold), threshold


def found_in_split(predictions, threshold: float) -> np.ndarray:
    """``found_items`` of every image of a split's predictions, concatenated in image order."""
    found = [found_items(truth, det, threshold) for truth, det in zip(predictions.ground_truth, predictions.detections)]
    return np.concatenate(found) if found else np.zeros(0, dtype=bool)


def item_opacities(image_ids: Sequence[str], ground_truth: Sequence[Mapping[str, np.ndarray]],
                   table: Mapping[str, Sequence]) -> tuple[np.ndarray, np.ndarray]:
    """(opacity of each ground-truth item, index of its image), items in image then box order.

    ``table`` is ``core.synth.occlusion_table.read_table``'s; it must describe exactly these
    boxes, or ValueError names the first image where it does not.
    """
    opacities, owners = [], []
    for index, (image_id, truth) in enumerate(zip(image_ids, ground_truth)):
        items = list(table.get(image_id, ()))
        boxes = np.asarray(truth["boxes"], dtype=np.float64).reshape(-1, 4)
        labels = np.asarray(truth["labels"], dtype=np.int64)
        check_items(image_id, items, [Box(CLASSES[int(c)], *(int(v) for v in box)) for c, box in zip(labels, boxes)])
        opacities += [item.opacity for item in items]
        owners += [index] * len(items)
    return np.array(opacities, dtype=np.float64), np.array(owners, dtype=np.int64)


def _stack(flags_per_model: Sequence[np.ndarray]) -> np.ndarray:
    """models x items, as floats (weighted sums need no conversion); 0 x 0 for no models."""
    if len(flags_per_model) == 0:
        return np.zeros((0, 0))
    return np.array([np.asarray(f, dtype=np.float64) for f in flags_per_model]).reshape(len(flags_per_model), -1)


def _recall_per_bin(hits: np.ndarray, item_weights: np.ndarray, one_hot: np.ndarray) -> np.ndarray:
    """models x bins recall, items weighted (a bin with no weight is NaN)."""
    total = item_weights @ one_hot
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, ((hits * item_weights) @ one_hot) / total, math.nan)


def compare_recall_by_opacity(arms: Mapping[str, Sequence[np.ndarray]], opacities: np.ndarray, owners: np.ndarray,
                              image_levels: np.ndarray, *, edges: Sequence[float] = DEFAULT_EDGES,
                              rounds: int = 2000, seed: int = 0, confidence: float = 0.95,
                              located: Mapping[str, Sequence[np.ndarray]] | None = None) -> dict:
    """Per opacity bin: each arm's mean recall and first - second with two intervals (as compare_arms).

    ``arms``: name -> one hits array per seed (``found_items`` of every image, concatenated in the
    order of ``item_opacities``); ``image_levels``: each image's OL (0 for none), the bootstrap's strata.
    ``located``, in the same form, the same items found at any score the detections kept: each
    arm's mean per bin is reported beside the recall (no interval), to tell an item the detector
    never boxes from one it boxes below the alarm threshold.
    """
    if len(arms) != 2:
        raise ValueError(f"compare exactly two arms, got {len(arms)}: {list(arms)}")
    names = list(arms)
    matrices = [_stack(arms[n]) for n in names]
    for name, matrix in zip(names, matrices):
        if matrix.shape[0] == 0 or matrix.shape[1] != opacities.size:
            raise ValueError(f"arm {name!r}: needs at least one model with one hit flag per item "
                             f"({opacities.size}), got shape {matrix.shape}")
    bins = bin_of(opacities, edges)
    one_hot = np.eye(len(edges) - 1)[bins]                           # items x bins
    point = [_recall_per_bin(m, np.ones(opacities.size), one_hot) for m in matrices]
    if located is not None:
        located_matrices = [_stack(located.get(n, ())) for n in names]
        if any(lm.shape != m.shape for lm, m in zip(located_matrices, matrices)):
            raise ValueError("located needs, for each arm, one flag per item for each of its models")
        located_point = [_recall_per_bin(lm, np.ones(opacities.size), one_hot) for lm in located_matrices]
    differences = paired_differences(
        lambda weights: tuple(_recall_per_bin(m, weights[owners], one_hot) for m in matrices),
        image_levels, rounds=rounds, seed=seed, confidence=confidence)
    rows = []
    for b, difference in enumerate(differences):
        rows.append({
            "opacity": [float(edges[b]), float(edges[b + 1])], "items": int(one_hot[:, b].sum()),
            "recall": {n: {"mean": float(p[:, b].mean()), "seeds": [float(v) for v in p[:, b]]}
                       for n, p in zip(names, point)},
            **difference})
        if located is not None:
            rows[-1]["located_any_score"] = {n: float(p[:, b].mean()) for n, p in zip(names, located_point)}
    return without_nan({"first_minus_second": f"{names[0]} - {names[1]}", "rounds": rounds, "seed": seed,
                         "confidence": confidence, "bins": rows})


def recall_table(report: dict) -> str:
    """The per-bin report as plain text, recall in percent."""
    first, second = report["first_minus_second"].split(" - ", 1)
    level = f"{report['confidence']:.0%}"
    lines = [f"item recall at each model's operating point by occluder opacity, {report['first_minus_second']}",
             f"{'opacity':<13}{'items':>7}{first:>12}{second:>12}{'difference':>12}{'pairs > 0':>11}"
             f"{level + ' images':>20}{level + ' seeds+images':>24}"
             + (f"{'located at any score':>24}" if report["bins"] and "located_any_score" in report["bins"][0] else "")]

    def pct(value, form=".1f"):
        return "n/a" if value is None else f"{100 * value:{form}}"

    for row in report["bins"]:
        spans = [f"[{pct(i[0], '+.1f')}, {pct(i[1], '+.1f')}]" for i in (row["interval_images"],
                                                                        row["interval_seeds_and_images"])]
        lines.append(f"{bin_names(row['opacity'])[0]:<13}{row['items']:>7}{pct(row['recall'][first]['mean']):>12}"
                     f"{pct(row['recall'][second]['mean']):>12}{pct(row['difference'], '+.1f'):>12}"
                     f"{row['seed_pairs_above_zero']:>11}{spans[0]:>20}{spans[1]:>24}"
                     + (f"{pct(row['located_any_score'][first]) + ' / ' + pct(row['located_any_score'][second]):>24}"
                        if "located_any_score" in row else ""))
    return "\n".join(lines)


# Score thresholds ``model_recall_by_opacity`` reports beside the model's own operating point: a
# lower alarm a site might choose, and 0.0, every detection kept (the evaluation's 0.01 floor).
EXTRA_THRESHOLDS: tuple[float, ...] = (0.2, 0.1, 0.0)


def model_recall_by_opacity(predictions, result: EvalResult, table: Mapping[str, Sequence], *,
                            edges: Sequence[float] = DEFAULT_EDGES,
                            thresholds: Sequence[float] = EXTRA_THRESHOLDS) -> dict:
    """One model: per opacity bin, the share of items boxed at its operating point and at each of
    ``thresholds``, and how many boxes a bag gets at each (what a lower alarm would cost)."""
    opacities, _ = item_opacities(predictions.image_ids, predictions.ground_truth, table)
    bins = bin_of(opacities, edges)
    found, operating = hits_at_operating_point(predictions, result)
    columns = [("operating point", operating, found)]
    columns += [(f"score >= {t:g}", t, found_in_split(predictions, t)) for t in thresholds]
    rows = []
    for b in range(len(edges) - 1):
        members = bins == b
        rows.append({"opacity": [float(edges[b]), float(edges[b + 1])], "items": int(members.sum()),
                     "recall": {label: float(hits[members].mean()) if members.any() else None
                                for label, _, hits in columns}})
    per_bag = {label: float(np.mean([(np.asarray(d["scores"]) >= t).sum() for d in predictions.detections]))
               for label, t, _ in columns}
    return {"thresholds": {label: t for label, t, _ in columns}, "bins": rows, "boxes_per_image": per_bag}


def model_recall_table(report: dict) -> str:
    """``model_recall_by_opacity`` as plain text, recall in percent."""
    labels = list(report["thresholds"])
    titles = [f"{label} ({report['thresholds'][label]:.2f})" if label == "operating point" else label
              for label in labels]
    lines = [f"{'opacity':<13}{'items':>7}" + "".join(f"{t:>24}" for t in titles)]
    for row in report["bins"]:
        cells = ["n/a" if row["recall"][label] is None else f"{100 * row['recall'][label]:.1f}" for label in labels]
        lines.append(f"{bin_names(row['opacity'])[0]:<13}{row['items']:>7}" + "".join(f"{c:>24}" for c in cells))
    lines.append(f"{'boxes per bag':<20}" + "".join(f"{report['boxes_per_image'][label]:>24.1f}" for label in labels))
    return "\n".join(lines)
