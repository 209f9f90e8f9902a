"""A run's record: CSV and JSON-lines logs of steps and evaluations, and the loss/mAP plot."""
from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

STEP_FIELDS = ["step", "epoch", "train_seconds", "loss", "lr", "phase", "images_per_s"]


class RunLog:
    """Appends to ``steps.csv`` and ``evals.jsonl`` in the run directory (safe across resumes)."""

    def __init__(self, run_dir: Path, enabled: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.steps_path = self.run_dir / "steps.csv"
        self.evals_path = self.run_dir / "evals.jsonl"

    def step(self, **row) -> None:
        if not self.enabled:
            return
        new = not self.steps_path.exists()
        with self.steps_path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=STEP_FIELDS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)

    def evaluation(self, record: dict) -> None:
        if not self.enabled:
            return
        with self.evals_path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def read_steps(self) -> list[dict]:
        if not self.steps_path.exists():
            return []
        with self.steps_path.open() as f:
            return list(csv.DictReader(f))

    def read_evals(self) -> list[dict]:
        """The evaluations logged so far; a ValueError naming file and line for one that is not JSON."""
        if not self.evals_path.exists():
            return []
        rows = []
        for number, line in enumerate(self.evals_path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{self.evals_path}:{number}: not a JSON line ({exc.msg})") from None
        return rows

    def truncate_after(self, step: int) -> None:
        """On resume, drop rows logged after the checkpoint's step (they will be redone)."""
        if not self.enabled:
            return
        if self.steps_path.exists():
            self.write_steps(self.read_steps(), up_to=step)
        if self.evals_path.exists():
            self.write_evals(self.read_evals(), up_to=step)

    def write_steps(self, rows: list[dict], up_to: int) -> None:
        """Replace ``steps.csv`` with the ``rows`` of steps up to ``up_to`` (a resume, or a branch's start)."""
        with self.steps_path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=STEP_FIELDS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(r for r in rows if int(r["step"]) <= up_to)

    def write_evals(self, records: list[dict], up_to: int) -> None:
        """Replace ``evals.jsonl`` with the evaluation ``records`` of steps up to ``up_to``."""
        self.evals_path.write_text("".join(json.dumps(e) + "\n" for e in records if e.get("step", 0) <= up_to))

    def plot(self, path: Path | None = None) -> Path | None:
        """Loss against training time, and mAP (overall and per OL) when evaluations exist."""
        if not self.enabled:
            return None
        steps = [r for r in self.read_steps() if r.get("phase") == "train"]
        if not steps:
            return None
        import matplotlib  # noqa: PLC0415 - plotting is optional for library users
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415

        evals = self.read_evals()
        fig, axes = plt.subplots(1, 2 if evals else 1, figsize=(11 if evals else 6, 4), squeeze=False)
        minutes = [float(r["train_seconds"]) / 60 for r in steps]
        losses = [float(r["loss"]) for r in steps]
        ax = axes[0][0]
        ax.plot(minutes, losses, lw=0.6, alpha=0.5, label="loss")
        window = max(1, len(losses) // 50)
        if window > 1:
            smooth = [sum(losses[max(0, i - window):i + 1]) / len(losses[max(0, i - window):i + 1])
                      for i in range(len(losses))]
            ax.plot(minutes, smooth, lw=1.5, label=f"loss (mean of {window})")
        ax.set_xlabel("training time (min)")
        ax.set_ylabel("loss")
        ax.set_yscale("log")
        ax.legend()
        if evals:
            ax = axes[0][1]
            em = [e["train_seconds"] / 60 for e in evals]
            ax.plot(em, [e["map"] for e in evals], "o-", label="mAP@0.5")
            for level in (1, 2, 3):
                key = f"map_ol{level}"
                if all(key in e and e[key] is not None for e in evals):
                    ax.plot(em, [e[key] for e in evals], ".--", label=f"OL{level}")
            ax.set_xlabel("training time (min)")
            ax.set_ylabel("mAP@0.5 (held-out)")
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        path = path or self.run_dir / "curve.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path
