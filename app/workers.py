"""Threads behind the lane view. The GUI thread only draws; everything slow runs here.

- ``LaneWorker``: pulls bags from a ``core.lane`` source (which blocks and paces
  itself) and hands them to the GUI. A bag that cannot be decoded is reported, and
  the lane goes on. ``max_pending`` undecided bags stop the belt (the worker waits),
  so an unattended lane cannot fill the memory. It also converts the first few
  waiting bags to display-ready QImages (``take_image``), so showing a bag does
  not convert its pixels on the GUI thread.
- ``DetectorWorker``: ONE long-lived thread that owns the ``Detector`` (loaded in
  that thread) and serves a bounded latest-wins queue: when bags come faster than
  the model, the oldest waiting requests are dropped and the newest is predicted.
  Results are plain numpy (boxes, labels, scores, the heat map already coloured),
  plus the heat map as a display-ready QImage (built here, not on the GUI thread).
  Given an ``ActiveModelWatcher`` (``follow``), it polls the store's active model
  between two bags and swaps to a newly promoted one (hot swap, ``app.hot_swap``).
- ``SessionWorker``: runs ``ScreeningSession`` calls in order on its own thread (the
  store does I/O); each call answers with ``done`` or ``failed`` and its token.
- ``EnhanceWorker``: screening functions through ``EnhancementCache`` on a one-thread pool.

No worker reads widget state: everything it needs comes in the call that queues it.
"""
from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, Signal

from app import hot_swap
from app.qimages import display_qimage
from app.model_loading import operating_threshold
from core.imaging.enhance import EnhancementCache
from core.lane.sources import LaneSource

log = logging.getLogger(__name__)

NO_MODEL_MESSAGE = "no model loaded: screening without detections"
# Display-ready images kept for waiting bags (4.7 MB each at 1225x954); later bags are converted when shown.
PREPARED_IMAGES = 4


# --------------------------------------------------------------------------- lane
class LaneWorker(QThread):
    bag_arrived = Signal(object)     # Bag with an image
    bag_failed = Signal(object)      # Bag with .error set (shown in the error list)
    lane_error = Signal(str)         # the source itself broke; the lane stopped
    lane_ended = Signal()

    def __init__(self, source: LaneSource, max_pending: int = 50, parent: QObject | None = None) -> None:
        super().__init__(parent)
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        self.source = source
        self.max_pending = max_pending
        self._slots = threading.Semaphore(max_pending)
        self._images: dict[str, Any] = {}      # bag id -> QImage, filled here, taken by the GUI thread
        self._images_lock = threading.Lock()
        self.setObjectName("LaneWorker")

    def take_image(self, bag_id: str) -> Any:
        """The bag's display-ready QImage if this thread prepared one (once), else None."""
        with self._images_lock:
            return self._images.pop(bag_id, None)

    def _prepare_image(self, bag: Any) -> None:
        with self._images_lock:
            if len(self._images) >= PREPARED_IMAGES:
                return
        try:
            image = display_qimage(bag.image)
        except ValueError:
            return     # an unusual array: the canvas converts (or reports) it when the bag is shown
        with self._images_lock:
            self._images[bag.bag_id] = image

    def release_bag(self) -> None:
        """The GUI is done with one bag (decided): the belt may bring another."""
        self._slots.release()

    def stop(self, timeout_ms: int = 5000) -> None:
        self.requestInterruption()
        self.source.stop()
        self._slots.release()   # unblock a waiting belt so run() can see the interruption
        self.wait(timeout_ms)

    def run(self) -> None:
        try:
            for bag in self.source:
                if self.isInterruptionRequested():
                    break
                if not bag.ok:
                    log.warning("bad bag %s: %s", bag.bag_id, bag.error)
                    self.bag_failed.emit(bag)
                    continue
                # Wait for room in small steps so stop() is never stuck behind a full belt.
                while not self._slots.acquire(timeout=0.1):
                    if self.isInterruptionRequested():
                        return
                if self.isInterruptionRequested():
                    return
                self._prepare_image(bag)
                self.bag_arrived.emit(bag)
        except Exception as exc:  # noqa: BLE001 - a broken source must not kill the workstation
            log.exception("lane source failed")
            self.lane_error.emit(f"the lane stopped: {type(exc).__name__}: {exc}")
        finally:
            self.lane_ended.emit()


# --------------------------------------------------------------------------- detector
@dataclass
class DetectionResult:
    """What the GUI needs to draw one bag's detections; plain values only."""
    bag_id: str
    model_id: str
    boxes: np.ndarray           # N x 4 float32, image pixels
    labels: np.ndarray          # N int64
    scores: np.ndarray          # N float32
    heat_rgba: np.ndarray | None   # H x W x 4 uint8 (attention as colour + alpha), or None
    latency_ms: float           # from submit to result
    timings: dict[str, float] = field(default_factory=dict)
    model_version_id: int | None = None   # the registered version that made it (hot swap), if known
    heat_image: Any = None      # heat_rgba as a display-ready QImage (app.qimages), built in the worker


