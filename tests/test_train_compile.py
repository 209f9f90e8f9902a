"""``--compile``: the training steps run the Inductor-compiled network and learn what eager steps learn."""
import csv
import shutil
from pathlib import Path

import pytest
import torch
from torch._dynamo.utils import counters

from core.inference.detector import Detector
from core.training.checkpoint import load_checkpoint
from core.training.trainer import train
from tests.test_trainer import SMALL, config
from tests.tiny_dataset import make_tiny_dataset

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="Inductor's CPU kernels need g++")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny"), n_train=8, n_test=4)


def losses(run_dir: Path) -> list[float]:
    with open(run_dir / "steps.csv", newline="") as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


def test_compiled_steps_match_eager_steps_and_write_a_plain_model_file(data, tmp_path):
    options = {**SMALL, "attention_loss_weight": 1.0}       # DOAM and its map loss, the default recipe's
    counters.clear()
    eager = train(config(data, tmp_path / "eager", iters=3, model_options=options))
    assert counters["stats"]["unique_graphs"] == 0           # the eager run compiled nothing
    compiled = train(config(data, tmp_path / "compiled", iters=3, compile=True, model_options=options))
    assert counters["stats"]["unique_graphs"] >= 1, dict(counters["stats"])   # Dynamo captured the network
    a, b = losses(Path(eager["run_dir"])), losses(Path(compiled["run_dir"]))
    assert len(a) == len(b) == 3
    # Fused kernels round differently, so the same steps agree closely but not bit for bit.
    assert a == pytest.approx(b, rel=2e-3), (a, b)
    sa = load_checkpoint(Path(eager["run_dir"]) / "checkpoint.pt")["state_dict"]
    sb = load_checkpoint(Path(compiled["run_dir"]) / "checkpoint.pt")["state_dict"]
    assert sa.keys() == sb.keys()          # no "_orig_mod." names: the eager module was saved
    # AdamW moves a weight by ~lr whatever its gradient's size, so where a gradient is near zero the
    # rounding can flip a step: weights agree to a share of their scale plus less than one step (lr 4e-3).
    far = {k: (sa[k].float() - sb[k].float()).abs().max().item() for k in sa
           if (sa[k].float() - sb[k].float()).abs().max() > 1e-2 * sa[k].float().abs().max() + 3e-3}
    assert not far, far
    detector = Detector.load(Path(compiled["model"]))        # evaluation needs no compiler
    assert detector.model_id.startswith("fast-doam-")


def test_the_compiled_forward_is_used_only_inside_the_block() -> None:
    from core.models.build import build_detector
    from core.training.compiled import compiled_forward

    model = build_detector("fast", "none", **SMALL)
    calls = []

    def compiled(images):
        calls.append(images.shape)
        return type(model).forward_raw(model, images)

    with compiled_forward(model, compiled):
        model.train()(torch.rand(1, 3, 96, 128), [{"boxes": torch.tensor([[10.0, 10.0, 40.0, 40.0]]),
                                                   "labels": torch.tensor([1])}])
    assert calls == [torch.Size([1, 3, 96, 128])]
    assert "forward_raw" not in vars(model)                # the class's eager method again, as saved
    model.eval()(torch.rand(1, 3, 96, 128))
    assert len(calls) == 1


def test_without_a_compiler_the_run_stops_with_a_clear_error(data, tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler")
    with pytest.raises(RuntimeError, match="--compile needs a C\\+\\+ compiler"):
        train(config(data, tmp_path, iters=1, compile=True))


def test_only_the_fast_detector_can_be_compiled(data, tmp_path):
    with pytest.raises(ValueError, match="forward_raw"):
        train(config(data, tmp_path, iters=1, compile=True, arch="ssd", model_options={}))
