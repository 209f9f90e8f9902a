"""Run a detector over a dataset split and score it with the paper's protocol.

The same ``core.inference.Detector`` path as the GUI and the CLI produces the
detections (resize, model, boxes back in original pixels), with the reference
test-time settings (confidence 0.01, NMS 0.45, top 200), so a training curve,
``python main.py eval`` and the retraining gate all measure the same thing.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.data.opixray import load_split
from core.evaluation.attention_focus import AttentionFocus
from core.evaluation.operating_point import operating_point
from core.evaluation.voc import EvalResult, ImageOutcome, evaluate_outcomes, match_images
from core.imaging.decode import read_image

log = logging.getLogger(__name__)

TEST_SCORE_THRESHOLD = 0.01  # the reference protocol's test-time confidence


@dataclass
class SplitPredictions:
    """A detector's predictions on a split, beside the ground truth, image by image."""
    image_ids: list[str]
    ground_truth: list[dict]   # boxes (N x 4), labels (N)
    detections: list[dict]     # boxes, labels, scores
    levels: list[int | None]


def ground_truth_of(sample) -> dict:
    """A ``core.data.opixray.Sample``'s boxes as the evaluation takes them."""
    return {"boxes": np.array([b.as_list() for b in sample.boxes], dtype=np.float64).reshape(-1, 4),
            "labels": np.array([b.class_index for b in sample.boxes], dtype=np.int64)}


def predict_split(detector, root: str | Path, split: str = "test", *, max_images: int | None = None,
                  batch_size: int = 4, attention_focus: AttentionFocus | None = None) -> SplitPredictions:
    """Predict every image of a split (or its first ``max_images``), in the split's order.

    With ``attention_focus``, each prediction's attention map (DOAM models) is also measured
    against the ground-truth boxes (core.evaluation.attention_focus).
    """
    samples = load_split(Path(root), split)
    if max_images is not None:
        samples = samples[:max_images]
    if not samples:
        raise ValueError(f"{root}: the {split} split has no images to evaluate on")
    return predict_samples(detector, samples, batch_size=batch_size, attention_focus=attention_focus)


def predict_samples(detector, samples, *, batch_size: int = 4,
                    attention_focus: AttentionFocus | None = None) -> SplitPredictions:
    """``predict_split`` on samples already loaded (``core.data.opixray.load_split``)."""
    out = SplitPredictions([], [], [], [])
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        images = [read_image(s.image_path) for s in chunk]
        for sample, prediction in zip(chunk, detector.predict_batch(images)):
            truth = ground_truth_of(sample)
            out.image_ids.append(sample.image_id)
            out.ground_truth.append(truth)
            out.detections.append({"boxes": prediction.boxes, "labels": prediction.labels,
                                   "scores": prediction.scores})
            out.levels.append(sample.occlusion_level)
            if attention_focus is not None:
                attention_focus.add(prediction.attention, truth["boxes"], sample.occlusion_level)
    return out


def evaluate_detector_on_dataset(detector, root: str | Path, split: str = "test", *,
                                 max_images: int | None = None, batch_size: int = 4,
                                 attention_focus: AttentionFocus | None = None) -> EvalResult:
    """Predict every image of a split (or its first ``max_images``) and evaluate per class and OL."""
    predictions = predict_split(detector, root, split, max_images=max_images, batch_size=batch_size,
                                attention_focus=attention_focus)
    return evaluate_predictions(predictions)[0]


def evaluate_predictions(predictions: SplitPredictions
                         ) -> tuple[EvalResult, list[ImageOutcome], list[int | None] | None]:
    """(AP per class and OL, each image's matched detections, the OL levels or None when the split
    has none): matched once, for callers that also resample or count the outcomes."""
    levels = predictions.levels if any(level is not None for level in predictions.levels) else None
    outcomes, _ = match_images(predictions.ground_truth, predictions.detections, occlusion_levels=levels)
    return evaluate_outcomes(outcomes, levels), outcomes, levels


def summarise(result: EvalResult) -> dict:
    """The few numbers a learning curve records: mAP, per-OL mAP and per-class AP (NaN -> None)."""
    def clean(value: float) -> float | None:
        return None if value is None or math.isnan(value) else round(float(value), 5)

    out = {"map": clean(result.mean_ap) or 0.0,
           "ap": {name: clean(ap) for name, ap in result.overall.ap_by_name().items()},
           "num_images": result.overall.num_images}
    for level, subset in result.occlusion.items():
        out[f"map_ol{level}"] = clean(subset.mean_ap)
    out["operating_point"] = operating_point(result)    # saved with the model: the lane's alarm threshold
    return out


def evaluate_model_on_dataset(model, root: str | Path, split: str = "test", *, max_images: int | None = None,
                              device=None) -> dict:
    """Evaluate an in-memory model (e.g. during training) and return ``summarise``'s numbers."""
    from core.inference.detector import Detector  # noqa: PLC0415 - torch only when evaluating a model

    was_training = model.training
    detector = Detector.from_model(model, device=device or "auto", score_threshold=TEST_SCORE_THRESHOLD)
    focus = AttentionFocus() if detector.has_attention else None
    try:
        summary = summarise(evaluate_detector_on_dataset(detector, root, split, max_images=max_images,
                                                         attention_focus=focus))
        focus_summary = focus.summary() if focus is not None else {}
        if focus_summary:        # a curve then shows when the map starts to single out the items
            summary["attention_focus"] = focus_summary
        return summary
    finally:
        model.train(was_training)
