"""Item recall by occluder opacity: which items count as found, the bins, the paired comparison, the CLI."""
import json

import numpy as np
import pytest
import torch

from core.cli import main as cli_main
from core.evaluation.occlusion_recall import compare_recall_by_opacity, found_items, item_opacities, recall_table
from core.inference.modelfile import save_model
from core.models.build import build_detector
from core.synth.generator import generate_dataset
from core.synth.occlusion_table import ItemOcclusion, bin_of, table_path
from core.data.opixray import Box
from core.synth.scene import SceneConfig


def _truth(*boxes_labels):
    return {"boxes": np.array([b for b, _ in boxes_labels], dtype=float).reshape(-1, 4),
            "labels": np.array([c for _, c in boxes_labels], dtype=np.int64)}


def _dets(*rows):
    return {"boxes": np.array([r[0] for r in rows], dtype=float).reshape(-1, 4),
            "labels": np.array([r[1] for r in rows], dtype=np.int64),
            "scores": np.array([r[2] for r in rows], dtype=float)}


def test_an_item_is_found_only_by_its_class_above_the_threshold_and_iou():
    truth = _truth(((0, 0, 10, 10), 0), ((20, 0, 30, 10), 0), ((40, 0, 50, 10), 2))
    dets = _dets(((0, 0, 10, 10), 0, 0.9),        # takes item 0
                 ((1, 0, 11, 10), 0, 0.8),        # same item again: a duplicate, takes nothing
                 ((20, 0, 30, 10), 0, 0.2),       # item 1, but below the threshold
                 ((40, 0, 50, 10), 1, 0.9))       # item 2's place, wrong class
    assert found_items(truth, dets, 0.3).tolist() == [True, False, False]
    assert found_items(truth, dets, 0.1).tolist() == [True, True, False]
    # IoU exactly 0.5 is not a hit (VOC's strict >): half the box shifted out
    half = _dets(((0, 0, 10, 10), 0, 0.9))
    assert found_items(_truth(((0, 0, 10, 20), 0)), half, 0.1).tolist() == [False]
    assert found_items(_truth(), half, 0.1).size == 0


def test_bins_are_closed_at_the_top_and_edges_must_cover_zero_to_one():
    assert bin_of(np.array([0.0, 0.2449, 0.245, 0.9, 1.0]), (0.0, 0.245, 0.9, 1.0)).tolist() == [0, 0, 1, 2, 2]
    for edges in ((0.1, 1.0), (0.0, 0.5), (0.0, 0.5, 0.5, 1.0), (0.0,)):
        with pytest.raises(ValueError, match="edges"):
            bin_of(np.array([0.5]), edges)


def test_the_table_must_describe_the_annotated_boxes():
    table = {"a": [ItemOcclusion("a", Box("Scissor", 1, 2, 3, 4), 2, 0.3, 0.5)]}
    opacities, owners = item_opacities(["a"], [_truth(((1, 2, 3, 4), 2))], table)
    assert opacities.tolist() == [0.3] and owners.tolist() == [0]
    with pytest.raises(ValueError, match="image a: the occlusion table lists"):
        item_opacities(["a"], [_truth(((1, 2, 3, 5), 2))], table)
    with pytest.raises(ValueError, match="image b"):
        item_opacities(["b"], [_truth(((1, 2, 3, 4), 2))], table)


def _split(n_images=60, seed=0):
    rng = np.random.default_rng(seed)
    opacities = rng.uniform(0, 1, n_images)          # one item per image
    owners = np.arange(n_images)
    levels = 1 + (opacities >= 0.245).astype(int) + (opacities >= 0.505).astype(int)
    return opacities, owners, levels


def test_equal_arms_differ_by_exactly_nothing_and_a_blind_arm_by_everything():
    opacities, owners, levels = _split()
    hits = (opacities < 0.6).astype(float)
    same = compare_recall_by_opacity({"a": [hits, hits], "b": [hits]}, opacities, owners, levels, rounds=200)
    for row in same["bins"]:
        assert row["difference"] == 0 and row["interval_seeds_and_images"] == [0.0, 0.0]
    # b loses every item above 0.7 opacity, a finds them all: +100 points there, 0 below 0.505
    blind = np.where(opacities >= 0.7, 0.0, 1.0)
    report = compare_recall_by_opacity({"a": [np.ones_like(hits)], "b": [blind]}, opacities, owners, levels,
                                       rounds=200, located={"a": [np.ones_like(hits)], "b": [np.ones_like(hits)]})
    by_low = {row["opacity"][0]: row for row in report["bins"]}
    assert by_low[0.7]["difference"] == pytest.approx(1.0) and by_low[0.7]["interval_images"] == [1.0, 1.0]
    assert by_low[0.0]["difference"] == 0 and by_low[0.245]["difference"] == 0
    assert by_low[0.7]["located_any_score"] == {"a": 1.0, "b": 1.0}     # b boxes them, below its threshold
    assert sum(row["items"] for row in report["bins"]) == opacities.size
    text = recall_table(report)
    assert "a - b" in text and "+100.0" in text and "0.700-0.900" in text and "100.0 / 100.0" in text
    with pytest.raises(ValueError, match="located needs"):
        compare_recall_by_opacity({"a": [hits], "b": [hits]}, opacities, owners, levels, rounds=100,
                                  located={"a": [hits]})


