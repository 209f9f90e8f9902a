"""FCOS-ResNet50-FPN (core/models/fcos.py): torchvision's model behind the contract, per-image losses."""
from __future__ import annotations

import pytest
import torch

from core.models.build import build_detector
from core.models.common import normalise_image
from core.models.fcos import build_fcos

torch.set_num_threads(1)

NUM_CLASSES = 5
SIZE = 128   # the real ResNet-50-FPN, at a small input to keep the test quick


def _targets() -> list[dict[str, torch.Tensor]]:
    return [
        {"boxes": torch.tensor([[10.0, 20.0, 60.0, 40.0], [70.0, 30.0, 120.0, 125.0]]), "labels": torch.tensor([4, 0])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},   # an empty bag
    ]


def test_defaults_and_class_outputs():
    model = build_fcos("none", num_classes=NUM_CLASSES)
    assert model.input_size == (512, 512)
    assert (model.score_thresh, model.nms_thresh, model.detections_per_img) == (0.01, 0.45, 200)
    # one sigmoid per class, no background column
    assert model.detector.head.classification_head.cls_logits.out_channels == NUM_CLASSES
    assert type(model.detector.backbone.body.bn1).__name__ == "BatchNorm2d"     # trainable, not frozen


@pytest.mark.parametrize("attention", ["none", "doam"])
def test_train_step_and_predict_follow_the_contract(attention):
    torch.manual_seed(0)
    model = build_fcos(attention, num_classes=NUM_CLASSES, input_size=SIZE)
    conv1 = model.detector.backbone.body.conv1
    assert conv1.in_channels == model.attention.out_channels == (4 if attention == "doam" else 3)

    model.train()
    losses = model(torch.rand(2, 3, SIZE, SIZE), _targets())
    assert set(losses) == {"classification", "bbox_regression", "bbox_ctrness"}
    for value in losses.values():
        assert value.shape == (2,) and torch.isfinite(value).all()
    assert losses["bbox_regression"][1] == 0 and losses["classification"][1] > 0   # empty bag: negatives only
    torch.stack(list(losses.values())).sum(0).mean().backward()
    assert conv1.weight.grad is not None and conv1.weight.grad.abs().sum() > 0

    model.eval()
    model.score_thresh = 0.0
    with torch.no_grad():
        detections = model(torch.rand(2, 3, SIZE, SIZE))
    assert len(detections) == 2
    for detection in detections:
        boxes, labels, scores = detection["boxes"], detection["labels"], detection["scores"]
        assert 0 < len(boxes) <= 200 and boxes.shape[1] == 4
        assert labels.dtype == torch.int64 and labels.min() >= 0 and labels.max() < NUM_CLASSES
        assert boxes.min() >= 0 and boxes.max() <= SIZE
        if attention == "doam":
            assert detection["attention"].shape == (SIZE, SIZE)
            assert 0 <= detection["attention"].min() and detection["attention"].max() <= 1
        else:
            assert "attention" not in detection
    model.score_thresh = 1.01
    with torch.no_grad():
        empty = model(torch.rand(1, 3, SIZE, SIZE))
    assert empty[0]["boxes"].shape == (0, 4) and empty[0]["labels"].shape == (0,)


def test_per_image_losses_match_torchvision_on_a_single_image():
    """For one image, torchvision's batch-normalised loss is the per-image loss: same numbers."""
    torch.manual_seed(0)
    model = build_fcos("none", num_classes=NUM_CLASSES, input_size=SIZE).train()
    model.detector.backbone.eval()          # BatchNorm with fixed statistics, so batch size does not matter
    images = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        ours = model(images, _targets())
        # torchvision's own forward, given the image normalised as the wrapper does after attention
        theirs = model.detector(list(normalise_image(images[:1])), _targets()[:1])
    for key, value in theirs.items():
        torch.testing.assert_close(ours[key][0], value)


def test_config_round_trip_and_rejections():
    model = build_fcos("doam", input_size=SIZE)
    rebuilt = build_detector(**model.config)
    assert rebuilt.config == model.config
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="position 'input' only"):
        build_fcos("doam", position="stem")
    with pytest.raises(ValueError, match="B x 3 x H x W"):
        model.eval()(torch.rand(1, 4, SIZE, SIZE))
