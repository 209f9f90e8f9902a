"""Turn the inspectors' corrections (the store's hard samples) into a training set.

The export is an OPIXray-layout dataset that the ordinary trainer reads:

- ``train``: every corrected bag that is not held out, listed ``oversample``
  times under distinct ids (``c<bag>-<copy>``, hard links to the same image
  file), so each epoch sees the corrections that many times more often than a
  replayed image; plus a replay share of the base training data (``r<id>``),
  so the model does not forget what it knew;
- ``test``: the held-out corrected bags, never trained on, on which the gate
  judges whether the candidate learned from the corrections.

Which bags are held out depends only on a hash of the bag's image content
(:func:`is_held_out`), so a bag keeps its side from one job to the next: a
bag held out once is never trained on later, and a duplicate scan of the same
image lands on the same side (no leak between the two sets).

Images are hard-linked from the content-addressed store where the format
allows (JPEG, TIFF); other formats (PNG, BMP) are rewritten losslessly as TIFF,
because the layout only knows ``.jpg`` and ``.tiff``. Nothing in the store is
ever modified. A correction whose image file is missing is skipped and
reported, never fatal.
"""
from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from core.data.opixray import Box as LayoutBox
from core.data.opixray import (
    copy_file,
    load_split,
    make_layout,
    prepare_output_dir,
    split_dirs,
    write_annotation,
    write_lists,
)
from core.imaging.decode import ImageDecodeError, read_image
from core.store.images import ImageStore
from core.store.values import Box, HardSample

log = logging.getLogger(__name__)

# The image formats the OPIXray layout names, by the suffix the content store gives them.
_LINKABLE = {".jpg": ".jpg", ".tif": ".tiff"}


@dataclass(frozen=True)
class ExportSettings:
    holdout_share: float = 0.2      # share of corrected bags kept out of training, for the gate
    oversample: int = 3             # times each corrected bag is listed in the train split
    replay_ratio: float = 1.0       # replayed base images per corrected training bag
    seed: int = 0                   # which base images are replayed

    def __post_init__(self) -> None:
        if not 0.0 <= self.holdout_share < 1.0:
            raise ValueError(f"holdout_share must be in [0, 1), got {self.holdout_share}")
        if self.oversample < 1:
            raise ValueError(f"oversample must be at least 1, got {self.oversample}")
        if self.replay_ratio < 0:
            raise ValueError(f"replay_ratio must not be negative, got {self.replay_ratio}")


@dataclass(frozen=True)
class SkippedSample:
    bag_id: int
    image_sha256: str
    reason: str


@dataclass
class CorrectionsExport:
    """What was written, for the job's lineage and its log."""
    root: Path
    train_bags: list[tuple[int, int]] = field(default_factory=list)    # (bag id, label version)
    heldout_bags: list[tuple[int, int]] = field(default_factory=list)
    replay_ids: list[str] = field(default_factory=list)                 # base-data image ids replayed
    skipped: list[SkippedSample] = field(default_factory=list)
    train_images: int = 0                                               # train split length, copies included

    def summary(self) -> dict:
        return {"root": str(self.root), "train_bags": len(self.train_bags), "heldout_bags": len(self.heldout_bags),
                "replayed": len(self.replay_ids), "train_images": self.train_images,
                "skipped": [{"bag_id": s.bag_id, "reason": s.reason} for s in self.skipped]}

    def lineage(self) -> dict:
        """The exact inputs of the candidate: which label revision of which bag, which base images."""
        return {"train_bags": [list(b) for b in self.train_bags],
                "heldout_bags": [list(b) for b in self.heldout_bags],
                "replay_ids": list(self.replay_ids),
                "skipped": [{"bag_id": s.bag_id, "image_sha256": s.image_sha256, "reason": s.reason}
                            for s in self.skipped]}


def is_held_out(image_sha256: str, share: float) -> bool:
    """Whether a bag (by its image's content hash) belongs to the held-out set; stable forever.

    Salted so that the split is independent of anything else keyed by the same hash.
    """
    if share <= 0.0:
        return False
    digest = hashlib.sha256(f"retrain-holdout:{image_sha256}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < share


def layout_boxes(boxes: Sequence[Box], width: int, height: int) -> list[LayoutBox]:
    """Store boxes (float pixels) as OPIXray integer corners, inside the image and never empty."""
    out = []
    for box in boxes:
        x1 = min(max(0, math.floor(box.x1)), width - 1)
        y1 = min(max(0, math.floor(box.y1)), height - 1)
        x2 = min(max(x1 + 1, math.ceil(box.x2)), width)
        y2 = min(max(y1 + 1, math.ceil(box.y2)), height)
        out.append(LayoutBox(box.class_name, x1, y1, x2, y2))
    return out


def _place_image(source: Path, image_dir: Path, image_id: str) -> tuple[Path, tuple[int, int]]:
    """Link (or losslessly rewrite) ``source`` as ``image_dir/<image_id><ext>``; return it and (w, h)."""
    pixels = read_image(source)  # validates the file: a corrupt image is skipped, not trained on
    height, width = pixels.shape[:2]
    ext = _LINKABLE.get(source.suffix.lower())
    if ext is not None:
        target = image_dir / f"{image_id}{ext}"
        copy_file(source, target, link=True)
    else:
        target = image_dir / f"{image_id}.tiff"
        if not cv2.imwrite(str(target), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)):
            raise ImageDecodeError(f"{target}: could not write a TIFF copy of {source}")
    return target, (width, height)


