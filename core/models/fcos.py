"""FCOS with a ResNet-50-FPN backbone (torchvision's), with a pluggable attention block in front.

What is torchvision's: the backbone (ResNet-50, FPN on C3-C5 plus P6/P7, trained from scratch:
``weights=None, weights_backbone=None``, ordinary BatchNorm, every layer trainable), the head, the
anchor points, the centre-sampling target assignment and the loss terms (sigmoid focal loss,
GIoU, centre-ness BCE), and the post-processing. What this module adds:

- **Classes.** torchvision's FCOS classifies with one sigmoid per class and indexes the class
  logits directly with the target labels; background is "no class fires", not a column. So the
  head gets exactly ``num_classes`` outputs and the contract's 0-based labels go in and come out
  unchanged (torchvision's COCO model keeps 91 outputs only because COCO ids leave 0 unused).
- **Attention** on the [0, 1] image (CONTRACT.md ``position="input"``; the only position offered
  here: ResNet's stem ends in a max-pool that has no module boundary to hook between). ResNet's
  conv1 then takes ``block.out_channels`` (4 for DOAM).
- **Normalisation inside**: torchvision's GeneralizedRCNNTransform is kept for resizing and
  batching but given mean 0 / std 1, so the attention sees the raw image; the ImageNet
  normalisation of the RGB channels follows the attention (detection_utils.normalise_rgb_channels).
- **Per-image losses**: torchvision's ``compute_loss`` normalises by the batch's foreground count,
  so it is called once per image (matching and loss are per image anyway; the head runs once for
  the batch). Each image's terms are divided by its own foreground count.
- **Size**: ``input_size`` 512 (square) by default: the paper does not give FCOS's input size, and
  512 keeps OPIXray's cutters (100-270 px long on a 1225x954 image, so 40-110 px at 512) within
  P3-P5 while costing ~40 % of torchvision's 800-1333 setting. min_size/max_size are set from it,
  so an image already at ``input_size`` is not resized (scale 1).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.detection import fcos_resnet50_fpn

from core.models.common import attention_to_input_size, check_images
from core.models.detection_utils import (
    as_pair,
    build_plugged_attention,
    check_targets,
    json_ready,
    normalise_rgb_channels,
    with_channels,
)

log = logging.getLogger(__name__)


class FCOSDetector(nn.Module):
    """torchvision FCOS-ResNet50-FPN following core/models/CONTRACT.md."""

    def __init__(
        self,
        attention: str = "none",
        num_classes: int = 5,
        input_size: int | Sequence[int] = 512,
        position: str = "input",
        attention_options: dict | None = None,
        center_sampling_radius: float = 1.5,
        topk_candidates: int = 1000,
    ) -> None:
        super().__init__()
        if position != "input":
            raise ValueError(f"FCOS takes attention at position 'input' only, got {position!r}")
        height, width = as_pair(input_size, "input_size")
        self.num_classes = num_classes
        self.input_size: tuple[int, int] = (height, width)
        self.score_thresh = 0.01
        self.nms_thresh = 0.45
        self.detections_per_img = 200
        self.config = json_ready({
            "arch": "fcos", "attention": attention, "num_classes": num_classes, "input_size": [height, width],
            "position": position, "attention_options": dict(attention_options or {}),
            "center_sampling_radius": center_sampling_radius, "topk_candidates": topk_candidates,
        })
        self.attention = build_plugged_attention(attention, 3, attention_options)
        self.detector = fcos_resnet50_fpn(
            weights=None,
            weights_backbone=None,
            num_classes=num_classes,
            min_size=min(height, width),
            max_size=max(height, width),
            image_mean=[0.0, 0.0, 0.0],   # identity: normalisation happens after the attention
            image_std=[1.0, 1.0, 1.0],
            center_sampling_radius=center_sampling_radius,
            topk_candidates=topk_candidates,
        )
        body = self.detector.backbone.body
        body.conv1 = with_channels(body.conv1, self.attention.out_channels)

    def forward(self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]] | None = None):
        check_images(images)
        if self.training:
            check_targets(targets, images.shape[0], self.num_classes)
            targets = [{"boxes": t["boxes"].float(), "labels": t["labels"].to(torch.int64)} for t in targets]
        original_sizes = [tuple(images.shape[-2:])] * images.shape[0]
        image_list, targets = self.detector.transform(list(images), targets)
        x, attention_map = self.attention(image_list.tensors)
        features = list(self.detector.backbone(normalise_rgb_channels(x)).values())
        head_outputs = self.detector.head(features)
        anchors = self.detector.anchor_generator(image_list, features)
        num_anchors_per_level = [f.shape[2] * f.shape[3] for f in features]
        if self.training:
            return self._per_image_losses(targets, head_outputs, anchors, num_anchors_per_level)
        return self._detect(
            head_outputs, anchors, num_anchors_per_level, image_list.image_sizes, original_sizes, attention_map
        )

    def _per_image_losses(self, targets, head_outputs, anchors, num_anchors_per_level) -> dict[str, torch.Tensor]:
        per_image: dict[str, list[torch.Tensor]] = {}
        for index, target in enumerate(targets):
            outputs = {key: value[index:index + 1] for key, value in head_outputs.items()}
            losses = self.detector.compute_loss([target], outputs, [anchors[index]], num_anchors_per_level)
            for key, value in losses.items():
                per_image.setdefault(key, []).append(value)
        return {key: torch.stack(values) for key, values in per_image.items()}

    @torch.no_grad()
    def _detect(self, head_outputs, anchors, num_anchors_per_level, image_sizes, original_sizes, attention_map):
        self.detector.score_thresh = self.score_thresh
        self.detector.nms_thresh = self.nms_thresh
        self.detector.detections_per_img = self.detections_per_img
        split_outputs = {key: list(value.split(num_anchors_per_level, dim=1)) for key, value in head_outputs.items()}
        split_anchors = [list(a.split(num_anchors_per_level)) for a in anchors]
        detections = self.detector.postprocess_detections(split_outputs, split_anchors, image_sizes)
        detections = self.detector.transform.postprocess(detections, image_sizes, original_sizes)
        if attention_map is not None:
            for index, (detection, (h, w)) in enumerate(zip(detections, image_sizes)):
                # the transform may have padded the batch: crop to this image before resizing back
                crop = attention_map[index:index + 1, :, :h, :w].float()
                detection["attention"] = attention_to_input_size(crop, original_sizes[index])[0]
        return detections


def build_fcos(attention: str = "none", num_classes: int = 5, **options) -> FCOSDetector:
    """Build FCOS-ResNet50-FPN. Options: ``input_size`` (512), ``attention_options``,
    ``center_sampling_radius`` (1.5), ``topk_candidates`` (1000); ``position`` must be "input"."""
    options.pop("arch", None)
    return FCOSDetector(attention=attention, num_classes=num_classes, **options)
