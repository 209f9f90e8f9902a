"""Supervisor statistics: per inspector and period, per model version; plots and CSV export.

The numbers come from ``core.store.stats`` (its docstring defines each rate);
every rate is shown with the count it rests on ("2/3"), because 100 % of 2 TIP
bags says little. Plots are matplotlib on its QtAgg backend, inside the view.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("QtAgg")   # before pyplot anywhere: the figure lives inside Qt
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PySide6.QtCore import Qt, Signal  # noqa: E402
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QFileDialog, QHBoxLayout, QHeaderView, QLabel,  # noqa: E402
                               QPushButton, QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from app.store_session import StoreTasks  # noqa: E402
from core.store.repo import Store  # noqa: E402
from core.store.stats import InspectorStats, ModelStats, Rate  # noqa: E402
from core.store.values import ModelVersionInfo, UserInfo  # noqa: E402

log = logging.getLogger(__name__)

PERIODS: dict[str, dt.timedelta | None] = {"Last 24 hours": dt.timedelta(days=1), "Last 7 days": dt.timedelta(days=7),
                                           "Last 30 days": dt.timedelta(days=30), "All time": None}
SLICES: dict[str, dt.timedelta | None] = {"Whole period": None, "Per day": dt.timedelta(days=1),
                                          "Per week": dt.timedelta(days=7)}
ALL_TIME_START = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
INSPECTOR_COLUMNS = ("Inspector", "From", "To", "Bags", "Median s", "Mean s", "TIP hit rate", "TIP hits",
                     "TIP bags", "False-alarm rate", "False alarms", "Clean bags", "Model agreement")
MODEL_COLUMNS = ("Model version", "Name", "Status", "Labelled bags", "Precision", "Recall", "TP", "FP", "FN")
PLOT_COLOURS = {"hit": "#2ecc71", "false_alarm": "#ff5a4f", "time": "#5b8ff0", "text": "#e6e8eb", "grid": "#30343c"}


@dataclass(frozen=True)
class StatsReport:
    start: dt.datetime
    end: dt.datetime
    inspectors: tuple[InspectorStats, ...]
    models: tuple[tuple[ModelVersionInfo, ModelStats], ...]


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f} %"


def rate_text(rate: Rate) -> str:
    return f"{percent(rate.value)} ({rate.hits}/{rate.count})"


def seconds_text(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def load_report(store: Store, user: UserInfo, period: dt.timedelta | None, slice_: dt.timedelta | None,
                now: dt.datetime | None = None) -> StatsReport:
    """The numbers for the view (worker thread); PermissionDenied for a role without statistics."""
    end = (now or dt.datetime.now(dt.timezone.utc)) + dt.timedelta(seconds=1)
    start = end - period if period is not None else ALL_TIME_START
    inspectors = store.stats.inspectors(user, start, end, period=slice_)
    models = tuple((version, store.stats.model(user, version.id)) for version in store.models.list())
    return StatsReport(start, end, tuple(inspectors), models)


def report_csv(report: StatsReport) -> str:
    """Both tables as one CSV text: the inspector rows, a blank line, the model rows."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(("section",) + INSPECTOR_COLUMNS)
    for s in report.inspectors:
        writer.writerow(("inspector", s.name, s.period_start.isoformat(), s.period_end.isoformat(), s.bags,
                         _num(s.median_seconds_per_decision), _num(s.mean_seconds_per_decision),
                         _num(s.tip_hit_rate.value), s.tip_hit_rate.hits, s.tip_hit_rate.count,
                         _num(s.false_alarm_rate.value), s.false_alarm_rate.hits, s.false_alarm_rate.count,
                         _num(s.model_agreement.value)))
    writer.writerow(())
    writer.writerow(("section",) + MODEL_COLUMNS)
    for version, m in report.models:
        writer.writerow(("model", version.id, version.name, version.status, m.bags, _num(m.precision),
                         _num(m.recall), m.true_positives, m.false_positives, m.false_negatives))
    return out.getvalue()


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _table(columns: tuple[str, ...], name: str) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setObjectName(name)
    table.setHorizontalHeaderLabels(list(columns))
    table.setEditTriggers(QAbstractItemView.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectRows)
    table.verticalHeader().hide()
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.Stretch)      # spread the columns over the width
    header.setSectionResizeMode(0, QHeaderView.ResizeToContents)
    table.setAlternatingRowColors(True)
    return table


