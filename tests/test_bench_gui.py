"""``python main.py bench gui``: the real lane streams offscreen and the JSON says what was measured."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BAGS = 3


def test_bench_gui_streams_n_bags_and_reports_stalls_and_latencies() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("QT_QPA_PLATFORM", None)            # the bench must choose offscreen by itself
    done = subprocess.run([sys.executable, "main.py", "bench", "gui", "--gui-bags", str(BAGS), "--gui-rate", "20"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    gui = json.loads(done.stdout)["gui"]
    assert gui["qt_platform"] == "offscreen" and not gui["timed_out"]
    assert gui["bags"] == gui["bags_shown"] == gui["bags_decided"] == BAGS
    assert gui["bags_with_boxes"] + gui["bags_detection_failed"] == BAGS
    assert gui["bags_screened_in_store"] == gui["bags_with_boxes"]      # each screened once, by the active model
    stall = gui["stall"]
    assert stall["ticks"] > 0 and stall["gap_max_ms"] >= stall["gap_p99_ms"] >= stall["tick_ms"] > 0
    assert 0 <= stall["gaps_over_50ms"] <= stall["ticks"]
    boxes, commit = gui["bag_shown_to_boxes_ms"], gui["decision_commit_ms"]
    assert boxes["count"] == gui["bags_with_boxes"] and 0 < boxes["p50"] <= boxes["p95"] <= boxes["max"]
    assert commit["count"] == BAGS and 0 < commit["p50"] <= commit["p95"] <= commit["max"]
    assert 0 < gui["bags_per_s"] and gui["elapsed_s"] > 0
    model = gui["model"]
    assert model["load_failed"] is None and model["model_id"]
    default = ROOT / "resources" / "models" / "default.pt"
    assert model["untrained"] == (not default.is_file())
    assert ("untrained" in model["source"]) == model["untrained"]
    assert gui["gui_thread_cpu_ms_per_bag"] is None or gui["gui_thread_cpu_ms_per_bag"] > 0
    gc_pauses = gui["gc_while_streaming"]
    assert 0 <= gc_pauses["full_collections"] <= gc_pauses["collections"]
    assert gc_pauses["max_ms"] <= gc_pauses["total_ms"] + 0.1
