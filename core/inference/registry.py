"""Hot swap: the detector worker follows the store's active model between two bags.

``ActiveModelWatcher`` is owned by the thread that runs the detector (the
GUI's DetectorWorker, a headless lane). Between two bags it calls
:meth:`ActiveModelWatcher.poll`: at most every ``min_interval_s`` that costs
one small query (``store.models.active()``); only when the active version
changed does it load the new file, with ``Detector.load(path,
expected_sha256=...)``, in the calling thread, so never on the GUI thread.
The swap is a single assignment of ``(version, detector)``: a bag is screened
wholly by one model, and its predictions are recorded with
``watcher.current.version.id``. The retraining job warms the ONNX cache for a candidate
(``core.inference.runtime.warm_cache``), so a swap does not wait for an export. A file that is missing, corrupt or fails its
sha256 is never run: the old model stays, the failure is returned (for the GUI
to show) and that version is not retried until ``retry_after_s`` has passed.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.store.values import ModelVersionInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    version: ModelVersionInfo
    detector: Any                 # core.inference.detector.Detector (or a test stand-in)


@dataclass(frozen=True)
class SwapEvent:
    """What a poll did: ``ok`` True for a swap, False for a failed load (the old model kept)."""
    ok: bool
    old: ModelVersionInfo | None
    new: ModelVersionInfo
    message: str


def load_detector(version: ModelVersionInfo, **kwargs: Any):  # noqa: ANN201 - a Detector
    """The default loader: the registered file, verified against the registered sha256, with the
    screening runtime (ONNX Runtime on a CPU when it reproduces the model; core.inference.runtime)."""
    from core.inference.runtime import load_screening_detector  # noqa: PLC0415 - torch only where a model runs

    return load_screening_detector(version.path, expected_sha256=version.sha256, **kwargs)


class ActiveModelWatcher:
    def __init__(self, store, *, loader: Callable[[ModelVersionInfo], Any] | None = None,
                 min_interval_s: float = 2.0, retry_after_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, **load_kwargs: Any) -> None:
        self.store = store
        self.loader = loader or (lambda version: load_detector(version, **load_kwargs))
        self.min_interval_s = min_interval_s
        self.retry_after_s = retry_after_s
        self.clock = clock
        self.current: LoadedModel | None = None
        self._last_poll = -float("inf")
        self._failed: dict[tuple[int, str], float] = {}   # (version id, sha256) -> when it failed

    def poll(self, *, force: bool = False) -> SwapEvent | None:
        """Check the store (rate-limited) and swap to a newly active model; None when nothing changed."""
        now = self.clock()
        if not force and now - self._last_poll < self.min_interval_s:
            return None
        self._last_poll = now
        try:
            active = self.store.models.active()
        except Exception as exc:  # noqa: BLE001 - a lost database must not stop screening with the current model
            log.warning("cannot read the active model (screening goes on with the current one): %s", exc)
            return None
        if active is None or self._is_current(active):
            return None
        key = (active.id, active.sha256)
        failed_at = self._failed.get(key)
        if failed_at is not None and now - failed_at < self.retry_after_s:
            return None
        old = self.current.version if self.current else None
        t0 = time.perf_counter()
        try:
            detector = self.loader(active)
        except Exception as exc:  # noqa: BLE001 - any load failure keeps the old model
            self._failed[key] = now
            kept = f"; still screening with version {old.id} ({old.name})" if old else "; no model is loaded"
            message = f"could not load model version {active.id} ({active.name}) from {active.path}: {exc}{kept}"
            log.error(message)
            return SwapEvent(False, old, active, message)
        self.current = LoadedModel(active, detector)
        self._failed.pop(key, None)
        message = (f"now screening with model version {active.id} ({active.name})"
                   f"{f', replacing version {old.id}' if old else ''}; loaded in {time.perf_counter() - t0:.2f} s")
        log.info(message)
        return SwapEvent(True, old, active, message)

    def _is_current(self, active: ModelVersionInfo) -> bool:
        return (self.current is not None and self.current.version.id == active.id
                and self.current.version.sha256 == active.sha256)


def adopt_bundled_model(store, info, operator: str = "bundled default model") -> ModelVersionInfo | None:  # noqa: ANN001
    """On a store with no active model, register the model file the lane screens with and make it active.

    A fresh workstation screens with ``resources/models/default.pt``; without a registered
    version its predictions could not be stored, so no hard sample, no statistics per model
    and no retraining. ``info`` is the loaded file's ``ModelInfo`` (verified). Returns the
    active version, or None when the store already had one (then nothing changes).
    """
    from core.store.permissions import SystemActor  # noqa: PLC0415

    if store.models.active() is not None:
        return None
    actor = SystemActor(operator)
    version = next((v for v in store.models.list() if v.sha256 == info.sha256), None)
    if version is None:
        version = store.models.register(actor, name=info.model_id, arch=info.arch, attention=info.attention,
                                        path=info.path, sha256=info.sha256, metrics=info.metrics)
    if version.status not in ("candidate", "retired"):
        return None          # rejected earlier by a supervisor: never promote it behind their back
    promoted = store.models.promote(actor, version.id)
    log.info("registered the bundled model %s as active version %d", info.model_id, promoted.id)
    return promoted
