"""``python main.py compare``: two recipes, several seeds each, with intervals on the difference."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "compare", help="compare two recipes by their seeds' models: AP differences with bootstrap intervals",
        description="Evaluate every model of two arms (one recipe's seeds each) on one test split, then "
                    "resample the test images (within each occlusion level) and the seeds to put "
                    "intervals on the difference of the arms' mean mAP, per-OL mAP and OL1-OL3 fall "
                    "(core/evaluation/bootstrap.py says how to read them).")
    p.add_argument("--data", required=True, help="dataset root (OPIXray layout) whose test split scores them")
    p.add_argument("--arm", action="append", required=True, metavar="NAME=MODEL[,MODEL...]",
                   help="a recipe's name and its model files; give --arm twice (first minus second)")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--rounds", type=int, default=2000, help="bootstrap rounds (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling (default 0)")
    p.add_argument("--confidence", type=float, default=0.95, help="interval level (default 0.95)")
    p.add_argument("--cache", metavar="DIR", help="keep each model's detections here to skip predicting again")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--by-opacity", action="store_true",
                   help="also compare item recall per occluder-opacity bin, at each model's operating point "
                        "(synthetic data: needs the split's per-item occlusion table, core/evaluation/occlusion_recall.py)")
    p.add_argument("--alarms", action="store_true",
                   help="also compare, per occlusion level, the share of items boxed, the false alarms per bag "
                        "and the precision at each model's operating point (core/evaluation/alarms_by_level.py)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--out", metavar="FILE", help="also write the report as JSON to FILE")
    p.set_defaults(func=_run)


def parse_arm(text: str) -> tuple[str, list[str]]:
    """``NAME=a.pt,b.pt`` -> (NAME, [a.pt, b.pt])."""
    name, sep, models = text.partition("=")
    paths = [m.strip() for m in models.split(",") if m.strip()]
    if not sep or not name.strip() or not paths:
        raise ValueError(f"--arm {text!r}: expected NAME=MODEL[,MODEL...]")
    return name.strip(), paths


def _run(args) -> int:
    from core.data.opixray import AnnotationError  # noqa: PLC0415
    from core.evaluation.alarms_by_level import alarm_counts, alarms_table, compare_alarms_by_level  # noqa: PLC0415
    from core.evaluation.bootstrap import ResamplableResult, compare_arms, comparison_table  # noqa: PLC0415
    from core.evaluation.occlusion_recall import (compare_recall_by_opacity, found_in_split,  # noqa: PLC0415
                                                  item_opacities, recall_table)
    from core.evaluation.prediction_cache import predictions_for  # noqa: PLC0415
    from core.evaluation.operating_point import operating_point  # noqa: PLC0415
    from core.evaluation.runner import evaluate_predictions  # noqa: PLC0415
    from core.imaging.decode import ImageDecodeError  # noqa: PLC0415
    from core.inference.modelfile import ModelFileError  # noqa: PLC0415
    from core.synth.occlusion_table import read_table  # noqa: PLC0415

    try:
        arms = dict(parse_arm(text) for text in args.arm)
        if len(arms) != 2 or len(args.arm) != 2:
            raise ValueError("give --arm exactly twice, with two different names")
        # Read first: a missing or broken table should stop the run before hours of predicting.
        table = read_table(args.data, args.split) if args.by_opacity else None
        scored, hits, located, thresholds, models, alarms, alarm_points = {}, {}, {}, {}, {}, {}, {}
        items = None
        for name, paths in arms.items():
            scored[name], hits[name], located[name], thresholds[name] = [], [], [], []
            alarms[name], alarm_points[name] = [], []
            for path in paths:
                print(f"{name}: {path}", file=sys.stderr)
                predictions = predictions_for(path, args.data, args.split, cache_dir=args.cache, device=args.device)
                result, outcomes, _ = evaluate_predictions(predictions)
                scored[name].append(ResamplableResult(outcomes, predictions.levels))
                if args.alarms or table is not None:
                    point = operating_point(result)      # each model read at its own alarm threshold
                    if point is None:
                        raise ValueError(f"{args.data}: the {args.split} split has no ground-truth items: "
                                         "no operating point to count alarms or recall at")
                    threshold = point["threshold"]
                if args.alarms:
                    alarms[name].append(alarm_counts(outcomes, threshold))
                    alarm_points[name].append(threshold)
                if table is not None:
                    if items is None:
                        items = item_opacities(predictions.image_ids, predictions.ground_truth, table)
                    hits[name].append(found_in_split(predictions, threshold))
                    thresholds[name].append(threshold)
                    located[name].append(found_in_split(predictions, 0.0))   # any score the cache kept
            models[name] = paths
        report = compare_arms(scored, rounds=args.rounds, seed=args.seed, confidence=args.confidence)
        if table is not None:
            strata = scored[next(iter(scored))][0].levels
            report["by_opacity"] = compare_recall_by_opacity(hits, *items, strata, rounds=args.rounds,
                                                             seed=args.seed, confidence=args.confidence,
                                                             located=located)
            report["by_opacity"]["thresholds"] = thresholds
        if args.alarms:
            report["alarms_by_level"] = compare_alarms_by_level(
                alarms, scored[next(iter(scored))][0].levels, thresholds=alarm_points, rounds=args.rounds,
                seed=args.seed, confidence=args.confidence)
    except (ModelFileError, AnnotationError, ImageDecodeError, ValueError, OSError) as exc:
        print(f"compare: error: {exc}", file=sys.stderr)
        return 2
    for arm in report["arms"]:
        arm["models"] = models[arm["name"]]
    report["data"] = str(args.data)
    text = json.dumps(report, indent=2, allow_nan=False)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if args.json:
        print(text)
    else:
        print(comparison_table(report))
        if "by_opacity" in report:
            print("\n" + recall_table(report["by_opacity"]))
        if "alarms_by_level" in report:
            print("\n" + alarms_table(report["alarms_by_level"]))
    return 0

