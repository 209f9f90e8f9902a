"""Helpers shared by the GUI tests (imported by name: pytest puts this folder on sys.path)."""
from __future__ import annotations

import numpy as np

IMAGE_SIZE = (240, 320)   # height, width: small keeps every GUI test fast


def make_rgb(seed: int = 0, size: tuple[int, int] = IMAGE_SIZE) -> np.ndarray:
    """A bag-like image: white belt, an orange organic block, a blue metal bar."""
    rng = np.random.default_rng(seed)
    height, width = size
    image = np.full((height, width, 3), 235, np.uint8)
    image[40:200, 30:290] = (205, 140, 80)
    x = int(rng.integers(60, 220))
    image[80:160, x:x + 40] = (40, 70, 170)
    image += rng.integers(0, 12, image.shape, dtype=np.uint8)
    return image



def tiny_detector():
    """An untrained, tiny DOAM fast detector (tests only: its boxes mean nothing)."""
    import torch

    from core.inference import Detector
    from core.models.build import build_detector

    torch.manual_seed(0)
    model = build_detector("fast", "doam", input_size=[96, 128], widths=[8, 8, 16, 16, 16],
                           neck_channels=16, head_channels=16)
    return Detector.from_model(model, model_id="tiny-untrained", device="cpu", num_threads=1)
