"""PASCAL VOC detection average precision, as the paper and its reference code measure it.

Protocol (PAPER.md, "Training and evaluation protocol"):

- **Matching.** Per class, detections are taken in descending score order over the
  whole set. A detection is compared with every ground-truth box of its class in its
  image; the one with the highest IoU is its candidate. It is a true positive when
  that IoU is strictly greater than the threshold (``> 0.5``, as the reference
  ``voc_eval`` writes ``ovmax > ovthresh``) and the candidate is not matched yet; a
  second detection whose best box is already matched is a false positive, even if
  another box overlaps it (VOC rule; COCO would try the next box instead). There are
  no "difficult" boxes. Equal scores are ordered by image, then by the detection's
  position in its image (a stable sort), so results are deterministic.
- **AP.** VOC2010+ all-point AP: the area under the precision-recall curve after
  making precision monotonically non-increasing (the "envelope"). The VOC2007
  11-point AP and COCO's 101-point AP are available for comparison with other tools.
- **IoU pixel convention.** The OPIXray reference ``voc_eval`` (DOAM/test.py in
  OPIXray-author/OPIXray, both stored versions) computes widths as ``x2 - x1`` and
  areas as ``w * h`` -- *without* the VOC devkit's ``+ 1`` -- even though the
  annotation corners are inclusive integers. We follow the reference by default
  (``inclusive_pixels=False``); ``inclusive_pixels=True`` gives the devkit / py-faster-rcnn
  ``+ 1`` convention. The reference also shifts ground truth by -1 and detections by +1
  pixel before comparing them (a 2-pixel offset between the two): that is a bug, not a
  protocol, and is not reproduced.
- **Classes without ground truth** (in the whole set or in an occlusion subset) get
  AP = NaN and are left out of the mean. A class with ground truth but no detections
  gets AP = 0 (the reference returns -1 there, which would drag its mean down).
  Detections in images without items are false positives.

Inputs are plain arrays: per image, ``boxes`` (N x 4, x1 y1 x2 y2 in original image
pixels) and ``labels`` (N, 0-based class index), plus ``scores`` (N) for detections.
An image may be a mapping with those keys or any object with those attributes
(e.g. a model's ``Prediction``); torch tensors are converted with ``numpy.asarray``.
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from core.classes import CLASSES, OCCLUSION_LEVELS, SHORT_NAMES

log = logging.getLogger(__name__)

Interpolation = Literal["all_points", "101_points", "11_points"]
INTERPOLATIONS: tuple[str, ...] = ("all_points", "101_points", "11_points")


class EvaluationInputError(ValueError):
    """Ground truth or detections that cannot be evaluated (shapes, labels, values)."""


# --------------------------------------------------------------------------- geometry
def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray, inclusive_pixels: bool = False) -> np.ndarray:
    """IoU matrix (len(a) x len(b)) of x1 y1 x2 y2 boxes.

    ``inclusive_pixels`` adds 1 to widths and heights (VOC devkit convention for
    integer corners that both belong to the box); the default measures continuous
    areas as the OPIXray reference does.
    """
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    extra = 1.0 if inclusive_pixels else 0.0
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.maximum(ix2 - ix1 + extra, 0.0) * np.maximum(iy2 - iy1 + extra, 0.0)
    area_a = (a[:, 2] - a[:, 0] + extra) * (a[:, 3] - a[:, 1] + extra)
    area_b = (b[:, 2] - b[:, 0] + extra) * (b[:, 3] - b[:, 1] + extra)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou


def greedy_match(iou: np.ndarray, iou_threshold: float) -> np.ndarray:
    """True-positive flags for detections (rows, already in descending score order).

    Each detection takes its best-overlapping ground-truth box (column); it is a
    true positive only if that IoU is strictly above the threshold and the box has
    not been taken by a higher-scored detection.
    """
    return greedy_assign(iou, iou_threshold)[0]


def greedy_assign(iou: np.ndarray, iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """``greedy_match``'s detection flags and, per ground-truth box, whether a detection took it."""
    num_det, num_gt = iou.shape
    true_positive = np.zeros(num_det, dtype=bool)
    taken = np.zeros(num_gt, dtype=bool)
    if num_gt == 0:
        return true_positive, taken
    best = iou.argmax(axis=1)
    best_iou = iou[np.arange(num_det), best]
    for d in range(num_det):
        if best_iou[d] > iou_threshold and not taken[best[d]]:
            taken[best[d]] = True
            true_positive[d] = True
    return true_positive, taken