def test_a_noisy_seed_widens_the_seed_interval_and_shapes_are_checked():
    opacities, owners, levels = _split(200)
    rng = np.random.default_rng(1)
    steady = (rng.uniform(size=200) < 0.5).astype(float)
    seeds = [(rng.uniform(size=200) < p).astype(float) for p in (0.2, 0.5, 0.8)]
    report = compare_recall_by_opacity({"a": seeds, "b": [steady]}, opacities, owners, levels, rounds=300)
    for row in report["bins"]:
        images, both = row["interval_images"], row["interval_seeds_and_images"]
        assert both[1] - both[0] > images[1] - images[0]
    with pytest.raises(ValueError, match="one hit flag per item"):
        compare_recall_by_opacity({"a": [steady[:5]], "b": [steady]}, opacities, owners, levels, rounds=100)
    with pytest.raises(ValueError, match="exactly two arms"):
        compare_recall_by_opacity({"a": [steady]}, opacities, owners, levels, rounds=100)


def test_compare_cli_by_opacity_reports_bins_and_stops_early_without_a_table(tmp_path, capsys):
    data = tmp_path / "data"
    generate_dataset(data, 0, 6, seed=4, config=SceneConfig(width=320, height=250), progress=False)
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        path = tmp_path / f"m{seed}.pt"
        save_model(path, build_detector("fast", "none", input_size=(96, 128)).eval())
        paths.append(str(path))
    args = ["compare", "--data", str(data), "--arm", f"a={paths[0]}", "--arm", f"b={paths[1]}", "--rounds", "100",
            "--device", "cpu", "--by-opacity", "--alarms", "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "r.json")]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert "item recall at each model's operating point" in out and "false alarms / bag" in out
    report = json.loads((tmp_path / "r.json").read_text(), parse_constant=pytest.fail)
    bins = report["by_opacity"]["bins"]
    assert sum(row["items"] for row in bins) == sum(1 for _ in open(table_path(data, "test"))) - 1
    assert set(report["by_opacity"]["thresholds"]) == {"a", "b"}
    for row in bins:
        if row["items"]:
            for arm in ("a", "b"):    # an item found at the operating point is found at any score
                assert row["located_any_score"][arm] >= row["recall"][arm]["mean"]
    # Two routes to the same items boxed (found_items per item, the alarm counts per image) agree.
    overall = {r["measure"]: r for r in report["alarms_by_level"]["rows"] if r["images"] == "all"}
    for arm in ("a", "b"):
        per_bin = sum(row["recall"][arm]["mean"] * row["items"] for row in bins if row["items"])
        assert overall["recall"]["mean"][arm] == pytest.approx(per_bin / sum(row["items"] for row in bins))
    assert report["alarms_by_level"]["thresholds"] == {arm: report["by_opacity"]["thresholds"][arm]
                                                       for arm in ("a", "b")}

    table_path(data, "test").unlink()
    for cached in (tmp_path / "cache").glob("*.npz"):
        cached.unlink()
    assert cli_main(args) == 2
    assert "synth-occlusion" in capsys.readouterr().err
    assert not list((tmp_path / "cache").glob("*.npz"))     # refused before predicting anything


def test_eval_cli_adds_recall_by_opacity_on_synthetic_data_and_survives_a_broken_table(tmp_path, capsys):
    data = tmp_path / "data"
    generate_dataset(data, 0, 5, seed=8, config=SceneConfig(width=320, height=250), progress=False)
    torch.manual_seed(0)
    model = tmp_path / "m.pt"
    save_model(model, build_detector("fast", "none", input_size=(96, 128)).eval())
    args = ["eval", "--data", str(data), "--model", str(model), "--device", "cpu"]
    assert cli_main(args + ["--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    report = payload["by_opacity"]
    alarms = payload["alarms_at_operating_point"]       # the same threshold as the recall's operating point
    assert alarms["threshold"] == report["thresholds"]["operating point"]
    assert [row["images"] for row in alarms["rows"]][0] == "all" and alarms["rows"][0]["bags"] == 5
    assert sum(row["items"] for row in report["bins"]) == sum(1 for _ in open(table_path(data, "test"))) - 1
    assert list(report["thresholds"]) == ["operating point", "score >= 0.2", "score >= 0.1", "score >= 0"]
    for row in report["bins"]:
        if row["items"]:      # a lower threshold never boxes fewer items
            recalls = [row["recall"][label] for label in ("score >= 0.2", "score >= 0.1", "score >= 0")]
            assert recalls == sorted(recalls)
    per_bag = report["boxes_per_image"]
    assert per_bag["score >= 0.2"] <= per_bag["score >= 0.1"] <= per_bag["score >= 0"]
    assert cli_main(args) == 0
    assert "by occluder opacity" in capsys.readouterr().out

    table_path(data, "test").write_text("image_id,label\n")      # broken: the AP is still printed
    assert cli_main(args) == 0
    captured = capsys.readouterr()
    assert "no recall by occlusion" in captured.err and "mAP" in captured.out
    assert "by occluder opacity" not in captured.out
    table_path(data, "test").unlink()                          # real data has no table: no section, no warning
    assert cli_main(args) == 0
    captured = capsys.readouterr()
    assert "by occluder opacity" not in captured.out and "warning" not in captured.err
    assert "At the operating point" in captured.out and "false alarms / bag" in captured.out
