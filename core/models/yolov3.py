"""A YOLOv3-style detector: Darknet-53, three scales with FPN-like upsampling, nine anchors.

Backbone: a 3x3 stem (32) and five stride-2 stages of 64, 128, 256, 512, 1024 channels with
1, 2, 8, 8, 4 residual blocks (1x1 halving, 3x3 restoring), conv + BN + LeakyReLU(0.1) as in
Redmon & Farhadi. Neck/head as in YOLOv3: five alternating 1x1/3x3 convs per scale, a 3x3 conv and
a 1x1 predictor with ``3 * (5 + C)`` outputs; the coarser route is reduced by a 1x1 conv,
upsampled x2 and concatenated with the next finer backbone stage (strides 32 -> 16 -> 8).
``width_mult`` and ``blocks`` shrink it (tests build a small variant quickly).

Anchors: the COCO ones (at 416) scaled to the input size, or ``anchors`` (9 (w, h) pairs in input
pixels, small to large: 3 per stride 8, 16, 32).

Targets and loss, per image (as YOLOv3): each ground truth goes to the anchor (of the nine) with
the best shape IoU, at the cell holding its centre; a prediction whose box overlaps any ground truth
with IoU > ``ignore_iou`` (0.5) is neither positive nor negative for objectness. Box: GIoU loss
(the choice YOLOv3's successors made over the original squared error on offsets); objectness and
classes: binary cross-entropy (independent logistic classifiers, as YOLOv3). Each term is summed
over its predictions and divided by the image's positives (at least 1) so that the three per-image
losses are comparable across images and batches. The objectness bias starts at
``logit(1 / cells)`` per scale - a prior of about one object per scale - so the ~10k negatives do
not swamp the first iterations of from-scratch training.

Attention: ``position="input"`` (default) runs the block on the [0, 1] RGB image and the stem conv
takes ``block.out_channels``; ``position="stem"`` runs it after the first stride-2 stage (64
channels at half resolution), whose successor takes ``block.out_channels``.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_iou

from core.models.common import attention_to_input_size, check_images, giou_loss
from core.models.detection_utils import (
    as_pair,
    build_plugged_attention,
    check_position,
    check_targets,
    json_ready,
    normalise_rgb_channels,
    select_detections,
)

log = logging.getLogger(__name__)

DARKNET53_BLOCKS: tuple[int, ...] = (1, 2, 8, 8, 4)
STRIDES: tuple[int, int, int] = (8, 16, 32)
ANCHORS_PER_SCALE = 3
# YOLOv3's COCO anchors for a 416x416 input, (w, h), small to large.
COCO_ANCHORS_416: tuple[tuple[int, int], ...] = (
    (10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119), (116, 90), (156, 198), (373, 326),
)
# exp() of a box-size logit is clamped here (~55x the anchor) so an early bad step cannot overflow.
MAX_SIZE_LOGIT = 4.0


def scaled_width(channels: int, width_mult: float) -> int:
    """Channels times ``width_mult``, rounded to a multiple of 8 (at least 8)."""
    return max(8, int(round(channels * width_mult / 8)) * 8)


class ConvBNLeaky(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(0.1, inplace=True),
        )


class DarknetResidual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvBNLeaky(channels, channels // 2, 1), ConvBNLeaky(channels // 2, channels, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def darknet_stage(in_channels: int, out_channels: int, num_blocks: int) -> nn.Sequential:
    """A stride-2 3x3 conv followed by ``num_blocks`` residual blocks."""
    return nn.Sequential(
        ConvBNLeaky(in_channels, out_channels, 3, stride=2),
        *[DarknetResidual(out_channels) for _ in range(num_blocks)],
    )


class ScaleBranch(nn.Module):
    """YOLOv3's per-scale head: five convs (route), then a 3x3 conv and the 1x1 predictor."""

    def __init__(self, in_channels: int, channels: int, num_outputs: int) -> None:
        super().__init__()
        self.route = nn.Sequential(
            ConvBNLeaky(in_channels, channels, 1),
            ConvBNLeaky(channels, channels * 2, 3),
            ConvBNLeaky(channels * 2, channels, 1),
            ConvBNLeaky(channels, channels * 2, 3),
            ConvBNLeaky(channels * 2, channels, 1),
        )
        self.predict = nn.Sequential(ConvBNLeaky(channels, channels * 2, 3), nn.Conv2d(channels * 2, num_outputs, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        route = self.route(x)
        return route, self.predict(route)


class YOLOv3(nn.Module):
    """YOLOv3-style detector following core/models/CONTRACT.md."""

    def __init__(
        self,
        attention: str = "none",
        num_classes: int = 5,
        input_size: int | Sequence[int] = 416,
        position: str = "input",
        attention_options: dict | None = None,
        width_mult: float = 1.0,
        blocks: Sequence[int] = DARKNET53_BLOCKS,
        anchors: Sequence[Sequence[float]] | None = None,
        ignore_iou: float = 0.5,
        loss_weights: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        height, width = as_pair(input_size, "input_size")
        if height % 32 or width % 32:
            raise ValueError(f"YOLOv3 input_size must be a multiple of 32, got {height}x{width}")
        if len(blocks) != 5:
            raise ValueError(f"blocks must give 5 residual-block counts (Darknet-53: 1, 2, 8, 8, 4), got {blocks!r}")
        if anchors is None:
            anchors = [(w * width / 416, h * height / 416) for w, h in COCO_ANCHORS_416]
        if len(anchors) != 3 * ANCHORS_PER_SCALE:
            raise ValueError(f"YOLOv3 needs 9 anchors (w, h), got {len(anchors)}")
        weights = {"bbox_regression": 1.0, "objectness": 1.0, "classification": 1.0, **(loss_weights or {})}
        unknown = set(weights) - {"bbox_regression", "objectness", "classification"}
        if unknown:
            raise ValueError(f"unknown loss_weights keys {sorted(unknown)}")
        self.num_classes = num_classes
        self.position = check_position(position)
        self.input_size: tuple[int, int] = (height, width)
        self.ignore_iou = ignore_iou
        self.loss_weights = weights
        self.score_thresh = 0.01
        self.nms_thresh = 0.45
        self.detections_per_img = 200
        self.pre_nms_top_k = 1000
        self.config = json_ready({
            "arch": "yolov3", "attention": attention, "num_classes": num_classes, "input_size": [height, width],
            "position": position, "attention_options": dict(attention_options or {}), "width_mult": width_mult,
            "blocks": list(blocks), "anchors": [list(map(float, a)) for a in anchors], "ignore_iou": ignore_iou,
            "loss_weights": weights,
        })

        widths = [scaled_width(c, width_mult) for c in (32, 64, 128, 256, 512, 1024)]
        if position == "input":
            self.attention = build_plugged_attention(attention, 3, attention_options)
            stem_in, stage2_in = self.attention.out_channels, widths[1]
        else:
            self.attention = build_plugged_attention(attention, widths[1], attention_options)
            stem_in, stage2_in = 3, self.attention.out_channels
        self.stem = ConvBNLeaky(stem_in, widths[0], 3)
        self.stage1 = darknet_stage(widths[0], widths[1], blocks[0])      # stride 2: the attention's "stem" point
        self.stage2 = darknet_stage(stage2_in, widths[2], blocks[1])      # stride 4
        self.stage3 = darknet_stage(widths[2], widths[3], blocks[2])      # stride 8  -> C3
        self.stage4 = darknet_stage(widths[3], widths[4], blocks[3])      # stride 16 -> C4
        self.stage5 = darknet_stage(widths[4], widths[5], blocks[4])      # stride 32 -> C5

        outputs = ANCHORS_PER_SCALE * (5 + num_classes)
        self.branch32 = ScaleBranch(widths[5], widths[4], outputs)
        self.lateral32 = ConvBNLeaky(widths[4], widths[3], 1)
        self.branch16 = ScaleBranch(widths[4] + widths[3], widths[3], outputs)
        self.lateral16 = ConvBNLeaky(widths[3], widths[2], 1)
        self.branch8 = ScaleBranch(widths[3] + widths[2], widths[2], outputs)
        # anchors in input pixels, grouped per stride: (3 scales, 3 anchors, 2)
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32).view(3, ANCHORS_PER_SCALE, 2))
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="leaky_relu", a=0.1)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        height, width = self.input_size
        for stride, branch in zip(STRIDES, (self.branch8, self.branch16, self.branch32)):
            predictor = branch.predict[-1]
            nn.init.normal_(predictor.weight, std=0.01)
            bias = predictor.bias.detach().view(ANCHORS_PER_SCALE, 5 + self.num_classes)
            cells = ANCHORS_PER_SCALE * (height // stride) * (width // stride)
            bias[:, 4] = math.log(1.0 / (cells - 1))               # logit(1 / cells)
            bias[:, 5:] = math.log(0.01 / 0.99)                    # class prior 0.01, as RetinaNet / FCOS

    def _raw_outputs(self, images: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """Per stride (8, 16, 32): ``B x 3 x H x W x (5 + C)`` logits, and the attention map."""
        if self.position == "input":
            x, attention_map = self.attention(images)
            x = self.stage1(self.stem(normalise_rgb_channels(x)))
        else:
            x = self.stage1(self.stem(normalise_rgb_channels(images)))
            x, attention_map = self.attention(x, image=images)
        c3 = self.stage3(self.stage2(x))
        c4 = self.stage4(c3)
        c5 = self.stage5(c4)
        route32, out32 = self.branch32(c5)
        up32 = F.interpolate(self.lateral32(route32), size=c4.shape[-2:], mode="nearest")
        route16, out16 = self.branch16(torch.cat([up32, c4], dim=1))
        up16 = F.interpolate(self.lateral16(route16), size=c3.shape[-2:], mode="nearest")
        _, out8 = self.branch8(torch.cat([up16, c3], dim=1))
        outputs = []
        for out in (out8, out16, out32):
            b, _, h, w = out.shape
            outputs.append(out.view(b, ANCHORS_PER_SCALE, 5 + self.num_classes, h, w).permute(0, 1, 3, 4, 2))
        return outputs, attention_map

    def _flatten(self, outputs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """All scales as ``B x P x (5 + C)`` logits and ``B x P x 4`` decoded xyxy boxes (input pixels)."""
        logits, boxes = [], []
        for scale, (stride, out) in enumerate(zip(STRIDES, outputs)):
            _, _, h, w, _ = out.shape
            ys, xs = torch.meshgrid(
                torch.arange(h, device=out.device, dtype=out.dtype),
                torch.arange(w, device=out.device, dtype=out.dtype),
                indexing="ij",
            )
            grid = torch.stack([xs, ys], dim=-1).view(1, 1, h, w, 2)
            centre = (torch.sigmoid(out[..., :2]) + grid) * stride
            size = torch.exp(out[..., 2:4].clamp(max=MAX_SIZE_LOGIT)) * self.anchors[scale].view(1, -1, 1, 1, 2)
            decoded = torch.cat([centre - size / 2, centre + size / 2], dim=-1)
            logits.append(out.flatten(1, 3))
            boxes.append(decoded.flatten(1, 3))
        return torch.cat(logits, dim=1), torch.cat(boxes, dim=1)

    def _assign(self, gt_boxes: torch.Tensor, feature_sizes: list[tuple[int, int]]) -> torch.Tensor:
        """Flat prediction index for each ground truth: best-shape anchor, cell of its centre."""
        wh = gt_boxes[:, 2:] - gt_boxes[:, :2]
        anchors = self.anchors.view(-1, 2)
        inter = torch.minimum(wh[:, None, :], anchors[None]).prod(dim=2)
        shape_iou = inter / (wh.prod(dim=1)[:, None] + anchors.prod(dim=1)[None] - inter)
        best = shape_iou.argmax(dim=1)
        scale, anchor = best // ANCHORS_PER_SCALE, best % ANCHORS_PER_SCALE
        centre = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
        offsets, offset = [], 0
        for h, w in feature_sizes:
            offsets.append(offset)
            offset += ANCHORS_PER_SCALE * h * w
        strides = torch.tensor(STRIDES, device=gt_boxes.device)[scale]
        heights = torch.tensor([h for h, _ in feature_sizes], device=gt_boxes.device)[scale]
        widths = torch.tensor([w for _, w in feature_sizes], device=gt_boxes.device)[scale]
        gx = torch.minimum((centre[:, 0] / strides).long().clamp(min=0), widths - 1)
        gy = torch.minimum((centre[:, 1] / strides).long().clamp(min=0), heights - 1)
        base = torch.tensor(offsets, device=gt_boxes.device)[scale]
        return base + (anchor * heights + gy) * widths + gx

    def compute_loss(
        self, logits: torch.Tensor, boxes: torch.Tensor, targets: list[dict[str, torch.Tensor]],
        feature_sizes: list[tuple[int, int]],
    ) -> dict[str, torch.Tensor]:
        logits, boxes = logits.float(), boxes.float()       # float32 whatever autocast produced
        box_losses, objectness_losses, class_losses = [], [], []
        for index, target in enumerate(targets):
            gt_boxes = target["boxes"].to(device=boxes.device, dtype=torch.float32)
            gt_labels = target["labels"].to(device=boxes.device, dtype=torch.int64)
            objectness_logits = logits[index, :, 4]
            objectness_target = torch.zeros_like(objectness_logits)
            counted = torch.ones_like(objectness_logits, dtype=torch.bool)
            if gt_boxes.numel() > 0:
                flat = self._assign(gt_boxes, feature_sizes)
                # Two objects on the same anchor and cell: the later one keeps it (as YOLOv3's target build).
                slots, inverse = torch.unique(flat, return_inverse=True)
                owner = torch.full_like(slots, -1).scatter_reduce(
                    0, inverse, torch.arange(len(flat), device=flat.device), reduce="amax"
                )
                gt_boxes, gt_labels = gt_boxes[owner], gt_labels[owner]
                with torch.no_grad():
                    overlaps = box_iou(boxes[index].detach(), gt_boxes).amax(dim=1)
                counted = overlaps <= self.ignore_iou
                counted[slots] = True
                objectness_target[slots] = 1.0
                num_positive = len(slots)
                box_loss = giou_loss(boxes[index, slots], gt_boxes).sum()
                class_target = F.one_hot(gt_labels, self.num_classes).to(logits.dtype)
                class_loss = F.binary_cross_entropy_with_logits(logits[index, slots, 5:], class_target, reduction="sum")
            else:
                num_positive = 0
                box_loss = boxes[index, :0].sum()        # 0, but part of the graph
                class_loss = logits[index, :0].sum()
            objectness_loss = (
                F.binary_cross_entropy_with_logits(objectness_logits, objectness_target, reduction="none") * counted
            ).sum()
            normaliser = max(num_positive, 1)
            box_losses.append(box_loss / normaliser)
            objectness_losses.append(objectness_loss / normaliser)
            class_losses.append(class_loss / normaliser)
        w = self.loss_weights
        return {
            "bbox_regression": torch.stack(box_losses) * w["bbox_regression"],
            "objectness": torch.stack(objectness_losses) * w["objectness"],
            "classification": torch.stack(class_losses) * w["classification"],
        }

    def forward(self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]] | None = None):
        check_images(images)
        if images.shape[-2] % 32 or images.shape[-1] % 32:
            raise ValueError(
                f"YOLOv3 needs a height and width divisible by 32, got {images.shape[-2]}x{images.shape[-1]}"
            )
        if self.training:
            check_targets(targets, images.shape[0], self.num_classes)
        outputs, attention_map = self._raw_outputs(images)
        logits, boxes = self._flatten(outputs)
        if self.training:
            return self.compute_loss(logits, boxes, targets, [tuple(o.shape[2:4]) for o in outputs])
        return self.detect(logits, boxes, attention_map, tuple(images.shape[-2:]))

    @torch.no_grad()
    def detect(
        self, logits: torch.Tensor, boxes: torch.Tensor, attention_map: torch.Tensor | None, image_size: tuple[int, int]
    ) -> list[dict[str, torch.Tensor]]:
        logits = logits.float()
        scores = torch.sigmoid(logits[..., 4:5]) * torch.sigmoid(logits[..., 5:])
        maps = attention_to_input_size(attention_map.float(), image_size) if attention_map is not None else None
        detections = []
        for index in range(logits.shape[0]):
            result = select_detections(
                boxes[index].float(), scores[index], image_size, self.score_thresh, self.nms_thresh,
                self.detections_per_img, self.pre_nms_top_k,
            )
            if maps is not None:
                result["attention"] = maps[index]
            detections.append(result)
        return detections


def build_yolov3(attention: str = "none", num_classes: int = 5, **options) -> YOLOv3:
    """Build the YOLOv3-style detector. Options: ``input_size`` (416), ``position`` ("input" | "stem"),
    ``attention_options``, ``width_mult`` (1.0), ``blocks`` ((1, 2, 8, 8, 4)), ``anchors`` (9 (w, h)
    in input pixels), ``ignore_iou`` (0.5), ``loss_weights``."""
    options.pop("arch", None)
    return YOLOv3(attention=attention, num_classes=num_classes, **options)
