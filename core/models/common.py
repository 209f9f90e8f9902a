"""Small pieces every detector shares: input normalisation, per-image losses, post-processing.

Detectors return per-image losses (shape ``(B,)``) because the over-sampling strategy ranks the
images of a batch by their loss (CONTRACT.md). The helpers here keep that reduction in one place.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchvision.ops import batched_nms, clip_boxes_to_image, generalized_box_iou_loss, sigmoid_focal_loss

# ImageNet statistics: the usual choice, and harmless for a network trained from scratch.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def normalise_image(images: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """``(images - mean) / std`` per channel, for a B x 3 x H x W tensor in [0, 1]."""
    m = images.new_tensor(mean).view(1, -1, 1, 1)
    s = images.new_tensor(std).view(1, -1, 1, 1)
    return (images - m) / s


def check_images(images: torch.Tensor) -> None:
    """Raise ValueError unless images is a floating B x 3 x H x W tensor."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"detector input must be a B x 3 x H x W tensor, got {shape}")
    if not images.is_floating_point():
        raise ValueError(f"detector input must be float RGB in [0, 1], got dtype {images.dtype}")


def check_targets(targets: Sequence[dict] | None, batch_size: int) -> None:
    """Raise ValueError naming the image and the field when a training target is malformed."""
    if targets is None:
        raise ValueError("training mode needs targets: a list of {'boxes', 'labels'} dicts, one per image")
    if len(targets) != batch_size:
        raise ValueError(f"got {len(targets)} targets for {batch_size} images")
    for i, target in enumerate(targets):
        boxes, labels = target.get("boxes"), target.get("labels")
        if boxes is None or labels is None:
            raise ValueError(f"target {i} needs 'boxes' and 'labels', has {sorted(target)}")
        if boxes.dim() != 2 or boxes.shape[-1] != 4 or labels.dim() != 1 or len(labels) != len(boxes):
            raise ValueError(f"target {i}: boxes must be N x 4 and labels N, got {tuple(boxes.shape)} "
                             f"and {tuple(labels.shape)}")
        if len(boxes) and bool(((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])).any()):
            raise ValueError(f"target {i}: boxes must be xyxy with x2 > x1 and y2 > y1: {boxes.tolist()}")


def total_loss(losses: dict[str, torch.Tensor]) -> torch.Tensor:
    """The training loss of a contract loss dict: the sum of the terms, averaged over the batch."""
    return torch.stack([value for value in losses.values()]).sum(dim=0).mean()


def reduce_per_image(values: torch.Tensor, image_index: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Sum ``values[i]`` into slot ``image_index[i]``; returns a ``(batch_size,)`` tensor."""
    out = values.new_zeros(batch_size)
    return out.index_add(0, image_index, values)


def sigmoid_focal_loss_per_image(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25,
                                 gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (Lin et al.) summed over everything but the batch dimension: ``(B,)``."""
    loss = sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction="none")
    return loss.flatten(1).sum(dim=1)


def giou_loss(pred_boxes: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
    """Generalised IoU loss per box pair (xyxy), unreduced."""
    return generalized_box_iou_loss(pred_boxes, target_boxes, reduction="none")


def postprocess_detections(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                           image_size: tuple[int, int], score_thresh: float, nms_thresh: float,
                           detections_per_img: int) -> dict[str, torch.Tensor]:
    """Threshold, clip to the image, class-wise NMS, keep the best ``detections_per_img``.

    boxes: K x 4 xyxy input pixels, scores: K, labels: K (0-based). Returns the contract's dict.
    """
    keep = scores > score_thresh
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    boxes = clip_boxes_to_image(boxes, image_size)
    wide = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, scores, labels = boxes[wide], scores[wide], labels[wide]
    keep = batched_nms(boxes, scores, labels, nms_thresh)[:detections_per_img]
    return {"boxes": boxes[keep], "labels": labels[keep], "scores": scores[keep]}


def box_mask(boxes: torch.Tensor, size: tuple[int, int], stride: tuple[float, float]) -> torch.Tensor:
    """h x w mask, 1 where a cell's centre (input pixels) lies inside one of the N x 4 boxes (x1, y1, x2, y2)."""
    h, w = size
    mask = torch.zeros(h, w, device=boxes.device)
    if len(boxes) == 0:
        return mask
    ys = (torch.arange(h, device=boxes.device, dtype=torch.float32) + 0.5) * stride[0]
    xs = (torch.arange(w, device=boxes.device, dtype=torch.float32) + 0.5) * stride[1]
    inside_x = (xs[None, :] >= boxes[:, 0:1]) & (xs[None, :] <= boxes[:, 2:3])     # N x w
    inside_y = (ys[None, :] >= boxes[:, 1:2]) & (ys[None, :] <= boxes[:, 3:4])     # N x h
    return (inside_y[:, :, None] & inside_x[:, None, :]).any(dim=0).to(mask.dtype)


def attention_box_loss(attention: torch.Tensor, targets: Sequence[dict], input_size: tuple[int, int]) -> torch.Tensor:
    """Per-image class-balanced BCE between an attention map (B x 1 x h x w, in [0, 1]) and the items' boxes.

    Not in the DOAM paper, whose map learns from the detection loss alone: an optional auxiliary
    signal that asks the map to light up every item, occluded ones included, and to stay dark
    elsewhere. Items cover ~1 % of a scan, so the inside and outside cells are averaged apart and
    the two means weigh equally; an image without items has only the outside term.
    """
    b, _, h, w = attention.shape
    stride = (input_size[0] / h, input_size[1] / w)
    masks = torch.stack([box_mask(t["boxes"].to(attention.device, torch.float32), (h, w), stride) for t in targets])
    prob = attention[:, 0].clamp(1e-4, 1 - 1e-4)
    inside = masks.flatten(1)
    outside = 1 - inside
    pos = -(torch.log(prob).flatten(1) * inside).sum(dim=1) / inside.sum(dim=1).clamp(min=1)
    neg = -(torch.log(1 - prob).flatten(1) * outside).sum(dim=1) / outside.sum(dim=1).clamp(min=1)
    has_items = inside.sum(dim=1) > 0
    return torch.where(has_items, (pos + neg) / 2, neg)


def attention_to_input_size(attention: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """B x 1 x h x w map in [0, 1] -> B x H x W at the input size.

    Bilinear interpolation (align_corners=False) is a convex combination of neighbours, so the
    result stays in [0, 1] without a clamp.
    """
    if tuple(attention.shape[-2:]) != tuple(size):
        attention = F.interpolate(attention, size=size, mode="bilinear", align_corners=False)
    return attention[:, 0]


def fuse_conv_bn_for_inference(model: torch.nn.Module) -> torch.nn.Module:
    """Fold every BatchNorm2d that directly follows a Conv2d inside an nn.Sequential into the conv.

    Eval-mode only (the folded conv uses the running statistics); the model is changed in place
    and returned. Saves one pass over every feature map per folded layer, which on this CPU is
    ~10 % of a small detector's time. Do it after loading weights: the state dict loses the BN keys.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval  # noqa: PLC0415

    if model.training:
        raise ValueError("fuse_conv_bn_for_inference needs an eval-mode model (call model.eval() first)")
    for module in list(model.modules()):
        if not isinstance(module, torch.nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in zip(names[:-1], names[1:]):
            conv, norm = module._modules[first], module._modules[second]
            if isinstance(conv, torch.nn.Conv2d) and isinstance(norm, torch.nn.BatchNorm2d):
                module._modules[first] = fuse_conv_bn_eval(conv, norm)
                module._modules[second] = torch.nn.Identity()
    return model
