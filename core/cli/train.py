"""``python main.py train``: train or resume a detector run (torchrun-compatible)."""
from __future__ import annotations

import json
import os
import sys

from core.training.sampling import STRATEGIES


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train a detector (traditional or over-sampling), resumable, torchrun-ready",
        description="Train a detector on an OPIXray-layout dataset. Running the same command again with the "
                    "same --out resumes from its checkpoint. Under `torchrun --nproc_per_node N` it trains "
                    "data-parallel (gloo on CPU, nccl on GPU).")
    p.add_argument("--data", required=True, help="dataset root (OPIXray layout; the train split is used)")
    p.add_argument("--out", required=True, help="run directory (checkpoint, logs, curve, model.pt)")
    p.add_argument("--arch", default="fast", choices=["fast", "ssd", "yolov3", "fcos"])
    p.add_argument("--attention", default="doam", choices=["none", "doam", "se", "nonlocal", "da"])
    p.add_argument("--strategy", default="hard", choices=list(STRATEGIES),
                   help="traditional (T), hard = the paper's over-sampling (O), easy (E), random (R), focal (F)")
    p.add_argument("--epochs", type=int,
                   help="stop after this many epochs (default: 1, or none with --time-budget: the budget decides)")
    p.add_argument("--iters", type=int, help="stop after this many optimiser steps (overrides --epochs)")
    p.add_argument("--time-budget", type=float, dest="time_budget_min", metavar="MIN",
                   help="stop after this many minutes of training")
    p.add_argument("--optimizer", choices=["sgd", "adamw"], help="default: the arch's (see core/training/config.py)")
    p.add_argument("--lr", type=float)
    p.add_argument("--momentum", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--warmup-iters", type=int, default=50)
    p.add_argument("--no-augment", dest="augment", action="store_false",
                   help="no flips/scale/translation (pixel values are never altered either way)")
    p.add_argument("--crop", type=int, metavar="PX",
                   help="train on PX x PX crops of the image resized to the model's input size (the inference "
                        "scale) around random items, instead of whole images; a multiple of 32, e.g. 256")
    p.add_argument("--negative-share", type=float, default=0.2,
                   help="with --crop: share of crops holding no item (hard negatives)")
    p.add_argument("--occluded-repeat", type=int, default=1, metavar="K",
                   help="show each training scene holding an item under cover of opacity >= --occluded-from K "
                        "times an epoch (synthetic data: needs the split's occlusion table; 1: off)")
    p.add_argument("--occluded-from", type=float, default=0.505, metavar="OPACITY",
                   help="with --occluded-repeat: the occluder opacity from which a scene is over-sampled "
                        "(default 0.505, where OL3 starts)")
    p.add_argument("--occluded-start", type=float, default=0.0, metavar="SHARE",
                   help="with --occluded-repeat: begin the over-sampling at the first epoch after this share of "
                        "the run (of --iters, --epochs or --time-budget), e.g. 0.67 for the last third (default 0)")
    p.add_argument("--workers", type=int, default=2, help="data-loading processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pool-capacity", type=int, default=16, help="entries kept by the sample pool per cycle")
    p.add_argument("--pool-threshold", type=float, help="loss threshold T (default: none, top losses win)")
    p.add_argument("--pool-granularity", choices=["image", "batch"], default="image")
    p.add_argument("--pool-period", type=int, default=0, help="steps per pool cycle (0: once per epoch)")
    p.add_argument("--checkpoint-every", type=float, default=120.0, dest="checkpoint_every_s", metavar="SECONDS")
    p.add_argument("--curve-every", type=float, dest="curve_every_min", metavar="MIN",
                   help="evaluate on --curve-data every MIN minutes of training (learning curve)")
    p.add_argument("--curve-data", help="held-out dataset root for the learning curve (its test split)")
    p.add_argument("--curve-max-images", type=int, help="evaluate on at most this many held-out images")
    p.add_argument("--keep-curve-models", action="store_true",
                   help="save the model at every curve point (RUN/curve_models/), so that `compare` can put "
                        "intervals over seeds and test images on any point of the curve")
    p.add_argument("--keep-epoch-checkpoints", action="store_true",
                   help="keep the full training state at every epoch's end (RUN/checkpoints/epochNNNN.pt, the "
                        "size of checkpoint.pt each), to start other runs from with --branch-from")
    p.add_argument("--branch-from", metavar="CHECKPOINT",
                   help="start this new run from another run's kept epoch checkpoint, with another over-sampling "
                        "schedule (--occluded-*); every other setting must be the parent's, and the parent's "
                        "epochs so far must be the ones this schedule draws: the branch ends as the same run "
                        "from scratch would")
    p.add_argument("--init-from", metavar="MODEL", help="start from this model file's weights (its arch wins)")
    p.add_argument("--init-sha256", help="expected sha256 of --init-from")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--compile", action="store_true",
                   help="compile the detector's network for the training steps (TorchInductor; needs g++ on CPU; "
                        "the fast detector only): ~13 %% less time per step here after a ~40 s first step")
    p.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="detector option passed to build_detector (repeatable; VALUE parsed as JSON when it can be)")
    p.set_defaults(func=_run)


def _parse_options(pairs: list[str]) -> dict:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--model-option {pair!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _run(args) -> int:
    from core.training.config import TrainConfig  # noqa: PLC0415 - torch only when training
    from core.training.trainer import train  # noqa: PLC0415

    fields = {k: v for k, v in vars(args).items() if k not in ("func", "command", "verbose", "model_option")}
    try:
        config = TrainConfig(**fields, model_options=_parse_options(args.model_option))
        result = train(config)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    code = 0
    if result.get("interrupted"):
        print("interrupted: run the same command again to resume", file=sys.stderr)
        code = 130
    if int(os.environ.get("RANK", "0")) > 0:   # a torchrun follower: see leave_process
        from core.training.distributed import leave_process  # noqa: PLC0415

        leave_process(code)
    return code
