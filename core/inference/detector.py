"""``Detector``: one object that turns an image into a ``Prediction``.

The GUI's DetectorWorker, the ``detect`` command, the benchmark and the
retraining job all go through this class, so boxes, scores and the attention
map mean the same thing everywhere:

- input: any array ``core.imaging.decode.to_rgb8`` accepts (uint8/uint16/float,
  1, 3 or 4 channels: converted by its documented rules); anything else (empty,
  not an array, over 100 MP, NaN) raises ``ImageDecodeError`` (a ``ValueError``)
  before any work is done;
- the image is resized to ``model.input_size`` (no aspect preservation, as the
  reference SSD; INTER_AREA when shrinking: no aliasing, and close to the antialiased
  resize the training transforms use; ~5 ms for a 1225x954 scan, vs 0.4 ms bilinear)
  and fed as RGB in [0, 1];
- boxes come back in ORIGINAL image pixels (xyxy, clipped to the image), labels
  0-based into ``core.classes.CLASSES``, the attention map (DOAM models) resized
  to the original image, in [0, 1].

Threads: a ``Detector`` is not thread-safe (the model holds per-call state such as
``score_thresh``, and torch's CPU thread count, which it sets for the duration of
each call, is process-wide): give each worker thread its own, and run one at a time
on a CPU. The GUI has exactly one, owned by its DetectorWorker.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from core.classes import CLASSES
from core.imaging.decode import ImageDecodeError, decode_bytes_at_least, read_bytes, to_rgb8
from core.inference.modelfile import ModelInfo, load_model_file

log = logging.getLogger(__name__)

# The paper's test-time confidence threshold (PAPER.md: 0.01, NMS 0.45, top 200): what
# evaluation needs. The GUI filters further for display (Prediction.above).
DEFAULT_SCORE_THRESHOLD = 0.01
# Intra-op threads on CPU: one core is left to the GUI thread and the image decoder, up to 4.
# PyTorch's OpenMP pool stalls badly when another busy thread takes one of its cores: on the
# 2-core development machine under load, the fast detector's network took 80-120 ms with 1
# thread and 500-1400 ms with 2 (and 170 ms with 2 under OMP_WAIT_POLICY=PASSIVE). Beyond 4
# threads a small conv net gains little. Callers with an idle machine may pass num_threads.
MAX_CPU_THREADS = 4


@dataclass
class Prediction:
    """Detections for one image, as plain numpy (safe to hand across threads).

    ``boxes`` are xyxy in original image pixels (float32, N x 4), ``labels`` 0-based
    class indices (int64), ``scores`` float32, ``attention`` H x W float32 in [0, 1]
    at the image's size or None, ``timings`` in milliseconds.
    """

    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    attention: np.ndarray | None
    model_id: str
    image_size: tuple[int, int]  # (height, width) of the original image
    timings: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def class_names(self) -> list[str]:
        return [CLASSES[i] for i in self.labels.tolist()]

    def above(self, threshold: float) -> Prediction:
        """A copy keeping only detections scoring at least ``threshold`` (display filtering)."""
        keep = self.scores >= threshold
        return Prediction(self.boxes[keep], self.labels[keep], self.scores[keep], self.attention,
                          self.model_id, self.image_size, dict(self.timings))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready detections (without the attention map)."""
        return {
            "model_id": self.model_id,
            "image_size": {"height": self.image_size[0], "width": self.image_size[1]},
            "detections": [
                {"class": CLASSES[int(lab)], "label": int(lab), "score": round(float(s), 5),
                 "box": [round(float(v), 2) for v in box]}
                for box, lab, s in zip(self.boxes, self.labels, self.scores)
            ],
            "has_attention": self.attention is not None,
            "timings_ms": {k: round(v, 3) for k, v in self.timings.items()},
        }


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" is CUDA when available, else CPU; an explicit "cuda" without a GPU is an error."""
    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(device)
        except RuntimeError as exc:
            raise ValueError(f"unknown device {device!r}: use auto, cpu or cuda[:N]") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available (use --device cpu or auto)")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {dev}: use auto, cpu or cuda[:N]")
    return dev


def default_cpu_threads() -> int:
    """min(4, cores - 1), at least 1: see MAX_CPU_THREADS."""
    return max(1, min(MAX_CPU_THREADS, (os.cpu_count() or 1) - 1))


