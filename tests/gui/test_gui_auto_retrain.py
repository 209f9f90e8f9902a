"""Automatic retraining: a job starts by itself at N new hard samples, never while one runs, off at 0."""
from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from app.auto_retrain import SETTING, AutoRetrainControl
from app.models_view import ModelsView
from store_world import World


pytestmark = pytest.mark.usefixtures("cheap_passwords")   # tests/gui/conftest.py

WORLD_SCREENED_BAGS = 0     # the world fixture (conftest) screens no bags beforehand


def control(qtbot, world: World, tmp_path: Path, count: int) -> tuple[AutoRetrainControl, list[int]]:
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    view = ModelsView(world.store, world.store.users.get("sam"), settings=settings)
    qtbot.addWidget(view)
    view.benchmark_edit.setText(str(tmp_path))
    started: list[int] = []
    view.retrain_now = lambda: started.append(count)          # the real job is tested in test_gui_models
    auto = view.findChild(AutoRetrainControl)
    auto.count_new = lambda: count
    return auto, started


def test_a_job_starts_at_the_threshold_and_the_setting_is_kept(qtbot, world: World, tmp_path: Path) -> None:
    auto, started = control(qtbot, world, tmp_path, count=5)
    assert auto.threshold == 0 and not auto.timer.isActive()      # off by default
    auto.check()
    assert started == []
    auto.spin.setValue(6)
    assert auto.timer.isActive() and auto.view.settings.value(SETTING) == 6
    auto.check()
    qtbot.waitUntil(lambda: "5 new hard sample" in auto.status.text(), timeout=5000)
    assert started == []                                           # 5 < 6
    auto.spin.setValue(5)
    with qtbot.waitSignal(auto.triggered, timeout=5000):
        auto.check()
    assert started == [5]


def test_nothing_is_counted_while_a_job_runs_or_without_a_benchmark(qtbot, world: World, tmp_path: Path) -> None:
    auto, started = control(qtbot, world, tmp_path, count=50)
    auto.spin.setValue(1)
    auto.view.job_phase = "running"
    auto.check()
    auto.view.job_phase = "idle"
    auto.view.benchmark_edit.setText("")
    auto.check()
    assert "waits for a benchmark" in auto.status.text()
    qtbot.wait(200)
    assert started == []
