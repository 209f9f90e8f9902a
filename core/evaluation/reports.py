"""Tables shaped like the paper's (IV: per class, V: per occlusion level) and precision-recall plots.

Tables are Markdown (they read as plain text too). Numbers are AP in percent with two
decimals, as the paper prints them. A row may be one ``EvalResult`` or several (runs
with different seeds): then each cell is ``mean ± sd`` (sample standard deviation
over the runs where the value exists), so a difference can be told from noise.
A cell with no value (a class without ground truth) is "n/a".

Plots use matplotlib's Agg backend through an explicit ``Figure`` (no pyplot state,
no GUI toolkit), so they are safe in worker threads and headless jobs.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from core.classes import OCCLUSION_LEVELS, SHORT_NAMES
from core.evaluation.voc import EvalResult, SubsetAP

log = logging.getLogger(__name__)

RowValue = EvalResult | Sequence[EvalResult]


def _runs(value: RowValue) -> list[EvalResult]:
    runs = [value] if isinstance(value, EvalResult) else list(value)
    if not runs:
        raise ValueError("a table row needs at least one EvalResult")
    return runs


def format_cell(values: Sequence[float]) -> str:
    """Percent with 2 decimals; ``mean ± sd`` over several runs; NaNs ignored; "n/a" if none."""
    finite = [v * 100.0 for v in values if not math.isnan(v)]
    if not finite:
        return "n/a"
    if len(finite) == 1:
        return f"{finite[0]:.2f}"
    return f"{np.mean(finite):.2f} ± {np.std(finite, ddof=1):.2f}"


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def _short_names(result: EvalResult) -> list[str]:
    if len(result.class_names) == len(SHORT_NAMES):
        return list(SHORT_NAMES)
    return list(result.class_names)


def category_table(rows: Mapping[str, RowValue], subset: str = "all") -> str:
    """Table IV: one row per method, columns mAP then FO ST SC UT MU (on ``subset``).

    ``subset`` is "all" or "OL1"/"OL2"/"OL3" to give the per-class table of one level.
    """
    if not rows:
        raise ValueError("category_table needs at least one row")
    first = _runs(next(iter(rows.values())))[0]
    names = _short_names(first)
    body = []
    for method, value in rows.items():
        subsets = [_pick(run, subset) for run in _runs(value)]
        cells = [format_cell([s.mean_ap for s in subsets])]
        for c in range(len(names)):
            cells.append(format_cell([s.classes[c].ap for s in subsets]))
        body.append([method, *cells])
    return _markdown(["Method", "mAP", *names], body)


def occlusion_table(rows: Mapping[str, RowValue]) -> str:
    """Table V: one row per method, columns the mAP on OL1, OL2, OL3."""
    if not rows:
        raise ValueError("occlusion_table needs at least one row")
    body = []
    for method, value in rows.items():
        runs = _runs(value)
        cells = [format_cell([_pick(run, f"OL{lv}").mean_ap for run in runs]) for lv in OCCLUSION_LEVELS]
        body.append([method, *cells])
    return _markdown(["Method", *(f"OL {lv}" for lv in OCCLUSION_LEVELS)], body)


def _pick(result: EvalResult, subset: str) -> SubsetAP:
    if subset == "all":
        return result.overall
    if subset.upper().startswith("OL") and subset[2:].isdigit():
        level = int(subset[2:])
        if level in result.occlusion:
            return result.occlusion[level]
        raise ValueError(f"result has no {subset} subset (evaluate with occlusion_levels)")
    raise ValueError(f"unknown subset {subset!r}; use 'all' or 'OL1'..'OL3'")


def result_summary(result: EvalResult) -> str:
    """Human-readable summary of one evaluation: mAP and per-class AP on all images and each
    occlusion level, ground-truth and detection counts, and the protocol used."""
    parts = [_per_level_table(result)]
    counts = ", ".join(f"{n} {c.num_ground_truth} gt / {c.num_detections} det"
                       for n, c in zip(_short_names(result), result.overall.classes))
    parts.append(f"{result.overall.num_images} images; {counts}")
    parts.append(f"protocol: IoU > {result.iou_threshold:g}, {result.interpolation} AP, "
                 f"{'+1 (inclusive) pixel areas' if result.inclusive_pixels else 'continuous areas (reference)'}")
    return "\n\n".join(parts)


def _per_level_table(result: EvalResult) -> str:
    names = _short_names(result)
    body = []
    for subset in [result.overall, *result.occlusion.values()]:
        body.append([subset.name, str(subset.num_images), format_cell([subset.mean_ap]),
                     *(format_cell([c.ap]) for c in subset.classes)])
    return _markdown(["Subset", "Images", "mAP", *names], body)


def plot_pr_curves(result: EvalResult, path: Path | str, subset: str = "all", title: str | None = None) -> Path:
    """One PNG with a precision-recall panel per class (the envelope and the raw curve)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    chosen = _pick(result, subset)
    names = _short_names(result)
    n = len(chosen.classes)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(4.0 * cols, 3.6 * rows), dpi=100)
    FigureCanvasAgg(fig)
    for i, cls in enumerate(chosen.classes):
        ax = fig.add_subplot(rows, cols, i + 1)
        if cls.recall.size and cls.num_ground_truth:
            envelope = np.maximum.accumulate(cls.precision[::-1])[::-1]
            ax.plot(cls.recall, cls.precision, color="0.7", lw=1, label="raw")
            # The AP is the area under this: between consecutive recalls the interpolated
            # precision is the envelope at the right end, hence "pre" steps from recall 0.
            ax.step(np.concatenate(([0.0], cls.recall)), np.concatenate(([envelope[0]], envelope)),
                    where="pre", color="C0", lw=2, label="interpolated (area = AP)")
            if i == 0:
                ax.legend(loc="lower left", fontsize=7)
        ap_text = "n/a" if math.isnan(cls.ap) else f"{cls.ap * 100:.2f}"
        ax.set_title(f"{names[i]} AP {ap_text}  ({cls.num_ground_truth} gt, {cls.num_detections} det)", fontsize=9)
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(0.0, 1.05)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.grid(True, alpha=0.3)
    fig.suptitle(title or f"Precision-recall ({chosen.name}, mAP {chosen.mean_ap * 100:.2f})")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    log.info("wrote precision-recall plot %s", out)
    return out


def plot_all_pr_curves(result: EvalResult, out_dir: Path | str, stem: str = "pr") -> list[Path]:
    """``{stem}_all.png`` plus ``{stem}_OL1.png``... for every occlusion subset."""
    out_dir = Path(out_dir)
    paths = [plot_pr_curves(result, out_dir / f"{stem}_all.png")]
    for level in result.occlusion:
        paths.append(plot_pr_curves(result, out_dir / f"{stem}_OL{level}.png", subset=f"OL{level}"))
    return paths


__all__: list[str] = ["category_table", "occlusion_table", "result_summary", "plot_pr_curves",
                      "plot_all_pr_curves", "format_cell"]