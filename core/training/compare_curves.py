"""Learning curves of several runs side by side: ``python main.py curves RUN_DIR... --out PLOT.png``.

Reads each run's ``evals.jsonl`` (the trainer's curve: mAP overall and per OL every
``--curve-every`` training minutes) and draws them against training minutes and against
optimiser steps, the two budgets reports/training_recipes.md compares at. Prints a Markdown
table: one row per curve point of the first run, the other runs' value at the same minute.
"""
from __future__ import annotations

import math
from pathlib import Path

KEYS = {"all": "map", "OL1": "map_ol1", "OL2": "map_ol2", "OL3": "map_ol3"}


def read_curve(run_dir: Path) -> list[dict]:
    """The run's evaluations (RunLog's evals.jsonl), in step order; a clear error if it has none or a bad one."""
    from core.training.runlog import RunLog  # noqa: PLC0415

    log = RunLog(Path(run_dir))
    if not log.evals_path.exists():
        raise FileNotFoundError(f"{run_dir}: no evals.jsonl (train with --curve-every and --curve-data)")
    rows = log.read_evals()
    if not rows:
        raise ValueError(f"{log.evals_path}: no evaluations yet")
    for number, row in enumerate(rows, 1):
        if not (isinstance(row, dict) and all(isinstance(row.get(k), (int, float)) for k in ("step", "train_seconds"))):
            raise ValueError(f"{log.evals_path}: evaluation {number} lacks a numeric step or train_seconds")
    return sorted(rows, key=lambda r: r["step"])


def nearest_point(curve: list[dict], minute: float, tolerance: float = 0.5) -> dict | None:
    """The evaluation nearest ``minute`` of training, if one lies within ``tolerance`` minutes."""
    best = min(curve, key=lambda r: abs(r["train_seconds"] / 60 - minute))
    return best if abs(best["train_seconds"] / 60 - minute) <= tolerance else None


def value_at_minute(curve: list[dict], minute: float, key: str = "map", tolerance: float = 0.5) -> float | None:
    """The run's value at the evaluation nearest ``minute`` (within ``tolerance`` minutes), or None."""
    point = nearest_point(curve, minute, tolerance)
    value = None if point is None else point.get(key)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def table(curves: dict[str, list[dict]], key: str = "map") -> str:
    """Markdown: training minutes of the first run's points, each run's value (and steps) there."""
    names = list(curves)
    lines = ["| minutes | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for point in curves[names[0]]:
        minute = point["train_seconds"] / 60
        cells = []
        for name in names:
            value = value_at_minute(curves[name], minute, key)
            cells.append("—" if value is None else f"{value:.3f} ({nearest_point(curves[name], minute)['step']})")
        lines.append(f"| {minute:.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(curves: dict[str, list[dict]], out: Path, levels: bool = False) -> Path:
    """mAP by training minutes and by steps; with ``levels``, one row of panels per OL as well."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    subsets = list(KEYS) if levels else ["all"]
    fig = Figure(figsize=(11, 3.6 * len(subsets)), dpi=100)
    FigureCanvasAgg(fig)
    for row, subset in enumerate(subsets):
        by_time = fig.add_subplot(len(subsets), 2, 2 * row + 1)
        by_steps = fig.add_subplot(len(subsets), 2, 2 * row + 2)
        for i, (name, curve) in enumerate(curves.items()):
            points = [(r["train_seconds"] / 60, r["step"], r.get(KEYS[subset])) for r in curve]
            points = [p for p in points if p[2] is not None]
            by_time.plot([p[0] for p in points], [p[2] for p in points], "o-", ms=3, color=f"C{i}", label=name)
            by_steps.plot([p[1] for p in points], [p[2] for p in points], "o-", ms=3, color=f"C{i}", label=name)
        for ax, xlabel in ((by_time, "training minutes"), (by_steps, "optimiser steps")):
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"mAP@0.5 ({subset})")
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def compare(run_dirs: list[str], out: str | None, names: list[str] | None = None, levels: bool = False) -> str:
    """Read every run, write the plot when ``out`` is given, return the Markdown table."""
    if names and len(names) != len(run_dirs):
        raise ValueError(f"--names gives {len(names)} names for {len(run_dirs)} runs")
    labels = names or [Path(d).name for d in run_dirs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"runs need distinct names, got {labels}; pass --names")
    curves = {label: read_curve(Path(d)) for label, d in zip(labels, run_dirs)}
    if out:
        plot(curves, Path(out), levels)
    return table(curves)
