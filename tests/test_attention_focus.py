"""Attention focus: the map's mean inside ground-truth boxes, around them and per OL, and `eval` reporting it."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core.cli import main as cli_main
from core.data.opixray import Box, make_layout, write_lists, write_sample
from core.evaluation.attention_focus import AttentionFocus, box_and_ring_means, focus_table
from core.imaging.decode import encode_jpg
from core.inference import save_model
from core.models.build import build_detector


def test_a_map_lit_only_on_the_item_has_full_contrast():
    attention = np.zeros((100, 120), np.float32)
    attention[40:60, 50:70] = 1.0
    inside, around = box_and_ring_means(attention, (50, 40, 70, 60))
    assert inside == pytest.approx(1.0) and around == pytest.approx(0.0)
    focus = AttentionFocus()
    focus.add(attention, np.array([[50, 40, 70, 60]]), occlusion_level=2)
    summary = focus.summary()
    assert list(summary) == ["all", "OL2"]
    row = summary["OL2"]
    assert row["items"] == 1 and row["contrast"] == pytest.approx(1.0) and row["highlighted"] == 1.0
    assert row["image"] == pytest.approx(400 / 12000, abs=1e-4)


def test_the_ring_is_half_the_box_beyond_each_side_and_clipped_at_the_border():
    attention = np.zeros((100, 100), np.float32)
    attention[:, :10] = 1.0                          # a bright band left of the box, inside its ring
    # Box 10..30 x 40..60 (20 px): the ring reaches 10 px beyond each side, so x 0..40, y 30..70.
    inside, around = box_and_ring_means(attention, (10, 40, 30, 60))
    assert inside == pytest.approx(0.0)
    assert around == pytest.approx((10 * 40) / (40 * 40 - 20 * 20))
    # At the corner the ring is what lies inside the image.
    attention = np.ones((50, 50), np.float32)
    attention[0:10, 0:10] = 0.0
    inside, around = box_and_ring_means(attention, (0, 0, 10, 10))
    assert inside == pytest.approx(0.0) and around == pytest.approx(1.0)


def test_degenerate_boxes_and_missing_maps_are_skipped():
    attention = np.full((20, 20), 0.5, np.float32)
    assert box_and_ring_means(attention, (5, 5, 5, 9)) is None          # no width
    assert box_and_ring_means(attention, (0, 0, 20, 20)) is None        # no surrounding left
    assert box_and_ring_means(attention, (30, 30, 40, 40)) is None      # outside the image
    focus = AttentionFocus()
    focus.add(None, np.array([[1, 1, 5, 5]]))                            # a model without attention
    assert focus.summary() == {}
    focus.add(attention, np.zeros((0, 4)))                               # an image with no items
    row = focus.summary()["all"]
    assert row["items"] == 0 and row["images"] == 1 and row["contrast"] is None and row["image"] == 0.5
    assert "n/a" in focus_table(focus.summary())
    with pytest.raises(ValueError, match="H x W"):
        focus.add(np.zeros((1, 20, 20)), np.zeros((0, 4)))


def test_occluded_items_that_fade_into_their_clutter_show_as_lower_contrast():
    focus = AttentionFocus()
    for level, item_brightness in ((1, 0.9), (3, 0.6)):
        attention = np.full((80, 80), 0.5, np.float32)
        attention[30:50, 30:50] = item_brightness
        focus.add(attention, np.array([[30, 30, 50, 50]]), occlusion_level=level)
    summary = focus.summary()
    assert summary["OL1"]["contrast"] == pytest.approx(0.4, abs=1e-4)
    assert summary["OL3"]["contrast"] == pytest.approx(0.1, abs=1e-4)
    assert summary["all"]["items"] == 2
    table = focus_table(summary)
    assert "| OL3 | 1 |" in table and "100 %" in table


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("focus-data")
    make_layout(root)
    rng = np.random.default_rng(3)
    ids, levels = [], {}
    for i in range(3):
        image = np.full((160, 200, 3), 255, np.uint8)
        image[60:100, 70:140] = rng.integers(0, 120, 3)
        image_id = f"{i:06d}"
        write_sample(root, "test", image_id, encode_jpg(image), [Box("Scissor", 70, 60, 139, 99)])
        ids.append(image_id)
        levels[image_id] = i + 1
    write_lists(root, "test", ids, levels)
    write_lists(root, "train", [])
    return root


@pytest.mark.parametrize("attention", ["doam", "none", "edge_only"])
def test_eval_reports_the_focus_of_attention_models_only(dataset, tmp_path, capsys, attention):
    torch.manual_seed(0)
    model_path = tmp_path / "model.pt"
    options = {"attention_options": {"ablation": "edge_only"}} if attention == "edge_only" else {}
    model = build_detector("fast", "none" if attention == "none" else "doam", input_size=(128, 160), **options)
    save_model(model_path, model.eval())
    assert cli_main(["eval", "--data", str(dataset), "--model", str(model_path), "--json", "--device", "cpu"]) == 0
    payload = json.loads(capsys.readouterr().out)
    if attention != "doam":            # no map: no attention model, or DOAM's edge-only ablation
        assert "attention_focus" not in payload
        return
    focus = payload["attention_focus"]
    assert set(focus) == {"all", "OL1", "OL2", "OL3"}
    assert focus["all"]["items"] == 3 and all(focus[f"OL{k}"]["items"] == 1 for k in (1, 2, 3))
    assert 0.0 <= focus["all"]["inside"] <= 1.0 and 0.0 <= focus["all"]["around"] <= 1.0
    assert cli_main(["eval", "--data", str(dataset), "--model", str(model_path), "--device", "cpu"]) == 0
    assert "Items highlighted" in capsys.readouterr().out
