"""The CPU-fast default detector: plain 3x3 conv backbone, small FPN, centre heat-map head at stride 4.

Designed for the project's 2-core CPU (shared/MACHINE.md): plain 3x3 conv+BN+ReLU layers (they
train far faster here than depthwise ones), a 5-stage 16->128 backbone, a top-down FPN merged
at stride 4 and a TTFNet-style head (Liu et al., "Training-Time-Friendly Network"):

- a per-class centre heat map, target = an elliptical Gaussian per box (sigma proportional to the
  box's width and height), penalty-reduced focal loss as CenterNet;
- at every cell of the Gaussian's central area, a box regression (distances to the four sides,
  in input pixels) trained with GIoU, weighted by the Gaussian.
Every cell near an object is a training sample, which is what makes this head learn small,
thin objects quickly (cutters are ~45-120 px long at the default 512 x 384 input).

Attention plugs in at ``position="input"`` (on the image, as the reference code) or ``"stem"``
(after the first stride-2 conv, as the paper's text, the default); DOAM defaults to doam.LITE_FORM
here, since the code's full-width module would cost 2.6x this whole detector's FLOPs at the stem
(7x at the input). Measured trade-offs are in the project report / model card.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from core.models.attention import build_attention
from core.models.common import (attention_box_loss, attention_to_input_size, check_images, check_targets, giou_loss,
                                normalise_image, postprocess_detections)
from core.models.doam import LITE_FORM

POSITIONS: tuple[str, ...] = ("input", "stem")
OUTPUT_STRIDE = 4
# TTFNet's alpha = beta = 0.54: Gaussian radius and regression area as a fraction of the box.
GAUSSIAN_ALPHA = 0.54
REGRESSION_BETA = 0.54
# Regressed distances are softplus(raw) * BOX_SCALE input pixels (starts near 11 px, never negative).
BOX_SCALE = 16.0
BOX_LOSS_WEIGHT = 5.0


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def local_max_3x3(x: torch.Tensor) -> torch.Tensor:
    """3x3 max filter (stride 1, borders replicate) as two separable passes of elementwise maxima.

    Equal to max_pool2d(x, 3, 1, 1) but ~10x faster on this CPU, where max_pool2d takes the slow
    indexed path for a handful of channels.
    """
    padded = F.pad(x, (1, 1, 0, 0), mode="replicate")
    rows = torch.maximum(torch.maximum(padded[..., :-2], padded[..., 1:-1]), padded[..., 2:])
    padded = F.pad(rows, (0, 0, 1, 1), mode="replicate")
    return torch.maximum(torch.maximum(padded[..., :-2, :], padded[..., 1:-1, :]), padded[..., 2:, :])


def default_attention_options(attention: str) -> dict:
    """Options this detector gives each attention block unless the caller overrides them."""
    if attention == "doam":
        return dict(LITE_FORM)
    return {}


class FastDetector(nn.Module):
    """The CPU-fast default (see the module docstring); contract in CONTRACT.md.

    Options: ``input_size`` (H, W), multiples of 32, default (384, 512) ~ 0.42 x a 1225 x 954 image;
    ``widths`` of the 5 backbone stages; ``neck_channels`` (strides 8-32) and ``head_channels``
    (stride 4); ``position`` of the attention ("stem" default, or "input"); ``attention_options``
    refine default_attention_options(attention); ``topk`` heat-map peaks decoded per image;
    ``attention_loss_weight`` > 0 adds common.attention_box_loss on DOAM's map to the training losses
    (our addition, not the paper's: reports/training_recipes.md says what it did).
    """

    def __init__(self, attention: str = "doam", num_classes: int = 5, *, input_size: Sequence[int] = (384, 512),
                 widths: Sequence[int] = (16, 32, 64, 96, 128), neck_channels: int = 48, head_channels: int = 32,
                 position: str = "stem", attention_options: dict | None = None, topk: int = 100,
                 attention_loss_weight: float = 0.0) -> None:
        super().__init__()
        if position not in POSITIONS:
            raise ValueError(f"position must be one of {', '.join(POSITIONS)}, got {position!r}")
        input_size = (int(input_size[0]), int(input_size[1]))
        if input_size[0] % 32 or input_size[1] % 32:
            raise ValueError(f"input_size must be multiples of 32 (the backbone's stride), got {input_size}")
        if len(widths) != 5:
            raise ValueError(f"widths must name the 5 backbone stages, got {list(widths)}")
        # The term needs DOAM's map: no other attention makes one, nor DOAM's "edge_only" ablation.
        makes_map = attention == "doam" and dict(attention_options or {}).get("ablation", "full") != "edge_only"
        if attention_loss_weight < 0 or (attention_loss_weight > 0 and not makes_map):
            raise ValueError(f"attention_loss_weight must be >= 0, and > 0 only with DOAM's map; "
                             f"got {attention_loss_weight} with attention {attention!r} {attention_options or ''}")
        self.attention_loss_weight = float(attention_loss_weight)
        # The caller's options refine this detector's defaults (e.g. {"ablation": "eg"} keeps LITE_FORM's widths).
        attention_options = {key: list(value) if isinstance(value, tuple) else value
                             for key, value in {**default_attention_options(attention), **dict(attention_options or {})}.items()}
        self.num_classes = num_classes
        self.input_size = input_size
        self.position = position
        self.topk = topk
        self.score_thresh = 0.01
        self.nms_thresh = 0.45
        self.detections_per_img = 200
        self.config = {"arch": "fast", "attention": attention, "num_classes": num_classes,
                       "input_size": list(input_size), "widths": list(widths), "neck_channels": neck_channels,
                       "head_channels": head_channels, "position": position,
                       "attention_options": attention_options, "topk": topk}
        if attention_loss_weight:   # only when used, so model files without it keep their exact config
            self.config["attention_loss_weight"] = float(attention_loss_weight)

        w1, w2, w3, w4, w5 = (int(w) for w in widths)
        if position == "input":
            self.attention = build_attention(attention, 3, **attention_options)
            self.stem = conv_bn_relu(self.attention.out_channels, w1, stride=2)
            stage2_in = w1
        else:
            # DOAM appends an edge channel; the stem gives one channel less so that stage 2 still
            # sees w1 channels (a 17-channel input runs 2x slower than 16 here: oneDNN blocks by 8).
            stem_out = w1 - 1 if attention == "doam" else w1
            self.stem = conv_bn_relu(3, stem_out, stride=2)
            self.attention = build_attention(attention, stem_out, **attention_options)
            stage2_in = self.attention.out_channels
        self.stage2 = nn.Sequential(conv_bn_relu(stage2_in, w2, 2), conv_bn_relu(w2, w2))   # stride 4
        self.stage3 = nn.Sequential(conv_bn_relu(w2, w3, 2), conv_bn_relu(w3, w3))         # stride 8
        self.stage4 = nn.Sequential(conv_bn_relu(w3, w4, 2), conv_bn_relu(w4, w4))         # stride 16
        self.stage5 = nn.Sequential(conv_bn_relu(w4, w5, 2), conv_bn_relu(w5, w5))         # stride 32

        # Stride 4 holds 16x the cells of stride 16: the neck narrows to head_channels before it
        # gets there, and one 3x3 conv at stride 4 serves both outputs (a third of the FLOPs).
        self.lateral = nn.ModuleList(nn.Conv2d(c, neck_channels, 1) for c in (w3, w4, w5))
        self.lateral4 = nn.Conv2d(w2, head_channels, 1)
        self.smooth8 = conv_bn_relu(neck_channels, neck_channels)
        self.reduce8 = nn.Conv2d(neck_channels, head_channels, 1)
        self.head = conv_bn_relu(head_channels, head_channels)
        self.heatmap = nn.Conv2d(head_channels, num_classes, 1)
        self.box = nn.Conv2d(head_channels, 4, 1)
        # Start every class at a 10 % prior (CenterNet's -2.19) so the focal loss is not swamped early.
        nn.init.constant_(self.heatmap.bias, -math.log((1 - 0.1) / 0.1))

    # ---------------------------------------------------------------- network
    def forward_raw(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Heat-map logits (B x C x H/4 x W/4), box distances (B x 4 x H/4 x W/4, input pixels, order
        left, top, right, bottom) and the attention map at the plug point (or None): what to export."""
        x = normalise_image(images)
        if self.position == "input":
            x, attention = self.attention(x, image=images)
            x = self.stem(x)
        else:
            x, attention = self.attention(self.stem(x), image=images)
        c2 = self.stage2(x)
        c3 = self.stage3(c2)
        c4 = self.stage4(c3)
        c5 = self.stage5(c4)
        l3, l4, l5 = (lateral(c) for lateral, c in zip(self.lateral, (c3, c4, c5)))
        p4 = l4 + F.interpolate(l5, size=l4.shape[-2:], mode="nearest")
        p3 = self.reduce8(self.smooth8(l3 + F.interpolate(p4, size=l3.shape[-2:], mode="nearest")))
        head = self.head(self.lateral4(c2) + F.interpolate(p3, size=c2.shape[-2:], mode="nearest"))
        return self.heatmap(head), F.softplus(self.box(head)) * BOX_SCALE, attention

    def forward(self, images: torch.Tensor, targets: list[dict] | None = None):
        check_images(images)
        heat_logits, distances, attention = self.forward_raw(images)
        if self.training:
            check_targets(targets, images.shape[0])
            losses = self.loss(heat_logits, distances, targets)
            if self.attention_loss_weight and attention is not None:
                losses["attention"] = self.attention_loss_weight * attention_box_loss(
                    attention, targets, tuple(images.shape[-2:]))
            return losses
        return self.decode(heat_logits, distances, attention, tuple(images.shape[-2:]))

    raw_output_names: tuple[str, ...] = ("heatmap_logits", "box_distances", "attention")

    def decode_raw(self, raw: tuple, image_size: tuple[int, int]) -> list[dict[str, torch.Tensor]]:
        """``decode`` for the tuple ``forward_raw`` returns (the export contract, CONTRACT.md)."""
        return self.decode(*raw, image_size)

    # ---------------------------------------------------------------- training
    def _cell_centres(self, h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * OUTPUT_STRIDE
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * OUTPUT_STRIDE
        return ys, xs

    def build_targets(self, boxes: torch.Tensor, labels: torch.Tensor, h: int, w: int
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Heat map (C x h x w), per-cell box (h x w x 4) and regression weight (h x w) for one image."""
        device = boxes.device
        heat = torch.zeros(self.num_classes, h, w, device=device)
        target_boxes = torch.zeros(h, w, 4, device=device)
        weight = torch.zeros(h, w, device=device)
        if len(boxes) == 0:
            return heat, target_boxes, weight
        ys, xs = self._cell_centres(h, w, device)
        widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        centre_x, centre_y = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        # The peak sits on the cell that holds the box centre, so every object has a cell equal to 1.
        peak_x = (torch.floor(centre_x / OUTPUT_STRIDE) + 0.5).clamp(max=w - 0.5) * OUTPUT_STRIDE
        peak_y = (torch.floor(centre_y / OUTPUT_STRIDE) + 0.5).clamp(max=h - 0.5) * OUTPUT_STRIDE
        sigma_x = (GAUSSIAN_ALPHA * widths / 6).clamp(min=OUTPUT_STRIDE / 2)
        sigma_y = (GAUSSIAN_ALPHA * heights / 6).clamp(min=OUTPUT_STRIDE / 2)
        dx = (xs[None, None, :] - peak_x[:, None, None]) / sigma_x[:, None, None]
        dy = (ys[None, :, None] - peak_y[:, None, None]) / sigma_y[:, None, None]
        gaussians = torch.exp(-(dx.pow(2) + dy.pow(2)) / 2)                      # N x h x w
        # Overlapping objects of one class: the heat map keeps the larger Gaussian at each cell.
        heat = heat.flatten(1).scatter_reduce(0, labels[:, None].expand(-1, h * w), gaussians.flatten(1),
                                              reduce="amax").view(self.num_classes, h, w)

        # Regression samples: cells inside the central beta-shrunk box; the smallest box wins overlaps.
        half_w, half_h = REGRESSION_BETA * widths / 2, REGRESSION_BETA * heights / 2
        inside = ((xs[None, None, :] - centre_x[:, None, None]).abs() <= half_w[:, None, None].clamp(min=OUTPUT_STRIDE / 2)) & \
                 ((ys[None, :, None] - centre_y[:, None, None]).abs() <= half_h[:, None, None].clamp(min=OUTPUT_STRIDE / 2))
        areas = (widths * heights)[:, None, None].expand_as(gaussians)
        areas = torch.where(inside, areas, torch.full_like(areas, float("inf")))
        best_area, owner = areas.min(dim=0)                                      # h x w
        positive = torch.isfinite(best_area)
        target_boxes = boxes[owner]                                              # h x w x 4
        # TTFNet weights each box's samples by log(area) so large and small boxes count comparably.
        box_weight = torch.log(widths * heights).clamp(min=1.0)
        weight = torch.where(positive, gaussians.gather(0, owner[None])[0] * box_weight[owner], weight)
        return heat, target_boxes, weight

    def loss(self, heat_logits: torch.Tensor, distances: torch.Tensor, targets: list[dict]) -> dict[str, torch.Tensor]:
        """Per-image losses ``{"heatmap": (B,), "box": (B,)}`` (CONTRACT.md)."""
        b, _, h, w = heat_logits.shape
        built = [self.build_targets(t["boxes"].to(heat_logits.device, torch.float32),
                                    t["labels"].to(heat_logits.device, torch.long), h, w) for t in targets]
        heat_target = torch.stack([item[0] for item in built])
        box_target = torch.stack([item[1] for item in built])
        weight = torch.stack([item[2] for item in built])

        # CenterNet's penalty-reduced focal loss, normalised by the number of objects per image.
        prob = torch.sigmoid(heat_logits).clamp(1e-4, 1 - 1e-4)
        is_peak = heat_target.eq(1.0)
        pos_loss = -torch.log(prob) * (1 - prob).pow(2)
        neg_loss = -torch.log(1 - prob) * prob.pow(2) * (1 - heat_target).pow(4)
        heat_loss = torch.where(is_peak, pos_loss, neg_loss).flatten(1).sum(dim=1)
        num_objects = torch.tensor([max(len(t["boxes"]), 1) for t in targets], device=heat_logits.device)
        heat_loss = heat_loss / num_objects

        ys, xs = self._cell_centres(h, w, heat_logits.device)
        grid_x, grid_y = xs[None, None, :].expand(b, h, w), ys[None, :, None].expand(b, h, w)
        l, t, r, btm = distances.unbind(dim=1)
        pred_boxes = torch.stack([grid_x - l, grid_y - t, grid_x + r, grid_y + btm], dim=-1)
        positive = weight > 0
        box_loss = heat_logits.new_zeros(b)
        if bool(positive.any()):
            per_cell = giou_loss(pred_boxes[positive], box_target[positive]) * weight[positive]
            image_index = positive.nonzero()[:, 0]
            summed = box_loss.index_add(0, image_index, per_cell)
            total_weight = box_loss.index_add(0, image_index, weight[positive])
            box_loss = summed / total_weight.clamp(min=1e-6)
        return {"heatmap": heat_loss, "box": BOX_LOSS_WEIGHT * box_loss}

    # ---------------------------------------------------------------- inference
    @torch.no_grad()
    def decode(self, heat_logits: torch.Tensor, distances: torch.Tensor, attention: torch.Tensor | None,
               image_size: tuple[int, int]) -> list[dict[str, torch.Tensor]]:
        b, c, h, w = heat_logits.shape
        heat = torch.sigmoid(heat_logits)
        # Local maxima of the heat map are the object centres (CenterNet's 3x3 max-pool "NMS").
        peaks = heat * (local_max_3x3(heat) == heat)
        k = min(self.topk, c * h * w)
        scores, index = peaks.flatten(1).topk(k, dim=1)
        labels = index // (h * w)
        cell = index % (h * w)
        cy = ((cell // w).float() + 0.5) * OUTPUT_STRIDE
        cx = ((cell % w).float() + 0.5) * OUTPUT_STRIDE
        dist = distances.flatten(2).gather(2, cell[:, None, :].expand(b, 4, k))   # B x 4 x K
        boxes = torch.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], dim=-1)
        maps = attention_to_input_size(attention, image_size) if attention is not None else None
        results = []
        for i in range(b):
            result = postprocess_detections(boxes[i], scores[i], labels[i], image_size, self.score_thresh,
                                            self.nms_thresh, self.detections_per_img)
            if maps is not None:
                result["attention"] = maps[i]
            results.append(result)
        return results


def build_fast(attention: str = "doam", num_classes: int = 5, **options) -> FastDetector:
    """``core.models.build.build_detector("fast", ...)``; options: see FastDetector."""
    return FastDetector(attention, num_classes, **options)
