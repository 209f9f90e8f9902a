"""--keep-curve-models: every curve point's model is kept, and scores what the curve recorded."""
from __future__ import annotations

import json

import pytest

from core.evaluation.runner import TEST_SCORE_THRESHOLD, evaluate_detector_on_dataset, summarise
from core.inference.detector import Detector
from core.inference.modelfile import file_sha256, sidecar_path
from core.training.config import TrainConfig
from core.training.trainer import train
from tests.tiny_dataset import make_tiny_dataset

SMALL = {"input_size": [96, 128], "widths": [8, 8, 16, 16, 16], "neck_channels": 16, "head_channels": 16}


def run_config(data, out, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), arch="fast", attention="doam", strategy="hard", epochs=1,
                batch_size=2, workers=0, warmup_iters=2, checkpoint_every_s=1e9, model_options=dict(SMALL),
                curve_every_min=0.0, curve_data=str(data), device="cpu")
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("curve-models"), n_train=6, n_test=4)


def test_each_curve_point_keeps_a_model_that_scores_what_the_curve_says(data, tmp_path):
    train(run_config(data, tmp_path, iters=2, keep_curve_models=True))
    train(run_config(data, tmp_path, iters=4, keep_curve_models=True))     # resumed: the curve goes on
    points = [json.loads(line) for line in (tmp_path / "evals.jsonl").read_text().splitlines() if line.strip()]
    assert len(points) >= 3 and all("model_file" in p for p in points)
    # A step evaluated twice (the forced last point, then the resumed run's first) names one file.
    assert [p["model_file"] for p in points] == [f"curve_models/step{p['step']:07d}.pt" for p in points]
    assert all((tmp_path / p["model_file"]).is_file() for p in points)
    for point in (points[0], points[-1]):
        path = tmp_path / point["model_file"]
        assert sidecar_path(path).read_text().split()[0] == file_sha256(path)
        detector = Detector.load(path, device="cpu", score_threshold=TEST_SCORE_THRESHOLD)
        assert detector.model_id and summarise(evaluate_detector_on_dataset(detector, data))["map"] == \
            pytest.approx(point["map"], abs=1e-4)


def test_without_the_flag_no_curve_models_are_written(data, tmp_path):
    train(run_config(data, tmp_path, iters=2))
    assert not (tmp_path / "curve_models").exists()
    points = [json.loads(line) for line in (tmp_path / "evals.jsonl").read_text().splitlines() if line.strip()]
    assert points and not any("model_file" in p for p in points)