# --------------------------------------------------------------------------- AP from a curve
def average_precision(recall: np.ndarray, precision: np.ndarray,
                      interpolation: Interpolation = "all_points") -> float:
    """AP of a precision-recall curve given at each detection rank (recall non-decreasing).

    - ``all_points`` (VOC2010+): area under the monotone envelope of precision.
    - ``11_points`` (VOC2007): mean of the envelope at recall 0, 0.1, ..., 1.
    - ``101_points`` (COCO): mean of the envelope at recall 0, 0.01, ..., 1, sampled
      exactly as pycocotools does (``searchsorted(..., side="left")``), so the two agree.
    Empty curves give 0.
    """
    rec = np.asarray(recall, dtype=np.float64)
    prec = np.asarray(precision, dtype=np.float64)
    if rec.shape != prec.shape or rec.ndim != 1:
        raise EvaluationInputError(f"recall {rec.shape} and precision {prec.shape} must be equal-length vectors")
    if rec.size == 0:
        return 0.0
    if interpolation == "all_points":
        mrec = np.concatenate(([0.0], rec, [1.0]))
        mpre = np.concatenate(([0.0], prec, [0.0]))
        mpre = np.maximum.accumulate(mpre[::-1])[::-1]
        steps = np.flatnonzero(mrec[1:] != mrec[:-1])
        return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))
    envelope = np.maximum.accumulate(prec[::-1])[::-1]
    if interpolation == "101_points":
        thresholds = np.linspace(0.0, 1.0, 101)
        idx = np.searchsorted(rec, thresholds, side="left")
        sampled = np.where(idx < rec.size, envelope[np.minimum(idx, rec.size - 1)], 0.0)
        return float(sampled.mean())
    if interpolation == "11_points":
        total = 0.0
        for t in np.linspace(0.0, 1.0, 11):
            reached = rec >= t
            total += float(prec[reached].max()) if reached.any() else 0.0
        return total / 11.0
    raise EvaluationInputError(f"unknown interpolation {interpolation!r}; choose from {INTERPOLATIONS}")


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class ClassAP:
    """AP of one class over one set of images, with the curve it came from."""
    class_index: int
    name: str
    ap: float                    # NaN when the class has no ground truth here
    num_ground_truth: int
    num_detections: int
    num_true_positives: int
    recall: np.ndarray = field(repr=False)     # per detection rank, descending score
    precision: np.ndarray = field(repr=False)
    scores: np.ndarray = field(repr=False)

    def to_dict(self, curves: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "class_index": self.class_index, "name": self.name, "ap": _json_float(self.ap),
            "num_ground_truth": self.num_ground_truth, "num_detections": self.num_detections,
            "num_true_positives": self.num_true_positives,
        }
        if curves:
            out["recall"] = [float(v) for v in self.recall]
            out["precision"] = [float(v) for v in self.precision]
            out["scores"] = [float(v) for v in self.scores]
        return out


@dataclass(frozen=True)
class SubsetAP:
    """Per-class AP and their mean over one set of images ("all", "OL1", ...)."""
    name: str
    num_images: int
    classes: tuple[ClassAP, ...]

    @property
    def mean_ap(self) -> float:
        """Mean over classes that have ground truth here; NaN if none has."""
        aps = [c.ap for c in self.classes if not math.isnan(c.ap)]
        return float(np.mean(aps)) if aps else math.nan

    def ap_by_name(self, short: bool = True) -> dict[str, float]:
        names = SHORT_NAMES if short and len(self.classes) == len(SHORT_NAMES) else [c.name for c in self.classes]
        return {n: c.ap for n, c in zip(names, self.classes)}

    def to_dict(self, curves: bool = False) -> dict[str, Any]:
        return {"name": self.name, "num_images": self.num_images, "mAP": _json_float(self.mean_ap),
                "classes": [c.to_dict(curves) for c in self.classes]}


@dataclass(frozen=True)
class EvalResult:
    """The whole-set result and, when levels were given, one per occlusion level."""
    overall: SubsetAP
    occlusion: dict[int, SubsetAP]
    iou_threshold: float
    interpolation: str
    inclusive_pixels: bool
    class_names: tuple[str, ...]

    @property
    def mean_ap(self) -> float:
        return self.overall.mean_ap

    def to_dict(self, curves: bool = False) -> dict[str, Any]:
        """Plain JSON-able dict; NaN APs (no ground truth) become ``None``."""
        return {
            "protocol": {"iou_threshold": self.iou_threshold, "iou_comparison": ">",
                         "interpolation": self.interpolation, "inclusive_pixels": self.inclusive_pixels,
                         "classes": list(self.class_names)},
            "mAP": _json_float(self.mean_ap),
            "overall": self.overall.to_dict(curves),
            "occlusion_levels": {f"OL{level}": subset.to_dict(curves) for level, subset in self.occlusion.items()},
        }

    def to_json(self, curves: bool = False, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(curves), indent=indent)


