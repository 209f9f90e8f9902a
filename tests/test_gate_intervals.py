"""The gate's paired intervals: candidate - active over redrawn images, in reasons, notes and the Models view.

The models are stood in for by their matched detections (``ResamplableResult``), built from
constructed detections through the same ``voc.match_images`` the gate uses; ``score_detector``
itself is exercised on a real split with a detector that reads the ground truth back.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from app.model_details import gate_summary
from core.evaluation.bootstrap import ResamplableResult
from core.evaluation.voc import match_images
from core.training.gate import GateSettings, ScoredModel, judge, paired_changes, score_detector
from tests.tiny_dataset import make_tiny_dataset

BOX = [100.0, 100.0, 200.0, 160.0]
FAST = GateSettings(interval_rounds=400)


def outcomes(found: list[bool], levels: list[int | None]) -> ResamplableResult:
    """One item of class 0 per image, found (IoU 1, score 0.9) or missed (a box elsewhere, score 0.9)."""
    truth = [{"boxes": np.array([BOX]), "labels": np.array([0])} for _ in found]
    elsewhere = [500.0, 500.0, 600.0, 560.0]
    dets = [{"boxes": np.array([BOX if hit else elsewhere]), "labels": np.array([0]), "scores": np.array([0.9])}
            for hit in found]
    matched, _ = match_images(truth, dets, occlusion_levels=levels if any(levels) else None)
    return ResamplableResult(matched, levels)


def scored(bench: ResamplableResult, held: ResamplableResult | None = None) -> ScoredModel:
    return ScoredModel({}, {"benchmark": bench, "heldout": held})


def scores(bench_map: float, held_map: float | None) -> dict:
    bench = {"map": bench_map, "ap": {}, "items_per_ol": {}}
    held = None if held_map is None else {"map": held_map, "has_labels": True, "missed": 0, "false_alarm": 0}
    return {"benchmark": bench, "heldout": held}


LEVELS = [1, 2, 3] * 20   # 60 benchmark images, 20 per occlusion level


def test_identical_models_change_by_exactly_nothing() -> None:
    model = outcomes([True] * 59 + [False], LEVELS)
    changes = paired_changes(scored(model), scored(model), FAST)
    for metric in ("map", "map_ol1", "map_ol2", "map_ol3"):
        assert changes["benchmark"][metric]["change"] == 0.0
        assert changes["benchmark"][metric]["interval"] == [0.0, 0.0]   # paired: the same draw for both
    assert changes["heldout"] is None and changes["benchmark"]["images"] == 60


def test_a_real_fall_lies_outside_the_interval_and_one_miss_does_not() -> None:
    active = outcomes([True] * 60, LEVELS)
    half = outcomes([i % 2 == 0 for i in range(60)], LEVELS)
    real = paired_changes(scored(half), scored(active), FAST)["benchmark"]["map"]
    assert real["change"] < -0.3 and real["interval"][1] < 0 and real["share_above_zero"] == 0.0
    one_miss = outcomes([True] * 59 + [False], LEVELS)
    noise = paired_changes(scored(one_miss), scored(active), FAST)["benchmark"]["map"]
    # Redrawn, the one missed image is left out about a third of the time: the change can be nothing.
    assert noise["change"] < 0 and noise["interval"][0] < noise["change"] and noise["interval"][1] == 0.0


def test_the_interval_rides_with_the_reasons_and_the_notes() -> None:
    active = outcomes([True] * 60, LEVELS)
    half = outcomes([i % 2 == 0 for i in range(60)], LEVELS)
    held_active = outcomes([True] * 4 + [False] * 4, [None] * 8)
    held_better = outcomes([True] * 5 + [False] * 3, [None] * 8)
    changes = paired_changes(scored(half, held_better), scored(active, held_active), FAST)
    ours, theirs = half.metrics()["map"], active.metrics()["map"]
    decision = judge(scores(ours, held_better.metrics()["map"]), scores(theirs, held_active.metrics()["map"]),
                     FAST, changes=changes)
    assert decision.verdict == "reject"
    assert (f"benchmark mAP fell from 1.000 to {ours:.3f} (tolerance 0.020); change {ours - 1:+.3f}, 95% interval ["
            in decision.reasons[0]) and "over 60 redrawn images" in decision.reasons[0]
    assert "interval" in decision.headline()
    # Both notes: the fall is beyond noise; one more held-out item found in 8 bags is within it.
    assert any(n.startswith("the benchmark mAP fell by more than redrawing its images explains") for n in decision.notes)
    assert any(n.startswith("the held-out gain is within what redrawing") and "over 8 redrawn images" in n
               for n in decision.notes)
    record = decision.to_dict()
    assert json.loads(json.dumps(record, allow_nan=False))["changes"]["heldout"]["map"]["change"] > 0
    summary = gate_summary({"gate": record})
    assert f"benchmark mAP: active 1.000 -> candidate {ours:.3f} (change {ours - 1:+.3f}, 95% interval [" in summary
    assert "Note: the held-out gain is within" in summary


def test_without_intervals_the_gate_reads_as_before() -> None:
    decision = judge(scores(0.45, 0.9), scores(0.5, 0.3))
    assert decision.reasons == ["benchmark mAP fell from 0.500 to 0.450 (tolerance 0.020)"]
    assert decision.changes == {} and decision.notes == []
    old_record = {k: v for k, v in decision.to_dict().items() if k not in ("changes", "notes")}
    assert "interval" not in gate_summary({"gate": old_record})   # a version gated before intervals existed


def test_settings_refuse_too_few_rounds_or_an_odd_confidence() -> None:
    with pytest.raises(ValueError, match="interval_rounds"):
        GateSettings(interval_rounds=10)
    with pytest.raises(ValueError, match="interval_confidence"):
        GateSettings(interval_confidence=1.0)


class _TruthReader:
    """A detector that returns each image's ground truth (found in order), so the scores are known."""

    def __init__(self, samples, blind_to: int | None = None) -> None:  # noqa: ANN001
        self.queue = list(samples)
        self.blind_to = blind_to   # this class is never reported

    def predict_batch(self, images):  # noqa: ANN001, ANN201
        out = []
        for _ in images:
            sample = self.queue.pop(0)
            sample = SimpleNamespace(boxes=[b for b in sample.boxes if b.class_index != self.blind_to])
            out.append(SimpleNamespace(boxes=np.array([b.as_list() for b in sample.boxes]).reshape(-1, 4),
                                       labels=np.array([b.class_index for b in sample.boxes], dtype=np.int64),
                                       scores=np.full(len(sample.boxes), 0.95), attention=None))
        return out


def test_score_detector_returns_the_scores_and_outcomes_that_agree(tmp_path: Path) -> None:
    from core.data.opixray import load_split  # noqa: PLC0415

    root = make_tiny_dataset(tmp_path / "bench", n_train=0, n_test=6)
    samples = load_split(root, "test")
    result = score_detector(_TruthReader(samples), root, "test")
    assert result is not None
    numbers, resamplable = result
    assert numbers["map"] == pytest.approx(1.0) and numbers["missed"] == 0 and numbers["false_alarm"] == 0
    assert numbers["items"] == sum(len(s.boxes) for s in samples)
    assert resamplable.num_images == 6 and resamplable.metrics()["map"] == pytest.approx(numbers["map"])
    blind = score_detector(_TruthReader(samples, blind_to=0), root, "test")[0]
    assert blind["missed"] == sum(b.class_index == 0 for s in samples for b in s.boxes) > 0
    assert blind["ap"]["FO"] == 0.0 and blind["map"] < numbers["map"]
