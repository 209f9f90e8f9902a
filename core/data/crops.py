"""Training crops at the detector's inference scale: a fast-learning recipe for the CPU.

A fully convolutional detector can learn from windows of the image as long as the
objects in them have the size they will have at inference. Inference resizes the
whole image to the model's ``input_size`` (1225 x 954 -> 512 x 384, x0.42), so a
crop is cut from the image resized to exactly that size: scale matches, pixels
per step drop to a third (256 x 256 of 384 x 512), and almost every crop holds a
positive, which is what a from-scratch heat-map head needs most early on.

Each item is either

- a *positive* crop: a random object of the image is chosen and the window is
  placed at a uniformly random offset that keeps that object wholly inside (if
  the object is larger than the window, the window sits inside the object's box
  at a random place); other objects the window cuts are clipped to it and kept
  when at least ``min_visible`` of their area is inside, else dropped; or
- a *negative* crop (share ``negative_share``, or any image without objects): a
  window overlapping no object at all: the hard negatives of a cluttered bag.
  If no such window is found in a few tries, a positive crop is made instead.

Augmentation is geometry only (horizontal and vertical flips): pixel values are
never changed, since the paper's edge and material cues must stay true. Random
draws come from torch's generator, so the trainer's ``SeededDataset`` makes every
crop a function of (seed, epoch, index) whatever the number of workers.
"""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from core.data.opixray import Sample, load_split
from core.imaging.decode import read_image

log = logging.getLogger(__name__)

NEGATIVE_TRIES = 20  # random windows tried before a negative crop gives up and becomes a positive one


def _uniform_int(low: int, high: int) -> int:
    """An integer in [low, high] from torch's (seedable) generator."""
    if high <= low:
        return int(low)
    return int(torch.randint(low, high + 1, (1,)).item())


def _window_start(box_low: float, box_high: float, crop: int, extent: int) -> int:
    """Start of a window of length ``crop`` within [0, extent] that contains [box_low, box_high]
    at a random offset (or lies inside it when the box is longer than the window)."""
    if extent <= crop:
        return 0
    lo_box, hi_box = int(np.floor(box_low)), int(np.ceil(box_high))
    if hi_box - lo_box <= crop:
        low, high = hi_box - crop, lo_box           # the window covers the whole box
    else:
        low, high = lo_box, hi_box - crop           # the window lies inside the box
    low, high = max(0, low), min(extent - crop, high)
    return _uniform_int(low, max(low, high))


