"""SSD300-VGG16 (core/models/ssd.py): reference priors, shapes at 300, per-image MultiBox loss, contract."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

from core.models.build import build_detector
from core.models.ssd import NUM_PRIORS, build_ssd, reference_priors_xyxy

torch.set_num_threads(1)

NUM_CLASSES = 5


def _reference_priors_cxcywh() -> torch.Tensor:
    """The reference PriorBox, written out from its definition (PAPER.md), independent of torchvision."""
    feature_maps, steps = (38, 19, 10, 5, 3, 1), (8, 16, 32, 64, 100, 300)
    min_sizes, max_sizes = (30, 60, 111, 162, 213, 264), (60, 111, 162, 213, 264, 315)
    aspect_ratios = ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,))
    priors = []
    for k, f in enumerate(feature_maps):
        for i, j in itertools.product(range(f), repeat=2):
            f_k = 300 / steps[k]
            cx, cy = (j + 0.5) / f_k, (i + 0.5) / f_k
            s_k = min_sizes[k] / 300
            priors.append([cx, cy, s_k, s_k])
            s_prime = math.sqrt(s_k * (max_sizes[k] / 300))
            priors.append([cx, cy, s_prime, s_prime])
            for ar in aspect_ratios[k]:
                priors.append([cx, cy, s_k * math.sqrt(ar), s_k / math.sqrt(ar)])
                priors.append([cx, cy, s_k / math.sqrt(ar), s_k * math.sqrt(ar)])
    return torch.tensor(priors, dtype=torch.float64).clamp(0, 1)


def _targets() -> list[dict[str, torch.Tensor]]:
    return [
        {"boxes": torch.tensor([[40.0, 60.0, 150.0, 110.0], [200.0, 30.0, 260.0, 200.0]]),
         "labels": torch.tensor([1, 4])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},   # an empty bag
    ]


def _one_box(box: list[float], label: int) -> dict[str, torch.Tensor]:
    return {"boxes": torch.tensor([box]), "labels": torch.tensor([label])}


def _shapes(model: torch.nn.Module) -> dict[str, torch.Size]:
    return {key: value.shape for key, value in model.state_dict().items()}


def test_priors_reproduce_the_reference_prior_box_exactly():
    reference = _reference_priors_cxcywh()
    assert reference.shape == (NUM_PRIORS, 4) == (8732, 4)
    centres, sizes = reference[:, :2], reference[:, 2:]
    expected_xyxy = torch.cat([centres - sizes / 2, centres + sizes / 2], dim=1) * 300
    priors = reference_priors_xyxy()
    assert priors.shape == (8732, 4)
    torch.testing.assert_close(priors.double(), expected_xyxy, atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def ssd_none():
    torch.manual_seed(0)
    return build_ssd("none", num_classes=NUM_CLASSES)


@pytest.fixture(scope="module")
def ssd_doam():
    torch.manual_seed(0)
    return build_ssd("doam", num_classes=NUM_CLASSES)


def test_source_shapes_and_head_outputs_at_300(ssd_none):
    ssd_none.eval()
    with torch.no_grad():
        sources, attention_map = ssd_none._sources(torch.rand(1, 3, 300, 300))
        outputs = ssd_none.head(sources)
    assert [tuple(s.shape[1:]) for s in sources] == [
        (512, 38, 38), (1024, 19, 19), (512, 10, 10), (256, 5, 5), (256, 3, 3), (256, 1, 1)
    ]
    assert attention_map is None
    assert outputs["bbox_regression"].shape == (1, 8732, 4)
    assert outputs["cls_logits"].shape == (1, 8732, NUM_CLASSES + 1)   # + background
    assert ssd_none.input_size == (300, 300)
    assert (ssd_none.score_thresh, ssd_none.nms_thresh, ssd_none.detections_per_img) == (0.01, 0.45, 200)


@pytest.mark.parametrize("fixture", ["ssd_none", "ssd_doam"])
def test_train_step_and_predict_follow_the_contract(fixture, request):
    model = request.getfixturevalue(fixture)
    first_conv = model.stem[0]
    assert first_conv.in_channels == model.attention.out_channels == (4 if fixture == "ssd_doam" else 3)

    model.train()
    model.zero_grad()
    # Two images (one an empty bag) for the plain model; one for DOAM, to keep the file's run time
    # down on a shared CPU - the empty-image path does not depend on the attention block.
    batch = 2 if fixture == "ssd_none" else 1
    losses = model(torch.rand(batch, 3, 300, 300), _targets()[:batch])
    assert set(losses) == {"bbox_regression", "classification"}
    for value in losses.values():
        assert value.shape == (batch,) and torch.isfinite(value).all()
    if batch == 2:
        assert losses["bbox_regression"][1] == 0             # no object: no box loss
        assert losses["classification"][1] > 0               # but hard negatives are still mined
    torch.stack(list(losses.values())).sum(0).mean().backward()
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0

    model.eval()
    model.score_thresh = 0.0
    try:
        with torch.no_grad():
            detections = model(torch.rand(1, 3, 300, 300))
        assert len(detections) == 1
        for detection in detections:
            boxes, labels, scores = detection["boxes"], detection["labels"], detection["scores"]
            assert 0 < len(boxes) <= 200 and boxes.shape[1] == 4
            assert labels.dtype == torch.int64 and labels.min() >= 0 and labels.max() < NUM_CLASSES
            assert boxes.min() >= 0 and boxes.max() <= 300
            assert torch.all(scores[:-1] >= scores[1:])
            if fixture == "ssd_doam":
                assert detection["attention"].shape == (300, 300)
                assert 0 <= detection["attention"].min() and detection["attention"].max() <= 1
            else:
                assert "attention" not in detection
        model.score_thresh = 1.01                          # nothing can pass
        with torch.no_grad():
            empty = model(torch.rand(1, 3, 300, 300))
        assert empty[0]["boxes"].shape == (0, 4) and empty[0]["labels"].shape == (0,)
    finally:
        model.score_thresh = 0.01


def test_multibox_loss_is_per_image_with_three_to_one_hard_negatives(ssd_none):
    """The classification loss is CE over the positives plus the 3x hardest negatives, / positives."""
    torch.manual_seed(1)
    logits = torch.randn(2, 8732, NUM_CLASSES + 1)
    regression = torch.randn(2, 8732, 4)
    targets = _targets()
    losses = ssd_none.multibox_loss(regression, logits, targets)

    matched = ssd_none.matcher(box_iou(targets[0]["boxes"], ssd_none.priors))
    positive = matched >= 0
    num_positive = int(positive.sum())
    labels = torch.zeros(8732, dtype=torch.int64)
    labels[positive] = targets[0]["labels"][matched[positive]] + 1
    ce = F.cross_entropy(logits[0], labels, reduction="none")
    negatives = ce[~positive].sort(descending=True).values[: 3 * num_positive]
    expected = (ce[positive].sum() + negatives.sum()) / num_positive
    torch.testing.assert_close(losses["classification"][0], expected)

    # the image's loss does not depend on the rest of the batch
    alone = ssd_none.multibox_loss(regression[:1], logits[:1], targets[:1])
    torch.testing.assert_close(alone["classification"][0], losses["classification"][0])
    torch.testing.assert_close(alone["bbox_regression"][0], losses["bbox_regression"][0])

    # the reference's behaviour on an empty image (no negatives mined) is available
    ssd_none.min_negatives = 0
    try:
        reference = ssd_none.multibox_loss(regression, logits, targets)
    finally:
        ssd_none.min_negatives = 3
    assert reference["classification"][1] == 0


def test_attention_at_the_stem_after_pool1():
    torch.manual_seed(0)
    model = build_ssd("doam", position="stem")
    assert model.stem[0].in_channels == 3
    assert model.to_conv4_3[0].in_channels == 65          # 64 pool1 channels + DOAM's edge channel
    model.eval()
    with torch.no_grad():
        detections = model(torch.rand(1, 3, 300, 300))
    assert detections[0]["attention"].shape == (300, 300)


def test_config_rebuilds_the_same_model_and_bad_input_is_rejected(ssd_none):
    rebuilt = build_detector(**ssd_none.config)
    assert rebuilt.config == ssd_none.config
    assert _shapes(rebuilt) == _shapes(ssd_none)
    ssd_none.train()
    with pytest.raises(ValueError, match="300x300"):
        ssd_none(torch.rand(1, 3, 320, 320), _targets()[:1])
    with pytest.raises(ValueError, match="label 7"):
        ssd_none(torch.rand(1, 3, 300, 300), [_one_box([1.0, 1.0, 9.0, 9.0], 7)])
    with pytest.raises(ValueError, match="x2 > x1"):
        ssd_none(torch.rand(1, 3, 300, 300), [_one_box([9.0, 1.0, 9.0, 9.0], 0)])
