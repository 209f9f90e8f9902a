"""Pieces shared by the paper's detectors (ssd.py, yolov3.py, fcos.py).

Everything here follows core/models/CONTRACT.md: images arrive as ``B x 3 x H x W`` RGB in [0, 1],
the attention block sees that un-normalised image (or features plus the image), normalisation
happens inside the model, losses are per image, and eval returns per-image dicts with 0-based
labels and an optional attention map at the input size.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from core.models import common

POSITIONS: tuple[str, ...] = ("input", "stem")


def check_targets(targets: Sequence[dict] | None, batch_size: int, num_classes: int) -> None:
    """common.check_targets plus what the paper detectors also rely on: finite boxes, labels in range."""
    common.check_targets(targets, batch_size)
    for index, target in enumerate(targets):
        boxes, labels = target["boxes"], target["labels"]
        if boxes.numel() == 0:
            continue
        if not torch.isfinite(boxes).all():
            raise ValueError(f"target {index}: boxes hold a non-finite value: {boxes.tolist()}")
        out_of_range = (labels < 0) | (labels >= num_classes)
        if out_of_range.any():
            row = int(out_of_range.nonzero()[0, 0])
            raise ValueError(
                f"target {index}: label {int(labels[row])} (row {row}) is not a 0-based class index below {num_classes}"
            )


def normalise_rgb_channels(x: torch.Tensor) -> torch.Tensor:
    """Normalise the first three (RGB) channels of ``x``; further channels (DOAM's edge) pass unchanged.

    Attention at the input runs on the [0, 1] image (CONTRACT.md), so normalisation comes after it.
    A fixed per-channel affine map before the first conv only re-conditions that conv; it keeps the
    RGB statistics the same whether or not an attention block sits in front.
    """
    rgb = common.normalise_image(x[:, :3])
    if x.shape[1] == 3:
        return rgb
    return torch.cat([rgb, x[:, 3:]], dim=1)


def build_plugged_attention(kind: str, in_channels: int, options: dict | None = None) -> nn.Module:
    """Build the attention block with core.models.attention.build_attention (imported lazily)."""
    from core.models.attention import build_attention  # noqa: PLC0415 - keeps the import graph one-way

    return build_attention(kind, in_channels, **(options or {}))


def check_position(position: str) -> str:
    if position not in POSITIONS:
        raise ValueError(f"unknown attention position {position!r}; expected one of {', '.join(POSITIONS)}")
    return position


def with_channels(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """Return ``conv`` itself, or a freshly initialised copy taking ``in_channels`` inputs."""
    if conv.in_channels == in_channels:
        return conv
    replacement = nn.Conv2d(
        in_channels,
        conv.out_channels,
        kernel_size=conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
    )
    nn.init.kaiming_normal_(replacement.weight, mode="fan_out", nonlinearity="relu")
    if replacement.bias is not None:
        nn.init.zeros_(replacement.bias)
    return replacement


def select_detections(
    boxes: torch.Tensor,
    class_scores: torch.Tensor,
    image_size: tuple[int, int],
    score_thresh: float,
    nms_thresh: float,
    detections_per_img: int,
    pre_nms_top_k: int = 200,
) -> dict[str, torch.Tensor]:
    """Class-wise NMS over the dense predictions of one image.

    ``boxes``: ``P x 4`` xyxy shared by all classes, ``class_scores``: ``P x C`` (0-based classes).
    Per class, the scores above ``score_thresh`` are cut to the best ``pre_nms_top_k`` (as the
    reference SSD's Detect does with top_k=200; an untrained model at threshold 0.01 would
    otherwise send every prior of every class to NMS), then common.postprocess_detections clips,
    runs class-wise NMS and keeps the best ``detections_per_img``.
    """
    num_classes = class_scores.shape[1]
    keep_scores, keep_labels, keep_indices = [], [], []
    for label in range(num_classes):
        scores = class_scores[:, label]
        candidates = (scores > score_thresh).nonzero().squeeze(1)
        if candidates.numel() > pre_nms_top_k:
            candidates = candidates[scores[candidates].topk(pre_nms_top_k).indices]
        keep_indices.append(candidates)
        keep_scores.append(scores[candidates])
        keep_labels.append(torch.full_like(candidates, label))
    indices = torch.cat(keep_indices)
    return common.postprocess_detections(
        boxes[indices], torch.cat(keep_scores), torch.cat(keep_labels), image_size,
        score_thresh, nms_thresh, detections_per_img,
    )


def as_pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """``512`` or ``(h, w)`` / ``[h, w]`` (JSON) -> ``(h, w)`` of positive ints."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ValueError(f"{name} must be a positive int or a (height, width) pair, got {value!r}")
    return int(pair[0]), int(pair[1])


def json_ready(value):
    """Tuples to lists, recursively, so ``model.config`` survives a JSON round trip unchanged."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    return value
