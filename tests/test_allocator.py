"""core.allocator: glibc keeps freed memory for reuse, so repeated large tensors stop page-faulting."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                                reason="mallopt is glibc's")

# Allocates and frees a 48 MB array 20 times (above glibc's largest automatic mmap threshold,
# 32 MB, so by default each one is a fresh mmap), before and after keep_freed_memory().
PROBE = textwrap.dedent("""
    import json, resource
    import numpy as np
    from core.allocator import keep_freed_memory

    def faults():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(20):
            block = np.ones(6 << 20)
            del block
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    default = faults()
    applied = keep_freed_memory()
    faults()   # the first block after the change grows the heap once
    print(json.dumps({"default": default, "applied": applied, "tuned": faults()}))
""")


def _probe(extra_env: dict[str, str] | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(extra_env or {})
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_freed_blocks_are_reused_without_page_faults() -> None:
    result = _probe()
    assert result["applied"] is True
    # glibc's default: every block is a new mapping that faults in anew (at least once per block;
    # how many faults depends on the kernel's page sizes: 10 720 here, with transparent huge pages).
    assert result["default"] >= 20, result
    assert result["tuned"] < result["default"] // 20, result


def test_the_environment_wins() -> None:
    result = _probe({"MALLOC_TRIM_THRESHOLD_": "131072"})
    assert result["applied"] is False


def test_batch_jobs_apply_it_unless_told_not_to_and_the_workstation_never() -> None:
    from core.cli import BATCH_JOBS, keeps_freed_memory  # noqa: PLC0415

    assert {"train", "eval", "retrain", "bench"} <= BATCH_JOBS
    assert "workstation" not in BATCH_JOBS and "screenshot" not in BATCH_JOBS
    asked = {"XRAY_KEEP_FREED_MEMORY": "1"}
    assert keeps_freed_memory("train", asked) and keeps_freed_memory("eval", asked)
    assert keeps_freed_memory("retrain", {}) and keeps_freed_memory("bench", {})   # on by default
    assert not keeps_freed_memory("train", {"XRAY_KEEP_FREED_MEMORY": "0"})       # the way to turn it off
    assert not keeps_freed_memory("workstation", asked) and not keeps_freed_memory("screenshot", asked)
