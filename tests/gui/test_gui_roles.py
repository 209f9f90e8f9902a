"""Perspectives by role: what the GUI hides, and what the store refuses anyway."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt

from app.inspector import InspectorSettings
from app.keymap import Keymap
from app.model_loading import ModelChoice
from app.perspectives import LaneSetup, WorkstationWindow, perspectives_for
from app.review import ReviewView
from app.session import SessionError
from app.stats_view import StatsView
from app.store_session import StoreSession
from core.lane.bag import Bag
from core.lane.sources import DemoLaneSource, ReplaySource
from core.store.errors import PermissionDenied
from gui_helpers import make_rgb, tiny_detector
from store_world import World


pytestmark = pytest.mark.usefixtures("cheap_passwords")   # tests/gui/conftest.py


@pytest.fixture
def keymap(tmp_path: Path) -> Keymap:
    return Keymap.load(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))


@pytest.fixture
def open_window(qtbot, keymap):
    windows = []

    def make(world: World, user, source=None, loader=None) -> WorkstationWindow:
        lane = LaneSetup(source or ReplaySource([], rate_per_s=10), ModelChoice(loader, "test"), keymap,
                         InspectorSettings())
        window = WorkstationWindow(world.store, user, lane)
        qtbot.addWidget(window)
        window.resize(1000, 700)
        window.show()
        window.start()
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.shutdown()


def tabs(window: WorkstationWindow) -> list[str]:
    return [window.tabs.tabText(i) for i in range(window.tabs.count())]


def test_each_role_sees_only_its_perspectives(open_window, world: World) -> None:
    assert tabs(open_window(world, world.inspector)) == ["Lane"]
    assert tabs(open_window(world, world.supervisor)) == ["Review queue", "Statistics", "Models"]
    assert tabs(open_window(world, world.annotator)) == ["Annotate"]
    admin = open_window(world, world.admin)
    assert tabs(admin) == ["Lane", "Review queue", "Statistics", "Models", "Annotate"]
    assert admin.inspector is not None and admin.session is not None
    with pytest.raises(ValueError, match="unknown role"):
        perspectives_for("visitor")


def test_hidden_views_are_refused_by_the_store_when_opened_anyway(qtbot, world: World) -> None:
    review = ReviewView(world.store, world.inspector)
    stats = StatsView(world.store, world.annotator)
    for view in (review, stats):
        qtbot.addWidget(view)
        view.refresh()
    qtbot.waitUntil(lambda: bool(review.last_error and stats.last_error), timeout=5000)
    assert "may not review" in review.last_error and review.table.rowCount() == 0
    assert "may not view stats" in stats.last_error and stats.inspector_table.rowCount() == 0
    review.shutdown()
    stats.shutdown()


def test_the_store_refuses_a_supervisor_deciding_and_an_inspector_reviewing(world: World) -> None:
    session = StoreSession(world.store, world.supervisor, world.lane_id)
    with pytest.raises(SessionError, match="may not record bag"):
        session.record_bag(Bag("b1", "demo", image=make_rgb(1)))
    with pytest.raises(PermissionDenied):
        world.store.reviews.resolve(world.inspector, 1)
    with pytest.raises(PermissionDenied):
        world.store.stats.inspectors(world.inspector, dt.datetime(2026, 1, 1), dt.datetime(2027, 1, 1))


def test_an_inspector_without_a_lane_is_told_so(open_window, world: World) -> None:
    from core.store.permissions import SystemActor
    world.store.users.add(SystemActor("t"), "nolane", "inspector", "correct horse battery")
    user = world.store.users.get("nolane")
    window = open_window(world, user)
    assert window.inspector is None
    assert "not assigned to a lane" in window.view("lane").text()


def test_a_demo_lane_bag_is_decided_into_the_store(qtbot, open_window, world: World, monkeypatch) -> None:
    import threading

    threads: list[tuple[str, bool]] = []
    for name in ("record_bag", "record_predictions", "record_decision"):
        real = getattr(world.store.bags, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            threads.append((_name, threading.current_thread() is threading.main_thread()))
            return _real(*args, **kwargs)
        monkeypatch.setattr(world.store.bags, name, spy)
    source = DemoLaneSource(rate_per_s=20.0, seed=3, threat_rate=1.0, size=(320, 240), limit=2)
    window = open_window(world, world.inspector, source, tiny_detector)
    view = window.inspector
    qtbot.waitUntil(lambda: view.current_bag_id is not None, timeout=20000)
    qtbot.waitUntil(lambda: bool(view.latencies_ms), timeout=30000)
    lane_bag = view.current_bag_id
    with qtbot.waitSignal(view.decision_committed, timeout=10000):
        assert view.decide("suspect")
    bag_id = window.session.store_bag_id(lane_bag)
    decisions = world.store.bags.decisions(bag_id)
    assert [d.verdict for d in decisions] == ["suspect"] and decisions[0].user_id == world.inspector.id
    assert window.session.last_review_reason == "inspector_suspect"
    bag = world.store.bags.get(bag_id)
    assert (bag.width, bag.height) == (320, 240) and world.store.images.find(bag.image_sha256) is not None
    assert bag.screening_model_id == world.model_id     # the model's boxes are kept against its version
    assert {name for name, _ in threads} == {"record_bag", "record_predictions", "record_decision"}
    assert not any(on_gui for _, on_gui in threads)      # every store call ran on the session worker


def test_a_lost_database_keeps_the_pending_decision_until_saved(qtbot, open_window, world: World,
                                                                 monkeypatch, bag_folder: Path) -> None:
    import app.inspector as inspector_module
    from core.store.errors import StoreUnavailable

    monkeypatch.setattr(inspector_module, "RETRY_WRITES_MS", 100)
    real = world.store.bags.record_decision
    lost = {"on": True}

    def flaky(*args, **kwargs):
        if lost["on"]:
            raise StoreUnavailable("database server unreachable")
        return real(*args, **kwargs)

    monkeypatch.setattr(world.store.bags, "record_decision", flaky)
    window = open_window(world, world.inspector, ReplaySource(sorted(bag_folder.iterdir())[:2], rate_per_s=50))
    view = window.inspector
    qtbot.waitUntil(lambda: view.current_bag_id == "bag000", timeout=10000)
    assert view.decide("clear")
    qtbot.waitUntil(lambda: "DECISION NOT SAVED" in view.banner_text(), timeout=5000)
    assert "unreachable" in view.banner_text() and view.current_bag_id == "bag000"
    qtbot.wait(300)
    assert view.current_bag_id == "bag000"          # the next bag waits for the decision
    lost["on"] = False
    qtbot.waitUntil(lambda: view.current_bag_id == "bag001", timeout=5000)
    assert "DECISION" not in view.banner_text()
    saved = world.store.bags.decisions(window.session.store_bag_id("bag000"))
    assert [d.verdict for d in saved] == ["clear"]


def test_lane_keys_do_nothing_while_another_perspective_is_shown(qtbot, open_window, world: World,
                                                                bag_folder: Path) -> None:
    window = open_window(world, world.admin, ReplaySource(sorted(bag_folder.iterdir())[:2], rate_per_s=50))
    view = window.inspector
    qtbot.waitUntil(lambda: view.current_bag_id == "bag000", timeout=10000)
    window.show_perspective("review")
    qtbot.keyClick(window.view("review").table, Qt.Key_C)
    qtbot.wait(200)
    assert view.decided == 0 and view.current_bag_id == "bag000"
    window.show_perspective("lane")
    with qtbot.waitSignal(view.decision_committed, timeout=5000):
        qtbot.keyClick(view.canvas, Qt.Key_C)


def test_an_unregistered_model_is_named_in_the_status_bar(qtbot, open_window, world: World) -> None:
    from app.model_loading import untrained_loader

    window = open_window(world, world.inspector, ReplaySource([], rate_per_s=10),
                         untrained_loader(widths=[8, 8, 16, 16, 16], neck_channels=16, head_channels=16))
    qtbot.waitUntil(lambda: "not registered" in window.registry_note.text(), timeout=30000)
    assert "UNTRAINED-fast-doam" in window.registry_note.text()


def test_store_session_labels_are_revisions_and_a_conflict_is_retried_on_top(world: World) -> None:
    from app.session import LabelBox

    session = StoreSession(world.store, world.inspector, world.lane_id)
    session.record_bag(Bag("b7", "demo", image=make_rgb(7)))
    session.record_bag(Bag("b7", "demo", image=make_rgb(7)))      # a retried call records nothing twice
    store_id = session.store_bag_id("b7")
    first = session.save_labels("b7", [LabelBox(0, 10, 10, 50, 60)], "added")
    assert first.version == 1
    world.store.labels.save(world.annotator, store_id, [], origin="deleted", base_version=1)
    with pytest.raises(SessionError, match="changed while you edited"):
        session.save_labels("b7", [LabelBox(0, 12, 10, 50, 60)], "moved")
    again = session.save_labels("b7", [LabelBox(0, 12, 10, 50, 60)], "moved")   # the view's retry
    assert again.version == 3
    assert [(r.origin, r.author_id) for r in world.store.labels.history(store_id)] == [
        ("added", world.inspector.id), ("deleted", world.annotator.id), ("moved", world.inspector.id)]


def test_the_lane_uses_the_stores_active_model_unless_told_otherwise(world: World, tmp_path: Path) -> None:
    from app.main_window import WorkstationOptions, lane_model

    assert "active model" not in lane_model(world.store, WorkstationOptions()).description
    world.store.models.promote(world.admin, world.model_id)
    choice = lane_model(world.store, WorkstationOptions())
    assert choice.description.startswith("active model tiny-untrained")
    with pytest.raises(Exception, match="tiny.pt"):      # the registered file is missing here: refused
        choice.loader()
    assert "active" not in lane_model(world.store, WorkstationOptions(model=tmp_path / "m.pt")).description
