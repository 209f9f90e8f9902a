"""Plain values handed to callers (GUI thread, jobs, tests): never ORM objects.

They are frozen dataclasses built inside the transaction that read them, so
they stay valid after the session closes and can cross threads freely.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from core.classes import CLASSES
from core.store.errors import InvalidInput


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in original image pixels with a class name from core.classes."""
    class_name: str
    x1: float
    y1: float
    x2: float
    y2: float

    def __post_init__(self) -> None:
        if self.class_name not in CLASSES:
            raise InvalidInput(f"unknown class {self.class_name!r}; expected one of {', '.join(CLASSES)}")
        for name in ("x1", "y1", "x2", "y2"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value != value or value in (float("inf"), float("-inf")):
                raise InvalidInput(f"box {name}={value!r} is not a finite number")
        if not (self.x2 > self.x1 and self.y2 > self.y1):
            raise InvalidInput(f"empty box ({self.x1}, {self.y1}, {self.x2}, {self.y2}): "
                               "need x2 > x1 and y2 > y1")

    @property
    def area(self) -> float:
        return (self.x2 - self.x1) * (self.y2 - self.y1)

    def iou(self, other: "Box") -> float:
        ix = max(0.0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0.0, min(self.y2, other.y2) - max(self.y1, other.y1))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"class_name": self.class_name, "x1": self.x1, "y1": self.y1, "x2": self.x2, "y2": self.y2}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Box":
        try:
            return cls(str(data["class_name"]), float(data["x1"]), float(data["y1"]),
                       float(data["x2"]), float(data["y2"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"bad box {data!r}: {exc}") from exc


@dataclass(frozen=True)
class ScoredBox:
    box: Box
    score: float


@dataclass(frozen=True)
class UserInfo:
    id: int
    name: str
    role: str
    active: bool
    lane_id: int | None


@dataclass(frozen=True)
class LaneInfo:
    id: int
    name: str
    description: str


@dataclass(frozen=True)
class BagInfo:
    id: int
    uid: str
    lane_id: int
    scanned_at: dt.datetime
    image_sha256: str
    width: int
    height: int
    source: str
    screening_model_id: int | None


@dataclass(frozen=True)
class DecisionInfo:
    id: int
    request_id: str
    bag_id: int
    user_id: int
    verdict: str
    opened_at: dt.datetime
    decided_at: dt.datetime
    review_id: int | None = None      # set when this decision sent the bag to review
    review_reason: str | None = None


@dataclass(frozen=True)
class LabelRevision:
    bag_id: int
    version: int                      # 0 means the bag has no labels yet
    author_id: int | None
    origin: str | None
    created_at: dt.datetime | None
    boxes: tuple[Box, ...] = ()


@dataclass(frozen=True)
class ReviewInfo:
    id: int
    bag_id: int
    decision_id: int
    reason: str
    state: str
    assigned_to: int | None
    outcome: str | None
    comment: str
    resolved_by: int | None
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class ModelVersionInfo:
    id: int
    name: str
    arch: str
    attention: str
    path: str
    sha256: str
    parent_id: int | None
    status: str
    metrics: dict[str, Any] | None
    job_id: int | None
    created_at: dt.datetime
    activated_at: dt.datetime | None


@dataclass(frozen=True)
class TrainingJobInfo:
    id: int
    state: str
    settings: dict[str, Any]
    base_model_id: int | None
    result_model_id: int | None
    hard_sample_count: int
    progress: float
    metrics: dict[str, Any] | None
    log_path: str | None
    error: str | None
    created_by: int
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


@dataclass(frozen=True)
class QueueClaim:
    queue_id: int
    bag: BagInfo
    claimed_at: dt.datetime


@dataclass(frozen=True)
class Disagreement:
    kind: str                         # missed | false_alarm | wrong_class | poor_box
    label: Box | None
    prediction: ScoredBox | None
    iou: float


@dataclass(frozen=True)
class HardSample:
    bag_id: int
    image_sha256: str
    model_version_id: int
    label_version: int
    labels: tuple[Box, ...]
    disagreements: tuple[Disagreement, ...] = field(default_factory=tuple)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(sorted({d.kind for d in self.disagreements}))
