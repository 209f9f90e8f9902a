"""Over-sampling the heavily occluded scenes of a synthetic train split.

The generator draws occlusion with the test split's mix, so about one training scene in five holds
a cutter under cover of opacity 0.505 or more (OL3) and one in seventeen under 0.7 or more; the
detectors trained on it box such items but score them low (reports/training_recipes.md, (f)).
``RepeatedScenes`` shows every scene whose most hidden item lies under at least a given opacity
``repeat`` times an epoch instead of once, so that a fixed number of optimiser steps sees them
more often. Each appearance is its own dataset index, so the trainer's per-index seeding
(core.training.trainer.SeededDataset) gives every copy its own crop and flips.

The opacities come from the split's per-item occlusion table (core.synth.occlusion_table), which
OPIXray itself does not have: this is a recipe for synthetic data.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from torch.utils.data import Dataset

from core.synth.occlusion_table import ItemOcclusion, check_items


def scene_repeats(samples: Sequence, table: Mapping[str, Sequence[ItemOcclusion]], occluded_from: float,
                  repeat: int) -> np.ndarray:
    """Per sample (``core.data.opixray.Sample``): ``repeat`` if an item of it lies under cover of
    opacity >= ``occluded_from``, else 1. The table must describe every sample's boxes exactly."""
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    if not 0.0 < occluded_from <= 1.0:
        raise ValueError(f"the opacity to over-sample from must be in (0, 1], got {occluded_from}")
    repeats = np.ones(len(samples), dtype=np.int64)
    for i, sample in enumerate(samples):
        items = list(table.get(sample.image_id, ()))
        check_items(sample.image_id, items, sample.boxes)
        if any(item.opacity >= occluded_from for item in items):
            repeats[i] = repeat
    return repeats


class RepeatedScenes(Dataset):
    """``base`` with its scene i appearing ``repeats[i]`` times (the copies at indices after the originals)."""

    def __init__(self, base: Dataset, repeats: Sequence[int]) -> None:
        repeats = np.asarray(repeats, dtype=np.int64)
        if repeats.shape != (len(base),) or (repeats < 1).any():
            raise ValueError(f"need one repeat count >= 1 per scene ({len(base)}), got shape {repeats.shape}")
        self.base = base
        extra = np.repeat(np.arange(len(base), dtype=np.int64), repeats - 1)
        # Originals keep their indices, so a run without over-sampling draws the same scene for an index.
        self.scene_of = np.concatenate([np.arange(len(base), dtype=np.int64), extra])

    def __len__(self) -> int:
        return int(self.scene_of.size)

    @property
    def extra(self) -> int:
        """Draws an epoch gains: the copies of the over-sampled scenes."""
        return len(self) - len(self.base)

    def __getitem__(self, index: int):
        return self.base[int(self.scene_of[index])]
