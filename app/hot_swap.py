"""Hot swap in the lane: the detector worker follows the store's active model.

These functions run IN the ``DetectorWorker`` thread (``app.workers``), never on
the GUI thread: ``ActiveModelWatcher.poll`` (``core.inference.registry``) does
the store query and, when a supervisor has promoted another version, loads its
file with the sha256 check. The worker calls ``poll_between_bags`` at the top of
its loop, so a bag is always screened wholly by one model, no queued bag is
dropped or screened twice, and each result carries the version id that made it
(``DetectionResult.model_version_id``, which the session stores with the boxes).

A failed load keeps the model in use and is reported through ``model_failed``
(the inspector shows it in its banner). When the store has no active model the
lane keeps its fallback (the default model file, the untrained demo model, or
none), and swaps as soon as a version is promoted.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from app.model_loading import operating_threshold

if TYPE_CHECKING:   # no import at run time: app.workers imports this module
    from app.workers import DetectorWorker

log = logging.getLogger(__name__)

DEFAULT_POLL_S = 2.0      # one small query per interval (and per bag at most); a swap shows within it


def make_watcher(store: Any, *, min_interval_s: float = DEFAULT_POLL_S, retry_after_s: float = 60.0,
                 **load_kwargs: Any) -> Any:
    """An ``ActiveModelWatcher`` on ``store`` (created on the GUI thread, used only by the worker)."""
    from core.inference.registry import ActiveModelWatcher  # noqa: PLC0415 - no torch until a model loads

    return ActiveModelWatcher(store, min_interval_s=min_interval_s, retry_after_s=retry_after_s, **load_kwargs)


def start_following(worker: DetectorWorker, fallback: Any) -> None:
    """First model of a following worker: the store's active version, else the fallback loader."""
    event = worker.watcher.poll(force=True)
    if event is not None and event.ok:
        _adopt(worker, event)
        return
    worker._load(fallback)                # noqa: SLF001 - the worker's own loading path (signals, warm-up)
    if event is not None:                 # the active version exists but its file was refused
        _report_failure(worker, event)


def poll_between_bags(worker: DetectorWorker) -> None:
    """Rate-limited check of the active model; swap to it, or report why it was refused."""
    event = worker.watcher.poll()
    if event is None:
        return
    if event.ok:
        _adopt(worker, event)
    else:
        _report_failure(worker, event)


def _adopt(worker: DetectorWorker, event: Any) -> None:
    detector = worker.watcher.current.detector
    try:
        if hasattr(detector, "warmup"):
            detector.warmup()             # the first bag of the new model should not pay for it
    except Exception as exc:  # noqa: BLE001 - a model that cannot even warm up is not used
        log.warning("model version %s failed its warm-up: %s", event.new.id, exc)
        worker.model_failed.emit(f"model version {event.new.id} ({event.new.name}) failed its warm-up ({exc}); "
                                 f"{_kept(worker)}")
        return
    worker.detector = detector
    worker.operating_threshold = operating_threshold(detector)
    worker.model_id = str(getattr(detector, "model_id", event.new.name))
    worker.model_version = event.new
    log.info(event.message)
    worker.model_swapped.emit(event.new)
    worker.model_loaded.emit(worker.model_id)


def _report_failure(worker: DetectorWorker, event: Any) -> None:
    # The watcher only knows about models it loaded itself; the worker may be running a fallback file.
    head = event.message.split("; still screening with")[0].split("; no model is loaded")[0]
    worker.model_failed.emit(f"NEW MODEL NOT LOADED: {head}; {_kept(worker)}")


def _kept(worker: DetectorWorker) -> str:
    if worker.detector is None:
        return "no model is loaded"
    version = worker.model_version
    named = f"version {version.id} ({version.name})" if version is not None else worker.model_id
    return f"still screening with {named}"
