"""The CPU-fast default detector: contract outputs, targets, learning a toy scene, bad input."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

from core.models.build import build_detector
from core.models.common import fuse_conv_bn_for_inference, total_loss
from core.models.fast import OUTPUT_STRIDE, FastDetector, local_max_3x3

torch.set_num_threads(1)


def bar_scene() -> tuple[torch.Tensor, list[dict]]:
    """Two white 128x128 images, each with one dark bar (a blade seen from above)."""
    images = torch.ones(2, 3, 128, 128)
    images[0, :, 50:62, 20:100] = 0.15                     # horizontal, class 1
    images[1, :, 30:100, 60:72] = 0.2                      # vertical, bluish, class 3
    images[1, 2, 30:100, 60:72] = 0.6
    targets = [{"boxes": torch.tensor([[20.0, 50.0, 100.0, 62.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[60.0, 30.0, 72.0, 100.0]]), "labels": torch.tensor([3])}]
    return images, targets


def test_learns_a_toy_scene_and_predicts_in_contract_format() -> None:
    torch.manual_seed(0)
    model = build_detector("fast", "doam", input_size=(128, 128))
    images, targets = bar_scene()
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    history = []
    for _ in range(30):
        model.train()
        losses = model(images, targets)
        assert set(losses) == {"heatmap", "box"}
        assert all(value.shape == (2,) for value in losses.values())
        loss = total_loss(losses)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        history.append(loss.item())
    assert sum(history[-3:]) / 3 < 0.3 * history[0], history

    model.eval()
    with torch.no_grad():
        results = model(images)
    assert len(results) == 2
    for result, target in zip(results, targets):
        assert set(result) == {"boxes", "labels", "scores", "attention"}
        assert result["boxes"].dtype == torch.float32 and result["boxes"].shape[1] == 4
        assert result["labels"].dtype == torch.int64
        assert bool((result["scores"][:-1] >= result["scores"][1:]).all())      # best first
        assert bool((result["boxes"] >= 0).all()) and bool((result["boxes"] <= 128).all())
        assert result["attention"].shape == (128, 128)
        assert 0.0 <= float(result["attention"].min()) <= float(result["attention"].max()) <= 1.0
        # The best detection is the bar, with its class.
        assert result["labels"][0] == target["labels"][0]
        assert box_iou(result["boxes"][:1], target["boxes"]).item() > 0.3


def test_targets_put_a_peak_on_the_centre_and_regress_inside_the_box() -> None:
    model = FastDetector("none", num_classes=5, input_size=(64, 64))
    boxes = torch.tensor([[8.0, 8.0, 40.0, 24.0], [30.0, 30.0, 62.0, 62.0]])
    heat, target_boxes, weight = model.build_targets(boxes, torch.tensor([0, 4]), 16, 16)
    assert heat.shape == (5, 16, 16) and target_boxes.shape == (16, 16, 4) and weight.shape == (16, 16)
    assert heat[0, 16 // OUTPUT_STRIDE, 24 // OUTPUT_STRIDE] == 1.0            # centre (24, 16)
    assert heat[4, 46 // OUTPUT_STRIDE, 46 // OUTPUT_STRIDE] == 1.0            # centre (46, 46)
    assert heat[1:4].abs().sum() == 0 and float(heat.max()) <= 1.0
    ys, xs = torch.nonzero(weight > 0, as_tuple=True)
    centres_x, centres_y = (xs + 0.5) * OUTPUT_STRIDE, (ys + 0.5) * OUTPUT_STRIDE
    owners = target_boxes[ys, xs]
    assert bool(((centres_x >= owners[:, 0]) & (centres_x <= owners[:, 2])).all())
    assert bool(((centres_y >= owners[:, 1]) & (centres_y <= owners[:, 3])).all())
    assert {tuple(b.tolist()) for b in owners} == {tuple(b.tolist()) for b in boxes}


def test_images_without_objects_have_zero_box_loss() -> None:
    model = build_detector("fast", "none", input_size=(64, 64)).train()
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
    losses = model(torch.rand(2, 3, 64, 64), [empty, empty])
    assert losses["box"].tolist() == [0.0, 0.0]
    assert bool((losses["heatmap"] > 0).all())


def test_losses_are_kept_per_image() -> None:
    torch.manual_seed(0)
    model = build_detector("fast", "doam", input_size=(64, 64)).train()
    images = torch.ones(2, 3, 64, 64)
    images[1, :, 20:30, 10:50] = 0.1
    many = {"boxes": torch.tensor([[10.0, 20.0, 50.0, 30.0], [2.0, 2.0, 20.0, 12.0], [40.0, 40.0, 60.0, 62.0]]),
            "labels": torch.tensor([0, 1, 2])}
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
    losses = {key: value.detach() for key, value in model(images, [empty, many]).items()}
    assert float(losses["box"][1]) > float(losses["box"][0]) == 0.0


def test_config_rebuilds_the_same_model_and_is_json() -> None:
    model = build_detector("fast", "doam", position="input", input_size=(96, 128), widths=(8, 16, 32, 48, 64))
    config = json.loads(json.dumps(model.config))
    rebuilt = build_detector(**config)
    assert rebuilt.config == model.config
    rebuilt.load_state_dict(model.state_dict())          # same names and shapes
    assert rebuilt.input_size == (96, 128)


def test_test_time_settings_are_honoured() -> None:
    torch.manual_seed(0)
    model = build_detector("fast", "none", input_size=(64, 64)).eval()
    model.score_thresh = 0.0
    model.detections_per_img = 3
    with torch.no_grad():
        (result,) = model(torch.rand(1, 3, 64, 64))
    assert len(result["boxes"]) <= 3 and "attention" not in result
    model.score_thresh = 1.0
    with torch.no_grad():
        (result,) = model(torch.rand(1, 3, 64, 64))
    assert len(result["boxes"]) == 0


def test_local_max_equals_max_pool() -> None:
    x = torch.rand(2, 5, 13, 17)
    assert torch.equal(local_max_3x3(x), F.max_pool2d(x, 3, stride=1, padding=1))


@pytest.mark.parametrize("images, message", [(torch.rand(1, 1, 64, 64), "B x 3"),
                                             (torch.rand(3, 64, 64), "B x 3"),
                                             (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), "float")])
def test_bad_images_are_rejected(images: torch.Tensor, message: str) -> None:
    model = build_detector("fast", "none", input_size=(64, 64)).eval()
    with pytest.raises(ValueError, match=message):
        model(images)


@pytest.mark.parametrize("targets, message", [(None, "needs targets"),
                                              ([{"boxes": torch.zeros(1, 4), "labels": torch.zeros(1).long()}], "x2 > x1"),
                                              ([{"boxes": torch.zeros(1, 5), "labels": torch.zeros(1).long()}], "N x 4"),
                                              ([], "0 targets")])
def test_bad_targets_are_rejected(targets, message: str) -> None:
    model = build_detector("fast", "none", input_size=(64, 64)).train()
    with pytest.raises(ValueError, match=message):
        model(torch.rand(1, 3, 64, 64), targets)


@pytest.mark.parametrize("options", [{"position": "middle"}, {"input_size": (100, 128)}, {"widths": (8, 16)}])
def test_bad_options_are_rejected(options: dict) -> None:
    with pytest.raises(ValueError):
        build_detector("fast", "none", **options)


def test_folding_batchnorm_keeps_predictions() -> None:
    torch.manual_seed(0)
    model = build_detector("fast", "doam", input_size=(64, 96)).eval()
    for module in model.modules():                  # non-trivial statistics, as after training
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
    images = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        (before,) = model(images)
        fuse_conv_bn_for_inference(model)
        (after,) = model(images)
    folded = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert folded == 1                              # only the gated conv's BN (after a product) stays
    torch.testing.assert_close(after["scores"], before["scores"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(after["attention"], before["attention"], atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="eval"):
        fuse_conv_bn_for_inference(model.train())


def test_attention_options_refine_the_lite_defaults() -> None:
    from core.models.doam import CODE_FORM, LITE_FORM

    model = build_detector("fast", "doam", input_size=(64, 64), attention_options={"ablation": "eg"})
    assert model.attention.ablation == "eg"
    assert model.config["attention_options"]["map_stride"] == LITE_FORM["map_stride"]
    code = build_detector("fast", "doam", input_size=(64, 64), attention_options=CODE_FORM)
    assert code.attention.map_stride == 1 and len(code.attention.material) == len(CODE_FORM["ma_channels"])
    assert json.loads(json.dumps(code.config)) == code.config


def test_raw_outputs_and_decode_raw_give_the_eval_output() -> None:
    torch.manual_seed(0)
    model = build_detector("fast", "doam", input_size=(64, 96)).eval()
    images = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        direct = model(images)
        raw = model.forward_raw(images)
        decoded = model.decode_raw(raw, (64, 96))
    assert len(raw) == len(model.raw_output_names) == 3
    assert raw[0].shape == (2, 5, 16, 24) and raw[1].shape == (2, 4, 16, 24)
    for a, b in zip(direct, decoded):
        assert set(a) == set(b)
        for key in a:
            torch.testing.assert_close(a[key], b[key])
