"""Over-sampling occluded training scenes (core.data.oversample) and the trainer's --occluded-repeat."""
from pathlib import Path

import numpy as np
import torch
import pytest

from core.data.crops import CropDataset
from core.data.opixray import load_split
from core.data.oversample import RepeatedScenes, scene_repeats
from core.synth.occlusion_table import OcclusionTableError, read_table, table_path
from core.training.config import TrainConfig
from core.training.trainer import Trainer
from tests.tiny_runs import SMALL, small_scenes
from tests.trainer_stop import stop_after_step


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return small_scenes(tmp_path_factory.mktemp("oversample") / "data", 10)


def _most_hidden(data):
    table = read_table(data, "train")
    samples = load_split(data, "train")
    return samples, table, np.array([max((i.opacity for i in table.get(s.image_id, ())), default=0.0)
                                     for s in samples])


def test_scenes_with_an_item_under_heavy_cover_repeat_and_the_others_do_not(data):
    samples, table, most = _most_hidden(data)
    cut = float(np.median(most[most > 0]))
    repeats = scene_repeats(samples, table, cut, 3)
    assert repeats.tolist() == [3 if m >= cut else 1 for m in most]
    assert 0 < (repeats == 3).sum() < len(samples)
    assert scene_repeats(samples, table, cut, 1).tolist() == [1] * len(samples)

    base = CropDataset(data, "train", input_size=(160, 192), crop_size=96)
    repeated = RepeatedScenes(base, repeats)
    assert len(repeated) == len(samples) + 2 * int((repeats == 3).sum()) and repeated.extra == len(repeated) - len(base)
    assert repeated.scene_of[:len(base)].tolist() == list(range(len(base)))     # originals keep their index
    copies = repeated.scene_of[len(base):]
    assert sorted(set(copies.tolist())) == np.flatnonzero(repeats == 3).tolist()
    assert np.bincount(copies, minlength=len(base)).tolist() == (repeats - 1).tolist()
    image, target = repeated[len(base)]
    assert image.shape == (3, 96, 96) and target["image_id"] == samples[copies[0]].image_id
    with pytest.raises(ValueError, match="one repeat count"):
        RepeatedScenes(base, repeats[:-1])
    with pytest.raises(ValueError, match="repeat must be"):
        scene_repeats(samples, table, cut, 0)
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        scene_repeats(samples, table, 0.0, 2)


def test_a_table_of_other_scenes_is_refused(data):
    samples, table, _ = _most_hidden(data)
    victim = next(s for s in samples if s.boxes)
    moved = [type(item)(item.image_id, type(item.box)(item.box.label, item.box.x1 + 1, item.box.y1, item.box.x2,
                                                      item.box.y2), item.level, item.opacity, item.covered)
             for item in table[victim.image_id]]
    with pytest.raises(OcclusionTableError, match=victim.image_id):
        scene_repeats(samples, {**table, victim.image_id: moved}, 0.5, 2)


def test_the_trainer_over_samples_from_the_table_and_explains_a_missing_one(data, tmp_path):
    samples, table, most = _most_hidden(data)
    cfg = dict(data=str(data), arch="fast", attention="none", strategy="hard", iters=1, batch_size=2, workers=0,
               warmup_iters=1, checkpoint_every_s=1e9, model_options=SMALL, crop=96, occluded_from=0.3)
    trainer = Trainer(TrainConfig(out=str(tmp_path / "a"), occluded_repeat=4, **cfg))
    trainer._build()
    assert len(trainer.dataset) == len(samples) + 3 * int((most >= 0.3).sum())
    plain = Trainer(TrainConfig(out=str(tmp_path / "b"), **cfg))
    plain._build()
    assert len(plain.dataset) == len(samples)
    with pytest.raises(ValueError, match="occluded-repeat"):
        TrainConfig(out="x", **{**cfg, "occluded_repeat": 0})

    bare = tmp_path / "bare"
    small_scenes(bare, 2, seed=3)
    table_path(bare, "train").unlink()
    with pytest.raises(OcclusionTableError, match="synth-occlusion"):
        Trainer(TrainConfig(out=str(tmp_path / "c"), occluded_repeat=2, **{**cfg, "data": str(bare)}))._build()


def test_an_over_sampled_run_resumes_where_it_stopped_with_the_same_result(data, tmp_path, monkeypatch):
    # Long over-sampled runs are left to be resumed across sessions: the repeated scenes must come back
    # in the same order after a stop, across an epoch boundary, or the resumed run is another run.
    from core.training.checkpoint import load_checkpoint  # noqa: PLC0415
    from core.training.trainer import train  # noqa: PLC0415

    cfg = dict(data=str(data), arch="fast", attention="none", strategy="hard", iters=9, batch_size=2, workers=0,
               warmup_iters=1, checkpoint_every_s=1e9, model_options=SMALL, crop=96, occluded_from=0.3,
               occluded_repeat=2)
    full = train(TrainConfig(out=str(tmp_path / "full"), **cfg))
    stop_after_step(monkeypatch, 3)
    stopped = train(TrainConfig(out=str(tmp_path / "split"), **cfg))
    assert stopped["interrupted"] and stopped["step"] == 3
    monkeypatch.undo()
    resumed = train(TrainConfig(out=str(tmp_path / "split"), **cfg))
    assert resumed["step"] == 9 and not resumed["interrupted"] and resumed["epoch"] >= 1
    sa = load_checkpoint(tmp_path / "full" / "checkpoint.pt")["state_dict"]
    sb = load_checkpoint(tmp_path / "split" / "checkpoint.pt")["state_dict"]
    assert all(torch.allclose(sa[k], sb[k], atol=1e-6) for k in sa)
    with pytest.raises(ValueError, match="occluded"):  # resuming with another mix is another run
        train(TrainConfig(out=str(tmp_path / "split"), **{**cfg, "iters": 10, "occluded_repeat": 3}))


