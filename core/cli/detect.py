"""``detect`` and ``export-onnx``: run a model file on images, export it to ONNX.

``python main.py detect IMAGE... --model PATH [--json] [--out DIR]`` prints the
detections of each image (or JSON), and with ``--out`` writes an overlay JPG per
image (attention heat map blended in, boxes with class and score). An image that
cannot be read is reported on stderr and skipped; the exit code is 1 if any was.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from core.classes import CLASSES, SHORT_NAMES
from core.imaging.decode import (
    IMAGE_SUFFIXES,
    ImageDecodeError,
    read_image,
    write_image,
)

log = logging.getLogger(__name__)

# A human reading a listing wants likely threats, not the 0.01 evaluation floor.
CLI_SCORE_THRESHOLD = 0.3
# One colour per class (RGB), distinguishable on the orange/green/blue of X-ray pseudo-colour.
CLASS_COLOURS = ((255, 0, 255), (255, 255, 0), (0, 255, 255), (255, 64, 64), (255, 255, 255))
HEATMAP_WEIGHT = 0.35


def register(sub) -> None:
    p = sub.add_parser("detect", help="run a model file on images, print detections, write overlays",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images")
    p.add_argument("--model", required=True, type=Path, help="model file (.pt, or .onnx for ONNX Runtime)")
    p.add_argument("--runtime", choices=("auto", "onnxruntime", "pytorch"), default=None,
                   help="run a .pt file's network under ONNX Runtime on a CPU (exported once, cached, checked "
                        "against PyTorch) or PyTorch; default $XRAY_RUNTIME or auto (ONNX Runtime when it works)")
    p.add_argument("--sha256", help="expected sha256 of the model file (refuse it otherwise)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a listing")
    p.add_argument("--out", type=Path, help="folder for overlay JPGs (boxes + attention heat map)")
    p.add_argument("--score-threshold", type=float, default=CLI_SCORE_THRESHOLD,
                   help=f"minimum score to report (default {CLI_SCORE_THRESHOLD}; the paper evaluates at 0.01)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to run (default auto)")
    p.set_defaults(func=run_detect)

    e = sub.add_parser("export-onnx", help="export a model file to ONNX (checked against PyTorch)")
    e.add_argument("--model", required=True, type=Path, help="model file (.pt)")
    e.add_argument("--out", required=True, type=Path, help="ONNX file to write")
    e.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's choice here)")
    e.add_argument("--check", action="store_true",
                   help="also compare end-to-end predictions and CPU speed of ONNX Runtime and PyTorch")
    e.set_defaults(func=run_export)


def expand_images(items: list[str]) -> list[Path]:
    """Files as given; folders replaced by their image files in name order."""
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            paths.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            paths.append(path)
    return paths


def _load_detector(args):
    from core.inference.detector import Detector  # noqa: PLC0415 - torch only when a command runs

    if args.model.suffix.lower() == ".onnx":
        from core.inference.export import OnnxDetector  # noqa: PLC0415

        return OnnxDetector.load(args.model, device="cpu", expected_sha256=args.sha256,
                                 score_threshold=args.score_threshold)
    if args.runtime == "pytorch" or (args.runtime is None and args.device == "cuda"):
        return Detector.load(args.model, device=args.device, expected_sha256=args.sha256,
                             score_threshold=args.score_threshold)
    from core.inference.runtime import load_screening_detector  # noqa: PLC0415

    return load_screening_detector(args.model, device=args.device, expected_sha256=args.sha256,
                                   runtime=args.runtime, score_threshold=args.score_threshold)


def run_detect(args) -> int:
    from core.inference.export import ExportError  # noqa: PLC0415
    from core.inference.modelfile import ModelFileError  # noqa: PLC0415

    if not 0.0 <= args.score_threshold <= 1.0:
        print(f"error: --score-threshold {args.score_threshold} is not in [0, 1]", file=sys.stderr)
        return 2
    try:
        detector = _load_detector(args)
    except (ModelFileError, ExportError, ValueError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    results, failures, used_names = [], 0, set()
    for path in expand_images(args.images):
        try:
            start = time.perf_counter()     # the listing's time includes decoding either way
            if args.out:    # the overlay is drawn on the full image
                image = read_image(path)
                prediction = detector.predict(image)
            else:           # a large JPG is decoded at the scale the model needs
                prediction = detector.predict_file(path)
        except (ImageDecodeError, OSError) as exc:
            failures += 1
            print(f"error: {exc}", file=sys.stderr)
            results.append({"image": str(path), "error": str(exc)})
            continue
        entry = {"image": str(path), **prediction.to_dict()}
        if args.out:
            out_file = _unique_name(args.out, path.stem, used_names)
            write_image(out_file, draw_overlay(image, prediction), quality=90)
            entry["overlay"] = str(out_file)
        results.append(entry)
        if not args.json:
            _print_listing(path, prediction, (time.perf_counter() - start) * 1e3, entry.get("overlay"))
    if args.json:
        json.dump({"model_id": detector.model_id, "score_threshold": args.score_threshold, "images": results},
                  sys.stdout, indent=2)
        print()
    if failures:
        print(f"{failures} of {len(results)} image(s) could not be read", file=sys.stderr)
    return 1 if failures else 0


def _unique_name(folder: Path, stem: str, used: set[str]) -> Path:
    name, n = f"{stem}.jpg", 1
    while name in used:
        n += 1
        name = f"{stem}_{n}.jpg"
    used.add(name)
    return folder / name


def _print_listing(path: Path, prediction, elapsed_ms: float, overlay: str | None) -> None:
    height, width = prediction.image_size
    print(f"{path}: {len(prediction)} detection(s) [{width}x{height}, {elapsed_ms:.0f} ms, {prediction.model_id}]")
    for box, label, score in zip(prediction.boxes, prediction.labels, prediction.scores):
        x1, y1, x2, y2 = (float(v) for v in box)
        print(f"  {CLASSES[int(label)]:<17} {score:.3f}  [{x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}]")
    if overlay:
        print(f"  overlay: {overlay}")


def draw_overlay(image: np.ndarray, prediction) -> np.ndarray:
    """The image with the attention map as a heat map (if any) and labelled boxes, RGB uint8."""
    canvas = image.copy()
    if prediction.attention is not None:
        heat = cv2.applyColorMap(np.rint(prediction.attention * 255).astype(np.uint8), cv2.COLORMAP_JET)
        heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
        canvas = cv2.addWeighted(canvas, 1.0 - HEATMAP_WEIGHT, heat, HEATMAP_WEIGHT, 0.0)
    thickness = max(2, round(max(image.shape[:2]) / 500))
    for box, label, score in zip(prediction.boxes, prediction.labels, prediction.scores):
        colour = CLASS_COLOURS[int(label) % len(CLASS_COLOURS)]
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
        text = f"{SHORT_NAMES[int(label)]} {score:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        ty = max(y1, th + base + 2)
        cv2.rectangle(canvas, (x1, ty - th - base - 2), (x1 + tw + 4, ty), colour, -1)
        cv2.putText(canvas, text, (x1 + 2, ty - base), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def run_export(args) -> int:
    from core.inference.export import DEFAULT_OPSET, ExportError, export_onnx  # noqa: PLC0415
    from core.inference.modelfile import ModelFileError  # noqa: PLC0415

    try:
        report = export_onnx(args.model, args.out, opset=args.opset or DEFAULT_OPSET, check=True)
    except (ModelFileError, ExportError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {report.path} ({report.model_id}, opset {report.opset}, outputs {', '.join(report.output_names)}); "
          f"ONNX Runtime vs PyTorch max |diff| {report.max_abs_diff:.2e}")
    if args.check:
        comparison = compare_backends(args.model, args.out)
        print(json.dumps(comparison, indent=2))
        if not comparison["same_detections"]:
            print("error: ONNX Runtime and PyTorch detections differ", file=sys.stderr)
            return 1
    return 0


def compare_backends(model_path: Path, onnx_path: Path, repeats: int = 10) -> dict:
    """End-to-end predictions and CPU latency of PyTorch vs ONNX Runtime on a synthetic 1225x954 image."""
    from core.inference.detector import Detector  # noqa: PLC0415
    from core.inference.export import OnnxDetector, same_detections  # noqa: PLC0415

    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 256, (954, 1225, 3), dtype=np.uint8), (9, 9), 3)
    # A low threshold so that even an untrained model gives detections to compare.
    torch_det = Detector.load(model_path, device="cpu", score_threshold=0.05)
    onnx_det = OnnxDetector.load(onnx_path, score_threshold=0.05)
    a, b = torch_det.predict(image), onnx_det.predict(image)
    same = same_detections(a, b)

    # Interleaved, so that whatever else loads the machine slows both alike.
    for _ in range(2):
        torch_det.predict(image), onnx_det.predict(image)
    torch_times, onnx_times = [], []
    for _ in range(repeats):
        torch_times.append(torch_det.predict(image).timings["model"])
        onnx_times.append(onnx_det.predict(image).timings["model"])
    torch_ms, onnx_ms = float(np.median(torch_times)), float(np.median(onnx_times))
    return {"same_detections": same, "detections": [len(a), len(b)],
            "model_ms_p50": {"pytorch": round(torch_ms, 2), "onnxruntime": round(onnx_ms, 2)},
            "onnxruntime_speedup": round(torch_ms / onnx_ms, 3) if onnx_ms else None}
