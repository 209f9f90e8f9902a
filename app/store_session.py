"""The store behind the workstation: a ``ScreeningSession`` for the lane, and background store calls.

``StoreSession`` implements ``app.session.ScreeningSession`` on ``core.store``. It is
called only from the lane's ``SessionWorker`` thread (never the GUI thread), in order.
Every write is idempotent on an id chosen here (the bag ``uid``, the decision
``request_id``), so the inspector view can send a failed call again after the
database comes back without recording anything twice.

``StoreTask`` runs one store call on a thread pool and answers on the GUI thread,
for the supervisor and annotator views (login, review actions, statistics...).
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from app.session import DecisionRecord, LabelBox, LabelRevision, PredictionRecord, SessionError
from core.classes import CLASSES
from core.imaging.decode import encode_jpg
from core.lane.bag import Bag, TruthItem
from core.store.errors import ConflictError, StoreError
from core.store.repo import Store
from core.store.values import Box, ScoredBox, UserInfo

log = logging.getLogger(__name__)


def truth_box(item: TruthItem, width: int, height: int) -> Box | None:
    """A lane truth item (inclusive corners) as a store Box, or None for a class the store does not know."""
    if item.label not in CLASSES:
        return None
    x1, y1, x2, y2 = item.box
    return Box(item.label, float(max(0, x1)), float(max(0, y1)), float(min(width, x2 + 1)),
               float(min(height, y2 + 1)))


def find_model_version(store: Store, model_id: str) -> int | None:
    """The registered version whose identity (``arch-attention-sha12``, or its name) is ``model_id``."""
    from core.inference.modelfile import make_model_id  # noqa: PLC0415 - torch only where a model runs

    for version in store.models.list():
        if model_id in (make_model_id(version.arch, version.attention, version.sha256), version.name):
            return version.id
    return None


class StoreSession:
    """One inspector's lane session recorded in the store (see ``app.session.ScreeningSession``)."""

    def __init__(self, store: Store, user: UserInfo, lane_id: int, *, alarm_threshold: float = 0.5) -> None:
        self.store = store
        self.user = user
        self.lane_id = lane_id
        self.alarm_threshold = alarm_threshold
        # A per-run prefix: lane bag ids (e.g. the demo lane's) repeat from one run to the next.
        self._run = uuid.uuid4().hex[:10]
        self._lock = threading.Lock()
        self._bag_ids: dict[str, int] = {}          # lane bag id -> store bag id
        self._sizes: dict[str, tuple[int, int]] = {}
        self._label_versions: dict[str, int] = {}   # lane bag id -> version our next save builds on
        self._model_versions: dict[str, int | None] = {}
        self.unregistered_models: set[str] = set()   # model ids whose predictions could not be kept
        self.last_review_reason: str | None = None

    # ------------------------------------------------------------------ ScreeningSession
    def record_bag(self, bag: Bag) -> None:
        if not bag.ok:
            log.info("bad bag %s not stored: %s", bag.bag_id, bag.error)
            return
        height, width = bag.image.shape[:2]
        data = bag.encoded if bag.encoded is not None else encode_jpg(bag.image)
        tip = [b for b in (truth_box(t, width, height) for t in bag.tip) if b is not None] if bag.tip else None
        info = self._call(f"record bag {bag.bag_id}", lambda: self.store.bags.record_bag(
            self.user, lane_id=self.lane_id, width=width, height=height, image=data,
            source="tip" if tip else "lane",
            tip_truth=tip or None, uid=f"{self._run}-{bag.bag_id}"))
        with self._lock:
            self._bag_ids[bag.bag_id] = info.id
            self._sizes[bag.bag_id] = (width, height)
            self._label_versions[bag.bag_id] = 0

    def record_prediction(self, bag_id: str, prediction: PredictionRecord) -> None:
        store_id = self.store_bag_id(bag_id)
        # The hot-swapping worker knows the version it screened with; otherwise look the model up.
        version = (prediction.model_version_id if prediction.model_version_id is not None
                   else self._model_version(prediction.model_id))
        if version is None:
            return   # an unregistered model (e.g. the untrained demo model): nothing to attribute boxes to
        scored = []
        for box, label, score in zip(prediction.boxes, prediction.labels, prediction.scores):
            x1, y1, x2, y2 = box
            if x2 > x1 and y2 > y1:
                scored.append(ScoredBox(Box(CLASSES[label], x1, y1, x2, y2), min(1.0, max(0.0, score))))
        self._call(f"record predictions of {bag_id}",
                   lambda: self.store.bags.record_predictions(self.user, store_id, version, scored))

    def decide(self, bag_id: str, verdict: str, opened_at: dt.datetime, decided_at: dt.datetime) -> DecisionRecord:
        store_id = self.store_bag_id(bag_id)
        info = self._call(f"decide bag {bag_id}", lambda: self.store.bags.record_decision(
            self.user, store_id, verdict, opened_at=opened_at, decided_at=decided_at,
            request_id=f"{self._run}-{bag_id}-decision", alarm_threshold=self.alarm_threshold))
        self.last_review_reason = info.review_reason
        return DecisionRecord(bag_id, info.verdict, info.opened_at, info.decided_at)

    def save_labels(self, bag_id: str, boxes: Sequence[LabelBox], origin: str) -> LabelRevision:
        store_id = self.store_bag_id(bag_id)
        width, height = self._sizes.get(bag_id, (10**9, 10**9))
        store_boxes = [Box(CLASSES[b.class_index], max(0.0, b.x1), max(0.0, b.y1), min(float(width), b.x2),
                           min(float(height), b.y2)) for b in boxes]
        with self._lock:
            base = self._label_versions.get(bag_id, 0)
        try:
            revision = self.store.labels.save(self.user, store_id, store_boxes, origin=origin, base_version=base)
        except ConflictError as exc:
            # Someone else labelled this bag meanwhile. Their revision stays in the history; the
            # inspector's edit is saved on top of it when the view sends the call again.
            with self._lock:
                self._label_versions[bag_id] = exc.current_version
            raise SessionError(str(exc)) from exc
        except StoreError as exc:
            raise SessionError(str(exc)) from exc
        with self._lock:
            self._label_versions[bag_id] = revision.version
        return LabelRevision(bag_id, revision.version, origin, tuple(boxes),
                             revision.created_at or dt.datetime.now(dt.timezone.utc))

    # ------------------------------------------------------------------ helpers
    def store_bag_id(self, bag_id: str) -> int:
        with self._lock:
            store_id = self._bag_ids.get(bag_id)
        if store_id is None:
            raise SessionError(f"bag {bag_id} was never recorded in the store")
        return store_id

    def _model_version(self, model_id: str) -> int | None:
        if model_id not in self._model_versions:
            version = self._call(f"look up model {model_id}", lambda: find_model_version(self.store, model_id))
            if version is None:
                log.warning("model %s is not in the registry: its predictions are not stored", model_id)
                self.unregistered_models.add(model_id)
            self._model_versions[model_id] = version
        return self._model_versions[model_id]

    @staticmethod
    def _call(what: str, work: Callable[[], Any]) -> Any:
        try:
            return work()
        except StoreError as exc:
            raise SessionError(f"{what}: {exc}") from exc
        except OSError as exc:   # the image directory went away (a lost network share...)
            raise SessionError(f"{what}: {exc}") from exc