@contextlib.contextmanager
def cpu_threads(num_threads: int):
    """Run the block with torch's intra-op thread count set to ``num_threads``, then restore it.

    The count is process-wide: scoping it to the Detector's own calls keeps a training loop
    that evaluates through a Detector (or the GUI's other torch users) at its own setting.
    Switching costs microseconds.
    """
    previous = torch.get_num_threads()
    if previous != num_threads:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def prepare_image(image: Any, input_size: tuple[int, int], source: str = "image") -> tuple[np.ndarray, tuple[int, int]]:
    """Convert to RGB uint8 and resize to ``input_size`` (h, w); return (resized, original (h, w))."""
    rgb = to_rgb8(image, source)
    height, width = rgb.shape[:2]
    in_h, in_w = input_size
    if (height, width) == (in_h, in_w):
        return rgb, (height, width)
    shrinking = in_h <= height and in_w <= width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(rgb, (in_w, in_h), interpolation=interpolation), (height, width)


def to_input_tensor(resized: Sequence[np.ndarray]) -> torch.Tensor:
    """Stack H x W x 3 uint8 arrays into a B x 3 x H x W float tensor in [0, 1]."""
    batch = np.stack(resized) if len(resized) > 1 else resized[0][None]
    return torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)


def scale_boxes(boxes: np.ndarray, input_size: tuple[int, int], image_size: tuple[int, int]) -> np.ndarray:
    """Map xyxy boxes from model-input pixels to original-image pixels, clipped to the image."""
    in_h, in_w = input_size
    height, width = image_size
    scale = np.array([width / in_w, height / in_h, width / in_w, height / in_h], dtype=np.float32)
    out = boxes.astype(np.float32, copy=False).reshape(-1, 4) * scale
    np.clip(out[:, 0::2], 0.0, float(width), out=out[:, 0::2])
    np.clip(out[:, 1::2], 0.0, float(height), out=out[:, 1::2])
    return out