def _link_more(first: Path, image_dir: Path, image_id: str) -> None:
    copy_file(first, image_dir / f"{image_id}{first.suffix}", link=True)


def export_corrections(samples: Sequence[HardSample], images: ImageStore, out: Path, *,
                       settings: ExportSettings = ExportSettings(), base_data: Path | None = None
                       ) -> CorrectionsExport:
    """Write the training set of a retraining job under ``out`` (a new or empty directory)."""
    if images is None:
        raise ValueError("the store has no image directory: open it with data_dir to export corrections")
    root = prepare_output_dir(Path(out))
    make_layout(root)
    result = CorrectionsExport(root=root)
    train_dir, train_ann, _ = split_dirs(root, "train")
    test_dir, test_ann, _ = split_dirs(root, "test")
    train_ids: list[str] = []
    test_ids: list[str] = []
    for sample in sorted(samples, key=lambda s: s.bag_id):
        path = images.find(sample.image_sha256)
        if path is None:
            result.skipped.append(SkippedSample(sample.bag_id, sample.image_sha256,
                                                f"image {sample.image_sha256} is missing from {images.root}"))
            log.warning("bag %d skipped: its image file is missing", sample.bag_id)
            continue
        held_out = is_held_out(sample.image_sha256, settings.holdout_share)
        first_id = f"c{sample.bag_id:07d}" if held_out else f"c{sample.bag_id:07d}-0"
        try:
            placed, (width, height) = _place_image(path, test_dir if held_out else train_dir, first_id)
        except (ImageDecodeError, OSError) as exc:
            result.skipped.append(SkippedSample(sample.bag_id, sample.image_sha256, f"unreadable image: {exc}"))
            log.warning("bag %d skipped: %s", sample.bag_id, exc)
            continue
        boxes = layout_boxes(sample.labels, width, height)
        key = (sample.bag_id, sample.label_version)
        if held_out:
            write_annotation(test_ann / f"{first_id}.txt", placed.name, boxes)
            test_ids.append(first_id)
            result.heldout_bags.append(key)
            continue
        for copy in range(settings.oversample):
            image_id = f"c{sample.bag_id:07d}-{copy}"
            if copy:
                _link_more(placed, train_dir, image_id)
            write_annotation(train_ann / f"{image_id}.txt", f"{image_id}{placed.suffix}", boxes)
            train_ids.append(image_id)
        result.train_bags.append(key)
    if base_data is not None and result.train_bags and settings.replay_ratio > 0:
        train_ids += _replay(Path(base_data), root, len(result.train_bags), settings, result)
    write_lists(root, "train", train_ids)
    write_lists(root, "test", test_ids)
    result.train_images = len(train_ids)
    log.info("exported %d corrected bags for training (x%d), %d held out, %d replayed, %d skipped, to %s",
             len(result.train_bags), settings.oversample, len(result.heldout_bags), len(result.replay_ids),
             len(result.skipped), root)
    return result


def _replay(base: Path, root: Path, corrected: int, settings: ExportSettings, result: CorrectionsExport) -> list[str]:
    """Link a seeded random share of the base train split into the export; returns the new ids."""
    samples = load_split(base, "train")  # strict: a broken base dataset fails the job with file and line
    count = min(len(samples), round(settings.replay_ratio * corrected))
    if count == 0:
        return []
    chosen = sorted(np.random.default_rng([settings.seed, 0x5EED]).choice(len(samples), count, replace=False))
    image_dir, ann_dir, _ = split_dirs(root, "train")
    ids = []
    for index in chosen:
        sample = samples[int(index)]
        image_id = f"r{sample.image_id}"
        target = image_dir / f"{image_id}{sample.image_path.suffix}"
        copy_file(sample.image_path, target, link=True)
        write_annotation(ann_dir / f"{image_id}.txt", target.name, sample.boxes)
        ids.append(image_id)
        result.replay_ids.append(sample.image_id)
    return ids
