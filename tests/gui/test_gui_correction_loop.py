"""Closing the loop through the GUI (issue #7): corrections on the lane make the lane's next model better.

The scenario of ``core.bench.retrain`` (as in ``tests/test_retrain.py``, which runs it
without a GUI): a tiny detector that has only seen straight knives is the store's
active model; a demo lane of straight and multi-tool knives is replayed into the
offscreen workstation of a logged-in inspector, whose detector worker follows the
store's active model. For every bag the scripted inspector (``correction_loop_helpers``)
waits for the boxes, draws the missed items, dismisses the false alarms, fixes classes
and decides, with the keys and the mouse, so labels and decisions are saved by the
app's own path. While the inspector still looks at the last bag, a supervisor's
retraining job runs; the gate promotes the candidate, the lane's worker swaps between
two bags, and the same bags come round again. Misses are counted from what the canvas
showed and from what the store kept, at the site's alarm threshold, before and after:
the improvement is measured, never assumed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from app.inspector import InspectorSettings
from app.keymap import Keymap
from app.model_loading import ModelChoice
from app.perspectives import LaneSetup, WorkstationWindow
from core.bench.retrain import ALARM_THRESHOLD, PASSWORD, open_site, scenario_settings
from core.lane.sources import ReplaySource
from core.store.repo import Store
from core.training.retrain import run_retrain
from correction_loop_helpers import Edits, correct_bag, missed, press, shown_predictions, truth_boxes
from tests.test_retrain import Loop, make_loop

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("cheap_passwords")]   # tests/gui/conftest.py

RETRAIN = scenario_settings(iters=300)   # what makes the effect measurable (tests/test_retrain.py)
BAG_TIMEOUT_MS = 20000


@pytest.fixture(scope="module")
def loop(tmp_path_factory) -> Loop:
    return make_loop(tmp_path_factory.mktemp("gui-loop"))


@dataclass
class Screened:
    """One pass over the lane as the GUI showed it: the misses on screen per lane bag, the edits made."""
    misses: dict[str, int]
    edits: Edits

    @property
    def total_misses(self) -> int:
        return sum(self.misses.values())


def open_lane(qtbot, store: Store, source: ReplaySource, settings_file: Path,  # noqa: ANN001
              boxes_for: set[str]) -> WorkstationWindow:
    """The inspector logs in; the lane follows the store's active model (hot swap on).

    ``boxes_for`` collects the bag ids whose boxes the view has shown, from before the lane
    starts: the first bag's boxes can reach the screen while the test is still waiting for
    the model to load, and a recorder connected later would never see them.
    """
    user = store.users.login("ins", PASSWORD)
    assert user.role == "inspector"
    keymap = Keymap.load(settings=QSettings(str(settings_file), QSettings.IniFormat))
    # max_pending: the looping lane reads only a few bags ahead of the inspector.
    lane = LaneSetup(source, ModelChoice(None, "no fallback"), keymap,
                     InspectorSettings(score_threshold=ALARM_THRESHOLD, max_pending=3),
                     follow_active=True, model_poll_s=0.25)
    window = WorkstationWindow(store, user, lane)
    qtbot.addWidget(window)
    window.resize(1100, 750)
    window.show()
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5000)   # for the key shortcuts
    view = window.inspector
    # The lane's configured threshold reaches the session before anyone touches the slider.
    assert window.session.alarm_threshold == pytest.approx(ALARM_THRESHOLD)
    # The inspector sets the site's threshold with the keys ("[" then "]"): a model's own suggested
    # operating point no longer moves it, and the session records decisions at it.
    press(qtbot, view, "threshold_down")
    press(qtbot, view, "threshold_up")
    assert view.panel.threshold() == pytest.approx(ALARM_THRESHOLD) and view.panel.threshold_set_by_user
    assert window.session.alarm_threshold == pytest.approx(ALARM_THRESHOLD)
    view.boxes_shown.connect(boxes_for.add)
    window.start()
    return window


def on_screen_with_boxes(window: WorkstationWindow, bag_id: str, boxes_for: set[str]) -> None:
    """The waitUntil condition for one bag; when it times out, the message says where the bag got to."""
    view = window.inspector
    detector = view.detector
    assert view.current_bag_id == bag_id and bag_id in boxes_for, (
        f"waiting for {bag_id}: on screen {view.current_bag_id}, boxes shown for it {bag_id in boxes_for}, "
        f"pending {view.pending_count()}, decided {view.decided}, detector queue {detector.queue_length()}, "
        f"predicted {detector.predicted}, dropped {detector.dropped_count}, model {view.model_id}, "
        f"status '{view.status_latency.text()}', banner '{view.banner_text()}', "
        f"lane running {view.lane.isRunning()}, detector running {detector.isRunning()}")


def screen_pass(qtbot, window: WorkstationWindow, bag_ids: list[str], truth: dict[str, tuple],  # noqa: ANN001
                boxes_for: set[str], *, correct: bool, hold_last: bool = False) -> Screened:
    """Screen ``bag_ids`` in order: wait for the boxes, count the misses shown, correct (or not), decide.

    ``boxes_for``: open_lane's record of the bags whose boxes were shown. ``hold_last``: the last
    bag stays on screen undecided (its corrections saved), for the caller.
    """
    view = window.inspector
    result = Screened({}, Edits())
    for n, bag_id in enumerate(bag_ids):
        qtbot.waitUntil(lambda: on_screen_with_boxes(window, bag_id, boxes_for), timeout=BAG_TIMEOUT_MS)
        shown = shown_predictions(view)
        items = truth[bag_id]
        result.misses[bag_id] = missed(items, shown, ALARM_THRESHOLD)
        if correct:
            edits = correct_bag(qtbot, view, items)
            for name in vars(edits):
                setattr(result.edits, name, getattr(result.edits, name) + getattr(edits, name))
        if hold_last and n == len(bag_ids) - 1:
            break
        decided = view.decided
        press(qtbot, view, "suspect" if (view.canvas.label_snapshot() or shown) else "clear")
        qtbot.waitUntil(lambda: view.decided == decided + 1, timeout=BAG_TIMEOUT_MS)
    assert "not saved" not in view.banner_text().lower(), view.banner_text()
    return result


def stored_misses(store: Store, window: WorkstationWindow, bag_ids: list[str], truth: dict[str, tuple],
                  lane_ids: list[str]) -> tuple[int, set[int | None]]:
    """Misses counted from the predictions the store kept for the bags, and the versions that made them."""
    total, versions = 0, set()
    for bag_id, lane_id in zip(bag_ids, lane_ids):
        store_id = window.session.store_bag_id(lane_id)
        versions.add(store.bags.get(store_id).screening_model_id)
        total += missed(truth[bag_id], tuple(store.bags.predictions(store_id)), ALARM_THRESHOLD)
    return total, versions


def test_corrections_made_on_the_lane_retrain_a_model_the_lane_swaps_in_and_it_misses_less(
        qtbot, loop: Loop, tmp_path: Path) -> None:
    data_dir = tmp_path / "site"
    store = Store.open(None, data_dir=data_dir)
    site, weak_id = open_site(store, loop.weak_model, loop.weak_sha256, actor_name="pytest")
    # The same bags twice: the second pass (bag ids "<stem>-1") comes after the swap.
    source = ReplaySource.from_dataset(loop.data.lane, "test", rate_per_s=50.0, loop=True)
    bag_ids = [path.stem for path in source.paths]
    truth = {path.stem: truth_boxes(source.truth[path]) for path in source.paths}
    assert len(bag_ids) == 60 and all(truth.values())
    boxes_for: set[str] = set()
    window = open_lane(qtbot, store, source, tmp_path / "settings.ini", boxes_for)
    view = window.inspector
    try:
        t0 = time.perf_counter()
        qtbot.waitUntil(lambda: view.model_version is not None, timeout=BAG_TIMEOUT_MS)
        assert view.model_version.id == weak_id and f"v{weak_id}" in view.status_model.text()

        # 1. The weak model screens the lane; the inspector corrects every bag and decides.
        before = screen_pass(qtbot, window, bag_ids, truth, boxes_for, correct=True, hold_last=True)
        qtbot.waitUntil(lambda: view.unsaved_writes() == 0, timeout=BAG_TIMEOUT_MS)
        assert before.edits.drawn > 10 and before.edits.dismissed > 0, before.edits
        stored_before, versions = stored_misses(store, window, bag_ids, truth, bag_ids)
        assert versions == {weak_id}
        assert stored_before == before.total_misses > 10, (stored_before, before.total_misses)
        # What the GUI saved is what the job will learn from: the truth, by the inspector, as hard samples.
        for bag_id in bag_ids[:10]:
            revision = store.labels.current(window.session.store_bag_id(bag_id))
            assert revision.author_id == site.inspector.id
            assert sorted(b.class_name for b in revision.boxes) == sorted(b.class_name for b in truth[bag_id])
            for box in revision.boxes:
                assert max(b.iou(box) for b in truth[bag_id]) > 0.95
        hard = store.hard_samples.find(site.supervisor, score_threshold=ALARM_THRESHOLD)
        assert len(hard) > 10
        decisions = [store.bags.decisions(window.session.store_bag_id(b)) for b in bag_ids[:-1]]
        assert all(len(d) == 1 and d[0].user_id == site.inspector.id for d in decisions)
        pass1_s = time.perf_counter() - t0

        # 2. A supervisor runs the job while the lane is up. The trainer installs signal handlers, which
        # only the main thread may do, so the job runs here and the GUI's events are processed at each of
        # its progress reports (the workstation itself runs it as a child process, app.retrain_process).
        stages: list[str] = []

        def keep_gui_running(fraction: float, stage: str) -> None:
            stages.append(stage)
            QApplication.processEvents()

        t0 = time.perf_counter()
        result = run_retrain(store, site.supervisor, data_dir=data_dir, benchmark=loop.data.benchmark,
                             base_data=loop.data.base, settings=RETRAIN, on_progress=keep_gui_running)
        retrain_s = time.perf_counter() - t0
        assert "training" in stages, stages
        assert result.status == "promoted", result.message
        candidate = result.candidate
        assert store.models.active().id == candidate.id and store.models.get(weak_id).status == "retired"
        lineage = candidate.metrics["lineage"]
        assert lineage["parent_model_id"] == weak_id
        assert len(lineage["train_bags"]) + len(lineage["heldout_bags"]) == len(hard)

        # 3. The lane's worker swaps between two bags: the held bag still carries the weak model's boxes.
        qtbot.waitUntil(lambda: view.model_version is not None and view.model_version.id == candidate.id,
                        timeout=BAG_TIMEOUT_MS)
        assert f"v{candidate.id}" in view.status_model.text()
        assert f"now screening with model version {candidate.id}" in view.status_note.text()
        assert view.current_bag_id == bag_ids[-1]
        decided = view.decided
        press(qtbot, view, "suspect")
        qtbot.waitUntil(lambda: view.decided == decided + 1, timeout=BAG_TIMEOUT_MS)

        # 4. The same bags again, with the promoted model; the inspector only decides.
        t0 = time.perf_counter()
        again = [f"{b}-1" for b in bag_ids]
        after = screen_pass(qtbot, window, again, {f"{b}-1": truth[b] for b in bag_ids}, boxes_for,
                            correct=False)
        pass2_s = time.perf_counter() - t0
        stored_after, versions = stored_misses(store, window, bag_ids, truth, again)
        assert versions == {candidate.id}      # every bag of the second pass was screened by the new version
        assert stored_after == after.total_misses
        print(f"\nGUI loop: misses {before.total_misses} -> {after.total_misses} of "
              f"{sum(len(t) for t in truth.values())} items; edits {before.edits}; "
              f"pass 1 {pass1_s:.1f} s, job {retrain_s:.1f} s, pass 2 {pass2_s:.1f} s")
        assert after.total_misses < before.total_misses, (before.misses, after.misses)
    finally:
        window.shutdown()
        store.close()
