"""Render the workstation's perspectives to PNG offscreen, with real data.

``python main.py screenshot --out DIR`` runs the real windows on a scratch store:
an inspector screens a few demo-lane bags (the detector worker with the bundled
model, or an UNTRAINED model clearly labelled as such; TIP on; decisions committed
to the store, which flags some for review); an annotator saves the generator's
truth as labels for most of them; then the inspector's lane (boxes and heat map),
the supervisor's review queue and statistics, and the annotator's view are grabbed.
"""
from __future__ import annotations

import hashlib
import logging
import os
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from app.inspector import InspectorSettings
from app.keymap import Keymap
from app.main_window import make_application
from app.model_loading import DEFAULT_MODEL_PATH, choose_model
from app.perspectives import LaneSetup, WorkstationWindow
from app.store_session import truth_box
from core.lane.bag import Bag
from core.lane.sources import DemoLaneSource
from core.lane.tip import TipPolicy, TipSource
from core.store.permissions import SystemActor
from core.store.repo import Store
from core.store.values import UserInfo

log = logging.getLogger(__name__)

WINDOW_SIZE = (1600, 1000)
BOXES_SHOWN = 4    # with an untrained model, show its top few boxes so the overlay can be judged
MIN_SHOWN_PX = 24  # ...and only boxes large enough to see


class ScreenshotError(RuntimeError):
    pass


