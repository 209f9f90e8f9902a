"""Branching a run from another run's epoch checkpoint (core.training.branching, train --branch-from)."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from core.training.checkpoint import load_checkpoint
from core.training.config import TrainConfig
from core.training.runlog import RunLog
from core.training.trainer import train
from tests.tiny_runs import SMALL, small_scenes


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return small_scenes(tmp_path_factory.mktemp("branching") / "data", 10, 2)


def _cfg(data, **over) -> dict:
    # 16 steps: epoch 0 takes 5 batches and a 1-step replay (steps 1-6), epoch 1 steps 7-12, epoch 2 the rest.
    return {**dict(data=str(data), arch="fast", attention="none", strategy="hard", iters=16, batch_size=2, workers=0,
                   warmup_iters=1, checkpoint_every_s=1e9, model_options=SMALL, crop=96, occluded_from=0.3,
                   pool_capacity=2), **over}


def _weights(run: Path) -> dict:
    return load_checkpoint(run / "checkpoint.pt")["state_dict"]


def _losses(run: Path) -> list[tuple[str, str]]:
    return [(r["step"], r["loss"]) for r in RunLog(run).read_steps()]


@pytest.fixture(scope="module")
def parent(data, tmp_path_factory) -> Path:
    """A plain run that keeps its epoch checkpoints."""
    out = tmp_path_factory.mktemp("parent") / "plain"
    train(TrainConfig(out=str(out), keep_epoch_checkpoints=True, **_cfg(data)))
    return out


def test_a_plain_run_keeps_its_state_at_every_epoch_start(parent):
    kept = sorted(p.name for p in (parent / "checkpoints").iterdir())
    assert kept == ["epoch0001.pt", "epoch0002.pt"]
    for name, step in (("epoch0001.pt", 6), ("epoch0002.pt", 12)):
        state = load_checkpoint(parent / "checkpoints" / name)["state"]
        assert (state.step, state.batch_in_epoch) == (step, 0)


@pytest.mark.parametrize("epoch", [1, 2])
def test_a_branch_ends_as_the_same_schedule_trained_from_scratch(data, parent, tmp_path, epoch):
    # The late over-sampling (--occluded-start 0.4: from epoch 2, where 12/16 of the run is done) from scratch,
    # and branched from the plain run at epoch 1 or 2: the same draws, steps and weights.
    late = _cfg(data, occluded_repeat=2, occluded_start=0.4)
    scratch = train(TrainConfig(out=str(tmp_path / "scratch"), **late))
    branch = train(TrainConfig(out=str(tmp_path / "branch"),
                               branch_from=str(parent / "checkpoints" / f"epoch{epoch:04d}.pt"), **late))
    assert branch["step"] == scratch["step"] == 16
    assert load_checkpoint(tmp_path / "branch" / "checkpoint.pt")["state"].occluded_since_epoch == 2
    sa, sb = _weights(tmp_path / "scratch"), _weights(tmp_path / "branch")
    assert all(torch.allclose(sa[k], sb[k], atol=1e-6) for k in sa)
    assert _losses(tmp_path / "branch") == _losses(tmp_path / "scratch")   # the parent's record up to the branch, then its own
    assert _losses(tmp_path / "branch")[:6 * epoch] == _losses(parent)[:6 * epoch]
    record = json.loads((tmp_path / "branch" / "branch.json").read_text())
    assert record["step"] == 6 * epoch and record["epoch"] == epoch and len(record["sha256"]) == 64
    # The parent's epochs after the branch differ (plain), so the runs part there.
    assert not all(torch.allclose(sa[k], _weights(parent)[k], atol=1e-6) for k in sa)


def test_a_branch_that_would_not_be_its_schedule_from_scratch_is_refused(data, parent, tmp_path):
    kept = parent / "checkpoints"
    late = _cfg(data, occluded_repeat=2, occluded_start=0.4)
    cases = [
        # --occluded-start 0.3 would have switched at epoch 1 (6/16 of the run): epoch 2's state is too late.
        (kept / "epoch0002.pt", {**late, "occluded_start": 0.3}, "epoch0001.pt instead"),
        (kept / "epoch0002.pt", {**late, "lr": 1e-3}, "lr=0.002"),                    # another setting
        (kept / "epoch0002.pt", {**late, "occluded_start": 0.0}, "must start"),        # over-sampled from step 0
        (parent / "checkpoint.pt", late, "middle of epoch 2"),                        # not an epoch checkpoint
    ]
    # Under --epochs the learning-rate decay spans the schedule's own step count: the parent's rates were others.
    by_epochs = _cfg(data, iters=None, epochs=2)
    train(TrainConfig(out=str(tmp_path / "by_epochs"), keep_epoch_checkpoints=True, **by_epochs))
    cases.append((tmp_path / "by_epochs" / "checkpoints" / "epoch0001.pt",
                  {**by_epochs, "occluded_repeat": 2, "occluded_start": 0.5}, "--iters or --time-budget"))
    # A damaged parent log (here: a row cut short) is refused with its file and line, not a traceback.
    shutil.copytree(parent, tmp_path / "damaged")
    with (tmp_path / "damaged" / "steps.csv").open("a") as f:
        f.write("13,\n")
    cases.append((tmp_path / "damaged" / "checkpoints" / "epoch0002.pt", late, r"steps.csv:\d+: not a step record"))
    for number, (path, cfg, message) in enumerate(cases):
        out = tmp_path / f"refused{number}"
        with pytest.raises(ValueError, match=message):
            train(TrainConfig(out=str(out), branch_from=str(path), **cfg))
        assert not (out / "checkpoint.pt").exists() and not (out / "config.json").exists()


def test_a_branch_keeps_the_parent_curve_up_to_the_branch_and_resumes_as_itself(data, tmp_path, monkeypatch):
    from tests.trainer_stop import stop_after_step  # noqa: PLC0415

    curve = dict(curve_every_min=1e-4, curve_data=str(data), curve_max_images=2, keep_curve_models=True)
    parent = tmp_path / "parent"
    train(TrainConfig(out=str(parent), keep_epoch_checkpoints=True, **_cfg(data, **curve)))
    late = _cfg(data, occluded_repeat=2, occluded_start=0.4, **curve)
    branch_args = dict(out=str(tmp_path / "branch"), branch_from=str(parent / "checkpoints" / "epoch0002.pt"), **late)
    stop_after_step(monkeypatch, 14)
    assert train(TrainConfig(**branch_args))["interrupted"]
    monkeypatch.undo()
    assert train(TrainConfig(**branch_args))["step"] == 16     # resumed from its own checkpoint, not re-branched
    evals = RunLog(tmp_path / "branch").read_evals()
    inherited = [e for e in evals if e["step"] <= 12]
    assert inherited == [e for e in RunLog(parent).read_evals() if e["step"] <= 12] and inherited
    assert all((tmp_path / "branch" / e["model_file"]).exists() for e in evals)
    assert max(e["step"] for e in evals) == 16 and (tmp_path / "branch" / "best.pt").exists()
    assert len(RunLog(tmp_path / "branch").read_steps()) == 16
