"""YOLOv3-style detector (core/models/yolov3.py): Darknet-53 layout, targets, per-image loss, contract."""
from __future__ import annotations

import pytest
import torch
from torchvision.ops import box_iou

from core.models.build import build_detector
from core.models.yolov3 import COCO_ANCHORS_416, build_yolov3

torch.set_num_threads(1)

NUM_CLASSES = 5
SIZE = 128
SMALL = {"input_size": SIZE, "width_mult": 0.25, "blocks": (1, 1, 1, 1, 1)}


def _targets() -> list[dict[str, torch.Tensor]]:
    return [
        {"boxes": torch.tensor([[10.0, 20.0, 60.0, 40.0], [70.0, 30.0, 120.0, 125.0]]), "labels": torch.tensor([0, 3])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},   # an empty bag
    ]


def test_full_darknet53_layout_and_anchors():
    model = build_yolov3("none", num_classes=NUM_CLASSES)
    assert model.input_size == (416, 416)
    residuals = [sum(1 for m in stage.modules() if type(m).__name__ == "DarknetResidual")
                 for stage in (model.stage1, model.stage2, model.stage3, model.stage4, model.stage5)]
    assert residuals == [1, 2, 8, 8, 4]
    assert model.stage5[0][0].out_channels == 1024
    assert model.branch8.predict[-1].out_channels == 3 * (5 + NUM_CLASSES)
    torch.testing.assert_close(model.anchors.view(-1, 2), torch.tensor(COCO_ANCHORS_416, dtype=torch.float32))
    # 61.5 M parameters: YOLOv3's 61.9 M less the 80-class predictors
    assert 61_000_000 < sum(p.numel() for p in model.parameters()) < 62_000_000
    scaled = build_yolov3("none", **SMALL)
    torch.testing.assert_close(scaled.anchors[2, 2], torch.tensor([373 * SIZE / 416, 326 * SIZE / 416]))


@pytest.mark.parametrize("attention", ["none", "doam"])
def test_train_step_and_predict_follow_the_contract(attention):
    torch.manual_seed(0)
    model = build_yolov3(attention, num_classes=NUM_CLASSES, **SMALL)
    assert model.stem[0].in_channels == model.attention.out_channels == (4 if attention == "doam" else 3)

    model.train()
    losses = model(torch.rand(2, 3, SIZE, SIZE), _targets())
    assert set(losses) == {"bbox_regression", "objectness", "classification"}
    for value in losses.values():
        assert value.shape == (2,) and torch.isfinite(value).all()
    assert losses["bbox_regression"][1] == 0 and losses["classification"][1] == 0   # empty bag
    assert losses["objectness"][1] > 0                                               # its negatives count
    torch.stack(list(losses.values())).sum(0).mean().backward()
    assert model.stem[0].weight.grad is not None and model.stem[0].weight.grad.abs().sum() > 0

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
        assert torch.all(scores[:-1] >= scores[1:])
        if attention == "doam":
            assert detection["attention"].shape == (SIZE, SIZE)
            assert 0 <= detection["attention"].min() and detection["attention"].max() <= 1
        else:
            assert "attention" not in detection
    model.score_thresh = 1.01
    with torch.no_grad():
        empty = model(torch.rand(1, 3, SIZE, SIZE))
    assert empty[0]["boxes"].shape == (0, 4) and empty[0]["scores"].shape == (0,)


def test_targets_go_to_the_best_shape_anchor_at_the_centre_cell():
    model = build_yolov3("none", **SMALL)
    sizes = [(SIZE // s, SIZE // s) for s in (8, 16, 32)]        # 16, 8, 4 cells
    anchors = model.anchors.view(-1, 2)
    # a box exactly the size of anchor 4 (stride 16, anchor 1), centred in cell (x=5, y=2)
    w, h = anchors[4].tolist()
    cx, cy = 5 * 16 + 8, 2 * 16 + 8
    box = torch.tensor([[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]])
    flat = model._assign(box, sizes)
    expected = 3 * 16 * 16 + (1 * 8 + 2) * 8 + 5
    assert flat.tolist() == [expected]


def test_loss_of_an_image_does_not_depend_on_its_batch():
    torch.manual_seed(0)
    model = build_yolov3("none", **SMALL).eval()      # eval: BatchNorm uses fixed statistics
    images = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        outputs, _ = model._raw_outputs(images)
        logits, boxes = model._flatten(outputs)
        sizes = [tuple(o.shape[2:4]) for o in outputs]
        both = model.compute_loss(logits, boxes, _targets(), sizes)
        alone = model.compute_loss(logits[:1], boxes[:1], _targets()[:1], sizes)
    for key in both:
        torch.testing.assert_close(both[key][0], alone[key][0])


def test_attention_at_the_stem_and_config_round_trip():
    model = build_yolov3("doam", position="stem", **SMALL)
    assert model.stem[0].in_channels == 3
    assert model.stage2[0][0].in_channels == model.stage1[0][0].out_channels + 1
    model.eval()
    with torch.no_grad():
        detection = model(torch.rand(1, 3, SIZE, SIZE))[0]
    assert detection["attention"].shape == (SIZE, SIZE)
    rebuilt = build_detector(**model.config)
    assert rebuilt.config == model.config
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_bad_input_is_rejected():
    model = build_yolov3("none", **SMALL)
    with pytest.raises(ValueError, match="divisible by 32"):
        model.eval()(torch.rand(1, 3, 100, 128))
    with pytest.raises(ValueError, match="multiple of 32"):
        build_yolov3("none", input_size=300)
    with pytest.raises(ValueError, match="label 5"):
        bad_label = {"boxes": torch.tensor([[1.0, 1.0, 9.0, 9.0]]), "labels": torch.tensor([5])}
        model.train()(torch.rand(1, 3, SIZE, SIZE), [bad_label])


def test_overfits_one_image_and_finds_its_box():
    """A learning check that catches decode / target mismatches: 80 Adam steps on one synthetic bag."""
    torch.manual_seed(0)
    model = build_yolov3("none", **SMALL)
    image = torch.ones(1, 3, SIZE, SIZE)
    image[0, :, 38:64, 26:70] = torch.tensor([0.1, 0.2, 0.7]).view(3, 1, 1)   # a dark blue "blade"
    target = [{"boxes": torch.tensor([[26.0, 38.0, 70.0, 64.0]]), "labels": torch.tensor([3])}]
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    first = None
    for _ in range(80):
        loss = torch.stack(list(model(image, target).values())).sum(0).mean()
        first = first if first is not None else loss.item()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < first / 5
    model.eval()
    with torch.no_grad():
        best = model(image)[0]
    assert best["labels"][0] == 3
    assert box_iou(best["boxes"][:1], target[0]["boxes"]).item() > 0.5