def result_from_dict(data: Mapping[str, Any]) -> EvalResult:
    """Rebuild an ``EvalResult`` from ``to_dict(curves=True)`` (saved experiment results)."""
    def nan(value: float | None) -> float:
        return math.nan if value is None else float(value)

    def subset(d: Mapping[str, Any]) -> SubsetAP:
        classes = tuple(
            ClassAP(c["class_index"], c["name"], nan(c["ap"]), c["num_ground_truth"], c["num_detections"],
                    c["num_true_positives"], np.asarray(c.get("recall", []), float),
                    np.asarray(c.get("precision", []), float), np.asarray(c.get("scores", []), float))
            for c in d["classes"])
        return SubsetAP(d["name"], d["num_images"], classes)

    protocol = data["protocol"]
    occlusion = {int(name[2:]): subset(d) for name, d in data.get("occlusion_levels", {}).items()}
    return EvalResult(subset(data["overall"]), occlusion, float(protocol["iou_threshold"]),
                      protocol["interpolation"], bool(protocol["inclusive_pixels"]), tuple(protocol["classes"]))


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


# --------------------------------------------------------------------------- input handling
def _field(item: Any, name: str, where: str) -> Any:
    if isinstance(item, Mapping):
        if name not in item:
            raise EvaluationInputError(f"{where}: missing {name!r} (keys: {sorted(item)})")
        return item[name]
    if hasattr(item, name):
        return getattr(item, name)
    raise EvaluationInputError(f"{where}: {type(item).__name__} has no {name!r}")


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensor on any device, without importing torch here
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _read_boxes(item: Any, where: str, num_classes: int, with_scores: bool
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    boxes = _to_numpy(_field(item, "boxes", where)).astype(np.float64)
    labels = _to_numpy(_field(item, "labels", where))
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise EvaluationInputError(f"{where}: boxes must be N x 4, got shape {boxes.shape}")
    n = boxes.shape[0]
    labels = labels.reshape(-1)
    if labels.shape[0] != n:
        raise EvaluationInputError(f"{where}: {n} boxes but {labels.shape[0]} labels")
    if n and not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.mod(labels, 1) == 0):
            raise EvaluationInputError(f"{where}: labels must be integers, got {labels[:5]}")
    labels = labels.astype(np.int64)
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise EvaluationInputError(f"{where}: label {bad} outside 0..{num_classes - 1}")
    if not np.isfinite(boxes).all():
        raise EvaluationInputError(f"{where}: boxes contain NaN or infinity")
    if n and ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any():
        i = int(np.flatnonzero((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]))[0])
        raise EvaluationInputError(f"{where}: box {i} {boxes[i].tolist()} has x2 < x1 or y2 < y1")
    scores = np.zeros(n, dtype=np.float64)
    if with_scores:
        scores = _to_numpy(_field(item, "scores", where)).astype(np.float64).reshape(-1)
        if scores.shape[0] != n:
            raise EvaluationInputError(f"{where}: {n} boxes but {scores.shape[0]} scores")
        if not np.isfinite(scores).all():
            raise EvaluationInputError(f"{where}: scores contain NaN or infinity")
    return boxes, labels, scores


def _align(ground_truth: Sequence[Any] | Mapping[str, Any], detections: Sequence[Any] | Mapping[str, Any],
           occlusion_levels: Sequence[int | None] | Mapping[str, int | None] | None
           ) -> tuple[list[str], list[Any], list[Any | None], list[int | None]]:
    """Images as parallel lists (ids, gt, det, level) from sequences or id-keyed mappings."""
    if isinstance(ground_truth, Mapping):
        ids = [str(k) for k in ground_truth]
        gts = list(ground_truth.values())
        if not isinstance(detections, Mapping):
            raise EvaluationInputError("ground truth is keyed by image id, so detections must be too")
        unknown = [k for k in detections if k not in ground_truth]
        if unknown:
            raise EvaluationInputError(f"detections for images without ground truth entries: {unknown[:5]}")
        dets = [detections.get(k) for k in ground_truth]  # an image with no entry has no detections
        if occlusion_levels is None:
            levels: list[int | None] = [None] * len(ids)
        elif isinstance(occlusion_levels, Mapping):
            levels = [occlusion_levels.get(k) for k in ground_truth]
        else:
            raise EvaluationInputError("ground truth is keyed by image id, so occlusion levels must be too")
        return ids, gts, dets, levels
    # A sequence pairs images by position; a mapping here would pair them by dict order,
    # which silently mixes images up when the orders differ, so it is refused.
    if isinstance(detections, Mapping) or isinstance(occlusion_levels, Mapping):
        raise EvaluationInputError("ground truth is a sequence, so detections and occlusion levels must be "
                                   "sequences in the same image order (or pass mappings keyed by image id)")
    gts = list(ground_truth)
    dets = list(detections)
    if len(dets) != len(gts):
        raise EvaluationInputError(f"{len(gts)} ground-truth images but {len(dets)} detection entries")
    if occlusion_levels is None:
        levels = [None] * len(gts)
    else:
        levels = list(occlusion_levels)
        if len(levels) != len(gts):
            raise EvaluationInputError(f"{len(gts)} images but {len(levels)} occlusion levels")
    return [f"image {i}" for i in range(len(gts))], gts, dets, levels


