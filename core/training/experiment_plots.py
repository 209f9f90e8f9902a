"""Plots for ``reports/paper_tables.md``: our rows beside the paper's, one figure per table.

Each figure has two panels on their own scales, because the numbers are not comparable in
size: ours (the synthetic benchmark at this machine's budget: a bar at the mean over seeds,
a dot per seed, so the spread is visible) and the paper's (SSD on the real OPIXray). What
the reader compares is the *order* of the rows, not their height.

matplotlib through an explicit ``Figure`` (Agg canvas, no pyplot state), as in
core.evaluation.reports.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from core.evaluation.voc import EvalResult

log = logging.getLogger(__name__)

PLOT_DIR = "paper_plots"     # beside paper_tables.md; the report links into it

# (label, run key, the paper's value or None), as experiments.TABLE_*.
TableRows = Sequence[tuple[str, str, float | None]]


def _percent(values: Sequence[float]) -> list[float]:
    return [v * 100 for v in values if v is not None and not math.isnan(v)]


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 - plotting only when asked
    from matplotlib.figure import Figure  # noqa: PLC0415

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def plot_map_table(table: TableRows, results: Mapping[str, Sequence[EvalResult]], path: Path, title: str) -> Path | None:
    """Horizontal bars of mAP per row: ours (mean, seeds as dots) and the paper's; None if no row has run."""
    rows = [(label, key, paper) for label, key, paper in table if results.get(key)]
    if not rows:
        return None
    fig = _new_figure(10.0, 0.45 * len(rows) + 1.6)
    ours, theirs = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    ys = list(range(len(rows)))[::-1]           # first row at the top, as in the table
    for y, (label, key, paper) in zip(ys, rows):
        values = _percent([r.mean_ap for r in results[key]])
        if values:
            ours.barh(y, sum(values) / len(values), color="C0", alpha=0.6)
            ours.plot(values, [y] * len(values), "o", color="C0", ms=4)
        if paper is not None:
            theirs.barh(y, paper, color="C1", alpha=0.7)
            theirs.text(paper, y, f" {paper:.2f}", va="center", fontsize=8)
    labels = [label for label, _, _ in rows]
    for ax, name in ((ours, "ours: synthetic benchmark, mAP % (bar: mean, dots: seeds)"),
                     (theirs, "paper: SSD on OPIXray, mAP %")):
        ax.set_yticks(ys)
        ax.set_yticklabels(labels, fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.grid(True, axis="x", alpha=0.3)
    papers = [p for _, _, p in rows if p is not None]
    if papers:   # the paper's differences are a few points on ~70: start the axis near them
        theirs.set_xlim(max(0.0, min(papers) - 5), max(papers) + 3)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def plot_occlusion_table(table: TableRows, results: Mapping[str, Sequence[EvalResult]], path: Path,
                         paper_ol: Mapping[str, Sequence[float]], title: str) -> Path | None:
    """AP by occlusion level per row (mean over seeds, seeds as dots) and the paper's OL rows."""
    rows = [(label, key) for label, key, _ in table if results.get(key)]
    if not rows:
        return None
    levels = sorted({level for key in dict(rows).values() for r in results[key] for level in r.occlusion})
    if not levels:
        return None
    fig = _new_figure(10.0, 3.8)
    ours, theirs = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for i, (label, key) in enumerate(rows):
        means = []
        for level in levels:
            values = _percent([r.occlusion[level].mean_ap for r in results[key] if level in r.occlusion])
            means.append(sum(values) / len(values) if values else math.nan)
            ours.plot([level] * len(values), values, ".", color=f"C{i}", alpha=0.5)
        ours.plot(levels, means, "-o", color=f"C{i}", label=label, ms=4)
    for i, (label, key) in enumerate(rows):
        if key in paper_ol:
            theirs.plot(range(1, len(paper_ol[key]) + 1), paper_ol[key], "-o", color=f"C{i}", label=label, ms=4)
    for ax, name in ((ours, "ours: AP % by occlusion level (lines: mean, dots: seeds)"),
                     (theirs, "paper: SSD on OPIXray, AP % by level")):
        ax.set_xticks(levels)
        ax.set_xticklabels([f"OL{level}" for level in levels])
        ax.set_title(name, fontsize=9)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    log.info("wrote %s", path)
    return path


def plot_paper_tables(results: Mapping[str, Sequence[EvalResult]], out_dir: Path,
                      tables: Mapping[str, TableRows], occlusion_table: TableRows,
                      paper_ol: Mapping[str, Sequence[float]]) -> dict[str, str]:
    """Write every figure under ``out_dir/PLOT_DIR``; returns {table name: path relative to out_dir}.

    ``tables`` maps a name ("Table IV") to its rows. Plotting is a report's garnish: a failure is
    logged and the figure left out, never allowed to lose the tables themselves.
    """
    figures = [(name, plot_map_table, (rows, results, _file(out_dir, name), f"{name}: mAP"))
               for name, rows in tables.items()]
    figures.append(("Table V", plot_occlusion_table,
                    (occlusion_table, results, _file(out_dir, "Table V"), paper_ol, "Table V: by occlusion level")))
    written: dict[str, str] = {}
    for name, draw, arguments in figures:
        try:
            path = draw(*arguments)
        except Exception:  # noqa: BLE001 - see the docstring
            log.exception("could not plot %s", name)
            continue
        if path is not None:
            written[name] = path.relative_to(out_dir).as_posix()
    return written


def _file(out_dir: Path, table_name: str) -> Path:
    return Path(out_dir) / PLOT_DIR / (table_name.lower().replace(" ", "_") + ".png")
