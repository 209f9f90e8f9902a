"""Supervisor statistics: the numbers with their counts, the plots, the CSV export."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from app.stats_view import StatsView
from store_world import World


pytestmark = pytest.mark.usefixtures("cheap_passwords")   # tests/gui/conftest.py


@pytest.fixture
def stats_view(qtbot, world: World):
    view = StatsView(world.store, world.supervisor)
    qtbot.addWidget(view)
    view.resize(1200, 800)
    view.show()
    view.period_combo.blockSignals(True)
    view.period_combo.setCurrentText("All time")
    view.period_combo.blockSignals(False)
    with qtbot.waitSignal(view.refreshed, timeout=10000):
        view.refresh()
    yield view
    view.shutdown()


def cell(table, row: int, header: str) -> str:
    columns = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    return table.item(row, columns.index(header)).text()


def test_per_inspector_rates_come_with_their_counts(stats_view: StatsView) -> None:
    table = stats_view.inspector_table
    assert table.rowCount() == 1 and cell(table, 0, "Inspector") == "ines"
    assert cell(table, 0, "Bags") == "4"
    # One TIP bag, cleared: a miss. Clean bags are the labelled-empty non-TIP ones (bag 1); none called suspect.
    assert (cell(table, 0, "TIP hits"), cell(table, 0, "TIP bags"), cell(table, 0, "TIP hit rate")) == ("0", "1", "0 %")
    assert (cell(table, 0, "False alarms"), cell(table, 0, "Clean bags")) == ("0", "1")
    assert cell(table, 0, "Median s") == "4.5"          # decisions took 3, 4, 5 and 6 s
    assert "4 bag decisions by 1 inspector" in stats_view.summary.text()


def test_per_model_precision_and_recall(stats_view: StatsView, world: World) -> None:
    table = stats_view.model_table
    assert table.rowCount() == 1 and cell(table, 0, "Name") == "tiny-untrained"
    model = stats_view.report.models[0][1]
    # Bag 0: the 0.9 knife matches its label (TP); bags 2 and 0 have no other boxes over 0.5 but bag 2's 0.9 knife
    # is a false alarm against its empty labels; bag 3 is unlabelled and not counted.
    assert (model.true_positives, model.false_positives, model.false_negatives) == (1, 1, 0)
    assert cell(table, 0, "Precision") == "50 %" and cell(table, 0, "Recall") == "100 %"


def test_plots_are_drawn_inside_qt(stats_view: StatsView) -> None:
    axes = stats_view.figure.axes
    assert len(axes) == 2
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["ines"]
    assert any(t.get_text() == "0/1" for t in axes[0].texts)     # the counts are on the bars


def test_csv_export_has_both_tables(stats_view: StatsView, tmp_path: Path) -> None:
    path = stats_view.export_csv(tmp_path / "stats.csv")
    rows = list(csv.reader(path.open()))
    inspector = [r for r in rows if r and r[0] == "inspector"]
    model = [r for r in rows if r and r[0] == "model"]
    assert len(inspector) == 1 and inspector[0][1] == "ines" and inspector[0][4] == "4"
    assert len(model) == 1 and model[0][2] == "tiny-untrained" and model[0][5] == "0.5000"


def test_per_day_slices(qtbot, stats_view: StatsView) -> None:
    with qtbot.waitSignal(stats_view.refreshed, timeout=10000):
        stats_view.slice_combo.setCurrentText("Per day")
    assert stats_view.inspector_table.rowCount() == 1      # all four decisions on one day
    report = stats_view.report
    row = report.inspectors[0]
    assert row.period_start.hour == 0 and (row.period_end - row.period_start).total_seconds() <= 86400
    assert row.period_start.date().isoformat() == "2026-11-24"
