"""``python main.py bench training``: training throughput per arch and the cost of the hard-sample pool.

Measured on one small generated dataset (core.synth, fixed seed) in the same run, so the
numbers compare as ratios on this noisy machine:

- **data**: images/s the data pipeline delivers in one process (decode, resize, augment;
  whole images and the crop recipe), i.e. what one loader worker supplies;
- **archs**: optimiser steps of the real Trainer (traditional strategy, no loader workers so
  the model's time is not hidden by them): images/s per arch x attention at its input size,
  from the trainer's own per-step log (the first steps, which pay for lazy initialisation,
  are left out); with ``--training-compile`` each fast pair again as "<pair> compiled"
  (``train --compile``), its first step (the compilation) reported apart;
- **pool**: the same detector trained for the same number of optimiser steps with the
  paper's over-sampling (``hard``) and with ``traditional``: the share of training time
  spent replaying the pool, the pool's bookkeeping (offering every image's loss), and the
  wall time of the hard run relative to the traditional one.
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_ARCHS = "fast-none,fast-doam"
WARMUP_STEPS = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--training-archs", default=DEFAULT_ARCHS,
                        help=f"training: comma-separated arch-attention pairs (default {DEFAULT_ARCHS}; "
                             "ssd/yolov3/fcos take seconds per image on a CPU)")
    parser.add_argument("--training-steps", type=int, default=12, help="training: optimiser steps per arch")
    parser.add_argument("--training-batch", type=int, default=4, help="training: images per step")
    parser.add_argument("--training-compile", action="store_true",
                        help="training: also time each fast pair with `train --compile` (needs g++; ~40 s to compile)")
    parser.add_argument("--training-pool-period", type=int, default=6,
                        help="training: steps per pool cycle in the pool measurement")


def run(args: argparse.Namespace) -> dict:
    quick = getattr(args, "quick", False)
    steps = max(WARMUP_STEPS + 2, 6 if quick else int(getattr(args, "training_steps", 12)))
    batch = max(1, int(getattr(args, "training_batch", 4)))
    # At least one full cycle, then its replay, must fit in the run (a replay never runs past --iters).
    period = max(1, min(int(getattr(args, "training_pool_period", 6)), steps // 2 - 1))
    pairs = [p.strip() for p in getattr(args, "training_archs", DEFAULT_ARCHS).split(",") if p.strip()]
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        data = _make_data(Path(tmp) / "data", n_train=max(steps * batch, 16))
        result: dict = {"dataset": {"images": max(steps * batch, 16), "size": "612x477", "seed": 5},
                        "steps": steps, "batch_size": batch, "data": measure_data(data), "archs": {}}
        for pair in pairs:
            arch, _, attention = pair.partition("-")
            variants = [(pair, False)] + ([(f"{pair} compiled", True)]
                                          if arch == "fast" and getattr(args, "training_compile", False) else [])
            for name, compiled in variants:
                try:
                    result["archs"][name] = measure_arch(data, Path(tmp) / name.replace(" ", "-"), arch,
                                                         attention or "none", steps, batch, compile=compiled)
                except Exception as exc:  # noqa: BLE001 - one broken arch must not hide the others
                    log.exception("training benchmark of %s failed", name)
                    result["archs"][name] = {"error": f"{type(exc).__name__}: {exc}"}
        result["pool"] = measure_pool(data, Path(tmp) / "pool", steps, batch, period)
    return result


def _make_data(root: Path, n_train: int) -> Path:
    from core.synth.generator import generate_dataset  # noqa: PLC0415 - heavy, only when the suite runs
    from core.synth.scene import SceneConfig  # noqa: PLC0415

    # Half OPIXray's size: rendering is not what is measured, and the detector resizes anyway.
    generate_dataset(root, n_train, 0, seed=5, config=SceneConfig(width=612, height=477), progress=False)
    return root


def measure_data(root: Path) -> dict:
    """Images/s one process delivers: whole images at the fast arch's input size, and 256-px crops."""
    from core.data.crops import CropDataset  # noqa: PLC0415
    from core.data.dataset import OPIXrayDataset, default_transforms  # noqa: PLC0415
    from core.models.build import build_detector  # noqa: PLC0415

    size = tuple(build_detector("fast", "none").input_size)
    out = {}
    for name, dataset in (("whole_images_per_s", OPIXrayDataset(root, "train", default_transforms(True, size))),
                          ("crops_256_per_s", CropDataset(root, "train", input_size=size, crop_size=256))):
        dataset[0]  # first call pays for imports and caches
        start = time.perf_counter()
        for i in range(len(dataset)):
            dataset[i]
        out[name] = round(len(dataset) / (time.perf_counter() - start), 1)
    return out


def _train(data: Path, out: Path, arch: str, attention: str, steps: int, batch: int, **overrides):
    """Run the real Trainer; returns (per-step log rows, wall seconds)."""
    import csv  # noqa: PLC0415

    from core.training.config import TrainConfig  # noqa: PLC0415
    from core.training.trainer import train  # noqa: PLC0415

    settings = dict(data=str(data), out=str(out), arch=arch, attention=attention, strategy="traditional",
                    iters=steps, batch_size=batch, workers=0, seed=0, checkpoint_every_s=1e9, warmup_iters=1)
    settings.update(overrides)
    start = time.perf_counter()
    train(TrainConfig(**settings))
    wall = time.perf_counter() - start
    with open(out / "steps.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    previous = 0.0
    for row in rows:   # train_seconds is the run's clock: each step's own time is the difference
        now = float(row["train_seconds"])
        row["dt"] = now - previous
        previous = now
    return rows, wall


def measure_arch(data: Path, out: Path, arch: str, attention: str, steps: int, batch: int,
                 compile: bool = False) -> dict:  # noqa: A002 - the trainer's option name
    rows, wall = _train(data, out, arch, attention, steps, batch, compile=compile)
    timed = rows[WARMUP_STEPS:] or rows
    seconds = sum(r["dt"] for r in timed)
    result = {"images_per_s": round(len(timed) * batch / seconds, 2) if seconds else None,
              "step_ms_mean": round(seconds / len(timed) * 1e3, 1), "wall_s": round(wall, 2)}
    if compile:
        result["first_step_s"] = round(rows[0]["dt"], 2)     # the compilation (less where Inductor's cache has it)
    return result


def measure_pool(data: Path, out: Path, steps: int, batch: int, period: int) -> dict:
    """The over-sampling pool's cost on the fast DOAM detector, against traditional training."""
    traditional, wall_t = _train(data, out / "traditional", "fast", "doam", steps, batch)
    hard, wall_h = _train(data, out / "hard", "fast", "doam", steps, batch, strategy="hard",
                          pool_capacity=batch, pool_period=period)
    replay = sum(r["dt"] for r in hard if r["phase"] == "replay")
    step_time = sum(r["dt"] for r in hard)
    # What is neither a logged step nor shared with the traditional run: offering losses to the
    # pool and draining it. Both runs also pay start-up, so it is the difference of the leftovers.
    bookkeeping = max(0.0, (wall_h - step_time) - (wall_t - sum(r["dt"] for r in traditional)))
    return {"period_steps": period, "capacity": batch,
            "replay_steps": sum(r["phase"] == "replay" for r in hard),
            "replay_share_of_training_time": round(replay / step_time, 3) if step_time else None,
            "bookkeeping_s": round(bookkeeping, 3),
            "wall_hard_over_traditional": round(wall_h / wall_t, 3) if wall_t else None}
