"""How sure is "recipe A beats recipe B"? Intervals from resampling test images and training seeds.

A recipe is judged by models trained from it with different seeds (an *arm*), all evaluated on
the same test split. Two things make a difference in AP uncertain: which test images happened
to be drawn (OL3 is a few hundred images) and which seeds happened to be trained (here seeds of
the same recipe differ by up to 8 mAP points). ``compare_arms`` runs a two-level bootstrap:

- each round draws the test images again with replacement, *within each occlusion level* (the
  split's OL mix is the generator's, not a random quantity), the same draw for every model, so
  the comparison stays paired over images;
- and draws each arm's seeds again with replacement.

The per-image matching of detections to ground truth does not depend on the other images
(core.evaluation.voc), so a redrawn test set only re-weights images: each model's matched
detections are sorted once, and a round is a weighted cumulative sum per class. With all
weights 1 the numbers are exactly ``evaluate_detections``' (a test checks this).

The report gives, for each metric, the difference of the arms' means with two intervals:
images only (the seeds fixed: how much the test split alone could move it) and seeds + images.
With three or four seeds per arm the seed part of a percentile bootstrap is too narrow (by about
sqrt((n - 1) / n), and it cannot know a seed distribution's tails), so read it as a lower bound
on the uncertainty, not as a test at the stated level.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.classes import OCCLUSION_LEVELS
from core.evaluation.voc import ImageOutcome, average_precision

METRICS_WITH_LEVELS = ("map", "map_ol1", "map_ol2", "map_ol3", "fall_ol1_ol3")
METRIC_LABELS = {"map": "mAP", "map_ol1": "OL1 mAP", "map_ol2": "OL2 mAP", "map_ol3": "OL3 mAP",
                 "fall_ol1_ol3": "OL1 - OL3 fall"}
_EPS = np.finfo(np.float64).eps


@dataclass(frozen=True)
class _ClassDetections:
    """One class's detections over a set of images, in the evaluation's ranking order."""
    image: np.ndarray          # index of each detection's image
    true_positive: np.ndarray  # float 0/1, so weighted sums need no conversion


class ResamplableResult:
    """One model's matched detections on a test split, scored under any weighting of its images."""

    def __init__(self, outcomes: Sequence[ImageOutcome], levels: Sequence[int | None]) -> None:
        if len(outcomes) != len(levels):
            raise ValueError(f"{len(outcomes)} image outcomes but {len(levels)} occlusion levels")
        if not outcomes:
            raise ValueError("no test images to resample")
        self.levels = np.array([0 if lv is None else int(lv) for lv in levels], dtype=np.int64)
        self.num_gt = np.stack([o.num_gt for o in outcomes]).astype(np.float64)   # images x classes
        self.num_classes = self.num_gt.shape[1]
        self.has_levels = bool((self.levels > 0).any())
        ranked = [self._rank(outcomes, c) for c in range(self.num_classes)]
        # Restricting the overall ranking to a level's images keeps their relative order, which is
        # the order evaluate_detections ranks that subset in (a stable sort of the same scores).
        self._subsets: dict[int, list[_ClassDetections]] = {0: ranked}
        for level in (OCCLUSION_LEVELS if self.has_levels else ()):
            self._subsets[level] = [self._restrict(d, self.levels[d.image] == level) for d in ranked]

    @staticmethod
    def _rank(outcomes: Sequence[ImageOutcome], class_index: int) -> _ClassDetections:
        scores = np.concatenate([o.scores[class_index] for o in outcomes])
        flags = np.concatenate([o.true_positive[class_index] for o in outcomes])
        image = np.concatenate([np.full(len(o.scores[class_index]), i, dtype=np.int64)
                                for i, o in enumerate(outcomes)])
        order = np.argsort(-scores, kind="stable")  # ties: image order, then rank in image (as voc)
        return _ClassDetections(image[order], flags[order].astype(np.float64))

    @staticmethod
    def _restrict(detections: _ClassDetections, keep: np.ndarray) -> _ClassDetections:
        return _ClassDetections(detections.image[keep], detections.true_positive[keep])

    @property
    def num_images(self) -> int:
        return int(self.levels.size)

    def subset_map(self, level: int, weights: np.ndarray) -> float:
        """mAP over the images of ``level`` (0: all), each image counted ``weights[i]`` times."""
        in_subset = np.ones(self.num_images, bool) if level == 0 else self.levels == level
        positives = (self.num_gt * (weights * in_subset)[:, None]).sum(axis=0)
        aps = []
        for c, detections in enumerate(self._subsets[level]):
            if positives[c] <= 0:
                continue  # no ground truth of the class here: left out of the mean, as voc does
            w = weights[detections.image]
            tp_cum = np.cumsum(w * detections.true_positive)
            seen = np.cumsum(w)
            aps.append(average_precision(tp_cum / positives[c], tp_cum / np.maximum(seen, _EPS)))
        return float(np.mean(aps)) if aps else math.nan

    def metrics(self, weights: np.ndarray | None = None) -> dict[str, float]:
        """mAP, per-OL mAP and the OL1 - OL3 fall (when the split has levels), in AP fractions."""
        w = np.ones(self.num_images) if weights is None else np.asarray(weights, dtype=np.float64)
        out = {"map": self.subset_map(0, w)}
        if self.has_levels:
            for level in OCCLUSION_LEVELS:
                out[f"map_ol{level}"] = self.subset_map(level, w)
            out["fall_ol1_ol3"] = out["map_ol1"] - out["map_ol3"]
        return out