class CropDataset(Dataset):
    """Crops of ``crop_size`` (H, W) from a split's images resized to ``input_size`` (H, W).

    Items are ``(image, target)`` like ``OPIXrayDataset``'s: a float32 3 x h x w tensor in
    [0, 1] and a dict with XYXY ``boxes`` (crop pixels), ``labels``, ``image_id``,
    ``occlusion_level`` and ``crop`` (x0, y0 of the window in the resized image).
    """

    def __init__(self, root: str | Path, split: str, input_size: tuple[int, int], crop_size: int | tuple[int, int],
                 negative_share: float = 0.2, min_visible: float = 0.5, flips: bool = True) -> None:
        crop_h, crop_w = (crop_size, crop_size) if isinstance(crop_size, int) else crop_size
        in_h, in_w = int(input_size[0]), int(input_size[1])
        if not (0 < crop_h <= in_h and 0 < crop_w <= in_w):
            raise ValueError(f"crop size {(crop_h, crop_w)} must be positive and fit the input size {(in_h, in_w)}")
        if crop_h % 32 or crop_w % 32:
            raise ValueError(f"crop size {(crop_h, crop_w)} must be multiples of 32 (the detector's stride)")
        if not 0.0 <= negative_share < 1.0:
            raise ValueError(f"negative share must be in [0, 1), got {negative_share}")
        if not 0.0 < min_visible <= 1.0:
            raise ValueError(f"min_visible must be in (0, 1], got {min_visible}")
        self.root = Path(root)
        self.samples: list[Sample] = load_split(self.root, split)
        self.input_size = (in_h, in_w)
        self.crop_size = (crop_h, crop_w)
        self.negative_share = negative_share
        self.min_visible = min_visible
        self.flips = flips

    def __len__(self) -> int:
        return len(self.samples)

    def _resized(self, sample: Sample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The image resized to input_size (as inference sees it), its boxes scaled alike, labels."""
        pixels = read_image(sample.image_path)
        height, width = pixels.shape[:2]
        in_h, in_w = self.input_size
        # INTER_AREA: the anti-aliased shrink that torchvision's Resize(antialias=True) approximates.
        resized = cv2.resize(pixels, (in_w, in_h), interpolation=cv2.INTER_AREA)
        boxes = np.array([b.as_list() for b in sample.boxes], dtype=np.float32).reshape(-1, 4)
        boxes *= np.array([in_w / width, in_h / height, in_w / width, in_h / height], dtype=np.float32)
        labels = np.array([b.class_index for b in sample.boxes], dtype=np.int64)
        return resized, boxes, labels

    def _negative_window(self, boxes: np.ndarray) -> tuple[int, int] | None:
        (crop_h, crop_w), (in_h, in_w) = self.crop_size, self.input_size
        for _ in range(NEGATIVE_TRIES):
            x0, y0 = _uniform_int(0, in_w - crop_w), _uniform_int(0, in_h - crop_h)
            # Strict separation: a window touching no box, not even by its border.
            clear = (boxes[:, 0] >= x0 + crop_w) | (boxes[:, 2] <= x0) | \
                    (boxes[:, 1] >= y0 + crop_h) | (boxes[:, 3] <= y0)
            if clear.all():
                return x0, y0
        return None

    def _positive_window(self, boxes: np.ndarray) -> tuple[int, int]:
        (crop_h, crop_w), (in_h, in_w) = self.crop_size, self.input_size
        box = boxes[_uniform_int(0, len(boxes) - 1)]
        return _window_start(box[0], box[2], crop_w, in_w), _window_start(box[1], box[3], crop_h, in_h)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        sample = self.samples[index]
        resized, boxes, labels = self._resized(sample)
        crop_h, crop_w = self.crop_size
        window = None
        if len(boxes) == 0 or float(torch.rand(1)) < self.negative_share:
            window = self._negative_window(boxes)
        if window is None:
            window = self._positive_window(boxes) if len(boxes) else (0, 0)
        x0, y0 = window
        patch = resized[y0:y0 + crop_h, x0:x0 + crop_w]

        # Boxes in crop coordinates, clipped; keep those mostly inside the window.
        shifted = boxes - np.array([x0, y0, x0, y0], dtype=np.float32)
        clipped = shifted.copy()
        clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, crop_w)
        clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, crop_h)
        area = lambda b: (b[:, 2] - b[:, 0]).clip(min=0) * (b[:, 3] - b[:, 1]).clip(min=0)  # noqa: E731
        full = area(shifted)
        keep = (area(clipped) >= self.min_visible * np.maximum(full, 1e-6)) & (area(clipped) >= 1.0)
        clipped, kept_labels = clipped[keep], labels[keep]

        if self.flips:
            if float(torch.rand(1)) < 0.5:
                patch = patch[:, ::-1]
                clipped[:, [0, 2]] = crop_w - clipped[:, [2, 0]]
            if float(torch.rand(1)) < 0.5:
                patch = patch[::-1, :]
                clipped[:, [1, 3]] = crop_h - clipped[:, [3, 1]]

        image = torch.from_numpy(np.ascontiguousarray(patch)).permute(2, 0, 1).float().div_(255.0)
        target = {
            "boxes": tv_tensors.BoundingBoxes(torch.from_numpy(np.ascontiguousarray(clipped)).reshape(-1, 4),
                                              format=tv_tensors.BoundingBoxFormat.XYXY,
                                              canvas_size=(crop_h, crop_w)),
            "labels": torch.from_numpy(kept_labels),
            "image_id": sample.image_id,
            "occlusion_level": sample.occlusion_level,
            "crop": (x0, y0),
        }
        return image, target
