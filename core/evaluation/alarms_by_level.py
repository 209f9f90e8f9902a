"""What the lane sees on each occlusion level: items boxed and false alarms per bag, per OL.

Per-OL AP is threshold-free and mixes two things over the images of one level: how many of
their items the detector boxes, and how many confident boxes it puts where no item of that class
is (a false alarm ranked above a hit lowers the precision every later hit is scored at). When two
recipes' OL3 APs differ, the question is which of the two moved. At each model's own operating
point (core.evaluation.operating_point, the threshold the lane alarms at), for the images of each
level: the share of their items boxed, the false alarms per bag and the precision of the boxes.

A detection is a hit or a false alarm under the VOC matching AP uses (core.evaluation.voc: higher
scores first, IoU > 0.5, one box each); the matching of the detections above a threshold is the
matching of all of them cut at that threshold, so one matched evaluation serves every threshold.
Two arms are compared with compare's two-level bootstrap (images redrawn within their level, then
seeds), so every difference carries the same two intervals.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from core.classes import OCCLUSION_LEVELS
from core.evaluation.bootstrap import paired_differences, without_nan
from core.evaluation.voc import ImageOutcome

MEASURES = ("recall", "false_alarms_per_bag", "precision")
_LABELS = {"recall": "items boxed %", "false_alarms_per_bag": "false alarms / bag", "precision": "precision %"}
_PERCENT = {"recall", "precision"}


def alarm_counts(outcomes: Sequence[ImageOutcome], threshold: float) -> np.ndarray:
    """images x 3: hits, false alarms and ground-truth items of each image at ``threshold``."""
    counts = np.zeros((len(outcomes), 3))
    for i, outcome in enumerate(outcomes):
        for scores, hits in zip(outcome.scores, outcome.true_positive):
            kept = np.asarray(scores) >= threshold
            hit = np.asarray(hits, dtype=bool)
            counts[i, 0] += np.count_nonzero(kept & hit)
            counts[i, 1] += np.count_nonzero(kept & ~hit)
        counts[i, 2] = float(np.sum(outcome.num_gt))
    return counts


def _groups(levels: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """("all", every image) then ("OL1".."OL3", that level's images) where the split has levels."""
    groups = [("all", np.ones(levels.size, dtype=bool))]
    groups += [(f"OL{lv}", levels == lv) for lv in OCCLUSION_LEVELS if (levels == lv).any()]
    return groups


def _measures(counts: np.ndarray, weights: np.ndarray, groups) -> np.ndarray:
    """One model's measures under an image weighting: groups x MEASURES, flattened (NaN if undefined)."""
    out = []
    for _, members in groups:
        w = weights * members
        hits, alarms, items = w @ counts
        bags = w.sum()
        out += [hits / items if items > 0 else math.nan,
                alarms / bags if bags > 0 else math.nan,
                hits / (hits + alarms) if hits + alarms > 0 else math.nan]
    return np.array(out)


def compare_alarms_by_level(arms: Mapping[str, Sequence[np.ndarray]], levels: Sequence[int | None], *,
                            thresholds: Mapping[str, Sequence[float]] | None = None, rounds: int = 2000,
                            seed: int = 0, confidence: float = 0.95) -> dict:
    """Per image group (all, OL1-OL3) and measure: each arm's mean over seeds and first - second.

    ``arms``: name -> one ``alarm_counts`` array per seed, every one over the same images in the
    same order; ``levels``: each image's OL (None or 0 for none), the bootstrap's strata.
    """
    if len(arms) != 2:
        raise ValueError(f"compare exactly two arms, got {len(arms)}: {list(arms)}")
    strata = np.array([0 if lv is None else int(lv) for lv in levels], dtype=np.int64)
    names = list(arms)
    for name in names:
        if not arms[name] or any(np.shape(c) != (strata.size, 3) for c in arms[name]):
            raise ValueError(f"arm {name!r}: needs at least one model with hits, false alarms and items "
                             f"for each of the {strata.size} images")
    if any(not np.array_equal(c[:, 2], arms[names[0]][0][:, 2]) for n in names for c in arms[n]):
        raise ValueError("every model must be counted on the same images: their item counts differ")
    groups = _groups(strata)

    def arm_values(weights: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(np.array([_measures(c, weights, groups) for c in arms[n]]) for n in names)

    point = arm_values(np.ones(strata.size))
    differences = paired_differences(arm_values, strata, rounds=rounds, seed=seed, confidence=confidence)
    rows = []
    for g, (group, members) in enumerate(groups):
        for m, measure in enumerate(MEASURES):
            column = g * len(MEASURES) + m
            rows.append({"images": group, "bags": int(members.sum()), "measure": measure,
                         "mean": {n: float(p[:, column].mean()) for n, p in zip(names, point)},
                         **differences[column]})
    report = {"first_minus_second": f"{names[0]} - {names[1]}", "rounds": rounds, "seed": seed,
              "confidence": confidence, "rows": rows}
    if thresholds is not None:
        report["thresholds"] = {n: [float(t) for t in thresholds[n]] for n in names}
    return without_nan(report)


def model_alarms_by_level(outcomes: Sequence[ImageOutcome], levels: Sequence[int | None] | None,
                          threshold: float) -> dict:
    """One model at one threshold: per image group (all, then OL1-OL3 where the split has levels),
    the bags, the share of items boxed, the false alarms per bag and the precision (None if undefined)."""
    strata = np.array([0 if lv is None else int(lv) for lv in (levels or [None] * len(outcomes))], dtype=np.int64)
    groups = _groups(strata)
    values = _measures(alarm_counts(outcomes, threshold), np.ones(strata.size), groups)
    rows = [{"images": name, "bags": int(members.sum()),
             **{m: float(values[g * len(MEASURES) + k]) for k, m in enumerate(MEASURES)}}
            for g, (name, members) in enumerate(groups)]
    return without_nan({"threshold": float(threshold), "rows": rows})


def model_alarms_table(report: dict) -> str:
    """``model_alarms_by_level`` as plain text."""
    lines = [f"{'images':<8}{'bags':>6}" + "".join(f"{_LABELS[m]:>22}" for m in MEASURES)]
    for row in report["rows"]:
        cells = ["n/a" if row[m] is None else (f"{100 * row[m]:.1f}" if m in _PERCENT else f"{row[m]:.2f}")
                 for m in MEASURES]
        lines.append(f"{row['images']:<8}{row['bags']:>6}" + "".join(f"{c:>22}" for c in cells))
    return "\n".join(lines)


def alarms_table(report: dict) -> str:
    """``compare_alarms_by_level`` as plain text: shares in percent, false alarms per bag as counts."""
    first, second = report["first_minus_second"].split(" - ", 1)
    level = f"{report['confidence']:.0%}"
    lines = [f"at each model's operating point, by the images' occlusion level, {report['first_minus_second']}",
             f"{'images':<8}{'bags':>6}  {'measure':<20}{first:>10}{second:>10}{'difference':>12}{'pairs > 0':>11}"
             f"{level + ' images':>20}{level + ' seeds+images':>24}"]

    def show(value, measure, sign=""):
        if value is None:
            return "n/a"
        return f"{100 * value:{sign}.1f}" if measure in _PERCENT else f"{value:{sign}.2f}"

    for row in report["rows"]:
        m = row["measure"]
        spans = [f"[{show(i[0], m, '+')}, {show(i[1], m, '+')}]" for i in (row["interval_images"],
                                                                          row["interval_seeds_and_images"])]
        lines.append(f"{row['images']:<8}{row['bags']:>6}  {_LABELS[m]:<20}{show(row['mean'][first], m):>10}"
                     f"{show(row['mean'][second], m):>10}{show(row['difference'], m, '+'):>12}"
                     f"{row['seed_pairs_above_zero']:>11}{spans[0]:>20}{spans[1]:>24}")
    return "\n".join(lines)