def ground_truth_from_samples(samples: Sequence[Any]) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, int | None]]:
    """(ground truth, occlusion levels) keyed by image id, from ``core.data.opixray.Sample`` s.

    OPIXray's inclusive integer corners are used as they are (see the module notes on the
    pixel convention).
    """
    truth: dict[str, dict[str, np.ndarray]] = {}
    levels: dict[str, int | None] = {}
    for sample in samples:
        if sample.image_id in truth:
            raise EvaluationInputError(f"image id {sample.image_id!r} appears twice")
        truth[sample.image_id] = {
            "boxes": np.array([b.as_list() for b in sample.boxes], dtype=np.float64).reshape(-1, 4),
            "labels": np.array([b.class_index for b in sample.boxes], dtype=np.int64),
        }
        levels[sample.image_id] = sample.occlusion_level
    return truth, levels


# --------------------------------------------------------------------------- evaluation
@dataclass
class ImageOutcome:
    """Per image and class: scores of its detections and whether each was a true positive."""
    num_gt: np.ndarray                 # (num_classes,)
    scores: list[np.ndarray]           # per class, descending score order
    true_positive: list[np.ndarray]


def _match_image(gt: tuple[np.ndarray, np.ndarray, np.ndarray], det: tuple[np.ndarray, np.ndarray, np.ndarray],
                 num_classes: int, iou_threshold: float, inclusive_pixels: bool) -> ImageOutcome:
    gt_boxes, gt_labels, _ = gt
    det_boxes, det_labels, det_scores = det
    num_gt = np.bincount(gt_labels, minlength=num_classes)
    scores, flags = [], []
    for c in range(num_classes):
        sel = np.flatnonzero(det_labels == c)
        # Stable descending order: within an image this is the global order restricted
        # to the image, so matching here equals matching in one global pass.
        order = sel[np.argsort(-det_scores[sel], kind="stable")]
        iou = box_iou(det_boxes[order], gt_boxes[gt_labels == c], inclusive_pixels)
        scores.append(det_scores[order])
        flags.append(greedy_match(iou, iou_threshold))
    return ImageOutcome(num_gt, scores, flags)


def _class_curve(outcomes: Sequence[ImageOutcome], class_index: int, name: str,
                 interpolation: Interpolation) -> ClassAP:
    num_gt = int(sum(o.num_gt[class_index] for o in outcomes))
    scores = np.concatenate([o.scores[class_index] for o in outcomes]) if outcomes else np.zeros(0)
    tp = np.concatenate([o.true_positive[class_index] for o in outcomes]) if outcomes else np.zeros(0, bool)
    order = np.argsort(-scores, kind="stable")  # ties: image order, then rank in image
    scores, tp = scores[order], tp[order]
    tp_cum = np.cumsum(tp, dtype=np.float64)
    fp_cum = np.cumsum(~tp, dtype=np.float64)
    precision = tp_cum / np.maximum(tp_cum + fp_cum, np.finfo(np.float64).eps)
    if num_gt == 0:
        recall = np.zeros_like(tp_cum)
        ap = math.nan
    else:
        recall = tp_cum / num_gt
        ap = average_precision(recall, precision, interpolation)
    return ClassAP(class_index, name, ap, num_gt, int(scores.size), int(tp.sum()), recall, precision, scores)


def _subset(name: str, outcomes: Sequence[ImageOutcome], class_names: Sequence[str],
            interpolation: Interpolation) -> SubsetAP:
    classes = tuple(_class_curve(outcomes, c, n, interpolation) for c, n in enumerate(class_names))
    return SubsetAP(name, len(outcomes), classes)


