"""The trainer end to end on a tiny dataset: strategies, resume, curve, determinism, DDP."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from core.training.checkpoint import load_checkpoint
from core.training.config import TrainConfig
from core.training.trainer import train
from tests.tiny_dataset import make_tiny_dataset
from tests.trainer_stop import stop_after_step

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"input_size": [96, 128], "widths": [8, 8, 16, 16, 16], "neck_channels": 16, "head_channels": 16}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny"), n_train=8, n_test=4)


def config(data, out, **kw):
    base = dict(data=str(data), out=str(out), arch="fast", attention="doam", strategy="hard", epochs=1,
                batch_size=2, workers=0, warmup_iters=2, checkpoint_every_s=1e9, model_options=dict(SMALL))
    base.update(kw)
    return TrainConfig(**base)


def test_focal_needs_a_detector_with_a_focal_loss(data, tmp_path):
    with pytest.raises(ValueError, match="focal loss"):
        train(config(data, tmp_path, arch="ssd", strategy="focal", model_options={}))


@pytest.mark.parametrize("strategy", ["traditional", "hard", "easy", "random", "focal"])
def test_each_strategy_runs_and_writes_a_loadable_model(data, tmp_path, strategy):
    result = train(config(data, tmp_path, strategy=strategy, pool_capacity=2))
    steps = [json.loads(json.dumps(r)) for r in (tmp_path / "steps.csv").read_text().splitlines()[1:]]
    assert result["epoch"] == 1
    phases = [line.split(",")[5] for line in steps]
    assert phases.count("train") == 4                       # 8 images, batch 2
    assert phases.count("replay") == (0 if strategy in ("traditional", "focal") else 1)  # 2 pooled: one batch
    from core.inference.detector import Detector
    detector = Detector.load(tmp_path / "model.pt")
    assert detector.model_id.startswith("fast-doam-")
    assert detector.info.extra["data"] == Path(data).name      # no absolute paths of this machine
    assert (tmp_path / "curve.png").exists()


def test_same_seed_gives_identical_weights(data, tmp_path):
    a = train(config(data, tmp_path / "a", iters=3, augment=True))
    b = train(config(data, tmp_path / "b", iters=3, augment=True, workers=1))
    sa = load_checkpoint(Path(a["run_dir"]) / "checkpoint.pt")["state_dict"]
    sb = load_checkpoint(Path(b["run_dir"]) / "checkpoint.pt")["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resume_continues_where_it_stopped_with_the_same_result(data, tmp_path, monkeypatch):
    full = train(config(data, tmp_path / "full", iters=4))

    stop_after_step(monkeypatch, 2)
    stopped = train(config(data, tmp_path / "split", iters=4))
    assert stopped["interrupted"] and stopped["step"] == 2
    monkeypatch.undo()
    resumed = train(config(data, tmp_path / "split", iters=4))  # the same command again
    assert resumed["step"] == 4 and not resumed["interrupted"]
    sa = load_checkpoint(Path(full["run_dir"]) / "checkpoint.pt")["state_dict"]
    sb = load_checkpoint(Path(resumed["run_dir"]) / "checkpoint.pt")["state_dict"]
    assert all(torch.allclose(sa[k], sb[k], atol=1e-6) for k in sa)
    rows = (tmp_path / "split" / "steps.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [1, 2, 3, 4]


def test_resume_refuses_other_settings(data, tmp_path):
    train(config(data, tmp_path, iters=1))
    with pytest.raises(ValueError, match="attention"):
        train(config(data, tmp_path, iters=2, attention="none"))


def test_learning_curve_is_recorded_and_keeps_its_clock_across_resume(data, tmp_path):
    cfg = config(data, tmp_path, iters=2, curve_every_min=0.0, curve_data=str(data))
    first = train(cfg)
    evals = json.loads((tmp_path / "curve.json").read_text())
    assert evals and {"map", "map_ol1", "map_ol2", "map_ol3", "train_seconds"} <= set(evals[-1])
    clock = load_checkpoint(tmp_path / "checkpoint.pt")["state"].train_seconds
    assert clock > 0
    train(config(data, tmp_path, iters=3, curve_every_min=0.0, curve_data=str(data)))
    later = json.loads((tmp_path / "curve.json").read_text())
    assert later[-1]["train_seconds"] >= clock >= later[0]["train_seconds"] - 1e-6
    assert first["step"] == 2 and (tmp_path / "best.pt").exists()


def test_kill_then_resume_loses_at_most_one_interval(data, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "main.py", "train", "--data", str(data), "--out", str(out), "--iters", "400",
           "--batch-size", "2", "--workers", "0", "--checkpoint-every", "0",
           *[f"--model-option={k}={json.dumps(v)}" for k, v in SMALL.items()]]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "checkpoint.pt").exists():
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = load_checkpoint(out / "checkpoint.pt")["state"].step
    assert 1 <= step < 400
    resumed = subprocess.run([*cmd[:cmd.index("--iters") + 1], str(step + 2), *cmd[cmd.index("--iters") + 2:]],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads(resumed.stdout)["step"] == step + 2


def test_two_process_ddp_step_on_cpu(data, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
           "main.py", "train", "--data", str(data), "--out", str(out), "--iters", "2", "--batch-size", "2",
           "--workers", "0", "--strategy", "hard", "--pool-period", "1", "--pool-capacity", "2",
           *[f"--model-option={k}={json.dumps(v)}" for k, v in SMALL.items()]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["step"] >= 2 and (out / "model.pt").exists()


def test_init_from_a_model_file_continues_from_its_weights(data, tmp_path):
    first = train(config(data, tmp_path / "a", iters=2))
    from core.inference.modelfile import load_model_file
    base, info = load_model_file(first["model"])
    # Different arch/attention on the command line: the file's network wins.
    cfg = config(data, tmp_path / "b", iters=1, attention="none", model_options={}, init_from=first["model"],
                 init_sha256=first["sha256"], lr=1e-12, warmup_iters=1)
    second = train(cfg)
    tuned, tuned_info = load_model_file(second["model"])
    assert tuned_info.attention == info.attention == "doam"
    base_sd, tuned_sd = base.state_dict(), tuned.state_dict()
    weights = [k for k in base_sd if base_sd[k].is_floating_point() and "running" not in k]
    assert all(torch.allclose(base_sd[k], tuned_sd[k], atol=1e-6) for k in weights)


def test_init_from_takes_the_map_loss_but_refuses_architecture_options(data, tmp_path):
    first = train(config(data, tmp_path / "a", iters=1))
    start = dict(init_from=first["model"], init_sha256=first["sha256"], iters=1)
    tuned = train(config(data, tmp_path / "b", model_options={"attention_loss_weight": 1.0}, **start))
    from core.inference.modelfile import load_model_file
    model, info = load_model_file(tuned["model"])
    assert info.config["options"]["attention_loss_weight"] == 1.0 and model.attention_loss_weight == 1.0
    assert info.config["options"]["widths"] == SMALL["widths"]           # the file's architecture kept
    with pytest.raises(ValueError, match="widths"):
        train(config(data, tmp_path / "c", model_options={"widths": [8, 8, 8, 8, 8]}, **start))


def test_trainer_runs_in_a_thread_and_stops_on_request(data, tmp_path):
    """Signal handlers only install on the main thread; in another thread the trainer runs without them."""
    import threading  # noqa: PLC0415

    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.update(train(config(data, tmp_path, iters=2))))
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive() and outcome.get("step") == 2


def test_data_workers_start_after_the_parent_used_opencv_threads(data, tmp_path):
    """Workers are forked: one that reconfigures OpenCV's thread pool inherited mid-state hangs for ever
    (a worker_init_fn calling cv2.setNumThreads did, in the full suite). Run where the pool is live."""
    script = f"""
import cv2, json, numpy as np, sys
sys.path.insert(0, {str(ROOT)!r})
cv2.setNumThreads(2)
for _ in range(20):
    cv2.resize(np.zeros((2000, 2000, 3), np.uint8), (700, 700), interpolation=cv2.INTER_AREA)
from core.training.config import TrainConfig
from core.training.trainer import train
cfg = TrainConfig(data={str(data)!r}, out={str(tmp_path)!r}, arch="fast", attention="doam", strategy="hard",
                  iters=2, batch_size=2, workers=1, warmup_iters=1, checkpoint_every_s=1e9,
                  model_options={SMALL!r})
print(json.dumps({{"step": train(cfg)["step"]}}))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["step"] == 2


def test_a_checkpoint_from_before_over_sampling_existed_resumes_at_its_defaults(data, tmp_path):
    train(config(data, tmp_path, iters=1))
    path = tmp_path / "checkpoint.pt"
    payload = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("occluded_repeat", "occluded_from"):  # what a run saved before the option wrote
        del payload["config"][key]
    torch.save(payload, path)
    assert train(config(data, tmp_path, iters=2))["step"] == 2   # another mix is refused: test_oversample
