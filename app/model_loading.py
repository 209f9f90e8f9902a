"""Which detector the lane uses, as a loader the DetectorWorker calls in its own thread.

The GUI reaches torch only through ``core.inference`` (and, for the clearly labelled
untrained fallback, ``core.models.build``). Loaders are plain callables so loading
happens off the GUI thread and a failure is reported, not raised into the window.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import BUNDLED_MODEL_PATH

log = logging.getLogger(__name__)

DEFAULT_MODEL_PATH = BUNDLED_MODEL_PATH
UNTRAINED_NOTE = ("UNTRAINED MODEL (demo only): boxes and heat map come from random weights and mean nothing. "
                  "Train or install resources/models/default.pt.")


@dataclass(frozen=True)
class ModelChoice:
    loader: Callable[[], Any] | None
    description: str                    # what the choice is, for logs and the status bar
    note: str | None = None             # a warning the inspector must show in its banner


def file_loader(path: Path, device: str = "auto") -> Callable[[], Any]:
    def load() -> Any:
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
        from core.inference.runtime import load_screening_detector  # noqa: PLC0415 - torch loads in the worker

        return load_screening_detector(path, device=device)
    return load


def untrained_loader(**options: Any) -> Callable[[], Any]:
    """A randomly initialised fast DOAM detector, labelled as such in its model id."""
    def load() -> Any:
        from core.inference import Detector  # noqa: PLC0415
        from core.models.build import build_detector  # noqa: PLC0415

        model = build_detector("fast", "doam", **options)
        return Detector.from_model(model, model_id="UNTRAINED-fast-doam", device="cpu")
    return load


def choose_model(path: Path | None = None, *, allow_untrained: bool = False, device: str = "auto") -> ModelChoice:
    """The model file if it exists; else the untrained fallback when allowed; else no model.

    With no model the lane still runs and the inspector says so loudly
    (the worker reports "no model loaded: screening without detections").
    """
    path = path or DEFAULT_MODEL_PATH
    if path.is_file():
        return ModelChoice(file_loader(path, device), f"model file {path}")
    if allow_untrained:
        return ModelChoice(untrained_loader(), "untrained fast-doam", UNTRAINED_NOTE)
    return ModelChoice(file_loader(path, device), f"missing model file {path}")


def operating_threshold(detector: Any) -> float | None:
    """The score a loaded model should alarm from (measured on held-out data and saved in its file), if any."""
    info = getattr(detector, "info", None)
    value = getattr(info, "operating_threshold", None)
    return value if isinstance(value, float) else None


def adopting(choice: ModelChoice, store: Any) -> ModelChoice:
    """The same model, and on first load (in the detector's thread) registered as the store's active
    version if the store has none, so its boxes are stored and retraining can start from it."""
    def load() -> Any:
        detector = choice.loader()
        info = getattr(detector, "info", None)
        if info is not None:
            from core.inference.registry import adopt_bundled_model  # noqa: PLC0415

            try:
                adopt_bundled_model(store, info)
            except Exception as exc:  # noqa: BLE001 - screening goes on; the status bar says it is unregistered
                log.warning("could not register %s in the store: %s", info.model_id, exc)
        return detector
    return ModelChoice(load, choice.description, choice.note)
