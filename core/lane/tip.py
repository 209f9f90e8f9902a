"""Threat image projection on a lane: a share of bags get a projected cutter, recorded, never shown.

Screening sites use TIP to keep inspectors alert and to measure them: the projection's
truth goes to the store (hidden from the inspector), and the decision on that bag counts
as a hit or a miss in the inspector's statistics.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from core.imaging.decode import encode_jpg
from core.lane.bag import Bag, TruthItem
from core.lane.sources import LaneSource

log = logging.getLogger(__name__)


class TipPolicy:
    """Decides which bags get a threat and projects it (deterministic for a seed)."""

    def __init__(self, share: float = 0.05, seed: int = 0) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"the TIP share must be in [0, 1], got {share}")
        self.share = share
        self.rng = np.random.default_rng([seed, 0x71F])

    def apply(self, bag: Bag) -> Bag:
        if not bag.ok or self.share == 0.0 or self.rng.random() >= self.share:
            return bag
        from core.synth.tip import project_threat, random_threat  # noqa: PLC0415

        height, width = bag.image.shape[:2]
        threat = random_threat(self.rng, (width, height))
        try:
            image, box = project_threat(bag.image, threat, self.rng)
        except ValueError as exc:  # nowhere plausible to put it: screen the bag as it came
            log.warning("TIP skipped for %s: %s", bag.bag_id, exc)
            return bag
        bag.image = image
        bag.encoded = encode_jpg(image)   # what the inspector sees is what gets stored
        bag.tip = [TruthItem(threat.kind, tuple(int(v) for v in box))]
        return bag


class TipSource(LaneSource):
    """Wraps any lane source and applies a TipPolicy to its bags."""

    def __init__(self, inner: LaneSource, policy: TipPolicy) -> None:
        super().__init__()
        self.inner = inner
        self.policy = policy

    def stop(self) -> None:
        super().stop()
        self.inner.stop()

    def __iter__(self) -> Iterator[Bag]:
        for bag in self.inner:
            yield self.policy.apply(bag)
            if self.stopped:
                return