def _epoch_draws(monkeypatch) -> dict[int, list[int]]:
    """Records the dataset indices each epoch's batch plan draws (a resumed epoch is planned again, the same)."""
    draws: dict[int, list[int]] = {}
    original = Trainer._batches_of_epoch

    def recording(self, epoch):
        batches = original(self, epoch)
        draws[epoch] = sorted(i for batch in batches for i in batch)
        return batches

    monkeypatch.setattr(Trainer, "_batches_of_epoch", recording)
    return draws


def test_a_scheduled_over_sampling_starts_at_the_first_epoch_past_its_share_and_survives_a_resume(
        data, tmp_path, monkeypatch):
    # --occluded-start 0.4 of 16 steps: epoch 0 takes 5 batches and a 1-step replay (6), epoch 1 starts at
    # 6/16 < 0.4 and is plain, epoch 2 starts at 12/16 and is the first over-sampled one.
    from core.training.checkpoint import load_checkpoint  # noqa: PLC0415
    from core.training.trainer import train  # noqa: PLC0415

    samples, _, most = _most_hidden(data)
    over = len(samples) + int((most >= 0.3).sum())
    cfg = dict(data=str(data), arch="fast", attention="none", strategy="hard", iters=16, batch_size=2, workers=0,
               warmup_iters=1, checkpoint_every_s=1e9, model_options=SMALL, crop=96, occluded_from=0.3,
               occluded_repeat=2, occluded_start=0.4, pool_capacity=2)
    draws = _epoch_draws(monkeypatch)
    full = train(TrainConfig(out=str(tmp_path / "full"), **cfg))
    assert full["step"] == 16 and full["epoch"] == 2
    assert draws[0] == draws[1] == list(range(len(samples)))      # plain epochs: each scene once
    assert draws[2] == list(range(over))                           # then the copies too
    assert load_checkpoint(tmp_path / "full" / "checkpoint.pt")["state"].occluded_since_epoch == 2

    # Stopped in epoch 1, before the switch is decided: the resumed run decides it at the same step.
    stop_after_step(monkeypatch, 8)
    assert train(TrainConfig(out=str(tmp_path / "split"), **cfg))["step"] == 8
    monkeypatch.undo()
    assert train(TrainConfig(out=str(tmp_path / "split"), **cfg))["step"] == 16
    sa = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    sb = load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    assert sb["state"].occluded_since_epoch == 2
    assert all(torch.allclose(sa["state_dict"][k], sb["state_dict"][k], atol=1e-6) for k in sa["state_dict"])
    with pytest.raises(ValueError, match="occluded_start"):     # another schedule is another run
        train(TrainConfig(out=str(tmp_path / "split"), **{**cfg, "iters": 17, "occluded_start": 0.5}))


def test_a_scheduled_over_sampling_counts_its_epochs_steps_and_needs_a_repeat(data, tmp_path):
    samples, _, most = _most_hidden(data)
    cfg = dict(data=str(data), arch="fast", attention="none", strategy="hard", epochs=4, batch_size=2, workers=0,
               warmup_iters=1, checkpoint_every_s=1e9, model_options=SMALL, crop=96, occluded_from=0.3,
               occluded_repeat=2)
    plain = -(-len(samples) // 2)
    over = -(-(len(samples) + int((most >= 0.3).sum())) // 2)
    for start, expected in ((0.0, 4 * over), (0.5, 2 * plain + 2 * over), (0.3, 2 * plain + 2 * over)):
        trainer = Trainer(TrainConfig(out=str(tmp_path / f"s{start}"), **{**cfg, "occluded_start": start}))
        trainer._build()
        assert trainer._total_steps() == expected       # the learning-rate decay spans the real length

    # A time budget: the switch waits for the training clock, checked where an epoch starts.
    timed = Trainer(TrainConfig(out=str(tmp_path / "timed"),
                                **{**cfg, "epochs": None, "time_budget_min": 10.0, "occluded_start": 0.5}))
    timed._build()
    timed.state.epoch, timed.state.train_seconds = 2, 299.0
    timed._start_over_sampling_if_due()
    assert timed.state.occluded_since_epoch is None and not timed._over_sampled(2)
    timed.state.epoch, timed.state.train_seconds = 3, 300.0
    timed._start_over_sampling_if_due()
    assert timed.state.occluded_since_epoch == 3 and timed._over_sampled(3) and not timed._over_sampled(2)
    with pytest.raises(ValueError, match="needs --occluded-repeat"):
        TrainConfig(out="x", **{**cfg, "occluded_repeat": 1, "occluded_start": 0.5})
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        TrainConfig(out="x", **{**cfg, "occluded_start": 1.0})
