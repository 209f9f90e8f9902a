"""``python main.py eval``: the paper's evaluation of a model file on a dataset's test split."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "eval", help="VOC AP@0.5 per class and per occlusion level (the paper's Tables IV and V)",
        description="Evaluate a model file on an OPIXray-layout dataset with the reference protocol: "
                    "all-point AP, IoU > 0.5, confidence 0.01, NMS 0.45, top 200; per class, on the whole "
                    "split and on the OL1/OL2/OL3 subsets.")
    p.add_argument("--data", required=True, help="dataset root (OPIXray layout)")
    p.add_argument("--model", required=True, help="model file (.pt)")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--sha256", help="expected sha256 of the model file (refuse it otherwise)")
    p.add_argument("--max-images", type=int, help="evaluate on the first N images only")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--plots", metavar="DIR", help="write a precision-recall plot per subset to DIR")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from core.data.opixray import AnnotationError  # noqa: PLC0415
    from core.evaluation.alarms_by_level import model_alarms_by_level, model_alarms_table  # noqa: PLC0415
    from core.evaluation.attention_focus import AttentionFocus, focus_table  # noqa: PLC0415
    from core.evaluation.occlusion_recall import model_recall_table  # noqa: PLC0415
    from core.evaluation.reports import plot_all_pr_curves, result_summary  # noqa: PLC0415
    from core.evaluation.operating_point import operating_point  # noqa: PLC0415
    from core.evaluation.runner import TEST_SCORE_THRESHOLD, evaluate_predictions, predict_split  # noqa: PLC0415
    from core.imaging.decode import ImageDecodeError  # noqa: PLC0415
    from core.inference.detector import Detector  # noqa: PLC0415
    from core.inference.modelfile import ModelFileError  # noqa: PLC0415

    try:
        detector = Detector.load(args.model, device=args.device, expected_sha256=args.sha256,
                                 score_threshold=TEST_SCORE_THRESHOLD)
        focus = AttentionFocus() if detector.has_attention else None
        predictions = predict_split(detector, args.data, args.split, max_images=args.max_images,
                                    attention_focus=focus)
        result, outcomes, levels = evaluate_predictions(predictions)
    except (ModelFileError, AnnotationError, ImageDecodeError, ValueError, OSError) as exc:
        print(f"eval: error: {exc}", file=sys.stderr)
        if isinstance(exc, (AnnotationError, ImageDecodeError)):
            print(f"hint: `python main.py dataset check {args.data}` lists every problem of the dataset",
                  file=sys.stderr)
        return 2
    if args.plots:
        out = Path(args.plots)
        out.mkdir(parents=True, exist_ok=True)
        for path in plot_all_pr_curves(result, out):
            print(f"wrote {path}", file=sys.stderr)
    # Empty for models without attention, and for an "edge_only" DOAM ablation, which makes no map.
    focus_summary = focus.summary() if focus is not None else {}
    by_opacity = _recall_by_opacity(args, predictions, result)
    point = operating_point(result)
    # What the lane shows at the threshold it starts at, bag by bag and per occlusion level.
    alarms = model_alarms_by_level(outcomes, levels, point["threshold"]) if point is not None else None
    if args.json:
        payload = result.to_dict()
        payload["model"] = {"path": str(args.model), "model_id": detector.model_id}
        if focus_summary:
            payload["attention_focus"] = focus_summary
        if by_opacity:
            payload["by_opacity"] = by_opacity
        if alarms:
            payload["alarms_at_operating_point"] = alarms
        print(json.dumps(payload, indent=2))
    else:
        print(f"model {detector.model_id} on {args.data} ({args.split})\n")
        print(result_summary(result))
        if focus_summary:
            print("\nAttention map (mean in [0, 1]) inside the ground-truth boxes, in a ring around them, "
                  "and over the whole image:\n")
            print(focus_table(focus_summary))
        if alarms:
            print(f"\nAt the operating point (score >= {alarms['threshold']:.2f}, the lane's starting alarm "
                  "threshold), by the images' occlusion level:\n")
            print(model_alarms_table(alarms))
        if by_opacity:
            print("\nItems boxed (%) by occluder opacity, the share of the signal the rest of the bag removes "
                  "over the item:\n")
            print(model_recall_table(by_opacity))
    return 0


def _recall_by_opacity(args, predictions, result) -> dict | None:
    """Recall per occluder-opacity bin where the split has a per-item occlusion table (synthetic
    data); a real dataset has none, and a broken table is reported without losing the evaluation."""
    from core.evaluation.occlusion_recall import model_recall_by_opacity  # noqa: PLC0415
    from core.synth.occlusion_table import read_table, table_path  # noqa: PLC0415

    if not table_path(args.data, args.split).is_file():
        return None
    try:
        return model_recall_by_opacity(predictions, result, read_table(args.data, args.split))
    except (ValueError, OSError) as exc:
        print(f"eval: warning: no recall by occlusion: {exc}", file=sys.stderr)
        return None
