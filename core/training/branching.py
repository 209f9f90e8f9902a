"""Branching a run: a new run that starts from an epoch checkpoint another run kept.

A curriculum run (``--occluded-start``) draws exactly what the plain run of its seed draws until its
switch, so training it from scratch recomputes that plain run's first epochs. A run trained with
``--keep-epoch-checkpoints`` keeps its full state (model, optimiser, pool, RNG, clock) at every
epoch's end in ``RUN/checkpoints/epochNNNN.pt``; ``--branch-from`` one of them starts another run
directory from it, with another over-sampling schedule. The branch is refused unless it is the run
its own settings would have trained from scratch: every other setting the same, and the epochs
before the branch drawn alike under both schedules (checked on the parent's step log). So a branch
ends with the weights of that run from scratch, for a fraction of the steps.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from core.inference.modelfile import sha256_bytes
from core.training.checkpoint import TrainState
from core.training.runlog import RunLog

log = logging.getLogger(__name__)

EPOCH_CHECKPOINTS = "checkpoints"

# Settings a branch may set otherwise than its parent: the over-sampling schedule (the point of a
# branch), where it writes, and what only changes speed or records (as a resume allows).
BRANCH_MAY_DIFFER = frozenset({"out", "occluded_repeat", "occluded_from", "occluded_start", "workers", "device",
                               "checkpoint_every_s", "keep_curve_models", "keep_epoch_checkpoints", "branch_from",
                               "compile"})
_SCHEDULE = ("occluded_repeat", "occluded_from", "occluded_start")


def epoch_checkpoint_path(run_dir: Path, epoch: int) -> Path:
    """Where a run keeps its state at the start of ``epoch`` (after the previous epoch's end)."""
    return Path(run_dir) / EPOCH_CHECKPOINTS / f"epoch{epoch:04d}.pt"


def keep_epoch_checkpoint(run_dir: Path, epoch: int) -> Path:
    """Copy the run's current ``checkpoint.pt`` (just saved at an epoch's end) as the start of ``epoch``."""
    target = epoch_checkpoint_path(run_dir, epoch)
    target.parent.mkdir(exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".epoch-", suffix=".tmp")
    os.close(fd)
    try:  # copied then renamed: a kill during the copy leaves no half file under the kept name
        shutil.copyfile(Path(run_dir) / "checkpoint.pt", tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def check_branch(path: Path, parent: dict, state: TrainState, config: dict) -> list[dict]:
    """Refuse a branch that is not the run ``config`` would train from scratch; returns the parent's steps.

    ``parent`` is the checkpoint's config and ``state`` its state; the parent's run directory (two
    levels above ``path``) must still hold its step log, which shows where its epochs started."""
    path = Path(path)
    if state.batch_in_epoch:
        raise ValueError(f"{path}: saved in the middle of epoch {state.epoch}; branch from an epoch checkpoint "
                         f"({EPOCH_CHECKPOINTS}/epochNNNN.pt, kept by --keep-epoch-checkpoints)")
    differ = sorted(k for k in set(parent) | set(config)
                    if k not in BRANCH_MAY_DIFFER and parent.get(k) != config.get(k))
    if differ:
        shown = ", ".join(f"{k}={parent.get(k)!r} (asked {config.get(k)!r})" for k in differ)
        raise ValueError(f"{path}: a branch changes only the over-sampling schedule; the parent ran with {shown}")
    if not config.get("iters") and not config.get("time_budget_min") and \
            any(parent.get(k) != config.get(k) for k in _SCHEDULE):
        # With --epochs the learning-rate decay spans the schedule's own count of steps, so the parent's
        # steps were taken at other rates than this schedule's from scratch.
        raise ValueError(f"{path}: a branch with another over-sampling schedule needs --iters or --time-budget; "
                         "under --epochs the learning-rate decay depends on the schedule")
    steps = _read_parent_steps(path.parent.parent)
    if not steps or int(steps[-1]["step"]) < state.step:
        raise ValueError(f"{path}: the parent run's steps.csv (in {path.parent.parent}) is missing or shorter than "
                         f"the checkpoint's {state.step} steps; a branch needs it to check and keep the record")
    parent_plain = parent["occluded_repeat"] == 1 or (parent["occluded_start"] and state.occluded_since_epoch is None)
    if not parent_plain:
        if any(parent[k] != config[k] for k in _SCHEDULE):
            raise ValueError(f"{path}: the parent was already over-sampling; a branch from it must keep its schedule")
        return steps
    if config["occluded_repeat"] > 1 and not config["occluded_start"]:
        raise ValueError(f"{path}: the parent's epochs so far were plain; a branch that over-samples must start "
                         "later (--occluded-start), or it is not the run its settings would train from scratch")
    if config["occluded_repeat"] > 1:
        for epoch in range(1, state.epoch):
            done = [r for r in steps if int(r["epoch"]) < epoch]
            progress = _progress(config, epoch, done[-1] if done else None)
            if progress >= config["occluded_start"]:
                raise ValueError(f"{path}: with --occluded-start {config['occluded_start']} the over-sampling would "
                                 f"have started at epoch {epoch} ({progress:.0%} of the run); branch from "
                                 f"{epoch_checkpoint_path(path.parent.parent, epoch).name} instead")
    return steps


def _read_parent_steps(parent_dir: Path) -> list[dict]:
    """The parent's step log, each row checked: a damaged log is a clear refusal, not a traceback."""
    rows = RunLog(parent_dir).read_steps()
    for number, row in enumerate(rows, 2):   # line 1 is the header
        try:
            int(row["step"]), int(row["epoch"]), float(row["train_seconds"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{parent_dir / 'steps.csv'}:{number}: not a step record; the branch cannot check "
                             "where the parent's epochs started") from None
    return rows


def _progress(config: dict, epoch: int, last_row: dict | None) -> float:
    """The share of the run done where ``epoch`` started, as the trainer measures it for the switch."""
    if config.get("iters"):
        return (int(last_row["step"]) if last_row else 0) / config["iters"]
    if config.get("time_budget_min"):
        return (float(last_row["train_seconds"]) if last_row else 0.0) / (config["time_budget_min"] * 60)
    return epoch / config["epochs"]


def copy_parent_record(path: Path, steps: list[dict], state: TrainState, run_dir: Path) -> TrainState:
    """Start the branch's record with the parent's up to the branch: its step log, its curve points and
    their kept models, and a ``branch.json`` naming the parent. Returns the state to go on from."""
    parent_dir, run_dir = Path(path).parent.parent, Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    record = RunLog(run_dir)
    record.write_steps(steps, up_to=state.step)
    evals = [e for e in RunLog(parent_dir).read_evals() if e.get("step", 0) <= state.step]
    for point in evals:
        if point.get("model_file") and (parent_dir / point["model_file"]).exists():
            (run_dir / point["model_file"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(parent_dir / point["model_file"], run_dir / point["model_file"])
    record.write_evals(evals, up_to=state.step)
    # The parent's best.pt may come from after the branch; keep the best point before it if its model
    # was kept, else let the branch's own evaluations write best.pt afresh.
    best = max(evals, key=lambda e: e.get("map", -1.0), default=None)
    if best and best.get("model_file") and (run_dir / best["model_file"]).exists():
        shutil.copyfile(run_dir / best["model_file"], run_dir / "best.pt")
        state.best_map = best["map"]
    else:
        state.best_map = -1.0
    (run_dir / "branch.json").write_text(json.dumps(
        {"from": str(path), "sha256": sha256_bytes(Path(path).read_bytes()), "step": state.step, "epoch": state.epoch,
         "train_seconds": round(state.train_seconds, 3)}, indent=2))
    log.info("branched from %s at step %d (epoch %d, %.1f min of training)", path, state.step, state.epoch,
             state.train_seconds / 60)
    return state
