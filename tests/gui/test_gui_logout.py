"""Log out: pending writes are saved first, the lane stops, and the login comes back for the next user."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

import app.main_window as main_window
from app.inspector import InspectorSettings
from app.keymap import Keymap
from app.login import LoginDialog
from app.model_loading import ModelChoice
from app.perspectives import TITLES, LaneSetup, WorkstationWindow, perspectives_for
from core.lane.sources import ReplaySource
from core.store.schema import AuditEntry
from gui_helpers import tiny_detector
from store_world import PASSWORD, World, make_world


pytestmark = pytest.mark.usefixtures("cheap_passwords")   # tests/gui/conftest.py

WORLD_SCREENED_BAGS = 0     # the world fixture (conftest) screens no bags beforehand


def audit_actions(store) -> list[str]:
    return store.db.run(lambda s: list(s.scalars(select(AuditEntry.action).order_by(AuditEntry.seq))), write=False)


def test_the_logout_key_saves_the_pending_decision_before_the_window_closes(qtbot, world: World, tmp_path: Path,
                                                                             bag_folder: Path) -> None:
    keymap = Keymap.load(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))
    assert keymap.keys("logout") == ("Ctrl+L",)
    lane = LaneSetup(ReplaySource.from_folder(bag_folder, rate_per_s=20.0), ModelChoice(tiny_detector, "tiny"),
                     keymap, InspectorSettings())
    window = WorkstationWindow(world.store, world.inspector, lane)
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=3000)
    window.start()
    view = window.inspector
    qtbot.waitUntil(lambda: view.current_bag_id == "bag000", timeout=10000)
    # A slow store: the decision is still being written when the inspector logs out.
    original = window.session.decide

    def slow_decide(*args):
        time.sleep(0.4)
        return original(*args)

    window.session.decide = slow_decide
    seen: dict[str, object] = {}

    def on_logged_out(user) -> None:
        store_id = window.session.store_bag_id("bag000")
        seen["user"] = user.name
        seen["decisions"] = [d.verdict for d in world.store.bags.decisions(store_id)]
        seen["running"] = [w.isRunning() for w in (view.lane, view.detector, view.session_worker)]

    window.logged_out.connect(on_logged_out)
    QTest.keyClick(view.canvas, Qt.Key_S)                       # suspect: queued, not yet saved
    QTest.keyClick(view.canvas, Qt.Key_L, Qt.ControlModifier)   # log out at once
    assert window.logging_out is not None and window.isVisible()
    assert view.unsaved_writes() >= 1 and not window.did_log_out          # waits for the write
    assert not view.panel.clear_button.isEnabled()                      # no more decisions meanwhile
    qtbot.waitUntil(lambda: window.did_log_out, timeout=10000)
    assert seen == {"user": "ines", "decisions": ["suspect"], "running": [False, False, False]}
    assert not window.isVisible() and view.unsaved_writes() == 0
    assert view.decided == 1 and view.current_bag_id is None            # no other bag was opened
    qtbot.waitUntil(lambda: "user.logout" in audit_actions(world.store), timeout=10000)   # audited off the GUI thread


def test_log_out_shows_the_login_again_and_the_next_user_gets_their_perspectives(
        qtbot, tmp_path: Path, bag_folder: Path, monkeypatch) -> None:
    make_world(tmp_path / "data", screened_bags=0).store.close()
    monkeypatch.setattr(main_window, "choose_model", lambda path, **kw: ModelChoice(None, "no model"))
    logins = iter(["ines", "sam"])
    seen: list[tuple[str, list[str]]] = []

    def log_in() -> None:
        dialogs = [w for w in QApplication.topLevelWidgets() if isinstance(w, LoginDialog) and w.isVisible()]
        if not dialogs:
            QTimer.singleShot(50, log_in)
            return
        dialogs[0].name_field.setText(next(logins))
        dialogs[0].password_field.setText(PASSWORD)
        dialogs[0].try_login()
        QTimer.singleShot(50, look_and_leave)

    def look_and_leave() -> None:
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, WorkstationWindow) and w.isVisible()]
        if not windows:
            QTimer.singleShot(50, look_and_leave)
            return
        window = windows[0]
        seen.append((window.user.name, [window.tabs.tabText(i) for i in range(window.tabs.count())]))
        if window.user.name == "ines":
            window.logout_action.trigger()        # the File menu's "Log out"
            QTimer.singleShot(50, log_in)
        else:
            window.close()                       # quitting: the workstation ends

    QTimer.singleShot(50, log_in)
    code = main_window.run_workstation(["--data-dir", str(tmp_path / "data"), "--lane", "replay",
                                        "--lane-path", str(bag_folder), "--rate", "20"])
    assert code == 0
    assert seen == [("ines", ["Lane"]), ("sam", [TITLES[name] for name in perspectives_for("supervisor")])]
    assert "Lane" not in seen[1][1]
