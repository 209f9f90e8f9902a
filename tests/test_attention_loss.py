"""The optional auxiliary loss on DOAM's map (attention_loss_weight): mask, balance, gradients, config."""
from __future__ import annotations

import pytest
import torch

from core.models.build import build_detector
from core.models.common import attention_box_loss, box_mask

SIZE = (64, 96)


def _targets(*boxes):
    return [{"boxes": torch.tensor(b, dtype=torch.float32).reshape(-1, 4), "labels": torch.zeros(len(b), dtype=torch.long)}
            for b in boxes]


def test_box_mask_marks_cells_whose_centre_is_inside():
    mask = box_mask(torch.tensor([[4.0, 0.0, 11.0, 7.0]]), (4, 6), (2.0, 2.0))
    # Cell centres are 1, 3, 5, ... px: x in [4, 11] -> columns 2..4 (5, 7, 9) and 5 (11); y in [0, 7] -> rows 0..3.
    assert mask.tolist() == [[0, 0, 1, 1, 1, 1]] * 4
    assert box_mask(torch.zeros(0, 4), (3, 3), (1.0, 1.0)).sum() == 0


def test_a_map_that_matches_the_boxes_scores_lower_than_one_that_misses_them():
    targets = _targets([[8.0, 8.0, 24.0, 24.0]], [])                 # one image with an item, one without
    right = torch.full((2, 1, 16, 16), 0.02)
    right[0, 0, 4:12, 4:12] = 0.98
    wrong = 1 - right
    good, bad = attention_box_loss(right, targets, (32, 32)), attention_box_loss(wrong, targets, (32, 32))
    assert good.shape == (2,) and bool((good < bad).all())
    # Balanced: a map at 0.5 everywhere costs log 2 whatever the item's size.
    flat = attention_box_loss(torch.full((2, 1, 16, 16), 0.5), targets, (32, 32))
    assert torch.allclose(flat, torch.full((2,), 0.6931), atol=1e-4)


def test_the_detector_adds_the_term_and_it_trains_the_attention_module():
    torch.manual_seed(0)
    model = build_detector("fast", "doam", input_size=SIZE, attention_loss_weight=0.5).train()
    images = torch.rand(2, 3, *SIZE)
    losses = model(images, _targets([[10.0, 10.0, 40.0, 30.0]], [[50.0, 20.0, 90.0, 60.0]]))
    assert set(losses) == {"heatmap", "box", "attention"} and losses["attention"].shape == (2,)
    losses["attention"].sum().backward()
    assert model.attention.generate.weight.grad.abs().sum() > 0
    # The term reaches only what makes the map (computed from the image), not the backbone.
    assert model.stage3[0][0].weight.grad is None and model.stem[0].weight.grad is None
    assert model.config["attention_loss_weight"] == 0.5
    rebuilt = build_detector(**model.config)
    assert rebuilt.attention_loss_weight == 0.5


def test_without_the_option_nothing_changes_and_bad_values_are_refused():
    model = build_detector("fast", "doam", input_size=SIZE).train()
    assert "attention_loss_weight" not in model.config
    assert set(model(torch.rand(1, 3, *SIZE), _targets([[1.0, 1.0, 20.0, 20.0]]))) == {"heatmap", "box"}
    with pytest.raises(ValueError, match="attention_loss_weight"):
        build_detector("fast", "none", input_size=SIZE, attention_loss_weight=0.5)
    with pytest.raises(ValueError, match="attention_loss_weight"):
        build_detector("fast", "doam", input_size=SIZE, attention_loss_weight=-1)
    with pytest.raises(ValueError, match="attention_loss_weight"):     # the ablation without a map
        build_detector("fast", "doam", input_size=SIZE, attention_loss_weight=0.5,
                       attention_options={"ablation": "edge_only"})
