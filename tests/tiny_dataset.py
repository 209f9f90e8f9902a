"""A tiny OPIXray-layout dataset for tests that need one on disk, independent of the generator.

Dark bars (one per image, rotated by class) on a white belt with pale clutter, so
a detector can learn something in a few steps and every box is known exactly.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from core.classes import CLASSES
from core.data.opixray import Box, make_layout, write_lists, write_sample
from core.imaging.decode import encode_jpg


def make_image(rng: np.random.Generator, width: int, height: int, class_index: int) -> tuple[np.ndarray, Box]:
    img = np.full((height, width, 3), 255, np.uint8)
    for _ in range(3):  # pale orange clutter
        x, y = int(rng.integers(0, width - 20)), int(rng.integers(0, height - 20))
        cv2.rectangle(img, (x, y), (x + int(rng.integers(10, 40)), y + int(rng.integers(10, 40))), (240, 200, 150), -1)
    length = int(rng.integers(width // 5, width // 3))
    thick = 4 + 2 * class_index
    x1 = int(rng.integers(2, width - length - 2))
    y1 = int(rng.integers(2, height - thick - 2))
    cv2.rectangle(img, (x1, y1), (x1 + length, y1 + thick), (20, 40, 140), -1)
    return img, Box(CLASSES[class_index], x1, y1, x1 + length, y1 + thick)


def make_tiny_dataset(root: Path, n_train: int = 8, n_test: int = 6, width: int = 160, height: int = 120,
                      seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    make_layout(root)
    for split, count in (("train", n_train), ("test", n_test)):
        ids, levels = [], {}
        for i in range(count):
            image_id = f"{split[:2]}{i:04d}"
            img, box = make_image(rng, width, height, i % len(CLASSES))
            write_sample(root, split, image_id, encode_jpg(img), [box])
            ids.append(image_id)
            levels[image_id] = 1 + i % 3
        write_lists(root, split, ids, levels if split == "test" else None)
    return root
