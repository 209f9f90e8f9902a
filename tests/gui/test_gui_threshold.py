"""The lane's score slider starts at the loaded model's own operating point, unless the inspector moved it."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

from app.inspector_panel import ScreeningPanel
from app.keymap import Keymap
from app.model_loading import operating_threshold
from app.workers import DetectorWorker
from core.inference import Detector, load_model_file, save_model
from gui_helpers import tiny_detector


def panel(qtbot, tmp_path: Path) -> ScreeningPanel:
    keymap = Keymap.load(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))
    widget = ScreeningPanel(keymap, 0.5, 0.45)
    qtbot.addWidget(widget)
    return widget


def test_suggested_threshold_applies_until_the_inspector_chooses(qtbot, tmp_path: Path) -> None:
    p = panel(qtbot, tmp_path)
    seen: list[float] = []
    p.threshold_changed.connect(seen.append)
    p.suggest_threshold(0.31)
    assert p.threshold() == 0.31 and seen[-1] == 0.31
    p.suggest_threshold(None)                      # a model without an operating point changes nothing
    assert p.threshold() == 0.31
    p.step_threshold(1)                            # the inspector raises it by key
    p.suggest_threshold(0.2)                       # the next model's suggestion no longer applies
    assert p.threshold() == 0.36


def test_the_worker_reads_the_operating_point_from_the_model_file(qtbot, tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    save_model(path, tiny_detector().model, metrics={"operating_point": {"threshold": 0.27, "f1": 0.5}})
    assert load_model_file(path)[1].operating_threshold == 0.27
    worker = DetectorWorker(lambda: Detector.load(path, device="cpu"))
    with qtbot.waitSignal(worker.model_loaded, timeout=30000):
        worker.start()
    try:
        assert worker.operating_threshold == 0.27
    finally:
        worker.stop()
    assert operating_threshold(tiny_detector()) is None        # an in-memory model has no measured point