def colourise_attention(attention: np.ndarray) -> np.ndarray:
    """An attention map in [0, 1] as an RGBA overlay: jet colours, transparent where attention is low."""
    att = np.clip(np.asarray(attention, dtype=np.float32), 0.0, 1.0)
    levels = (att * 255.0).astype(np.uint8)
    rgb = cv2.cvtColor(cv2.applyColorMap(levels, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    # Alpha rises with attention (squared) so the background of the bag stays readable.
    alpha = (np.square(att) * 255.0).astype(np.uint8)
    return np.dstack([rgb, alpha])


class DetectorWorker(QThread):
    """Owns the detector; predicts the newest queued bag. ``loader`` runs in this thread."""

    model_loaded = Signal(str)       # model id
    model_failed = Signal(str)       # why there is no model (the lane keeps working)
    result_ready = Signal(object)    # DetectionResult
    prediction_failed = Signal(str, str)   # bag id, message
    dropped = Signal(str)            # bag id pushed out of the queue by newer bags
    model_swapped = Signal(object)   # ModelVersionInfo now screening (the watcher swapped it in)

    def __init__(self, loader: Callable[[], Any] | None, capacity: int = 2, parent: QObject | None = None) -> None:
        super().__init__(parent)
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._loader = loader
        self._pending_loader: Callable[[], Any] | None = None
        self._jobs: deque[tuple[str, np.ndarray, float]] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self.detector: Any = None       # touched only in this thread
        self.model_id: str | None = None
        self.operating_threshold: float | None = None   # the model's own alarm threshold, if measured
        self.model_version: Any = None  # ModelVersionInfo of the detector when it came from the store
        self.watcher: Any = None        # core.inference.registry.ActiveModelWatcher, see follow()
        self.max_queue_length = 0
        self.predicted = 0
        self.dropped_count = 0
        self.setObjectName("DetectorWorker")

    # ------------------------------------------------------------------ called from the GUI thread
    def submit(self, bag_id: str, image: np.ndarray) -> None:
        dropped: list[str] = []
        with self._cond:
            self._jobs.append((bag_id, image, time.perf_counter()))
            while len(self._jobs) > self.capacity:
                dropped.append(self._jobs.popleft()[0])
            self.max_queue_length = max(self.max_queue_length, len(self._jobs))
            self._cond.notify()
        self.dropped_count += len(dropped)
        for bag_id_dropped in dropped:
            self.dropped.emit(bag_id_dropped)

    def queue_length(self) -> int:
        with self._cond:
            return len(self._jobs)

    def follow(self, watcher: Any) -> None:
        """Follow the store's active model (before ``start``): polled in this thread, between bags."""
        if self.isRunning():
            raise RuntimeError("follow() must be called before the detector worker starts")
        self.watcher = watcher

    def swap_model(self, loader: Callable[[], Any]) -> None:
        """Load another model in the worker thread; the old one serves until the new one is ready."""
        with self._cond:
            self._pending_loader = loader
            self._cond.notify()

    def stop(self, timeout_ms: int = 10000) -> None:
        with self._cond:
            self._stopping = True
            self._jobs.clear()
            self._cond.notify()
        self.wait(timeout_ms)

    # ------------------------------------------------------------------ worker thread
    def _load(self, loader: Callable[[], Any] | None) -> None:
        if loader is None:
            if self.detector is None:
                self.model_failed.emit(NO_MODEL_MESSAGE)
            return
        try:
            detector = loader()
            if hasattr(detector, "warmup"):
                detector.warmup()
        except Exception as exc:  # noqa: BLE001 - any load failure leaves the lane working
            # A missing or refused model file is an expected state, not a crash: one line, traceback at debug.
            log.warning("model failed to load: %s: %s", type(exc).__name__, exc)
            log.debug("model load failure", exc_info=True)
            if self.detector is None:
                self.model_failed.emit(f"{NO_MODEL_MESSAGE} ({type(exc).__name__}: {exc})")
            else:
                self.model_failed.emit(f"new model refused, keeping {self.model_id} ({exc})")
            return
        self.detector = detector
        self.operating_threshold = operating_threshold(detector)
        self.model_id = str(getattr(detector, "model_id", "model"))
        self.model_version = None      # a file chosen by hand: not (known to be) a registered version
        self.model_loaded.emit(self.model_id)

    def run(self) -> None:
        if self.watcher is not None:
            hot_swap.start_following(self, self._loader)
        else:
            self._load(self._loader)
        while True:
            if self.watcher is not None:
                # Between two bags (never during a prediction): swap if a new model was promoted.
                hot_swap.poll_between_bags(self)
            with self._cond:
                if self.watcher is not None and not (self._stopping or self._jobs or self._pending_loader):
                    # Idle: wake up to poll (a promotion shows even when no bag comes), and poll
                    # again before the bag that woke us, so it is screened by the newest model.
                    self._cond.wait(max(0.05, self.watcher.min_interval_s))
                    continue
                while not self._stopping and not self._jobs and self._pending_loader is None:
                    self._cond.wait()
                if self._stopping:
                    return
                loader, self._pending_loader = self._pending_loader, None
                job = self._jobs.pop() if self._jobs and loader is None else None   # newest first
            if loader is not None:
                self._load(loader)
                continue
            if job is not None:
                self._predict(*job)

    def _predict(self, bag_id: str, image: np.ndarray, submitted: float) -> None:
        if self.detector is None:
            self.prediction_failed.emit(bag_id, NO_MODEL_MESSAGE)
            return
        version = self.model_version    # the model that screens this bag, recorded with its boxes
        try:
            prediction = self.detector.predict(image)
            heat = colourise_attention(prediction.attention) if prediction.attention is not None else None
            heat_image = display_qimage(heat) if heat is not None else None
        except Exception as exc:  # noqa: BLE001 - one bad bag must not stop the detector
            log.exception("prediction failed for %s", bag_id)
            self.prediction_failed.emit(bag_id, f"{type(exc).__name__}: {exc}")
            return
        self.predicted += 1
        self.result_ready.emit(DetectionResult(
            bag_id=bag_id, model_id=prediction.model_id, boxes=prediction.boxes, labels=prediction.labels,
            scores=prediction.scores, heat_rgba=heat, latency_ms=(time.perf_counter() - submitted) * 1e3,
            timings=dict(prediction.timings), model_version_id=version.id if version is not None else None,
            heat_image=heat_image))


# --------------------------------------------------------------------------- session
class SessionWorker(QThread):
    """Runs ``ScreeningSession`` calls in submission order, off the GUI thread.

    Order matters (label revisions are versioned), so after a call fails the worker
    *holds*: every later call is answered ``failed`` with HELD_MESSAGE without
    running, until ``resume()``'s marker comes through the queue. The caller then
    sends the failed and held calls again, in their original order.
    """

    HELD_MESSAGE = "held back: an earlier write failed"

    done = Signal(int, str, object)      # token, method name, result
    failed = Signal(int, str, str)       # token, method name, message

    def __init__(self, session: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._calls: queue.Queue[tuple[int, str, tuple] | None] = queue.Queue()
        self._tokens = itertools.count(1)
        self._holding = False            # touched only in the worker thread
        self.setObjectName("SessionWorker")

    def call(self, method: str, *args: Any) -> int:
        if not callable(getattr(self.session, method, None)):
            raise AttributeError(f"the session has no method {method!r}")
        token = next(self._tokens)
        self._calls.put((token, method, args))
        return token

    def resume(self) -> None:
        """Calls queued after this one run again (those before it are still held)."""
        self._calls.put((0, "", ()))

    def pending(self) -> int:
        return self._calls.qsize()

    def stop(self, timeout_ms: int = 10000) -> None:
        """Finish the queued calls (decisions must not be lost), then end."""
        self._calls.put(None)
        self.wait(timeout_ms)

    def run(self) -> None:
        while True:
            item = self._calls.get()
            if item is None:
                return
            token, method, args = item
            if token == 0:
                self._holding = False
                continue
            if self._holding:
                self.failed.emit(token, method, self.HELD_MESSAGE)
                continue
            try:
                result = getattr(self.session, method)(*args)
            except Exception as exc:  # noqa: BLE001 - reported to the GUI, which keeps the pending work
                log.warning("session call %s failed: %s", method, exc)
                self._holding = True
                self.failed.emit(token, method, str(exc) or type(exc).__name__)
                continue
            self.done.emit(token, method, result)


# --------------------------------------------------------------------------- screening functions
class _EnhanceSignals(QObject):
    ready = Signal(int, object)      # token, HxWx3 uint8 array (read-only, shared with the cache)
    failed = Signal(int, str)


class _EnhanceJob(QRunnable):
    def __init__(self, cache: EnhancementCache, signals: _EnhanceSignals, token: int, key: Hashable,
                 image: np.ndarray, chain: Sequence[str]) -> None:
        super().__init__()
        self.cache, self.signals, self.token, self.key, self.image, self.chain = (
            cache, signals, token, key, image, tuple(chain))

    def run(self) -> None:
        try:
            result = self.cache.get(self.key, self.image, self.chain)
        except Exception as exc:  # noqa: BLE001 - shown in the status bar
            self.signals.failed.emit(self.token, str(exc))
            return
        self.signals.ready.emit(self.token, result)


class EnhanceWorker(QObject):
    """Computes screening-function chains on one background thread; callers keep the newest token."""

    ready = Signal(int, object)
    failed = Signal(int, str)

    def __init__(self, cache: EnhancementCache | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.cache = cache or EnhancementCache()
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._signals = _EnhanceSignals()
        self._signals.ready.connect(self.ready)
        self._signals.failed.connect(self.failed)
        self._tokens = itertools.count(1)

    def request(self, key: Hashable, image: np.ndarray, chain: Sequence[str]) -> int:
        token = next(self._tokens)
        self._pool.start(_EnhanceJob(self.cache, self._signals, token, key, image, chain))
        return token

    def wait(self, timeout_ms: int = 5000) -> bool:
        return self._pool.waitForDone(timeout_ms)
