"""The retrain command under torchrun: two CPU processes, one job, one candidate, no hang.

The scenario of ``tests/test_retrain.py`` (``core.bench.retrain``) at its smallest:
a few bags, a weak model trained for a few steps, a handful of fine-tuning steps.
What is checked is the division of labour (rank 0 alone writes the store, both
ranks train), not the model's quality.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from core.bench.retrain import ALARM_THRESHOLD, correct_bags, make_data, screen_lane, train_weak_model
from tests.store.conftest import _cheap_password_hashing  # noqa: F401 - autouse: cheap argon2 here too
from tests.test_retrain import Loop, _audit_actions, _site, _weak

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 240   # far above the ~20 s a run takes; a hung rank gives up after --dist-timeout 1 (min)


@pytest.fixture(scope="module")
def loop(tmp_path_factory) -> Loop:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ddp-loop")
    data = make_data(root, base_images=16, benchmark_images=6, lane_bags=12)
    weak = train_weak_model(data.base, root / "weak", iters=10)
    return Loop(data, Path(weak["model"]), weak["sha256"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _retrain_args(loop: Loop, data_dir: Path, *extra: str) -> list[str]:
    return ["main.py", "retrain", "--data-dir", str(data_dir), "--benchmark", str(loop.data.benchmark),
            "--user", "sup", "--score-threshold", str(ALARM_THRESHOLD), "--iters", "4", "--batch-size", "2",
            "--threads", "1", "--device", "cpu", "--dist-timeout", "1", *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _torchrun(args: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(_free_port()), *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S, env=_env())


def _job_events(store) -> Counter:
    return Counter(a for a in _audit_actions(store) if a.startswith("job."))


@pytest.mark.slow
def test_two_processes_train_one_candidate_and_only_rank_0_writes_the_store(loop: Loop, tmp_path: Path) -> None:
    data_dir = tmp_path / "site"
    store, site, weak_id = _site(loop, data_dir)
    assert correct_bags(site, screen_lane(site, _weak(loop), weak_id, loop.data.lane)) >= 4

    done = _torchrun(_retrain_args(loop, data_dir))

    assert done.returncode == 0, done.stderr[-4000:]       # torchrun: 0 only if both processes exited 0
    outcome = json.loads(done.stdout)                       # printed once: by rank 0
    assert outcome["status"] in ("promoted", "rejected"), outcome
    jobs = store.jobs.list()
    assert len(jobs) == 1 and jobs[0].state == "succeeded" and jobs[0].id == outcome["job_id"]
    candidates = [m for m in store.models.list() if m.id != weak_id]
    assert len(candidates) == 1 and candidates[0].job_id == jobs[0].id == outcome["job_id"]
    assert candidates[0].metrics["lineage"]["train_result"]["world_size"] == 2
    log_text = Path(jobs[0].log_path).read_text()
    assert "training on 2 processes" in log_text and "rank 0 of 2" in log_text
    assert "rank 1: training ended at step 4" in done.stderr  # the other rank trained along
    events = _job_events(store)
    assert events == Counter({"job.create": 1, "job.running": 1, "job.succeeded": 1}), events
    assert _audit_actions(store).count("model.register") == 2   # the weak model and the one candidate
    assert store.verify_audit().ok
    store.close()


def test_a_refusal_on_rank_0_releases_the_other_rank(loop: Loop, tmp_path: Path) -> None:
    data_dir = tmp_path / "site"
    store, site, _ = _site(loop, data_dir)
    busy = store.jobs.create(site.supervisor, settings={})
    store.jobs.start(site.supervisor, busy.id)        # another job is running: rank 0 must refuse
    # The two ranks launched by hand, as torchrun would, to read each one's exit code.
    port = str(_free_port())
    procs = [subprocess.Popen([sys.executable, *_retrain_args(loop, data_dir)], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**_env(), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "WORLD_SIZE": "2",
                                   "RANK": str(rank), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2"})
             for rank in (0, 1)]
    try:
        results = [p.communicate(timeout=TIMEOUT_S) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    (_, err0), (out1, err1) = results
    assert procs[0].returncode == 3, err0[-3000:]
    assert "never two jobs at once" in err0
    assert procs[1].returncode == 0, err1[-3000:]
    assert "rank 0 ended the job before training" in err1 and "exit code 3" in err1 and not out1
    assert [j.id for j in store.jobs.list()] == [busy.id]     # nothing created by either rank
    assert _job_events(store) == Counter({"job.create": 1, "job.running": 1})
    store.close()


def test_nothing_to_do_under_torchrun_exits_cleanly(loop: Loop, tmp_path: Path) -> None:
    data_dir = tmp_path / "site"
    store, _, _ = _site(loop, data_dir)               # an active model, no corrections at all

    done = _torchrun(_retrain_args(loop, data_dir))

    assert done.returncode == 0, done.stderr[-3000:]
    assert "no hard samples" in json.loads(done.stdout)["message"]
    assert "rank 0 ended the job before training" in done.stderr
    assert store.jobs.list() == [] and _job_events(store) == Counter()
    store.close()
