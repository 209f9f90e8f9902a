"""SSD300 with a VGG16 base, as in the paper's reference code, with a pluggable attention block.

Architecture (PAPER.md): VGG16 ``[64,64,M,128,128,M,256,256,256,C,512,512,512,M,512,512,512]``
(C = ceil-mode pool), pool5 3x3/1, conv6 3x3 dilation 6 (1024), conv7 1x1 (1024), an L2Norm
(learnable scale, 20 at start) on conv4_3, the four extra stages, and a 3x3 conv head on six
sources (38, 19, 10, 5, 3, 1) with 4, 6, 6, 6, 4, 4 default boxes per cell: 8,732 priors.

Reused from torchvision: ``DefaultBoxGenerator`` (given the reference's min sizes as its scales,
and with the reference's clamping of the centres added, it reproduces the reference PriorBox: the
same centres ``(j + 0.5) * step / 300``, the same
``[s, s], [s', s'], [s*sqrt(ar), s/sqrt(ar)], [s/sqrt(ar), s*sqrt(ar)]`` order with
``s' = sqrt(s_k * s_{k+1})`` and ``s_{k+1}`` = the reference max size, and the same location-major
layout; tests/test_ssd.py checks all 8,732 against the reference formula), ``SSDHead`` (same
permute/flatten order as the reference), ``SSDMatcher`` (IoU 0.5 plus each ground truth's best
prior, as the reference ``match``) and ``BoxCoder`` with weights (10, 10, 5, 5) = variances
(0.1, 0.2).

MultiBox loss per image: smooth L1 over the positives plus cross-entropy over the positives and
the 3x as many hardest negatives, each divided by the image's own number of positives (the
reference divides the batch sums by the batch's positives; for OPIXray, one item per image almost
always, the batch mean is the same). ``min_negatives`` (default 3) keeps mining that many hard
negatives in images without any object, where the reference mines none and so learns nothing
from an empty bag; images with objects are unaffected (3 x positives >= 3).

Attention: ``position="input"`` (reference code) runs the block on the [0, 1] RGB image and conv1_1
takes ``block.out_channels`` (4 for DOAM); ``position="stem"`` (paper text) runs it after pool1
(64 channels at 150x150) and conv2_1 takes ``block.out_channels``. No pretrained weights: VGG
convs use Kaiming init, extras and head Xavier (as the reference initialises its added layers).
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection._utils import BoxCoder, SSDMatcher
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.ssd import SSDHead
from torchvision.ops import box_convert, box_iou

from core.models.common import attention_to_input_size, check_images
from core.models.detection_utils import (
    build_plugged_attention,
    check_position,
    check_targets,
    json_ready,
    normalise_rgb_channels,
    select_detections,
)

log = logging.getLogger(__name__)

INPUT_SIZE = 300
VGG16_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "C", 512, 512, 512, "M", 512, 512, 512)
# (out_channels, kernel, stride, padding) for the extra layers; a ReLU follows each, every second one is a source.
EXTRAS_CFG: tuple[tuple[int, int, int, int], ...] = (
    (256, 1, 1, 0), (512, 3, 2, 1),
    (128, 1, 1, 0), (256, 3, 2, 1),
    (128, 1, 1, 0), (256, 3, 1, 0),
    (128, 1, 1, 0), (256, 3, 1, 0),
)
FEATURE_MAPS = (38, 19, 10, 5, 3, 1)
STEPS = (8, 16, 32, 64, 100, 300)
MIN_SIZES = (30, 60, 111, 162, 213, 264)
MAX_SIZES = (60, 111, 162, 213, 264, 315)
ASPECT_RATIOS = ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,))
SOURCE_CHANNELS = (512, 1024, 512, 256, 256, 256)
VARIANCES = (0.1, 0.2)
NUM_PRIORS = 8732


class L2Norm(nn.Module):
    """Channel-wise L2 normalisation with a learnable per-channel scale (ParseNet; SSD's conv4_3)."""

    def __init__(self, channels: int, scale: float = 20.0, eps: float = 1e-10) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.full((channels,), scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = x.pow(2).sum(dim=1, keepdim=True).sqrt() + self.eps
        return x / norm * self.weight.view(1, -1, 1, 1)


def _vgg_stage(cfg: tuple[int | str, ...], in_channels: int, batch_norm: bool = False) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for value in cfg:
        if value == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        elif value == "C":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
        else:
            layers.append(nn.Conv2d(in_channels, int(value), kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(int(value)))
            layers.append(nn.ReLU(inplace=True))
            in_channels = int(value)
    return layers


def reference_priors_xyxy() -> torch.Tensor:
    """The 8,732 SSD300 priors as ``P x 4`` xyxy in input pixels, via torchvision's DefaultBoxGenerator.

    The reference's ``max_size[k]`` equals ``min_size[k + 1]`` (and 315 after the last), so its
    ``sqrt(min * max)`` box is torchvision's ``s'_k = sqrt(scale_k * scale_{k+1})`` with the scales
    below. One difference remains: the reference clamps the whole (cx, cy, w, h) to [0, 1], while
    torchvision's ``clip`` clamps only (w, h). With step 32 on the 10x10 map the last row and column
    have centres at 9.5 * 32 / 300 = 1.013, which the reference moves to 1.0; so the centres are
    clamped here after generation (114 priors change; tests/test_ssd.py checks all 8,732).
    """
    scales = [s / INPUT_SIZE for s in MIN_SIZES] + [MAX_SIZES[-1] / INPUT_SIZE]
    generator = DefaultBoxGenerator([list(r) for r in ASPECT_RATIOS], scales=scales, steps=list(STEPS), clip=True)
    size = INPUT_SIZE
    image_list = ImageList(torch.zeros(1, 3, size, size), [(size, size)])
    feature_maps = [torch.zeros(1, 1, f, f) for f in FEATURE_MAPS]
    priors_xyxy = generator(image_list, feature_maps)[0]
    priors_cxcywh = (box_convert(priors_xyxy, "xyxy", "cxcywh") / size).clamp(0.0, 1.0)
    return box_convert(priors_cxcywh, "cxcywh", "xyxy") * size


class SSD300(nn.Module):
    """SSD300-VGG16 following core/models/CONTRACT.md."""

    def __init__(
        self,
        attention: str = "none",
        num_classes: int = 5,
        position: str = "input",
        attention_options: dict | None = None,
        negative_ratio: int = 3,
        min_negatives: int = 3,
        match_iou: float = 0.5,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.position = check_position(position)
        self.negative_ratio = negative_ratio
        self.min_negatives = min_negatives
        self.input_size: tuple[int, int] = (INPUT_SIZE, INPUT_SIZE)
        self.score_thresh = 0.01
        self.nms_thresh = 0.45
        self.detections_per_img = 200
        self.pre_nms_top_k = 200
        self.config = json_ready({
            "arch": "ssd",
            "attention": attention,
            "num_classes": num_classes,
            "position": position,
            "attention_options": dict(attention_options or {}),
            "negative_ratio": negative_ratio,
            "min_negatives": min_negatives,
            "match_iou": match_iou,
            "batch_norm": batch_norm,
        })

        stem_cfg, body_cfg = VGG16_CFG[:3], VGG16_CFG[3:13]     # conv1_x + pool1 | conv2_1 .. conv4_3
        if position == "input":
            self.attention = build_plugged_attention(attention, 3, attention_options)
            stem_in, body_in = self.attention.out_channels, 64
        else:
            self.attention = build_plugged_attention(attention, 64, attention_options)
            stem_in, body_in = 3, self.attention.out_channels
        self.stem = nn.Sequential(*_vgg_stage(stem_cfg, stem_in, batch_norm))
        self.to_conv4_3 = nn.Sequential(*_vgg_stage(body_cfg, body_in, batch_norm))
        self.to_fc7 = nn.Sequential(
            *_vgg_stage(VGG16_CFG[13:], 512, batch_norm),                       # pool4, conv5_x
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1),                   # pool5
            nn.Conv2d(512, 1024, kernel_size=3, padding=6, dilation=6),         # conv6
            nn.ReLU(inplace=True),
            nn.Conv2d(1024, 1024, kernel_size=1),                               # conv7
            nn.ReLU(inplace=True),
        )
        self.l2norm = L2Norm(512, scale=20.0)
        extras: list[nn.Module] = []
        in_channels = 1024
        for out_channels, kernel, stride, padding in EXTRAS_CFG:
            extras.append(nn.Conv2d(in_channels, out_channels, kernel_size=kernel, stride=stride, padding=padding))
            in_channels = out_channels
        self.extras = nn.ModuleList(extras)
        num_anchors = [2 + 2 * len(r) for r in ASPECT_RATIOS]
        # Index 0 of the classifier is the background, as in the reference; outputs map back to 0-based.
        self.head = SSDHead(list(SOURCE_CHANNELS), num_anchors, num_classes + 1)

        self.register_buffer("priors", reference_priors_xyxy(), persistent=False)
        self.box_coder = BoxCoder(weights=(1 / VARIANCES[0], 1 / VARIANCES[0], 1 / VARIANCES[1], 1 / VARIANCES[1]))
        self.matcher = SSDMatcher(match_iou)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in (self.stem, self.to_conv4_3, self.to_fc7):
            for layer in module.modules():
                if isinstance(layer, nn.Conv2d):
                    nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(layer.bias)
        for layer in self.extras:
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        # SSDHead initialises itself with Xavier / zero bias.

    def _sources(self, images: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        if self.position == "input":
            x, attention_map = self.attention(images)
            x = self.stem(normalise_rgb_channels(x))
        else:
            x = self.stem(normalise_rgb_channels(images))
            x, attention_map = self.attention(x, image=images)
        x = self.to_conv4_3(x)
        sources = [self.l2norm(x)]
        x = self.to_fc7(x)
        sources.append(x)
        for index, layer in enumerate(self.extras):
            x = F.relu(layer(x), inplace=True)
            if index % 2 == 1:
                sources.append(x)
        return sources, attention_map

    def forward(self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]] | None = None):
        check_images(images)
        if tuple(images.shape[-2:]) != self.input_size:
            raise ValueError(
                f"SSD300 takes {self.input_size[0]}x{self.input_size[1]} images (its priors are fixed), "
                f"got {images.shape[-2]}x{images.shape[-1]}; resize to model.input_size first"
            )
        if self.training:
            check_targets(targets, images.shape[0], self.num_classes)
        sources, attention_map = self._sources(images)
        outputs = self.head(sources)
        if self.training:
            return self.multibox_loss(outputs["bbox_regression"], outputs["cls_logits"], targets)
        return self.detect(outputs["bbox_regression"], outputs["cls_logits"], attention_map)

    def multibox_loss(
        self, box_regression: torch.Tensor, class_logits: torch.Tensor, targets: list[dict[str, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        """Per-image MultiBox loss: ``{"bbox_regression": (B,), "classification": (B,)}``."""
        # float32 whatever autocast produced: matching, log-softmax and the sums need the range
        box_regression, class_logits = box_regression.float(), class_logits.float()
        num_priors = self.priors.shape[0]
        box_losses, class_losses = [], []
        for index, target in enumerate(targets):
            gt_boxes = target["boxes"].to(device=box_regression.device, dtype=torch.float32)
            gt_labels = target["labels"].to(device=box_regression.device, dtype=torch.int64)
            if gt_boxes.numel() > 0:
                matched = self.matcher(box_iou(gt_boxes, self.priors))
            else:
                matched = torch.full((num_priors,), -1, dtype=torch.int64, device=box_regression.device)
            positive = matched >= 0
            num_positive = int(positive.sum())
            prior_labels = torch.zeros(num_priors, dtype=torch.int64, device=box_regression.device)
            prior_labels[positive] = gt_labels[matched[positive]] + 1

            if num_positive > 0:
                regression_targets = self.box_coder.encode_single(gt_boxes[matched[positive]], self.priors[positive])
                box_loss = F.smooth_l1_loss(box_regression[index][positive], regression_targets, reduction="sum")
            else:
                box_loss = box_regression[index, :0].sum()   # 0, but part of the graph (DDP wants every output used)

            class_loss_per_prior = F.cross_entropy(class_logits[index], prior_labels, reduction="none")
            num_negative = min(max(self.negative_ratio * num_positive, self.min_negatives), num_priors - num_positive)
            mining = class_loss_per_prior.detach().clone()
            mining[positive] = -float("inf")
            hard_negatives = mining.topk(num_negative).indices   # topk(0) is empty: no negatives mined
            class_loss = class_loss_per_prior[positive].sum() + class_loss_per_prior[hard_negatives].sum()

            normaliser = max(num_positive, 1)
            box_losses.append(box_loss / normaliser)
            class_losses.append(class_loss / normaliser)
        return {"bbox_regression": torch.stack(box_losses), "classification": torch.stack(class_losses)}

    @torch.no_grad()
    def detect(
        self, box_regression: torch.Tensor, class_logits: torch.Tensor, attention_map: torch.Tensor | None
    ) -> list[dict[str, torch.Tensor]]:
        scores = F.softmax(class_logits.float(), dim=-1)[..., 1:]   # drop the background column
        maps = attention_to_input_size(attention_map.float(), self.input_size) if attention_map is not None else None
        detections = []
        for index in range(box_regression.shape[0]):
            boxes = self.box_coder.decode_single(box_regression[index].float(), self.priors)
            result = select_detections(
                boxes, scores[index], self.input_size, self.score_thresh, self.nms_thresh,
                self.detections_per_img, self.pre_nms_top_k,
            )
            if maps is not None:
                result["attention"] = maps[index]
            detections.append(result)
        return detections


def build_ssd(attention: str = "none", num_classes: int = 5, **options) -> SSD300:
    """Build SSD300-VGG16. Options: ``position`` ("input" | "stem"), ``attention_options`` (dict for
    build_attention), ``negative_ratio`` (3), ``min_negatives`` (3), ``match_iou`` (0.5), ``batch_norm``
    (False, as the reference; True adds BatchNorm after every VGG conv, which training from scratch
    without the reference's pretrained VGG may need)."""
    options.pop("arch", None)
    return SSD300(attention=attention, num_classes=num_classes, **options)
