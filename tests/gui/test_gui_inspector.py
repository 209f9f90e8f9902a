"""The lane view end to end: lane source -> shown -> boxes -> key -> committed decision -> next bag."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication

import app.inspector as inspector_module
from app.heartbeat import StallMeter
from app.inspector import InspectorSettings
from app.keymap import Keymap
from app.main_window import MainWindow
from app.model_loading import ModelChoice
from app.session import InMemorySession, SessionError
from core.imaging.enhance import negative
from core.lane.sources import ReplaySource
from gui_helpers import tiny_detector

# Keys the tests press, from the default keymap.
CLEAR, SUSPECT = Qt.Key_C, Qt.Key_S


@pytest.fixture
def keymap(tmp_path: Path) -> Keymap:
    return Keymap.load(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))


@pytest.fixture
def make_window(qtbot, keymap):
    windows = []

    def make(source, loader=tiny_detector, session=None, **settings) -> MainWindow:
        window = MainWindow(session if session is not None else InMemorySession(), source,
                            ModelChoice(loader, "test model"), keymap, InspectorSettings(**settings))
        qtbot.addWidget(window)
        window.resize(900, 600)
        window.show()
        window.activateWindow()
        qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=3000)
        windows.append(window)
        window.start()
        return window

    yield make
    for window in windows:
        window.shutdown()


def press(qtbot, window: MainWindow, key, modifier=Qt.NoModifier) -> None:
    qtbot.keyClick(window.inspector.canvas, key, modifier)


def test_a_bag_flows_from_the_lane_to_a_committed_decision(qtbot, make_window, bag_folder: Path) -> None:
    session = InMemorySession()
    paths = sorted(bag_folder.iterdir())[:3]
    window = make_window(ReplaySource(paths, rate_per_s=50.0), session=session)
    view = window.inspector
    qtbot.waitUntil(lambda: view.current_bag_id == "bag000" and bool(view.latencies_ms), timeout=20000)
    assert view.canvas.has_image() and view.canvas.has_heat_map()
    assert view.model_id == "tiny-untrained"
    qtbot.waitUntil(lambda: view.pending_count() == 2, timeout=5000)   # the others wait their turn
    shown_after: list[str] = []
    view.decision_committed.connect(lambda record: shown_after.append(f"committed {record.bag_id}"))
    view.bag_shown.connect(lambda bag_id: shown_after.append(f"shown {bag_id}"))
    press(qtbot, window, SUSPECT)
    qtbot.waitUntil(lambda: len(shown_after) == 2, timeout=5000)
    # The decision is committed before the next bag shows.
    assert shown_after == ["committed bag000", "shown bag001"]
    decision = session.decisions[0]
    assert (decision.bag_id, decision.verdict) == ("bag000", "suspect")
    assert decision.decided_at >= decision.opened_at
    assert "bag000" in session.predictions and session.predictions["bag000"].model_id == "tiny-untrained"
    assert set(session.bags) == {"bag000", "bag001", "bag002"}


def test_keyboard_only_session_screens_20_bags_without_stalling(qtbot, make_window, bag_folder: Path) -> None:
    session = InMemorySession()
    window = make_window(ReplaySource.from_folder(bag_folder, rate_per_s=40.0), session=session,
                         score_threshold=0.01)
    view = window.inspector
    meter = StallMeter(interval_ms=10)
    meter.start()
    started = time.perf_counter()
    expected = []
    for i in range(20):
        qtbot.waitUntil(lambda: view.current_bag_id == f"bag{i:03d}", timeout=20000)
        if i % 5 == 0:   # look closer at some bags: wait for boxes, cycle the functions, correct a box
            qtbot.waitUntil(lambda: bool(view.latencies_ms) and len(view.latencies_ms) >= i // 5 + 1, timeout=20000)
            for key in (Qt.Key_F3, Qt.Key_F4, Qt.Key_F9, Qt.Key_Plus, Qt.Key_Minus, Qt.Key_F):
                press(qtbot, window, key)
            press(qtbot, window, Qt.Key_Tab)
            press(qtbot, window, Qt.Key_A)
        verdict = "suspect" if i % 3 == 0 else "clear"
        expected.append((f"bag{i:03d}", verdict))
        press(qtbot, window, SUSPECT if verdict == "suspect" else CLEAR)
    qtbot.waitUntil(lambda: len(session.decisions) == 20, timeout=10000)
    elapsed = time.perf_counter() - started
    meter.stop()
    assert [(d.bag_id, d.verdict) for d in session.decisions] == expected
    accepted = [b for b, revs in session.revisions.items() if revs and revs[0].origin == "accepted_prediction"]
    assert accepted, "Tab + A should have accepted at least one predicted box"
    print(f"\n20 bags in {elapsed:.1f} s; longest GUI stall {meter.max_stall_ms:.1f} ms, "
          f"p99 {meter.percentile(99):.1f} ms over {meter.ticks} ticks; "
          f"boxes after {np.median(view.latencies_ms):.0f} ms median")
    # A loose bound: this machine's 2 cores are shared; the benchmark measures the real number.
    assert meter.max_stall_ms < 500


def test_no_model_keeps_the_lane_working_and_says_so(qtbot, make_window, bag_folder: Path) -> None:
    def missing():
        raise FileNotFoundError("resources/models/default.pt does not exist")

    session = InMemorySession()
    window = make_window(ReplaySource(sorted(bag_folder.iterdir())[:2], rate_per_s=50.0), loader=missing,
                         session=session)
    view = window.inspector
    qtbot.waitUntil(lambda: "no model loaded" in view.banner_text(), timeout=5000)
    assert "screening without detections" in view.banner_text()
    assert view.model_badge.text() == "NO MODEL"
    qtbot.waitUntil(lambda: view.current_bag_id == "bag000", timeout=5000)
    press(qtbot, window, CLEAR)
    qtbot.waitUntil(lambda: view.current_bag_id == "bag001", timeout=5000)
    assert session.decisions[0].verdict == "clear" and session.predictions == {}


def test_bad_bags_are_listed_and_the_lane_goes_on(qtbot, make_window, bag_folder: Path) -> None:
    (bag_folder / "bag001.jpg").write_bytes(b"")
    (bag_folder / "bag002.jpg").write_bytes(b"\xff\xd8\xff garbage")
    window = make_window(ReplaySource(sorted(bag_folder.iterdir())[:4], rate_per_s=50.0))
    view = window.inspector
    qtbot.waitUntil(lambda: len(view.panel.errors()) == 2, timeout=5000)
    assert any("bag001" in e for e in view.panel.errors()) and any("bag002" in e for e in view.panel.errors())
    press(qtbot, window, CLEAR)
    qtbot.waitUntil(lambda: view.current_bag_id == "bag003", timeout=5000)


class FlakySession(InMemorySession):
    """Loses its database for the first ``failures`` decisions and ``label_failures`` label saves."""

    def __init__(self, failures: int, label_failures: int = 0) -> None:
        super().__init__()
        self.failures = failures
        self.label_failures = label_failures

    def decide(self, *args, **kwargs):
        if self.failures:
            self.failures -= 1
            raise SessionError("database is locked")
        return super().decide(*args, **kwargs)

    def save_labels(self, *args, **kwargs):
        if self.label_failures:
            self.label_failures -= 1
            raise SessionError("connection lost")
        return super().save_labels(*args, **kwargs)


def test_a_decision_that_cannot_be_saved_is_kept_and_retried(qtbot, make_window, bag_folder: Path,
                                                             monkeypatch) -> None:
    monkeypatch.setattr(inspector_module, "RETRY_WRITES_MS", 300)
    session = FlakySession(failures=2)
    window = make_window(ReplaySource(sorted(bag_folder.iterdir())[:2], rate_per_s=50.0), loader=None,
                         session=session)
    view = window.inspector
    qtbot.waitUntil(lambda: view.current_bag_id == "bag000", timeout=5000)
    press(qtbot, window, SUSPECT)
    qtbot.waitUntil(lambda: "DECISION NOT SAVED" in view.banner_text(), timeout=5000)
    assert view.current_bag_id == "bag000"          # the next bag waits
    press(qtbot, window, CLEAR)                      # a second key does not replace the pending verdict
    qtbot.waitUntil(lambda: view.current_bag_id == "bag001", timeout=5000)
    assert [(d.bag_id, d.verdict) for d in session.decisions] == [("bag000", "suspect")]
    assert "DECISION NOT SAVED" not in view.banner_text()


def test_timer_warns_past_the_limit(qtbot, make_window, bag_folder: Path) -> None:
    window = make_window(ReplaySource(sorted(bag_folder.iterdir())[:1], rate_per_s=50.0), loader=None)
    view = window.inspector
    qtbot.waitUntil(lambda: view.current_bag_id == "bag000", timeout=5000)
    assert not view.is_late()
    view.set_time_limit(0.3)
    qtbot.waitUntil(view.is_late, timeout=3000)
    assert "LIMIT" in view.timer_label.text()


def test_screening_function_keys_change_the_image(qtbot, make_window, bag_folder: Path) -> None:
    from core.imaging.decode import read_image

    window = make_window(ReplaySource(sorted(bag_folder.iterdir())[:1], rate_per_s=50.0), loader=None)
    view = window.inspector
    qtbot.waitUntil(lambda: view.current_bag_id == "bag000", timeout=5000)
    original = read_image(bag_folder / "bag000.jpg")

    def shown_pixel() -> tuple[int, int, int]:
        colour = view.canvas._image_item.pixmap().toImage().pixelColor(100, 100)
        return colour.red(), colour.green(), colour.blue()

    press(qtbot, window, Qt.Key_F3)
    assert view.panel.chain() == ("negative",)
    qtbot.waitUntil(lambda: shown_pixel() == tuple(int(v) for v in negative(original)[100, 100]), timeout=5000)
    press(qtbot, window, Qt.Key_F9)
    assert view.panel.chain() == ()
    assert shown_pixel() == tuple(int(v) for v in original[100, 100])


def test_rebinding_a_key_takes_effect_and_reset_restores_it(qtbot, make_window, keymap, bag_folder: Path) -> None:
    session = InMemorySession()
    window = make_window(ReplaySource(sorted(bag_folder.iterdir())[:3], rate_per_s=50.0), loader=None,
                         session=session)
    view = window.inspector
    qtbot.waitUntil(lambda: view.current_bag_id == "bag000", timeout=5000)
    keymap.set_keys("clear", ["K"])
    press(qtbot, window, CLEAR)                      # no longer bound
    qtbot.wait(100)
    assert session.decisions == []
    press(qtbot, window, Qt.Key_K)
    qtbot.waitUntil(lambda: len(session.decisions) == 1, timeout=5000)
    keymap.reset()
    qtbot.waitUntil(lambda: view.current_bag_id == "bag001", timeout=5000)
    press(qtbot, window, CLEAR)
    qtbot.waitUntil(lambda: len(session.decisions) == 2, timeout=5000)


def test_label_revisions_that_fail_are_sent_again_in_order(qtbot, make_window, bag_folder: Path,
                                                           monkeypatch) -> None:
    monkeypatch.setattr(inspector_module, "RETRY_WRITES_MS", 200)
    session = FlakySession(failures=0, label_failures=1)
    window = make_window(ReplaySource(sorted(bag_folder.iterdir())[:2], rate_per_s=50.0), loader=None,
                         session=session)
    view = window.inspector
    qtbot.waitUntil(lambda: view.current_bag_id == "bag000", timeout=5000)
    view.canvas.add_box((10, 10, 60, 60), 2)                  # fails once...
    view.canvas.add_box((100, 100, 150, 170), 0)              # ...so this one is held behind it
    qtbot.waitUntil(lambda: "not saved" in view.banner_text(), timeout=5000)
    qtbot.waitUntil(lambda: len(session.revisions.get("bag000", [])) == 2, timeout=5000)
    qtbot.waitUntil(lambda: "not saved" not in view.banner_text(), timeout=5000)
    # Nothing lost and nothing out of order: the held second edit waited for the first.
    assert [len(r.boxes) for r in session.revisions["bag000"]] == [1, 2]
    assert session.origins("bag000") == ["added", "added"]
    press(qtbot, window, CLEAR)
    qtbot.waitUntil(lambda: len(session.decisions) == 1, timeout=5000)


def test_the_sessions_alarm_threshold_follows_the_score_slider(qtbot, make_window, bag_folder: Path) -> None:
    # "The model alarmed" (a flagging rule) means it showed the inspector a box: the slider decides.
    session = InMemorySession()
    session.alarm_threshold = 0.5
    window = make_window(ReplaySource(sorted(bag_folder.iterdir())[:1], rate_per_s=50.0), session=session)
    window.inspector.panel.step_threshold(-2)
    assert session.alarm_threshold == pytest.approx(0.4)
