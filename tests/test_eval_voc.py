"""VOC AP as the paper measures it: hand-computed cases and cross-checks on random data.

Cross-checks:
- all-point AP against a deliberately naive re-implementation written here (pure Python
  loops, AP as the mean over ground truths of the best precision at or after each hit);
- COCO 101-point AP against pycocotools (iouThrs=[0.5]) and torchmetrics, on data where
  the VOC and COCO definitions coincide: same-class ground-truth boxes in an image are
  disjoint, so at most one can overlap a detection by more than 0.5 and both greedy rules
  pick the same box; coordinates are continuous, so no IoU is exactly 0.5 and the
  ``>`` versus ``>=`` difference cannot show; areas are continuous (no +1) in both.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from core.evaluation import (
    EvaluationInputError,
    average_precision,
    box_iou,
    evaluate_detections,
    ground_truth_from_samples,
)
from core.evaluation.reports import category_table, occlusion_table, plot_all_pr_curves, result_summary


def gt(boxes, labels):
    return {"boxes": np.asarray(boxes, dtype=float).reshape(-1, 4), "labels": np.asarray(labels, dtype=int)}


def det(boxes, labels, scores):
    return {"boxes": np.asarray(boxes, dtype=float).reshape(-1, 4), "labels": np.asarray(labels, dtype=int),
            "scores": np.asarray(scores, dtype=float)}


NO_DET = det(np.zeros((0, 4)), [], [])


# --------------------------------------------------------------------------- hand-computed cases
def test_perfect_detection_is_one_per_class_and_mean():
    boxes = [[10, 10, 50, 60], [100, 100, 180, 150], [200, 20, 260, 90], [5, 200, 40, 260], [300, 300, 340, 380]]
    labels = [0, 1, 2, 3, 4]
    result = evaluate_detections([gt(boxes, labels)], [det(boxes, labels, [0.9, 0.8, 0.7, 0.6, 0.5])])
    assert [c.ap for c in result.overall.classes] == [1.0] * 5
    assert result.mean_ap == 1.0


def test_false_positive_ranked_above_true_positive_halves_ap():
    result = evaluate_detections([gt([[0, 0, 10, 10]], [0])],
                                 [det([[0, 0, 10, 10], [50, 50, 60, 60]], [0, 0], [0.5, 0.9])])
    cls = result.overall.classes[0]
    assert cls.ap == pytest.approx(0.5)
    np.testing.assert_allclose(cls.precision, [0.0, 0.5])
    np.testing.assert_allclose(cls.recall, [0.0, 1.0])


def test_false_positive_ranked_below_true_positive_costs_nothing():
    result = evaluate_detections([gt([[0, 0, 10, 10]], [0])],
                                 [det([[0, 0, 10, 10], [50, 50, 60, 60]], [0, 0], [0.9, 0.5])])
    assert result.overall.classes[0].ap == pytest.approx(1.0)


def test_duplicate_detection_of_a_matched_box_is_a_false_positive():
    truth = gt([[0, 0, 10, 10], [100, 100, 110, 110]], [0, 0])
    found = det([[0, 0, 10, 10], [0, 0, 10, 9], [100, 100, 110, 110]], [0, 0, 0], [0.9, 0.8, 0.7])
    cls = evaluate_detections([truth], [found]).overall.classes[0]
    # ranks: TP (P=1, R=.5), duplicate FP (P=.5, R=.5), TP (P=2/3, R=1)
    assert cls.num_true_positives == 2
    assert cls.ap == pytest.approx(0.5 * 1.0 + 0.5 * (2 / 3))


def test_voc_rule_best_box_taken_means_false_positive_even_if_another_box_overlaps():
    # Two overlapping ground truths; the second detection's best box is A (already taken)
    # although it overlaps B by more than 0.5: VOC counts it false (COCO would match B).
    truth = gt([[0, 0, 10, 10], [0, 1, 10, 11]], [0, 0])
    found = det([[0, 0, 10, 10], [0, 0.2, 10, 10.2]], [0, 0], [0.9, 0.8])
    iou = box_iou(found["boxes"], truth["boxes"])
    assert iou[1, 0] > iou[1, 1] > 0.5
    cls = evaluate_detections([truth], [found]).overall.classes[0]
    assert cls.num_true_positives == 1
    assert cls.ap == pytest.approx(0.5)


def test_iou_of_exactly_one_half_is_not_a_match_but_plus_one_convention_changes_it():
    truth = gt([[0, 0, 10, 10]], [0])
    half = det([[0, 0, 10, 5]], [0], [0.9])  # continuous areas: 50 / 100 = 0.5 exactly
    assert box_iou(half["boxes"], truth["boxes"])[0, 0] == 0.5
    assert evaluate_detections([truth], [half]).overall.classes[0].ap == 0.0
    # With the VOC devkit's +1: 11*6 / (11*11) = 0.545 > 0.5, so the same pair matches.
    assert box_iou(half["boxes"], truth["boxes"], inclusive_pixels=True)[0, 0] == pytest.approx(66 / 121)
    assert evaluate_detections([truth], [half], inclusive_pixels=True).overall.classes[0].ap == 1.0
    slightly_more = det([[0, 0, 10, 5.001]], [0], [0.9])
    assert evaluate_detections([truth], [slightly_more]).overall.classes[0].ap == 1.0


def test_no_detections_gives_zero_and_classes_without_ground_truth_are_nan_and_excluded():
    truth = gt([[0, 0, 10, 10], [20, 20, 40, 40]], [0, 1])
    found = det([[0, 0, 10, 10], [50, 50, 70, 70]], [0, 3], [0.9, 0.8])  # class 3 has no ground truth
    result = evaluate_detections([truth], [found])
    aps = [c.ap for c in result.overall.classes]
    assert aps[0] == 1.0 and aps[1] == 0.0
    assert all(math.isnan(a) for a in aps[2:])
    assert result.overall.classes[3].num_detections == 1
    assert result.mean_ap == pytest.approx(0.5)  # mean of FO and ST only
    payload = json.loads(result.to_json())
    assert payload["overall"]["classes"][2]["ap"] is None
    assert payload["mAP"] == pytest.approx(0.5)


def test_nothing_detected_anywhere():
    result = evaluate_detections([gt([[0, 0, 10, 10]], [2])], [NO_DET])
    assert result.overall.classes[2].ap == 0.0
    assert result.mean_ap == 0.0


def test_detections_in_images_without_items_are_false_positives():
    truth = [gt([[0, 0, 10, 10]], [0]), gt(np.zeros((0, 4)), [])]
    found = [det([[0, 0, 10, 10]], [0], [0.5]), det([[0, 0, 10, 10]], [0], [0.9])]
    cls = evaluate_detections(truth, found).overall.classes[0]
    assert cls.num_detections == 2 and cls.num_true_positives == 1
    assert cls.ap == pytest.approx(0.5)


def test_occlusion_level_subsets_use_only_their_images():
    box = [[0, 0, 10, 10]]
    truth = [gt(box, [0]), gt(box, [0]), gt(box, [1]), gt(np.zeros((0, 4)), [])]
    found = [det(box, [0], [0.9]),                         # OL1: hit
             det([[50, 50, 60, 60], *box], [0, 0], [0.95, 0.4]),  # OL2: FP above hit
             NO_DET,                                       # OL3: miss of class 1
             det(box, [0], [0.99])]                        # no level, no items: FP in "all" only
    result = evaluate_detections(truth, found, occlusion_levels=[1, 2, 3, None])
    assert result.occlusion[1].classes[0].ap == 1.0
    assert result.occlusion[2].classes[0].ap == pytest.approx(0.5)
    assert math.isnan(result.occlusion[1].classes[1].ap) and result.occlusion[3].classes[1].ap == 0.0
    assert [result.occlusion[lv].num_images for lv in (1, 2, 3)] == [1, 1, 1]
    assert result.overall.num_images == 4
    # all: ranks 0.99 FP, 0.95 FP, 0.9 TP, 0.4 TP -> precision envelope 0.5 over recall 0..1
    assert result.overall.classes[0].ap == pytest.approx(0.5)
    assert "OL3" in result.to_dict()["occlusion_levels"]


def test_image_id_mappings_and_missing_detection_entries():
    truth = {"a": gt([[0, 0, 10, 10]], [0]), "b": gt([[0, 0, 10, 10]], [0])}
    result = evaluate_detections(truth, {"a": det([[0, 0, 10, 10]], [0], [0.9])}, occlusion_levels={"a": 1, "b": 3})
    assert result.overall.classes[0].ap == pytest.approx(0.5)  # b's item missed
    assert result.occlusion[1].classes[0].ap == 1.0 and result.occlusion[3].classes[0].ap == 0.0
    with pytest.raises(EvaluationInputError, match="without ground truth"):
        evaluate_detections(truth, {"zzz": NO_DET})


def test_sequence_ground_truth_refuses_mappings_that_would_pair_images_by_dict_order():
    with pytest.raises(EvaluationInputError, match="same image order"):
        evaluate_detections([gt([[0, 0, 1, 1]], [0])], {"a": NO_DET})
    with pytest.raises(EvaluationInputError, match="same image order"):
        evaluate_detections([gt([[0, 0, 1, 1]], [0])], [NO_DET], occlusion_levels={"a": 1})


def test_ground_truth_from_an_opixray_layout(tmp_path):
    from core.data.opixray import Box, load_split, make_layout, write_lists, write_sample

    make_layout(tmp_path)
    jpg = b"\xff\xd8\xff"  # load_split only checks that the file exists
    write_sample(tmp_path, "test", "009000", jpg, [Box("Scissor", 10, 20, 110, 220)])
    write_sample(tmp_path, "test", "009001", jpg, [Box("Straight_Knife", 5, 5, 50, 60),
                                                   Box("Folding_Knife", 70, 70, 90, 95)])
    write_lists(tmp_path, "test", ["009000", "009001"], levels={"009000": 1, "009001": 3})
    truth, levels = ground_truth_from_samples(load_split(tmp_path, "test"))
    assert levels == {"009000": 1, "009001": 3}
    np.testing.assert_array_equal(truth["009001"]["boxes"], [[5, 5, 50, 60], [70, 70, 90, 95]])
    np.testing.assert_array_equal(truth["009001"]["labels"], [1, 0])
    found = {"009000": det([[10, 20, 110, 220]], [2], [0.8])}
    result = evaluate_detections(truth, found, occlusion_levels=levels)
    assert result.overall.classes[2].ap == 1.0 and result.overall.classes[1].ap == 0.0
    assert result.occlusion[1].mean_ap == 1.0 and result.occlusion[3].mean_ap == 0.0


def test_interpolation_variants_on_a_known_curve():
    recall = np.array([0.5, 0.5, 1.0])
    precision = np.array([1.0, 0.5, 2 / 3])
    assert average_precision(recall, precision, "all_points") == pytest.approx(0.5 + 0.5 * 2 / 3)
    # 11 points: t = 0..0.5 -> 1 (6 points), t = 0.6..1.0 -> 2/3 (5 points)
    assert average_precision(recall, precision, "11_points") == pytest.approx((6 + 5 * 2 / 3) / 11)
    # 101 points: r <= 0.5 -> 1 (51 points), r > 0.5 -> 2/3 (50 points)
    assert average_precision(recall, precision, "101_points") == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert average_precision(np.zeros(0), np.zeros(0)) == 0.0


@pytest.mark.parametrize("truth, found, message", [
    ([gt([[0, 0, 10, 10]], [0])], [{"boxes": np.array([[0, 0, 10]]), "labels": [0], "scores": [0.9]}], "N x 4"),
    ([gt([[0, 0, 10, 10]], [7])], [NO_DET], "label 7"),
    ([gt([[10, 0, 0, 10]], [0])], [NO_DET], "x2 < x1"),
    ([gt([[0, 0, 10, 10]], [0])], [det([[0, 0, 10, 10]], [0], [np.nan])], "NaN"),
    ([gt([[0, 0, 10, 10]], [0])], [det([[0, 0, 10, 10]], [0], [0.5, 0.4])], "1 boxes but 2 scores"),
    ([gt([[0, 0, 10, 10]], [0])], [], "1 ground-truth images but 0"),
])
def test_bad_input_is_refused_with_a_message_naming_the_problem(truth, found, message):
    with pytest.raises(EvaluationInputError, match=message):
        evaluate_detections(truth, found)


def test_bad_occlusion_level_is_refused():
    with pytest.raises(EvaluationInputError, match="occlusion levels"):
        evaluate_detections([gt([[0, 0, 1, 1]], [0])], [NO_DET], occlusion_levels=[4])


# --------------------------------------------------------------------------- random data and references
def random_benchmark(seed: int, num_images: int = 60, num_classes: int = 5):
    """Images with same-class-disjoint ground truth (grid cells) and noisy detections."""
    rng = np.random.default_rng(seed)
    truths, founds = [], []
    for _ in range(num_images):
        cells = rng.permutation(16)[: rng.integers(0, 5)]  # 0..4 items, one per 4x4 cell of 400x400
        boxes, labels = [], []
        for cell in cells:
            cx, cy = (cell % 4) * 100, (cell // 4) * 100
            x1, y1 = cx + rng.uniform(0, 30), cy + rng.uniform(0, 30)
            boxes.append([x1, y1, x1 + rng.uniform(30, 70), y1 + rng.uniform(30, 70)])
            labels.append(int(rng.integers(0, num_classes)))
        d_boxes, d_labels = [], []
        for box, label in zip(boxes, labels):
            w, h = box[2] - box[0], box[3] - box[1]
            for _ in range(rng.choice([0, 1, 1, 1, 2])):  # misses, hits, duplicates
                jitter = rng.normal(0, 0.18, 4) * [w, h, w, h]
                b = np.array(box) + jitter
                d_boxes.append([min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])])
                d_labels.append(label if rng.random() < 0.85 else int(rng.integers(0, num_classes)))
        for _ in range(rng.integers(0, 3)):  # background false alarms
            x1, y1 = rng.uniform(0, 350, 2)
            d_boxes.append([x1, y1, x1 + rng.uniform(10, 50), y1 + rng.uniform(10, 50)])
            d_labels.append(int(rng.integers(0, num_classes)))
        truths.append(gt(np.array(boxes).reshape(-1, 4), labels))
        founds.append(det(np.array(d_boxes).reshape(-1, 4), d_labels, rng.random(len(d_labels))))
    return truths, founds


def naive_voc_ap(truths, founds, class_index: int) -> float:
    """Straightforward VOC all-point AP: Python loops, no numpy envelope tricks."""
    def iou(a, b):
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = iw * ih
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
    gts = {i: [list(b) for b, l in zip(t["boxes"], t["labels"]) if l == class_index] for i, t in enumerate(truths)}
    npos = sum(len(v) for v in gts.values())
    dets = [(s, i, list(b)) for i, f in enumerate(founds)
            for b, l, s in zip(f["boxes"], f["labels"], f["scores"]) if l == class_index]
    dets.sort(key=lambda x: -x[0])
    used = {i: [False] * len(v) for i, v in gts.items()}
    hits = []
    for _, i, b in dets:
        overlaps = [iou(b, g) for g in gts[i]]
        j = max(range(len(overlaps)), key=overlaps.__getitem__) if overlaps else -1
        hit = j >= 0 and overlaps[j] > 0.5 and not used[i][j]
        if hit:
            used[i][j] = True
        hits.append(hit)
    precisions = []
    tp = 0
    for k, hit in enumerate(hits):
        tp += hit
        precisions.append(tp / (k + 1))
    # AP = mean over ground truths of the best precision at or after the rank it was found.
    total = sum(max(precisions[k:]) for k, hit in enumerate(hits) if hit)
    return total / npos if npos else math.nan


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_all_point_ap_matches_naive_reimplementation(seed):
    truths, founds = random_benchmark(seed)
    result = evaluate_detections(truths, founds)
    for c in range(5):
        expected = naive_voc_ap(truths, founds, c)
        assert result.overall.classes[c].ap == pytest.approx(expected, abs=1e-12), f"class {c}"
    # the data are not trivial: some hits, some misses, some false alarms in every class
    assert all(0.05 < cls.ap < 0.99 for cls in result.overall.classes)


def pycocotools_ap50(truths, founds, num_classes: int = 5) -> np.ndarray:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, results = [], [], []
    for i, (t, f) in enumerate(zip(truths, founds)):
        images.append({"id": i, "width": 400, "height": 400})
        for b, l in zip(t["boxes"], t["labels"]):
            w, h = b[2] - b[0], b[3] - b[1]
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": int(l),
                                "bbox": [b[0], b[1], w, h], "area": w * h, "iscrowd": 0})
        for b, l, s in zip(f["boxes"], f["labels"], f["scores"]):
            results.append({"image_id": i, "category_id": int(l), "score": float(s),
                            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]})
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations,
                    "categories": [{"id": c, "name": str(c)} for c in range(num_classes)]}
    coco.createIndex()
    evaluator = COCOeval(coco, coco.loadRes(results), "bbox")
    evaluator.params.iouThrs = np.array([0.5])
    evaluator.params.maxDets = [1000]
    evaluator.params.areaRng = [[0, 1e10]]
    evaluator.params.areaRngLbl = ["all"]
    evaluator.evaluate()
    evaluator.accumulate()
    precision = evaluator.eval["precision"][0, :, :, 0, 0]  # recall thresholds x classes
    return np.array([precision[:, k].mean() if (precision[:, k] > -1).all() else math.nan
                     for k in range(num_classes)])


@pytest.mark.parametrize("seed", [3, 4])
def test_101_point_variant_matches_pycocotools(seed, capsys):
    truths, founds = random_benchmark(seed)
    ours = evaluate_detections(truths, founds, interpolation="101_points")
    theirs = pycocotools_ap50(truths, founds)
    np.testing.assert_allclose([c.ap for c in ours.overall.classes], theirs, atol=1e-6)
    # And the all-point AP differs from it only by the interpolation (a few points at most).
    all_points = evaluate_detections(truths, founds)
    np.testing.assert_allclose([c.ap for c in all_points.overall.classes], theirs, atol=0.03)


def test_101_point_variant_matches_torchmetrics():
    torch = pytest.importorskip("torch")
    from torchmetrics.detection import MeanAveragePrecision

    truths, founds = random_benchmark(5, num_images=40)
    # Keep torchmetrics' default [1, 10, 100]: its summary looks for maxDets=100 and reports -1
    # otherwise. No image here has more than ~12 detections, so the cap never bites.
    assert max(len(f["scores"]) for f in founds) < 100
    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", iou_thresholds=[0.5],
                                  class_metrics=True, max_detection_thresholds=[1, 10, 100],
                                  # its default thresholds come from a float32 torch.linspace (0.3 becomes
                                  # 0.30000001), which moves the sample when a recall is exactly 3/10;
                                  # pycocotools and we use float64 numpy.linspace.
                                  rec_thresholds=np.linspace(0.0, 1.0, 101).tolist())
    metric.update([{k: torch.as_tensor(v, dtype=torch.float64 if k != "labels" else torch.int64)
                    for k, v in f.items()} for f in founds],
                  [{k: torch.as_tensor(v, dtype=torch.float64 if k != "labels" else torch.int64)
                    for k, v in t.items()} for t in truths])
    scores = metric.compute()
    ours = evaluate_detections(truths, founds, interpolation="101_points")
    per_class = dict(zip(scores["classes"].tolist(), scores["map_per_class"].tolist()))
    for c, cls in enumerate(ours.overall.classes):
        assert cls.ap == pytest.approx(per_class[c], abs=1e-6), f"class {c}"


# --------------------------------------------------------------------------- reports
def test_tables_and_plots(tmp_path):
    truths, founds = random_benchmark(6, num_images=30)
    levels = [1 + i % 3 for i in range(30)]
    run_a = evaluate_detections(truths, founds, occlusion_levels=levels)
    run_b = evaluate_detections(truths, [NO_DET] * 30, occlusion_levels=levels)

    table = category_table({"SSD": run_a, "+DOAM (2 seeds)": [run_a, run_b]})
    lines = table.splitlines()
    assert [h.strip() for h in lines[0].split("|")[1:-1]] == ["Method", "mAP", "FO", "ST", "SC", "UT", "MU"]
    assert f"{run_a.mean_ap * 100:.2f}" in lines[2]
    spread = np.std([run_a.mean_ap * 100, 0.0], ddof=1)
    assert f"{run_a.mean_ap * 100 / 2:.2f} ± {spread:.2f}" in lines[3]

    ol = occlusion_table({"SSD": run_a})
    assert [h.strip() for h in ol.splitlines()[0].split("|")[1:-1]] == ["Method", "OL 1", "OL 2", "OL 3"]
    assert f"{run_a.occlusion[3].mean_ap * 100:.2f}" in ol.splitlines()[2]
    assert "OL2" in result_summary(run_a)

    paths = plot_all_pr_curves(run_a, tmp_path / "plots")
    assert [p.name for p in paths] == ["pr_all.png", "pr_OL1.png", "pr_OL2.png", "pr_OL3.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
