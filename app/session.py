"""What the inspector view records, behind a small interface the store will implement.

The lane view never talks to a database: it hands plain values to a
``ScreeningSession`` (through ``app.workers.SessionWorker``, off the GUI thread).
``InMemorySession`` is the implementation used until the store-backed one exists,
and in tests. Everything here is plain Python (no Qt), so a store-backed session
can be dropped in without touching the widgets.

Labels are append-only: each ``save_labels`` call is a new revision of the bag's
whole annotation set, tagged with the edit that produced it (its origin).
"""
from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from core.classes import CLASSES
from core.lane.bag import Bag

VERDICTS: tuple[str, ...] = ("clear", "suspect")
# Same names as the store's revision origins, so the store-backed session passes them through.
ORIGINS: tuple[str, ...] = ("accepted_prediction", "moved", "resized", "relabelled", "added", "deleted")


class SessionError(RuntimeError):
    """A session call could not be completed (bad value, lost database...)."""


@dataclass(frozen=True)
class LabelBox:
    """One box of an annotation set: xyxy in original image pixels, class index into CLASSES."""
    class_index: int
    x1: float
    y1: float
    x2: float
    y2: float

    def __post_init__(self) -> None:
        if not 0 <= self.class_index < len(CLASSES):
            raise SessionError(f"class index {self.class_index} is not in 0..{len(CLASSES) - 1}")
        if not (self.x2 > self.x1 and self.y2 > self.y1):
            raise SessionError(f"empty box ({self.x1}, {self.y1}, {self.x2}, {self.y2})")

    @property
    def class_name(self) -> str:
        return CLASSES[self.class_index]


@dataclass(frozen=True)
class PredictionRecord:
    """The model's boxes for a bag, as the store will keep them (no attention map)."""
    bag_id: str
    model_id: str
    boxes: tuple[tuple[float, float, float, float], ...]
    labels: tuple[int, ...]
    scores: tuple[float, ...]
    model_version_id: int | None = None   # the registered version that made them, when the lane knows it


@dataclass(frozen=True)
class DecisionRecord:
    bag_id: str
    verdict: str
    opened_at: dt.datetime
    decided_at: dt.datetime

    @property
    def seconds(self) -> float:
        return (self.decided_at - self.opened_at).total_seconds()


@dataclass(frozen=True)
class LabelRevision:
    bag_id: str
    version: int                 # 1 for the first revision of a bag
    origin: str
    boxes: tuple[LabelBox, ...]
    created_at: dt.datetime


@runtime_checkable
class ScreeningSession(Protocol):
    """What one inspector's lane session records. Called from one worker thread, in order."""

    def record_bag(self, bag: Bag) -> None:
        """A bag arrived at the lane (its image, TIP and demo truth are kept, never shown)."""

    def record_prediction(self, bag_id: str, prediction: PredictionRecord) -> None:
        """The model's detections for a bag (hard samples are judged against these later)."""

    def decide(self, bag_id: str, verdict: str, opened_at: dt.datetime, decided_at: dt.datetime) -> DecisionRecord:
        """Commit the inspector's verdict; raise SessionError if it could not be saved."""

    def save_labels(self, bag_id: str, boxes: Sequence[LabelBox], origin: str) -> LabelRevision:
        """Append a revision of the bag's annotation set; raise SessionError if not saved."""


@dataclass
class _BagRecord:
    bag_id: str
    source: str
    shape: tuple[int, ...] | None
    error: str | None
    truth: list = field(default_factory=list)
    tip: list = field(default_factory=list)


class InMemorySession:
    """A ``ScreeningSession`` in memory: what the store-backed one will do, without persistence."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bags: dict[str, _BagRecord] = {}
        self.predictions: dict[str, PredictionRecord] = {}
        self.decisions: list[DecisionRecord] = []
        self.revisions: dict[str, list[LabelRevision]] = {}

    def record_bag(self, bag: Bag) -> None:
        shape = tuple(bag.image.shape) if isinstance(bag.image, np.ndarray) else None
        with self._lock:
            self.bags[bag.bag_id] = _BagRecord(bag.bag_id, bag.source, shape, bag.error,
                                               list(bag.truth), list(bag.tip))

    def record_prediction(self, bag_id: str, prediction: PredictionRecord) -> None:
        with self._lock:
            self._require_bag(bag_id)
            self.predictions[bag_id] = prediction

    def decide(self, bag_id: str, verdict: str, opened_at: dt.datetime, decided_at: dt.datetime) -> DecisionRecord:
        if verdict not in VERDICTS:
            raise SessionError(f"unknown verdict {verdict!r}; expected one of {', '.join(VERDICTS)}")
        if decided_at < opened_at:
            raise SessionError(f"bag {bag_id}: decided at {decided_at} before it was opened at {opened_at}")
        record = DecisionRecord(bag_id, verdict, opened_at, decided_at)
        with self._lock:
            self._require_bag(bag_id)
            if any(d.bag_id == bag_id for d in self.decisions):
                raise SessionError(f"bag {bag_id} already has a decision")
            self.decisions.append(record)
        return record

    def save_labels(self, bag_id: str, boxes: Sequence[LabelBox], origin: str) -> LabelRevision:
        if origin not in ORIGINS:
            raise SessionError(f"unknown label origin {origin!r}; expected one of {', '.join(ORIGINS)}")
        with self._lock:
            self._require_bag(bag_id)
            history = self.revisions.setdefault(bag_id, [])
            revision = LabelRevision(bag_id, len(history) + 1, origin, tuple(boxes),
                                     dt.datetime.now(dt.timezone.utc))
            history.append(revision)
        return revision

    # ------------------------------------------------------------------ queries (tests, views)
    def latest_labels(self, bag_id: str) -> LabelRevision | None:
        with self._lock:
            history = self.revisions.get(bag_id)
            return history[-1] if history else None

    def origins(self, bag_id: str) -> list[str]:
        with self._lock:
            return [r.origin for r in self.revisions.get(bag_id, [])]

    def _require_bag(self, bag_id: str) -> None:
        if bag_id not in self.bags:
            raise SessionError(f"bag {bag_id} was never recorded")


def prediction_record(bag_id: str, model_id: str, boxes: np.ndarray, labels: np.ndarray,
                      scores: np.ndarray, *, model_version_id: int | None = None) -> PredictionRecord:
    """A PredictionRecord from a Prediction's arrays (plain tuples, safe to keep anywhere)."""
    return PredictionRecord(bag_id, model_id,
                            tuple(tuple(float(v) for v in box) for box in np.asarray(boxes).reshape(-1, 4)),
                            tuple(int(v) for v in np.asarray(labels).reshape(-1)),
                            tuple(float(v) for v in np.asarray(scores).reshape(-1)), model_version_id)
