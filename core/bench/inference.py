"""``python main.py bench inference``: detector latency, throughput, memory and the machine's limit.

For each arch x attention: end-to-end latency p50/p95 on a 1225x954 JPG file (decode,
preprocess, network, decoding + NMS, attention map at image size: ``Detector.predict_file``),
the network alone, batch-4 throughput, the process's peak RSS while that detector ran, and
how close the network comes to the machine: its FLOPs at the input size over its best
latency, divided by the best throughput of a large 3x3 convolution measured in the same run
(best runs on both sides: the development machine is shared and noisy; p50/p95 are reported
as measured).

Weights: the bundled trained model where it is the arch x attention being timed (at its own
operating point), else untrained weights at a realistic threshold of 0.3 rather than the
evaluation floor of 0.01: an untrained net at 0.01 sends thousands of boxes to NMS and the
benchmark would time NMS, not the detector (MACHINE.md).
"""
from __future__ import annotations

IMAGE_SIZE = (954, 1225)  # (height, width): an OPIXray scan
DEFAULT_ARCHS = ("fast",)
DEFAULT_ATTENTIONS = ("none", "doam")
BENCH_SCORE_THRESHOLD = 0.3
TARGET_P50_MS = {"fast-doam": 30.0}


def add_arguments(parser) -> None:
    parser.add_argument("--inference-archs", default=",".join(DEFAULT_ARCHS),
                        help="comma-separated archs, or 'all' (ssd/yolov3/fcos are slow on a CPU); default fast")
    parser.add_argument("--inference-attentions", default=",".join(DEFAULT_ATTENTIONS),
                        help="comma-separated attentions (none, doam, se, nonlocal, da); default none,doam")
    parser.add_argument("--inference-repeats", type=int, default=30, help="timed images per detector (default 30)")
    parser.add_argument("--inference-threshold", type=float, default=BENCH_SCORE_THRESHOLD,
                        help=f"score threshold (default {BENCH_SCORE_THRESHOLD}, see the suite's docstring)")
    parser.add_argument("--inference-threads", type=int, default=None,
                        help="CPU threads (default: the Detector's rule, min(4, cores - 1))")
    parser.add_argument("--inference-onnx", action="store_true",
                        help="also time the network under ONNX Runtime (exports each detector first)")


def run(args) -> dict:
    # torch loads only when the suite runs: every `python main.py ...` builds this parser.
    from core.bench._inference_timing import run as run_suite  # noqa: PLC0415

    return run_suite(args)
