"""Detection evaluation as the paper measures it (VOC AP per class and occlusion level) and its reports."""
from core.evaluation.voc import (
    ClassAP,
    EvalResult,
    EvaluationInputError,
    SubsetAP,
    average_precision,
    box_iou,
    evaluate_detections,
    ground_truth_from_samples,
)

__all__ = ["ClassAP", "EvalResult", "EvaluationInputError", "SubsetAP", "average_precision", "box_iou",
           "evaluate_detections", "ground_truth_from_samples"]
