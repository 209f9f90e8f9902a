"""``python main.py`` opens the workstation; ``python main.py screenshot`` writes PNG files."""
from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

import app.main_window as main_window
from app.main_window import run_workstation
from app.model_loading import ModelChoice, choose_model


def test_run_workstation_logs_in_and_opens_the_inspectors_lane(qtbot, bag_folder: Path, tmp_path: Path,
                                                               monkeypatch) -> None:
    from app.login import LoginDialog
    from app.perspectives import WorkstationWindow
    from core.store import auth
    from store_world import PASSWORD, cheap_hashing, make_world

    previous = cheap_hashing()
    make_world(tmp_path / "data", screened_bags=0).store.close()
    monkeypatch.setattr(main_window, "choose_model", lambda path, **kw: ModelChoice(None, "no model"))
    seen: dict[str, object] = {}

    def log_in() -> None:
        dialogs = [w for w in QApplication.topLevelWidgets() if isinstance(w, LoginDialog) and w.isVisible()]
        if not dialogs:
            QTimer.singleShot(50, log_in)
            return
        dialogs[0].password_field.setText(PASSWORD)
        dialogs[0].try_login()
        QTimer.singleShot(1500, look_and_quit)

    def look_and_quit() -> None:
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, WorkstationWindow) and w.isVisible()]
        seen["windows"] = len(windows)
        if windows:
            seen["bag"] = windows[0].inspector.current_bag_id
            seen["banner"] = windows[0].inspector.banner_text()
            windows[0].close()      # the last window closing quits the application (one quit only:
        else:                        # a second, stray quit event would end later tests' event loops)
            QApplication.instance().quit()

    QTimer.singleShot(50, log_in)
    try:
        code = run_workstation(["--data-dir", str(tmp_path / "data"), "--user", "ines", "--lane", "replay",
                                "--lane-path", str(bag_folder), "--rate", "20"])
    finally:
        auth.set_hasher(previous)
    assert code == 0
    assert seen["windows"] == 1 and seen["bag"] == "bag000"
    assert "no model loaded" in seen["banner"]


def test_run_workstation_refuses_bad_options(capsys) -> None:
    assert run_workstation(["--lane", "folder"]) == 2
    assert "--lane-path" in capsys.readouterr().err


def test_without_a_model_file_there_is_no_silent_fallback(tmp_path: Path) -> None:
    choice = choose_model(tmp_path / "missing.pt")
    assert choice.note is None and "missing" in choice.description
    with pytest.raises(FileNotFoundError):
        choice.loader()
    untrained = choose_model(tmp_path / "missing.pt", allow_untrained=True)
    assert "UNTRAINED" in untrained.note


def test_screenshot_command_writes_the_inspector_with_detections(tmp_path: Path) -> None:
    from PIL import Image

    from core.cli import main

    assert main(["screenshot", "--out", str(tmp_path / "shots")]) == 0
    shots = sorted(p.name for p in (tmp_path / "shots").iterdir())
    assert shots == ["annotate.png", "inspector-inorganic.png", "inspector.png", "review.png", "stats.png"]
    with Image.open(tmp_path / "shots" / "inspector.png") as image:
        assert image.size == (1600, 1000)
        # The dark theme: the status bar strip along the bottom is dark.
        assert max(image.convert("L").crop((0, 990, 400, 1000)).getextrema()) < 120
    for name in ("review.png", "stats.png", "annotate.png"):
        with Image.open(tmp_path / "shots" / name) as image:
            assert image.size == (1600, 1000) and len(image.convert("L").getcolors(1 << 16) or []) > 50
    assert main(["screenshot", "--out", str(tmp_path / "x"), "--model", str(tmp_path / "none.pt")]) == 2


def test_workstation_command_refuses_bad_options(capsys) -> None:
    from core.cli import main

    assert main(["workstation", "--lane", "folder"]) == 2
    assert main(["workstation", "--time-limit", "0"]) == 2
    assert "--time-limit must be positive" in capsys.readouterr().err
