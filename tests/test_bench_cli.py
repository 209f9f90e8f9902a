"""The CLI starts without torch, and the training benchmark measures what it says."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from core.bench.training import measure_pool
from tests.tiny_dataset import make_tiny_dataset

ROOT = Path(__file__).resolve().parents[1]


def test_building_the_cli_does_not_load_torch_or_qt() -> None:
    # Every `python main.py ...` builds the whole parser: heavy imports there cost seconds per command.
    code = ("import sys; from core.cli import build_parser; build_parser(); "
            "heavy = [m for m in ('torch', 'torchvision', 'PySide6') if m in sys.modules]; print(heavy); "
            "sys.exit(1 if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_pool_benchmark_counts_replay_steps_and_their_share(tmp_path: Path) -> None:
    data = make_tiny_dataset(tmp_path / "data", n_train=8, n_test=2)
    pool = measure_pool(data, tmp_path / "runs", steps=4, batch=2, period=1)
    assert pool["replay_steps"] >= 1
    assert 0.0 < pool["replay_share_of_training_time"] < 1.0
    assert pool["wall_hard_over_traditional"] > 0