def resample_images(levels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap weights: each level's images drawn again, as many as it has, with replacement."""
    weights = np.zeros(levels.size)
    for level in np.unique(levels):
        members = np.flatnonzero(levels == level)
        weights[members] = rng.multinomial(members.size, np.full(members.size, 1.0 / members.size))
    return weights


def percentile_interval(values: np.ndarray, confidence: float) -> list[float]:
    tail = (1.0 - confidence) / 2.0 * 100.0
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return [math.nan, math.nan]
    return [float(np.percentile(finite, tail)), float(np.percentile(finite, 100.0 - tail))]


def compare_arms(arms: Mapping[str, Sequence[ResamplableResult]], *, rounds: int = 2000, seed: int = 0,
                 confidence: float = 0.95) -> dict:
    """Two arms (name -> its seeds' results on one split): each arm's metrics and first - second.

    Returns a JSON-able dict (NaN written as None): ``arms`` (per arm: each seed's metrics, mean
    and sample sd) and
    ``difference`` (per metric: the point difference of means, in how many pairings of one
    arm's seeds with the other's it is > 0, the images-only and the seeds + images intervals,
    and the share of seeds + images rounds in which it is > 0).
    """
    if len(arms) != 2:
        raise ValueError(f"compare exactly two arms, got {len(arms)}: {list(arms)}")
    if not 0.5 <= confidence < 1.0:
        raise ValueError(f"confidence must be in [0.5, 1), got {confidence}")
    names = list(arms)
    results = [list(arms[name]) for name in names]
    for name, members in zip(names, results):
        if not members:
            raise ValueError(f"arm {name!r} has no models")
    reference = results[0][0]
    for name, members in zip(names, results):
        for member in members:
            if member.num_images != reference.num_images or not np.array_equal(member.levels, reference.levels):
                raise ValueError(f"arm {name!r}: every model must be scored on the same test images")
    metric_names = METRICS_WITH_LEVELS if reference.has_levels else ("map",)

    point = [[r.metrics() for r in members] for members in results]

    def arm_values(weights: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(np.array([[s[m] for m in metric_names] for s in (r.metrics(weights) for r in members)])
                     for members in results)

    def arm_summary(name: str, members_point: list[dict]) -> dict:
        values = {m: np.array([p[m] for p in members_point]) for m in metric_names}
        return {"name": name, "seeds": members_point,
                "mean": {m: float(v.mean()) for m, v in values.items()},
                "sd": {m: float(v.std(ddof=1)) if v.size > 1 else math.nan for m, v in values.items()}}

    summaries = [arm_summary(n, p) for n, p in zip(names, point)]
    rows = paired_differences(arm_values, reference.levels, rounds=rounds, seed=seed, confidence=confidence)
    difference = {m: {"point": row.pop("difference"), **row} for m, row in zip(metric_names, rows)}
    return without_nan({
        "arms": summaries, "difference": difference, "first_minus_second": f"{names[0]} - {names[1]}",
        "rounds": rounds, "seed": seed, "confidence": confidence, "num_images": reference.num_images,
        "images_per_level": {f"OL{lv}": int((reference.levels == lv).sum())
                             for lv in OCCLUSION_LEVELS if reference.has_levels}})


def paired_differences(arm_values: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], levels: np.ndarray, *,
                       rounds: int, seed: int, confidence: float) -> list[dict]:
    """``compare_arms``' two-level bootstrap for any per-model metrics computed from image weights.

    ``arm_values(weights)`` gives the two arms' metrics under one weighting of the test images
    (each a seeds x metrics array, NaN where a metric is undefined). Returns, per metric column,
    the point difference of the arms' means, in how many seed pairings it is > 0, the images-only
    and seeds + images intervals and the share of rounds above zero, read as compare's.
    """
    if rounds < 100:
        raise ValueError(f"rounds must be at least 100 for a percentile interval, got {rounds}")
    levels = np.asarray(levels)
    first, second = (np.asarray(a, dtype=np.float64) for a in arm_values(np.ones(levels.size)))
    rng = np.random.default_rng(seed)
    images_only = np.empty((rounds, first.shape[1]))
    both = np.empty_like(images_only)
    with np.errstate(invalid="ignore"):
        for k in range(rounds):
            a, b = arm_values(resample_images(levels, rng))
            picks = [rng.integers(len(a), size=len(a)), rng.integers(len(b), size=len(b))]
            images_only[k] = a.mean(axis=0) - b.mean(axis=0)
            both[k] = a[picks[0]].mean(axis=0) - b[picks[1]].mean(axis=0)
    rows = []
    for m in range(first.shape[1]):
        finite = both[:, m][np.isfinite(both[:, m])]
        pairs = np.subtract.outer(first[:, m], second[:, m])
        rows.append({"difference": float(first[:, m].mean() - second[:, m].mean()),
                     "seed_pairs_above_zero": f"{int((pairs > 0).sum())} of {pairs.size}",
                     "interval_images": percentile_interval(images_only[:, m], confidence),
                     "interval_seeds_and_images": percentile_interval(both[:, m], confidence),
                     "share_above_zero": float((finite > 0).mean()) if finite.size else math.nan})
    return rows


def without_nan(value):
    """NaN (one seed's sd, a metric with no ground truth) as None, so the report is standard JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nan(v) for v in value]
    return value


def comparison_table(report: dict) -> str:
    """The report as a plain-text table, AP in percentage points."""
    first, second = report["arms"]
    level = f"{report['confidence']:.0%}"
    first_title, second_title = (f"{arm['name']} ({len(arm['seeds'])})" for arm in (first, second))
    header = (f"{'metric':<16}{first_title:>18}{second_title:>18}{'difference':>12}"
              f"{'pairs > 0':>11}{level + ' images':>20}{level + ' seeds+images':>24}{'> 0':>7}")
    lines = [f"{report['first_minus_second']}, {report['num_images']} test images, {report['rounds']} rounds",
             header]

    def points(value: float | None, form: str = ".1f") -> str:
        return "n/a" if value is None else f"{100 * value:{form}}"

    def cell(arm: dict, m: str) -> str:
        sd = arm["sd"][m]
        return points(arm["mean"][m]) + ("" if sd is None else f" ± {points(sd)}")

    def span(pair: list[float | None]) -> str:
        return f"[{points(pair[0], '+.1f')}, {points(pair[1], '+.1f')}]"

    for m, d in report["difference"].items():
        share = "n/a" if d["share_above_zero"] is None else f"{d['share_above_zero']:.0%}"
        lines.append(f"{METRIC_LABELS[m]:<16}{cell(first, m):>18}{cell(second, m):>18}"
                     f"{points(d['point'], '+.1f'):>12}{d['seed_pairs_above_zero']:>11}"
                     f"{span(d['interval_images']):>20}{span(d['interval_seeds_and_images']):>24}{share:>7}")
    return "\n".join(lines)
