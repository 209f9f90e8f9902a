"""The trainer's resumable state: one ``checkpoint.pt`` per run, loadable with weights_only=True.

It holds the model and optimiser state, where in which epoch training stood,
the accumulated training clock, the over-sampling pool's entries and the torch
RNG state, so a run killed at any point resumes from its last checkpoint
having lost at most one checkpoint interval.
"""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

log = logging.getLogger(__name__)

STATE_FORMAT = "xray-train-state/1"


@dataclass
class TrainState:
    epoch: int = 0
    batch_in_epoch: int = 0         # batches of this rank's share already done in `epoch`
    step: int = 0                   # optimiser steps so far (training and replay)
    images_seen: int = 0
    train_seconds: float = 0.0      # the wall-clock of training only (no evaluation or saving)
    next_curve_seconds: float = 0.0
    best_map: float = -1.0
    pool: list = field(default_factory=list)   # [(entry, loss)] of the current pool cycle
    occluded_since_epoch: int | None = None    # first over-sampled epoch of a scheduled --occluded-start


def save_checkpoint(path: Path, *, state: TrainState, config: dict, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer) -> None:
    payload = {
        "format": STATE_FORMAT,
        "config": config,
        "model_config": dict(getattr(model, "config", {})),
        "state_dict": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "state": {**state.__dict__, "pool": [[_plain(item), float(loss)] for item, loss in state.pool]},
        "torch_rng": torch.get_rng_state(),
    }
    path = Path(path)
    # Write to a temp file and rename: a kill during the save leaves the previous checkpoint whole.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".ckpt-", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint saved by ``save_checkpoint`` (never executes code from the file)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise RuntimeError(f"{path}: not a usable training checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT:
        raise RuntimeError(f"{path}: not a training checkpoint of this project")
    state = payload["state"]
    state["pool"] = [(_hashable(item), loss) for item, loss in state["pool"]]
    payload["state"] = TrainState(**state)
    return payload


def _plain(item):
    return list(item) if isinstance(item, tuple) else item


def _hashable(item):
    return tuple(item) if isinstance(item, list) else item
