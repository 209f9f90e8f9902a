"""The CUDA path: the same inference and training code on a GPU, and the torchrun launch.

Skipped where there is no GPU (this machine, CI); run on a lent GPU machine with
``python -m pytest tests/test_cuda.py``. What is checked is that the device code paths
work and agree with the CPU, not speed (that is ``python main.py bench`` on the GPU).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from core.inference import Detector
from core.models.build import build_detector
from tests.tiny_dataset import make_tiny_dataset

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "resources" / "models" / "default.pt"
SMALL = {"input_size": [96, 128], "widths": [8, 8, 16, 16, 16], "neck_channels": 16, "head_channels": 16}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny-cuda"), n_train=8, n_test=4)


@pytest.fixture(scope="module")
def bag() -> np.ndarray:
    """A synthetic bag with cutters in it, so the shipped model has real detections to compare."""
    from core.imaging.decode import decode_bytes  # noqa: PLC0415
    from core.synth.generator import make_image  # noqa: PLC0415
    from core.synth.scene import SceneConfig  # noqa: PLC0415

    return decode_bytes(make_image((5, "test", 0, "cuda-0", SceneConfig())).jpg)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def test_shipped_model_gives_the_same_detections_on_gpu_as_on_cpu(bag):
    cpu = Detector.load(DEFAULT_MODEL, device="cpu", score_threshold=0.2)
    gpu = Detector.load(DEFAULT_MODEL, device="cuda", score_threshold=0.2)
    assert gpu.device.type == "cuda"
    a, b = cpu.predict(bag), gpu.predict(bag)
    assert len(a) > 0, "the shipped model should find something in a bag with cutters"
    # fp16 autocast on the GPU: scores agree to a few hundredths; a detection right at the
    # threshold may appear on one side only, so match the confident ones.
    for box, label, score in zip(a.boxes, a.labels, a.scores):
        if score < 0.3:
            continue
        ious = [_iou(box, other) for other, lab in zip(b.boxes, b.labels) if lab == label]
        assert ious and max(ious) > 0.9, f"CPU detection {box} ({label}, {score:.2f}) not found on the GPU"
    np.testing.assert_allclose(a.attention, b.attention, atol=0.03)
    assert b.attention.shape == bag.shape[:2]
    assert b.timings["model"] > 0


def test_batch_prediction_on_gpu_matches_single(bag):
    gpu = Detector.load(DEFAULT_MODEL, device="cuda", score_threshold=0.2)
    small = cv2.resize(bag, (bag.shape[1] // 2, bag.shape[0] // 2))
    single = [gpu.predict(img) for img in (bag, small)]
    batch = gpu.predict_batch([bag, small])
    for s, p in zip(single, batch):
        assert len(s) == len(p)
        np.testing.assert_allclose(s.scores, p.scores, atol=0.02)


@pytest.mark.parametrize("arch", ["fast", "ssd", "yolov3", "fcos"])
@pytest.mark.parametrize("attention", ["none", "doam"])
def test_each_detector_trains_a_step_and_predicts_on_gpu(arch, attention):
    torch.manual_seed(0)
    model = build_detector(arch, attention).cuda().train()
    h, w = model.input_size
    images = torch.rand(2, 3, h, w, device="cuda")
    targets = [{"boxes": torch.tensor([[w * 0.2, h * 0.3, w * 0.5, h * 0.6]], device="cuda"),
                "labels": torch.tensor([i + 1], device="cuda")} for i in range(2)]
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    before = [p.detach().clone() for p in model.parameters()]
    losses = model(images, targets)
    loss = torch.stack(list(losses.values())).sum(dim=0).mean()
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    assert any(not torch.equal(p0, p) for p0, p in zip(before, model.parameters()))
    detector = Detector.from_model(model.eval(), device="cuda", score_threshold=0.0)
    pred = detector.predict((np.random.default_rng(0).random((240, 320, 3)) * 255).astype(np.uint8))
    assert pred.boxes.shape[1:] == (4,) and np.isfinite(pred.scores).all()
    if attention == "doam":
        assert pred.attention.shape == (240, 320) and 0 <= pred.attention.min() <= pred.attention.max() <= 1


def test_train_command_on_gpu_writes_a_model_that_loads_and_evaluates(data, tmp_path):
    from core.evaluation.runner import evaluate_detector_on_dataset, summarise  # noqa: PLC0415
    from core.training.config import TrainConfig  # noqa: PLC0415
    from core.training.trainer import train  # noqa: PLC0415

    cfg = TrainConfig(data=str(data), out=str(tmp_path), arch="fast", attention="doam", strategy="hard",
                      iters=4, batch_size=2, workers=0, warmup_iters=1, pool_capacity=2, pool_period=1,
                      checkpoint_every_s=1e9, device="cuda", model_options=dict(SMALL))
    result = train(cfg)
    assert result["step"] == 4
    detector = Detector.load(result["model"], device="cuda")
    assert detector.device.type == "cuda"
    metrics = summarise(evaluate_detector_on_dataset(detector, data))
    assert 0.0 <= metrics["map"] <= 1.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_launches_a_gpu_training_process(data, tmp_path):
    """The same command under torchrun on the GPU. One process only: with WORLD_SIZE 1 the trainer makes
    no process group, so NCCL itself needs a machine with two GPUs (NCCL refuses two ranks on one)."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_port",
           str(_free_port()), "main.py", "train", "--data", str(data), "--out", str(out), "--iters", "3",
           "--batch-size", "2", "--workers", "0", "--strategy", "hard", "--pool-period", "1",
           "--pool-capacity", "2", "--device", "cuda",
           *[f"--model-option={k}={json.dumps(v)}" for k, v in SMALL.items()]]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "result.json").read_text())["step"] == 3
    assert Detector.load(out / "model.pt", device="cuda").device.type == "cuda"