def _fill(table: QTableWidget, rows: list[tuple[str, ...]]) -> None:
    table.setRowCount(len(rows))
    for r, values in enumerate(rows):
        for c, value in enumerate(values):
            item = QTableWidgetItem(value)
            if c > 0:
                item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
            table.setItem(r, c, item)


class StatsView(QWidget):
    refreshed = Signal(object)     # StatsReport

    def __init__(self, store: Store, user: UserInfo, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("statsView")
        self.store, self.user = store, user
        self.tasks = StoreTasks(self)
        self.report: StatsReport | None = None
        self.last_error = ""
        self._build_ui()

    def _build_ui(self) -> None:
        self.period_combo = QComboBox()
        self.period_combo.addItems(list(PERIODS))
        self.period_combo.setCurrentText("Last 7 days")
        self.slice_combo = QComboBox()
        self.slice_combo.addItems(list(SLICES))
        self.period_combo.currentIndexChanged.connect(self.refresh)
        self.slice_combo.currentIndexChanged.connect(self.refresh)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        export = QPushButton("Export CSV…")
        export.clicked.connect(self._ask_export)
        self.summary = QLabel()
        self.summary.setObjectName("statsSummary")
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Period"))
        controls.addWidget(self.period_combo)
        controls.addWidget(self.slice_combo)
        controls.addWidget(refresh)
        controls.addStretch(1)
        controls.addWidget(self.summary)
        controls.addWidget(export)
        self.error = QLabel()
        self.error.setObjectName("banner")
        self.error.setProperty("severity", "error")
        self.error.setWordWrap(True)
        self.error.hide()

        self.inspector_table = _table(INSPECTOR_COLUMNS, "inspectorTable")
        self.model_table = _table(MODEL_COLUMNS, "modelTable")
        self.figure = Figure(figsize=(8, 3), facecolor="#1b1d22", layout="constrained")
        self.plot = FigureCanvasQTAgg(self.figure)
        self.plot.setMinimumHeight(220)
        tables = QSplitter(Qt.Vertical)
        for title, widget in (("Inspectors", self.inspector_table), ("Model versions (on confirmed labels)",
                                                                      self.model_table)):
            box = QWidget()
            layout = QVBoxLayout(box)
            layout.setContentsMargins(0, 0, 0, 0)
            label = QLabel(title)
            label.setObjectName("sectionTitle")
            layout.addWidget(label)
            layout.addWidget(widget)
            tables.addWidget(box)
        tables.addWidget(self.plot)
        tables.setSizes([190, 120, 520])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.addWidget(self.error)
        layout.addLayout(controls)
        layout.addWidget(tables, 1)

    # ------------------------------------------------------------------ data
    def refresh(self) -> None:
        period = PERIODS[self.period_combo.currentText()]
        slice_ = SLICES[self.slice_combo.currentText()]
        self.tasks.run(lambda: load_report(self.store, self.user, period, slice_), self._show, self._show_error)

    def _show(self, report: StatsReport) -> None:
        self.report = report
        self.error.hide()
        self.last_error = ""
        _fill(self.inspector_table, [
            (s.name, f"{s.period_start:%Y-%m-%d %H:%M}", f"{s.period_end:%Y-%m-%d %H:%M}", str(s.bags),
             seconds_text(s.median_seconds_per_decision), seconds_text(s.mean_seconds_per_decision),
             percent(s.tip_hit_rate.value), str(s.tip_hit_rate.hits), str(s.tip_hit_rate.count),
             percent(s.false_alarm_rate.value), str(s.false_alarm_rate.hits), str(s.false_alarm_rate.count),
             rate_text(s.model_agreement)) for s in report.inspectors])
        _fill(self.model_table, [
            (str(v.id), v.name, v.status, str(m.bags), percent(m.precision), percent(m.recall),
             str(m.true_positives), str(m.false_positives), str(m.false_negatives)) for v, m in report.models])
        decided = sum(s.bags for s in report.inspectors)
        self.summary.setText(f"{decided} bag decisions by {len({s.user_id for s in report.inspectors})} "
                             f"inspector(s) since {report.start:%Y-%m-%d}")
        self._plot(report)
        self.refreshed.emit(report)

    def _plot(self, report: StatsReport) -> None:
        """Per inspector (whole rows summed over slices): TIP hit and false-alarm rates, decision time."""
        self.figure.clear()
        rates, times = self.figure.subplots(1, 2, width_ratios=[2, 1])
        names = sorted({s.name for s in report.inspectors})
        hit, fa, median = [], [], []
        for name in names:
            rows = [s for s in report.inspectors if s.name == name]
            hit.append(Rate(sum(r.tip_hit_rate.hits for r in rows), sum(r.tip_hit_rate.count for r in rows)))
            fa.append(Rate(sum(r.false_alarm_rate.hits for r in rows), sum(r.false_alarm_rate.count for r in rows)))
            values = [r.median_seconds_per_decision for r in rows if r.median_seconds_per_decision is not None]
            median.append(sum(values) / len(values) if values else 0.0)
        xs = range(len(names))
        width = 0.38
        for offset, series, colour, label in ((-width / 2, hit, PLOT_COLOURS["hit"], "TIP hit rate"),
                                              (width / 2, fa, PLOT_COLOURS["false_alarm"], "false-alarm rate")):
            values = [(r.value or 0.0) * 100 for r in series]
            bars = rates.bar([x + offset for x in xs], values, width, color=colour, label=label)
            rates.bar_label(bars, labels=[f"{r.hits}/{r.count}" for r in series], color=PLOT_COLOURS["text"],
                            fontsize=8, padding=2)
        rates.set_ylim(0, 115)
        rates.set_ylabel("%")
        rates.set_title("TIP hits and false alarms (counts on the bars)")
        rates.legend(loc="upper right", fontsize=8, facecolor="#1b1d22", labelcolor=PLOT_COLOURS["text"],
                     edgecolor=PLOT_COLOURS["grid"])
        times.bar(list(xs), median, 0.6, color=PLOT_COLOURS["time"])
        times.set_title("Median decision time (s)")
        for axes in (rates, times):
            axes.set_xticks(list(xs), names)
            axes.set_facecolor("#14161a")
            axes.tick_params(colors=PLOT_COLOURS["text"], labelsize=9)
            axes.title.set_color(PLOT_COLOURS["text"])
            axes.title.set_fontsize(10)
            axes.yaxis.label.set_color(PLOT_COLOURS["text"])
            axes.grid(axis="y", color=PLOT_COLOURS["grid"], linewidth=0.6)
            axes.set_axisbelow(True)
            for spine in axes.spines.values():
                spine.set_color(PLOT_COLOURS["grid"])
        if not names:
            rates.text(0.5, 0.5, "no decisions in this period", ha="center", va="center",
                       color=PLOT_COLOURS["text"], transform=rates.transAxes)
        self.plot.draw_idle()

    # ------------------------------------------------------------------ export, errors
    def export_csv(self, path: Path) -> Path:
        if self.report is None:
            raise ValueError("nothing to export yet: the statistics have not loaded")
        path = Path(path)
        path.write_text(report_csv(self.report), encoding="utf-8", newline="")
        log.info("statistics exported to %s", path)
        return path

    def _ask_export(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "Export statistics", "statistics.csv", "CSV files (*.csv)")
        if name:
            try:
                self.export_csv(Path(name))
            except (OSError, ValueError) as exc:
                self._show_error(exc)

    def _show_error(self, exc: Exception) -> None:
        self.last_error = str(exc)
        self.error.setText(str(exc))
        self.error.show()

    def shutdown(self) -> None:
        self.tasks.wait(5000)
