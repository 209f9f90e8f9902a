"""One bag as it arrives at a lane."""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class TruthItem:
    """A known item (TIP projection or demo-lane truth): hidden from the inspector, kept for statistics."""
    label: str
    box: tuple[int, int, int, int]   # inclusive pixel corners


@dataclass
class Bag:
    bag_id: str                               # unique within the lane run
    source: str                               # "lane" (a scanner), "import" (replayed data), "demo"
    image: np.ndarray | None = None           # HxWx3 uint8 RGB, None when it could not be decoded
    encoded: bytes | None = None              # the bytes as received (stored once by content hash)
    path: Path | None = None
    arrived: float = field(default_factory=time.time)
    error: str | None = None                  # why the image cannot be shown (the lane goes on)
    truth: list[TruthItem] = field(default_factory=list)   # demo/replay ground truth, never shown
    tip: list[TruthItem] = field(default_factory=list)     # projected threats, never shown

    @property
    def ok(self) -> bool:
        return self.error is None and self.image is not None

    @property
    def is_tip(self) -> bool:
        return bool(self.tip)

    @property
    def content_hash(self) -> str | None:
        return hashlib.sha256(self.encoded).hexdigest() if self.encoded is not None else None
