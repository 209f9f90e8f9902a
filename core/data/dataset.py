"""A torch ``Dataset`` over an OPIXray-layout split, with torchvision.transforms.v2 transforms.

Each item is ``(image, target)``: ``image`` a ``tv_tensors.Image`` (3xHxW uint8
RGB until a transform converts it) and ``target`` a dict with

- ``boxes``: ``tv_tensors.BoundingBoxes`` in XYXY format, float32, ``canvas_size=(H, W)``;
- ``labels``: int64 class indices, 0-based in ``core.classes.CLASSES`` order
  (a detector that reserves 0 for background adds 1 itself);
- ``image_id``: the OPIXray id (str);
- ``occlusion_level``: 1, 2 or 3 for a test image in an OL list, else None.

Box convention: OPIXray's integer corners are used unchanged as XYXY
coordinates (x2 is not incremented), exactly as the reference loader does when
it divides them by the image size. Every part of the project (formats,
evaluation, this dataset) keeps x2 as is, so boxes agree everywhere.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from core.classes import OCCLUSION_LEVELS
from core.data.opixray import Sample, load_split
from core.imaging.decode import read_image

log = logging.getLogger(__name__)

# Empty belt is white: pixels a translation or a zoom-out exposes are filled with it.
BELT_FILL = 255


class OPIXrayDataset(Dataset):
    """The images and boxes of one split (optionally one occlusion level of the test split)."""

    def __init__(self, root: str | Path, split: str, transforms: Callable | None = None, ol: int | None = None):
        if ol is not None:
            if split != "test":
                raise ValueError(f"occlusion level subsets exist only in the test split, not {split!r}")
            if ol not in OCCLUSION_LEVELS:
                raise ValueError(f"occlusion level must be one of {OCCLUSION_LEVELS}, got {ol!r}")
        self.root = Path(root)
        self.split = split
        self.transforms = transforms
        self.ol = ol
        samples = load_split(self.root, split)  # strict: raises AnnotationError naming file and line
        self.samples: list[Sample] = [s for s in samples if ol is None or s.occlusion_level == ol]
        log.debug("%s/%s: %d images (ol=%s)", self.root, split, len(self.samples), ol)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, dict]:
        sample = self.samples[index]
        pixels = read_image(sample.image_path)  # HxWx3 uint8 RGB or ImageDecodeError naming the file
        height, width = pixels.shape[:2]
        image = tv_tensors.Image(torch.from_numpy(pixels).permute(2, 0, 1))
        coords = torch.tensor([b.as_list() for b in sample.boxes], dtype=torch.float32).reshape(-1, 4)
        target = {
            "boxes": tv_tensors.BoundingBoxes(coords, format=tv_tensors.BoundingBoxFormat.XYXY,
                                              canvas_size=(height, width)),
            "labels": torch.tensor([b.class_index for b in sample.boxes], dtype=torch.int64),
            "image_id": sample.image_id,
            "occlusion_level": sample.occlusion_level,
        }
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target


def default_transforms(train: bool, size: int | tuple[int, int] | None = None) -> v2.Compose:
    """Geometry-only augmentation, then resize and conversion to float in [0, 1].

    Training adds horizontal and vertical flips and a random scale and translation
    (a bag may lie either way round anywhere on the belt). Nothing changes pixel
    values beyond the interpolation of a zoom: no colour jitter, blur or noise,
    because the paper's edge and material cues must stay true. ``size`` is an int
    (square, aspect not kept, as the reference resizes to 300x300) or (H, W).
    Boxes that leave the image are clamped, and removed (with their labels) if
    nothing of them remains.
    """
    steps: list[Callable] = []
    if train:
        steps += [
            v2.RandomHorizontalFlip(p=0.5),
            v2.RandomVerticalFlip(p=0.5),
            v2.RandomAffine(degrees=0.0, translate=(0.1, 0.1), scale=(0.8, 1.2), fill=BELT_FILL),
        ]
    if size is not None:
        steps.append(v2.Resize((size, size) if isinstance(size, int) else tuple(size), antialias=True))
    steps += [
        v2.ClampBoundingBoxes(),
        v2.SanitizeBoundingBoxes(min_size=1.0),
        v2.ToDtype(torch.float32, scale=True),
    ]
    return v2.Compose(steps)


def collate_fn(batch: list[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """Keep images and targets as lists: each image holds a different number of boxes.

    (torchvision's detection models take lists; ``torch.stack(images)`` gives a
    batch tensor when a fixed ``size`` made all images equal.)
    """
    images, targets = zip(*batch) if batch else ((), ())
    return list(images), list(targets)