# --------------------------------------------------------------------------- background calls
class _TaskSignals(QObject):
    done = Signal(object)
    failed = Signal(object)    # the exception


class _TaskRunnable(QRunnable):
    def __init__(self, work: Callable[[], Any], signals: _TaskSignals) -> None:
        super().__init__()
        self.work, self.signals = work, signals

    def run(self) -> None:
        try:
            result = self.work()
        except Exception as exc:  # noqa: BLE001 - reported to the view, which shows it
            log.info("store task failed: %s: %s", type(exc).__name__, exc)
            self.signals.failed.emit(exc)
            return
        self.signals.done.emit(result)


class StoreTasks(QObject):
    """Runs store calls one at a time off the GUI thread; callbacks run on the GUI thread.

    One thread keeps calls in the order they were asked (a review action, then the
    refresh that should see it).
    """

    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._running = 0
        self._keep: set[_TaskSignals] = set()

    def run(self, work: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
            on_failed: Callable[[Exception], None] | None = None) -> None:
        signals = _TaskSignals()
        self._keep.add(signals)

        def finish(callback: Callable[[Any], None] | None, value: Any) -> None:
            self._keep.discard(signals)
            self._running -= 1
            if self._running == 0:
                self.busy_changed.emit(False)
            if callback is not None:
                callback(value)

        signals.done.connect(lambda result: finish(on_done, result))
        signals.failed.connect(lambda exc: finish(on_failed, exc))
        self._running += 1
        if self._running == 1:
            self.busy_changed.emit(True)
        self._pool.start(_TaskRunnable(work, signals))

    def busy(self) -> bool:
        return self._running > 0

    def wait(self, timeout_ms: int = 10000) -> bool:
        return self._pool.waitForDone(timeout_ms)


def decode_store_image(store: Store, sha256: str) -> np.ndarray:
    """The stored image of a bag as HxWx3 uint8 RGB (worker threads only: file I/O and decoding)."""
    from core.imaging.decode import decode_bytes  # noqa: PLC0415

    if store.images is None:
        raise SessionError("this store has no image directory")
    return decode_bytes(store.images.read_bytes(sha256), source=f"image {sha256[:12]}")
