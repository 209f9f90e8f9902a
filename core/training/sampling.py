"""Sample pools of the over-sampling strategy (paper Sec. IV-B) and its variants.

During a pass over the training data every batch is scored by its loss ``L``.
The *hard* pool (DOAM-O) keeps the ``capacity`` highest-loss entries whose loss
exceeds ``threshold``:

- ``L <= T``: not a hard sample; nothing is kept.
- ``L > T`` and the pool is not full: the entry is added.
- ``L > T`` and the pool is full: it replaces the pool's minimum if ``L`` is
  larger than that minimum, otherwise it is dropped.

At the end of the pass the kept entries are retrained and the pool is cleared
(``drain``). The paper's variants for Table VII: the *easy* pool mirrors the
rules (keeps the lowest losses below ``T``), the *random* pool keeps a uniform
sample of the pass (reservoir sampling, independent of the losses). Focal loss
is a change of the loss, not a pool (``core.models.common``).

An entry is whatever the trainer wants to replay: the indices of a batch
(``granularity="batch"``, as the paper's text) or of one image
(``granularity="image"``, as its Fig. 4). Ties keep the earlier entry.
"""
from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass, field
from typing import Hashable

import numpy as np

POOL_STRATEGIES = ("hard", "easy", "random")
STRATEGIES = ("traditional", "hard", "easy", "random", "focal")


@dataclass(order=True)
class _Entry:
    priority: float                    # heap key: the entry the pool gives up first is the smallest
    order: int                         # insertion order breaks ties (older entries win)
    loss: float = field(compare=False)
    item: Hashable = field(compare=False)


class SamplePool:
    """A bounded pool of replay entries selected by loss (see module docstring)."""

    def __init__(self, strategy: str = "hard", capacity: int = 8, threshold: float | None = None,
                 seed: int = 0) -> None:
        if strategy not in POOL_STRATEGIES:
            raise ValueError(f"unknown pool strategy {strategy!r}; expected one of {POOL_STRATEGIES}")
        if capacity < 1:
            raise ValueError("pool capacity must be at least 1")
        self.strategy = strategy
        self.capacity = capacity
        # No threshold means every entry competes on loss alone.
        self.threshold = threshold if threshold is not None else (-math.inf if strategy == "hard" else math.inf)
        self._heap: list[_Entry] = []
        self._order = itertools.count()
        self._seen = 0
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self._heap)

    @property
    def full(self) -> bool:
        return len(self._heap) >= self.capacity

    def offer(self, item: Hashable, loss: float) -> bool:
        """Consider one entry with its loss; True if the pool kept it."""
        loss = float(loss)
        if not math.isfinite(loss):
            return False  # a diverged batch is a training problem, not a hard sample
        self._seen += 1
        if self.strategy == "random":
            return self._offer_random(item, loss)
        if self.strategy == "hard":
            if loss <= self.threshold:
                return False
            priority = loss          # the heap's minimum is the easiest of the hard ones
        else:
            if loss >= self.threshold:
                return False
            priority = -loss         # the heap's minimum is the hardest of the easy ones
        entry = _Entry(priority, -next(self._order), loss, item)
        if not self.full:
            heapq.heappush(self._heap, entry)
            return True
        if entry.priority > self._heap[0].priority:
            heapq.heapreplace(self._heap, entry)
            return True
        return False

    def _offer_random(self, item: Hashable, loss: float) -> bool:
        # Reservoir sampling: after n offers each has probability capacity/n of being kept.
        entry = _Entry(0.0, next(self._order), loss, item)
        if not self.full:
            self._heap.append(entry)
            return True
        slot = int(self._rng.integers(0, self._seen))
        if slot < self.capacity:
            self._heap[slot] = entry
            return True
        return False

    def minimum_loss(self) -> float | None:
        """The loss an entry must beat to enter a full hard pool (None when empty)."""
        if not self._heap:
            return None
        if self.strategy == "random":
            return min(e.loss for e in self._heap)
        return self._heap[0].loss

    def items(self) -> list[tuple[Hashable, float]]:
        """Kept entries with their losses, hardest first for the hard pool."""
        entries = sorted(self._heap, key=lambda e: (-e.loss, -e.order) if self.strategy != "easy" else (e.loss, -e.order))
        return [(e.item, e.loss) for e in entries]

    def drain(self) -> list[Hashable]:
        """Return the kept entries for retraining and clear the pool for the next pass."""
        kept = [item for item, _ in self.items()]
        self._heap.clear()
        self._seen = 0
        return kept
