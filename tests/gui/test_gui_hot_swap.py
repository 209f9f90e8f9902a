"""Hot swap in the lane: a promoted model is loaded between two bags, by the detector worker.

Real tiny model files registered in a temporary SQLite store; the detector worker
follows the store's active model through ``ActiveModelWatcher``. Checked: every
bag is screened exactly once, results (and the store's rows) name the version
that made them, the status bar shows the new version, and a promoted file that
fails its sha256 is never loaded (the old model keeps screening, the banner says so).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from app.hot_swap import make_watcher
from app.inspector import InspectorSettings
from app.keymap import Keymap
from app.model_loading import ModelChoice
from app.perspectives import LaneSetup, WorkstationWindow
from app.workers import DetectorWorker
from core.imaging.decode import write_image
from core.lane.sources import ReplaySource
from core.store.permissions import SystemActor
from core.store.repo import Store
from core.store.values import ModelVersionInfo
from gui_helpers import make_rgb
from store_world import World

SYSTEM = SystemActor("tests")

WORLD_SCREENED_BAGS = 0     # the world fixture (conftest) screens no bags beforehand


def tiny_model_file(path: Path, seed: int) -> Path:
    """A real (untrained) tiny fast detector written with the model-file writer."""
    import torch

    from core.inference import save_model
    from core.models.build import build_detector

    torch.manual_seed(seed)
    model = build_detector("fast", "none", input_size=[96, 128], widths=[8, 8, 16, 16, 16],
                           neck_channels=16, head_channels=16)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(path, model, write_sidecar=False)
    return path


def register(store: Store, path: Path, name: str) -> ModelVersionInfo:
    return store.models.register(SYSTEM, name=name, arch="fast", attention="none", path=path)


def corrupt_promotion(store: Store, folder: Path) -> ModelVersionInfo:
    """A version registered with one file whose bytes then change: its sha256 no longer matches."""
    path = tiny_model_file(folder / "v3.pt", seed=3)
    version = register(store, path, "v3-corrupt")
    path.write_bytes(path.read_bytes()[:-16])
    store.models.promote(SYSTEM, version.id)
    return version


pytestmark = pytest.mark.usefixtures("cheap_passwords")   # tests/gui/conftest.py


def following_lane(qtbot, world: World, tmp_path: Path, bags: int) -> WorkstationWindow:  # noqa: ANN001
    """The inspector's running lane of ``bags`` small bags, following the store's active model, no fallback."""
    folder = tmp_path / "bags"
    folder.mkdir()
    for i in range(bags):
        write_image(folder / f"bag{i:03d}.jpg", make_rgb(i))
    keymap = Keymap.load(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))
    lane = LaneSetup(ReplaySource.from_folder(folder, rate_per_s=50.0), ModelChoice(None, "no fallback"), keymap,
                     InspectorSettings(), follow_active=True, model_poll_s=0.0)
    window = WorkstationWindow(world.store, world.inspector, lane)
    qtbot.addWidget(window)
    window.show()
    window.start()
    return window


@pytest.fixture
def store(tmp_path: Path):
    store = Store.open(None, data_dir=tmp_path / "data")
    yield store
    store.close()


@pytest.fixture
def two_versions(store: Store, tmp_path: Path) -> tuple[ModelVersionInfo, ModelVersionInfo]:
    v1 = register(store, tiny_model_file(tmp_path / "models" / "v1.pt", seed=1), "v1")
    v2 = register(store, tiny_model_file(tmp_path / "models" / "v2.pt", seed=2), "v2")
    store.models.promote(SYSTEM, v1.id)
    return v1, v2


def test_the_worker_swaps_between_bags_and_each_result_names_its_version(qtbot, store: Store, tmp_path: Path,
                                                                         two_versions) -> None:
    v1, v2 = two_versions
    worker = DetectorWorker(None)
    worker.follow(make_watcher(store, min_interval_s=0.0, device="cpu", num_threads=1))
    results, swaps, failures = [], [], []
    worker.result_ready.connect(results.append)
    worker.model_swapped.connect(swaps.append)
    worker.model_failed.connect(failures.append)
    try:
        with qtbot.waitSignal(worker.model_loaded, timeout=15000):
            worker.start()
        assert worker.model_version.id == v1.id and [s.id for s in swaps] == [v1.id]

        def screen(index: int) -> None:
            worker.submit(f"bag-{index}", make_rgb(index))
            qtbot.waitUntil(lambda: len(results) == index + 1, timeout=15000)

        for i in range(3):
            screen(i)
        store.models.promote(SYSTEM, v2.id)          # a supervisor promotes while the lane runs
        for i in range(3, 6):
            screen(i)
        assert [r.bag_id for r in results] == [f"bag-{i}" for i in range(6)]     # none lost, none twice
        assert [r.model_version_id for r in results] == [v1.id] * 3 + [v2.id] * 3
        assert [s.id for s in swaps] == [v1.id, v2.id] and failures == []
        assert results[-1].model_id == worker.model_id != results[0].model_id

        # A promoted file that fails its sha256 is never loaded: the old model keeps screening.
        bad = corrupt_promotion(store, tmp_path / "models")
        with qtbot.waitSignal(worker.model_failed, timeout=15000) as failed:
            screen(6)
        assert "NEW MODEL NOT LOADED" in failed.args[0] and f"version {bad.id}" in failed.args[0]
        assert "sha256" in failed.args[0] and f"still screening with version {v2.id}" in failed.args[0]
        assert results[-1].bag_id == "bag-6" and results[-1].model_version_id == v2.id
        assert worker.model_version.id == v2.id and len(swaps) == 2
    finally:
        worker.stop()


def test_without_an_active_model_the_fallback_screens_until_one_is_promoted(qtbot, store: Store,
                                                                            tmp_path: Path) -> None:
    from core.inference import Detector

    fallback_file = tiny_model_file(tmp_path / "default.pt", seed=5)
    worker = DetectorWorker(lambda: Detector.load(fallback_file, device="cpu", num_threads=1))
    worker.follow(make_watcher(store, min_interval_s=0.0, device="cpu", num_threads=1))
    results = []
    worker.result_ready.connect(results.append)
    try:
        with qtbot.waitSignal(worker.model_loaded, timeout=15000):
            worker.start()
        worker.submit("bag-0", make_rgb(0))
        qtbot.waitUntil(lambda: len(results) == 1, timeout=15000)
        assert results[0].model_version_id is None and worker.model_version is None   # the file, not a version
        v1 = register(store, tiny_model_file(tmp_path / "v1.pt", seed=1), "v1")
        with qtbot.waitSignal(worker.model_swapped, timeout=15000):   # polled while idle: no bag needed
            store.models.promote(SYSTEM, v1.id)
        worker.submit("bag-1", make_rgb(1))
        qtbot.waitUntil(lambda: len(results) == 2, timeout=15000)
        assert results[1].model_version_id == v1.id
    finally:
        worker.stop()


def test_the_lane_shows_the_new_version_and_the_store_keeps_who_screened_each_bag(
        qtbot, world: World, tmp_path: Path) -> None:
    store = world.store
    v1 = register(store, tiny_model_file(tmp_path / "models" / "v1.pt", seed=1), "v1")
    v2 = register(store, tiny_model_file(tmp_path / "models" / "v2.pt", seed=2), "v2")
    store.models.promote(SYSTEM, v1.id)
    window = following_lane(qtbot, world, tmp_path, bags=6)
    view = window.inspector
    try:
        def screen(index: int) -> None:
            qtbot.waitUntil(lambda: view.current_bag_id == f"bag{index:03d}", timeout=15000)
            qtbot.waitUntil(lambda: len(view.latencies_ms) == index + 1, timeout=15000)   # boxes on screen
            assert view.decide("clear")

        for i in range(3):
            screen(i)
        assert f"v1 v{v1.id}" in view.status_model.text()
        store.models.promote(SYSTEM, v2.id)
        for i in range(3, 6):
            screen(i)
        qtbot.waitUntil(lambda: view.decided == 6, timeout=15000)
        assert f"v2 v{v2.id}" in view.status_model.text()
        screened = [store.bags.get(window.session.store_bag_id(f"bag{i:03d}")).screening_model_id for i in range(6)]
        assert screened == [v1.id] * 3 + [v2.id] * 3
        assert window.registry_note.text() == ""          # the model is registered: its boxes are kept

        corrupt_promotion(store, tmp_path / "models")
        qtbot.waitUntil(lambda: "NEW MODEL NOT LOADED" in view.banner_text(), timeout=15000)
        assert f"still screening with version {v2.id}" in view.banner_text()
        assert f"v2 v{v2.id}" in view.status_model.text()
    finally:
        window.shutdown()


def test_a_bag_shown_before_any_model_gets_its_boxes_when_one_is_promoted(qtbot, world: World,
                                                                          tmp_path: Path) -> None:
    """The lane starts with no model at all; the bag on screen is screened by the first one promoted."""
    store = world.store
    window = following_lane(qtbot, world, tmp_path, bags=2)
    view = window.inspector
    try:
        qtbot.waitUntil(lambda: view.current_bag_id == "bag000" and view.model_badge.text() == "NO MODEL",
                        timeout=15000)
        dl = view.panel.detection_list
        assert view.latencies_ms == [] and [dl.item(i).text() for i in range(dl.count())] == ["(no model: no detections)"]
        v1 = register(store, tiny_model_file(tmp_path / "models" / "v1.pt", seed=1), "v1")
        with qtbot.waitSignal(view.boxes_shown, timeout=15000) as shown:
            store.models.promote(SYSTEM, v1.id)
        assert shown.args == ["bag000"] and view.current_bag_id == "bag000"   # no decision was needed
        assert view.banner_text() == "" and f"v1 v{v1.id}" in view.status_model.text()
        assert view.decide("clear")
        qtbot.waitUntil(lambda: view.current_bag_id == "bag001" and len(view.latencies_ms) == 2, timeout=15000)
        stored = store.bags.get(window.session.store_bag_id("bag000"))
        assert stored.screening_model_id == v1.id
    finally:
        window.shutdown()