def _wait(app: QApplication, condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise ScreenshotError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        app.processEvents()
        time.sleep(0.01)


def _keep_top_separate(canvas, count: int, max_iou: float = 0.05) -> None:  # noqa: ANN001 - ImageCanvas
    """Remove all predictions but the ``count`` best that do not overlap each other (screenshots only)."""
    kept: list[tuple[float, float, float, float]] = []
    for box in sorted(canvas.all_boxes(), key=lambda b: -(b.score or 0.0)):
        x1, y1, x2, y2 = box.rect
        big_enough = x2 - x1 >= MIN_SHOWN_PX and y2 - y1 >= MIN_SHOWN_PX
        if big_enough and len(kept) < count and all(_iou(box.rect, other) <= max_iou for other in kept):
            kept.append(box.rect)
        else:
            canvas.take_box(box.box_id)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _settle(app: QApplication, seconds: float) -> None:
    """Let queued repaints and signals run before grabbing the window."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)


SCREENED_BAGS = 8         # bags the inspector decides before the pictures are taken
DEMO_PASSWORD = "screenshot-only-password"   # a throw-away store, deleted afterwards
OPERATOR = SystemActor("screenshot")


@dataclass
class DemoPeople:
    admin: UserInfo
    inspector: UserInfo
    supervisor: UserInfo
    annotator: UserInfo


def seed_people(store: Store) -> tuple[DemoPeople, int]:
    lane = store.users.add_lane(OPERATOR, "lane-1", "demo lane")
    people = DemoPeople(store.users.add(OPERATOR, "admin", "admin", DEMO_PASSWORD),
                        store.users.add(OPERATOR, "ines", "inspector", DEMO_PASSWORD, lane_id=lane.id),
                        store.users.add(OPERATOR, "sam", "supervisor", DEMO_PASSWORD),
                        store.users.add(OPERATOR, "ann", "annotator", DEMO_PASSWORD))
    store.users.add(OPERATOR, "sue", "supervisor", DEMO_PASSWORD)
    store.users.add(OPERATOR, "ivan", "inspector", DEMO_PASSWORD, lane_id=lane.id)
    store.reviews.set_qc_share(OPERATOR, 0.25)
    return people, lane.id


def register_model(store: Store, model_path: Path | None, untrained: bool) -> None:
    """Put the screening model in the scratch registry so its boxes are stored (and statistics have a model)."""
    if not untrained and model_path is not None and model_path.is_file():
        from core.inference.modelfile import read_model_file  # noqa: PLC0415 - torch only here

        info, _ = read_model_file(model_path)
        store.models.register(OPERATOR, name=info.model_id, arch=info.arch, attention=info.attention,
                              path=model_path)
    else:
        # The untrained demo model has no file: identify it by a digest of its name (scratch store only).
        name = "UNTRAINED-fast-doam"
        store.models.register(OPERATOR, name=name, arch="fast", attention="doam", path=Path(name),
                              sha256=hashlib.sha256(name.encode()).hexdigest())


def _grab(window, path: Path) -> Path:  # noqa: ANN001 - a QWidget
    if not window.grab().save(str(path)):
        raise ScreenshotError(f"cannot write {path}")
    return path


def _show(window, app: QApplication):  # noqa: ANN001, ANN202
    window.resize(*WINDOW_SIZE)
    window.show()
    if window.inspector is not None:   # keep every bag the lane brings (its truth is never shown)
        window.arrived = {}
        window.inspector.lane.bag_arrived.connect(lambda bag: window.arrived.__setitem__(bag.bag_id, bag))
    window.start()
    return window


def screen_some_bags(app: QApplication, window: WorkstationWindow, count: int, timeout_s: float) -> dict[str, Bag]:
    """Let the inspector decide ``count`` bags (suspect where the bag holds a threat); return them by lane id."""
    view = window.inspector
    shown_before = len(view.latencies_ms)
    arrived: dict[str, Bag] = window.arrived
    for index in range(count):
        _wait(app, lambda: view.current_bag_id is not None and view.current_bag_id in arrived, timeout_s,
              f"bag {index + 1} of the demo lane")
        bag_id = view.current_bag_id
        _wait(app, lambda: len(view.latencies_ms) > shown_before + index or view.banner_text().startswith("no model"),
              timeout_s, f"the detections of bag {bag_id}")
        _settle(app, 0.2 + 0.15 * (index % 3))      # a human takes a moment; the statistics show it
        bag = arrived[bag_id]
        # A fallible inspector: calls the threats, misses the last TIP bag, one false alarm.
        threat = bool(bag.truth) or bool(bag.tip)
        verdict = "suspect" if threat != (index in (3, count - 2)) else "clear"
        done = view.decided
        view.decide(verdict)
        _wait(app, lambda: view.decided > done, 30, f"the decision on {bag_id}")
    _wait(app, lambda: view.current_bag_id is not None and len(view.latencies_ms) > shown_before + count, timeout_s,
          "the detections of the bag left on screen")
    return arrived


def annotate_truth(store: Store, annotator: UserInfo, window: WorkstationWindow, bags: dict[str, Bag]) -> None:
    """The annotator confirms the generator's truth as labels for most decided bags (one left to do)."""
    session = window.session
    decided = [b for b in bags.values() if b.bag_id != window.inspector.current_bag_id]
    for bag in decided[:-1]:
        store_id = session.store_bag_id(bag.bag_id)
        height, width = bag.image.shape[:2]
        # The stored image of a TIP bag holds the projected threat too: it is part of the truth.
        boxes = [b for b in (truth_box(t, width, height) for t in bag.truth + bag.tip) if b is not None]
        current = store.labels.current(store_id).version
        store.labels.save(annotator, store_id, boxes, origin="added", base_version=current)


def render_screenshots(out_dir: Path, *, model_path: Path | None = None, seed: int = 7,
                       timeout_s: float = 180.0) -> list[Path]:
    """Write inspector.png, inspector-inorganic.png, review.png, stats.png and annotate.png; return their paths."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    app = make_application()
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="xray-screenshot-") as scratch:
        scratch_dir = Path(scratch)
        store = Store.open(None, data_dir=scratch_dir / "data", rng=random.Random(seed))
        windows: list = []
        try:
            people, _ = seed_people(store)
            # Private settings: a screenshot must not pick up (or change) the user's key bindings.
            keymap = Keymap.load(settings=QSettings(str(scratch_dir / "settings.ini"), QSettings.IniFormat))
            model = choose_model(model_path, allow_untrained=True)
            register_model(store, model_path or DEFAULT_MODEL_PATH, untrained=model.note is not None)
            source = TipSource(DemoLaneSource(rate_per_s=5.0, seed=seed, threat_rate=0.5, limit=SCREENED_BAGS + 2),
                               TipPolicy(0.3, seed=seed))
            # A second inspector first (closed again), so the statistics compare two people.
            other = _show(WorkstationWindow(store, store.users.get("ivan"), LaneSetup(
                DemoLaneSource(rate_per_s=5.0, seed=seed + 100, threat_rate=0.5, limit=5), model, keymap)), app)
            windows.append(other)
            annotate_truth(store, people.annotator, other, screen_some_bags(app, other, 4, timeout_s))
            other.shutdown()
            other.close()
            lane = _show(WorkstationWindow(store, people.inspector, LaneSetup(
                source, model, keymap, InspectorSettings(time_limit_s=20.0, heat_opacity=0.45))), app)
            windows.append(lane)
            bags = screen_some_bags(app, lane, SCREENED_BAGS, timeout_s)
            annotate_truth(store, people.annotator, lane, bags)
            written += _inspector_pictures(app, lane, model.note is not None, out_dir)

            supervisor = _show(WorkstationWindow(store, people.supervisor), app)
            windows.append(supervisor)
            review = supervisor.view("review")
            _wait(app, lambda: bool(review.reviews), 30, "the review queue")
            labelled = [r for r in review.reviews if store.labels.current(r.bag_id).boxes]
            review.select_review((labelled or review.reviews)[0].id)
            _wait(app, lambda: review.detail is not None, 30, "the first flagged bag")
            review.comment_field.setText("Blade edge visible next to the laptop: confirm.")
            _settle(app, 0.3)
            written.append(_grab(supervisor, out_dir / "review.png"))
            stats = supervisor.view("stats")
            supervisor.show_perspective("stats")
            _wait(app, lambda: stats.report is not None, 30, "the statistics")
            _settle(app, 0.3)
            written.append(_grab(supervisor, out_dir / "stats.png"))

            annotator = _show(WorkstationWindow(store, people.annotator), app)
            windows.append(annotator)
            annotate = annotator.view("annotate")
            _wait(app, lambda: bool(annotate.shown), 30, "the annotator's bag list")
            row = next((i for i, e in enumerate(annotate.shown) if e.labels.boxes), 0)
            annotate.open_row(row)
            _wait(app, lambda: annotate.current is not None, 30, "a bag to annotate")
            _settle(app, 0.3)
            written.append(_grab(annotator, out_dir / "annotate.png"))
        finally:
            for window in windows:
                window.shutdown()
                window.close()
            store.close()
    return written


def _inspector_pictures(app: QApplication, window: WorkstationWindow, untrained: bool, out_dir: Path) -> list[Path]:
    view = window.inspector
    if untrained:
        # An untrained model scores everything alike: keep its few best separate boxes so the
        # picture shows what the overlay looks like (the banner says the boxes mean nothing).
        _keep_top_separate(view.canvas, BOXES_SHOWN)
        view.panel.threshold_slider.setValue(1)
    top = max(view.canvas.visible_predictions(), key=lambda b: b.score or 0.0, default=None)
    if top is not None:
        view.canvas.accept_box(top.box_id)    # one accepted label next to the dashed predictions
        view.canvas.select_box(top.box_id)
    _settle(app, 0.3)
    paths = [_grab(window, out_dir / "inspector.png")]
    view.panel.toggle_function("inorganic_only")
    _wait(app, lambda: not view.screening_pending(), 30, "the inorganic view")
    _settle(app, 0.3)
    paths.append(_grab(window, out_dir / "inspector-inorganic.png"))
    view.panel.toggle_function("inorganic_only")
    return paths