def match_images(ground_truth: Sequence[Any] | Mapping[str, Any], detections: Sequence[Any] | Mapping[str, Any],
                 num_classes: int = 5, iou_threshold: float = 0.5,
                 occlusion_levels: Sequence[int | None] | Mapping[str, int | None] | None = None, *,
                 inclusive_pixels: bool = False) -> tuple[list[ImageOutcome], list[int | None]]:
    """Each image's detections matched to its ground truth, and each image's occlusion level.

    Matching depends on one image only (see ``_match_image``), so these outcomes are all a
    resampling of the test images needs (core.evaluation.bootstrap); ``evaluate_detections``
    turns them into AP.
    """
    ids, gts, dets, levels = _align(ground_truth, detections, occlusion_levels)
    bad = {lv for lv in levels if lv is not None} - set(OCCLUSION_LEVELS)
    if bad:
        raise EvaluationInputError(f"occlusion levels must be one of {OCCLUSION_LEVELS} or None, got {sorted(bad)}")
    empty = {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, np.int64), "scores": np.zeros(0)}
    outcomes: list[ImageOutcome] = []
    for image_id, gt, det in zip(ids, gts, dets):
        gt_arrays = _read_boxes(gt, f"ground truth of {image_id}", num_classes, with_scores=False)
        det_arrays = _read_boxes(empty if det is None else det, f"detections of {image_id}", num_classes,
                                 with_scores=True)
        outcomes.append(_match_image(gt_arrays, det_arrays, num_classes, iou_threshold, inclusive_pixels))
    return outcomes, levels


def evaluate_detections(ground_truth: Sequence[Any] | Mapping[str, Any],
                        detections: Sequence[Any] | Mapping[str, Any],
                        num_classes: int = 5,
                        iou_threshold: float = 0.5,
                        occlusion_levels: Sequence[int | None] | Mapping[str, int | None] | None = None,
                        *,
                        interpolation: Interpolation = "all_points",
                        inclusive_pixels: bool = False,
                        class_names: Sequence[str] | None = None) -> EvalResult:
    """VOC AP per class and mean, on all images and on each occlusion level's images.

    ``ground_truth`` and ``detections`` are either equal-length sequences (one entry
    per image, same order) or mappings keyed by image id (an image missing from
    ``detections`` has none). ``occlusion_levels`` gives each image's level (1, 2, 3,
    or None for an image in no OL list) in the same form; when given, the result has
    one subset per level that occurs (always OL1-OL3 for OPIXray levels).
    """
    if interpolation not in INTERPOLATIONS:
        raise EvaluationInputError(f"unknown interpolation {interpolation!r}; choose from {INTERPOLATIONS}")
    if not 0.0 <= iou_threshold < 1.0:
        raise EvaluationInputError(f"iou_threshold must be in [0, 1), got {iou_threshold}")
    if class_names is None:
        class_names = CLASSES if num_classes == len(CLASSES) else tuple(f"class_{i}" for i in range(num_classes))
    if len(class_names) != num_classes:
        raise EvaluationInputError(f"{len(class_names)} class names for {num_classes} classes")

    outcomes, levels = match_images(ground_truth, detections, num_classes, iou_threshold, occlusion_levels,
                                    inclusive_pixels=inclusive_pixels)
    return evaluate_outcomes(outcomes, levels if occlusion_levels is not None else None, class_names=class_names,
                             iou_threshold=iou_threshold, interpolation=interpolation,
                             inclusive_pixels=inclusive_pixels)


def evaluate_outcomes(outcomes: Sequence[ImageOutcome], levels: Sequence[int | None] | None, *,
                      class_names: Sequence[str] = CLASSES, iou_threshold: float = 0.5,
                      interpolation: Interpolation = "all_points", inclusive_pixels: bool = False) -> EvalResult:
    """``evaluate_detections`` on images already matched (``match_images``): for a caller that
    also keeps the outcomes (the gate's paired intervals) and should not match twice."""
    overall = _subset("all", outcomes, class_names, interpolation)
    by_level: dict[int, SubsetAP] = {}
    if levels is not None:
        for level in OCCLUSION_LEVELS:
            chosen = [o for o, lv in zip(outcomes, levels) if lv == level]
            if not chosen:
                log.warning("no test image has occlusion level %d; its AP is NaN", level)
            by_level[level] = _subset(f"OL{level}", chosen, class_names, interpolation)
    log.info("evaluated %d images: mAP %.4f", len(outcomes), overall.mean_ap)
    return EvalResult(overall, by_level, float(iou_threshold), interpolation, inclusive_pixels, tuple(class_names))