def resize_attention(attention: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Resize an attention map to the original image (h, w), float32 in [0, 1]."""
    height, width = image_size
    att = np.asarray(attention, dtype=np.float32)
    if att.shape != (height, width):
        att = cv2.resize(att, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(att, 0.0, 1.0, out=att)


def to_prediction(output: dict[str, Any], *, input_size: tuple[int, int], image_size: tuple[int, int],
                  score_threshold: float, model_id: str) -> Prediction:
    """One model output dict (tensors or arrays, model-input pixels) to a Prediction."""
    def as_numpy(value: Any) -> np.ndarray:
        if isinstance(value, torch.Tensor):
            return value.detach().float().cpu().numpy() if value.is_floating_point() else value.cpu().numpy()
        return np.asarray(value)

    scores = as_numpy(output["scores"]).astype(np.float32).reshape(-1)
    keep = scores >= score_threshold
    boxes = scale_boxes(as_numpy(output["boxes"]).reshape(-1, 4)[keep], input_size, image_size)
    labels = as_numpy(output["labels"]).astype(np.int64).reshape(-1)[keep]
    attention = output.get("attention")
    if attention is not None:
        arr = as_numpy(attention)
        att = resize_attention(arr.reshape(arr.shape[-2:]), image_size)   # [1, h, w] or [h, w]
    else:
        att = None
    return Prediction(boxes=boxes, labels=labels, scores=scores[keep], attention=att,
                      model_id=model_id, image_size=image_size)


class Detector:
    """A detector ready to screen images; see the module docstring for the conventions."""

    def __init__(self, model: nn.Module, *, model_id: str, device: str | torch.device = "auto",
                 score_threshold: float = DEFAULT_SCORE_THRESHOLD, info: ModelInfo | None = None,
                 num_threads: int | None = None) -> None:
        self.device = resolve_device(device)
        # CPU threads used during this detector's calls (scoped: see cpu_threads).
        self.num_threads = max(1, int(num_threads)) if num_threads is not None else default_cpu_threads()
        self.model = model.to(self.device).eval()
        self.model_id = model_id
        self.info = info
        self.input_size: tuple[int, int] = tuple(int(v) for v in model.input_size)  # type: ignore[assignment]
        self.score_threshold = score_threshold
        self.has_attention = getattr(model, "config", {}).get("attention", "none") == "doam"

    # --------------------------------------------------------------- construction

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "auto", expected_sha256: str | None = None,
             *, score_threshold: float = DEFAULT_SCORE_THRESHOLD, num_threads: int | None = None) -> Detector:
        """Load a verified model file (raises ``ModelFileError``)."""
        model, info = load_model_file(path, expected_sha256)
        return cls(model, model_id=info.model_id, device=device, score_threshold=score_threshold,
                   info=info, num_threads=num_threads)

    @classmethod
    def from_model(cls, model: nn.Module, model_id: str | None = None, device: str | torch.device = "auto",
                   *, score_threshold: float = DEFAULT_SCORE_THRESHOLD, num_threads: int | None = None) -> Detector:
        """Wrap an in-memory detector (training, tests); ``model_id`` defaults to "<arch>-<attention>-unsaved"."""
        if model_id is None:
            config = getattr(model, "config", {})
            model_id = f"{config.get('arch', type(model).__name__)}-{config.get('attention', 'none')}-unsaved"
        return cls(model, model_id=model_id, device=device, score_threshold=score_threshold, num_threads=num_threads)

    @property
    def score_threshold(self) -> float:
        return self._score_threshold

    @score_threshold.setter
    def score_threshold(self, value: float) -> None:
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"score threshold {value} is not in [0, 1]")
        self._score_threshold = float(value)
        if hasattr(self.model, "score_thresh"):
            self.model.score_thresh = self._score_threshold  # the model filters before NMS: cheaper

    @property
    def class_names(self) -> tuple[str, ...]:
        return CLASSES

    # --------------------------------------------------------------- prediction

    def predict(self, image: Any) -> Prediction:
        """Detect on one image (see the module docstring for accepted inputs)."""
        return self.predict_batch([image])[0]

    def predict_file(self, path: str | Path) -> Prediction:
        """Decode an image file (raises ``ImageDecodeError``) and detect.

        A large JPG is decoded at a reduced scale that still covers the model's input
        (``decode_bytes_at_least``); boxes and the attention map are in the file's own pixels.
        """
        start = time.perf_counter()
        image, original_size = decode_bytes_at_least(read_bytes(path), self.input_size, str(path))
        decode_ms = (time.perf_counter() - start) * 1e3
        prediction = self._predict_prepared([image], [original_size])[0]
        prediction.timings["decode"] = decode_ms
        prediction.timings["total"] += decode_ms
        return prediction

    def predict_batch(self, images: Sequence[Any]) -> list[Prediction]:
        """Detect on several images in one forward pass.

        Each Prediction's ``model`` timing is its share of the batch's forward pass.
        """
        if isinstance(images, np.ndarray) or not isinstance(images, (list, tuple)):
            raise ImageDecodeError(f"predict_batch expects a list of images, got {type(images).__name__}")
        if not images:
            return []
        return self._predict_prepared(images, None)

    def _predict_prepared(self, images: Sequence[Any], original_sizes: Sequence[tuple[int, int]] | None
                          ) -> list[Prediction]:
        """Detect; ``original_sizes`` (h, w) when the images were decoded at a reduced scale."""
        t0 = time.perf_counter()
        prepared = [prepare_image(img, self.input_size, f"image {i}" if len(images) > 1 else "image")
                    for i, img in enumerate(images)]
        if original_sizes is not None:
            prepared = [(resized, tuple(size)) for (resized, _), size in zip(prepared, original_sizes)]
        # The uint8 -> float copy is a torch op: at the process's thread count, on a 2-core machine
        # whose other core is busy, it waited for a descheduled worker (measured: 0.1 ms idle,
        # 12-25 ms beside a training job); at the detector's own count it does not.
        with cpu_threads(self.num_threads) if self.device.type == "cpu" else contextlib.nullcontext():
            batch = to_input_tensor([resized for resized, _ in prepared]).to(self.device, non_blocking=True)
        t1 = time.perf_counter()
        outputs = self._forward(batch)
        t2 = time.perf_counter()
        predictions = []
        for output, (_, size) in zip(outputs, prepared):
            p0 = time.perf_counter()
            pred = to_prediction(output, input_size=self.input_size, image_size=size,
                                 score_threshold=self._score_threshold, model_id=self.model_id)
            post_ms = (time.perf_counter() - p0) * 1e3
            n = len(images)
            pred.timings = {"decode": 0.0, "preprocess": (t1 - t0) * 1e3 / n, "model": (t2 - t1) * 1e3 / n,
                            "postprocess": post_ms}
            pred.timings["total"] = sum(pred.timings.values())
            predictions.append(pred)
        return predictions

    def _forward(self, batch: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        autocast = (torch.autocast("cuda", dtype=torch.float16) if self.device.type == "cuda"
                    else contextlib.nullcontext())
        threads = cpu_threads(self.num_threads) if self.device.type == "cpu" else contextlib.nullcontext()
        with torch.inference_mode(), autocast, threads:
            outputs = self.model(batch)
            # Tensors leave the device here so the "model" timing includes the GPU work.
            outputs = [{k: v.detach().cpu() for k, v in out.items()} for out in outputs]
        return outputs

    def warmup(self) -> None:
        """One forward pass on a blank image so the first real bag does not pay for lazy setup."""
        self.predict(np.zeros((*self.input_size, 3), dtype=np.uint8))

    def __repr__(self) -> str:
        return (f"Detector({self.model_id}, device={self.device}, input={self.input_size}, "
                f"score_threshold={self._score_threshold})")
