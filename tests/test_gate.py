# ruff: noqa: F811
"""The gate's rule, the corrections export, and the store steps of the job on both engines.

Nothing here trains a model: the rule is judged on constructed scores, the
export on a store filled by hand, and the store steps (gate verdicts, never two
jobs, dead jobs, nothing to do) run against SQLite and PostgreSQL through the
fixtures of tests/store.
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.data.opixray import load_split
from core.imaging.decode import encode_jpg, read_image
from core.store.values import Box, HardSample
from core.training.corrections import (
    ExportSettings,
    export_corrections,
    is_held_out,
    layout_boxes,
)
from core.training.gate import GateSettings, apply_gate, judge
from core.training.retrain import (
    JobRefused,
    RetrainSettings,
    job_dir,
    reap_dead_jobs,
    run_retrain,
)

# The store fixtures of tests/store (SQLite and PostgreSQL), imported so pytest finds them here;
# test parameters named like them are what pytest injects (hence the file-wide F811 below).
from tests.store.conftest import (  # noqa: F401
    _cheap_password_hashing,
    db_url,
    postgres_server,
    sqlite_template,
    store,
    world,
)
from tests.tiny_dataset import make_tiny_dataset


# ----------------------------------------------------------------------------- the rule
def scores(bench_map=0.5, st=0.5, mu=0.5, ol=(0.5, 0.5, 0.5), held_map=0.3, false_alarm=3, held_labels=True,
           items=20, missed=2) -> dict:
    bench = {"map": bench_map, "ap": {"FO": None, "ST": st, "SC": None, "UT": None, "MU": mu},
             "map_ol1": ol[0], "map_ol2": ol[1], "map_ol3": ol[2],
             "items_per_class": {"FO": 0, "ST": items, "SC": 0, "UT": 0, "MU": items},
             "items_per_ol": {"ol1": items, "ol2": items, "ol3": 3}, "missed": 1, "false_alarm": 1}
    held = None if held_map is None else {"map": held_map, "has_labels": held_labels, "false_alarm": false_alarm,
                                          "missed": missed}
    return {"benchmark": bench, "heldout": held}


def test_better_on_heldout_and_not_worse_on_benchmark_is_promoted() -> None:
    decision = judge(scores(bench_map=0.49, held_map=0.4), scores(held_map=0.3))
    assert decision.verdict == "promote" and decision.reasons == []
    assert "held-out mAP 0.300 -> 0.400" in decision.headline()


def test_benchmark_drop_beyond_tolerance_is_rejected_with_the_numbers() -> None:
    decision = judge(scores(bench_map=0.45, held_map=0.9), scores(), GateSettings(benchmark_tolerance=0.02))
    assert decision.verdict == "reject"
    assert decision.reasons == ["benchmark mAP fell from 0.500 to 0.450 (tolerance 0.020)"]


def test_one_class_or_one_occlusion_level_falling_is_enough_to_reject() -> None:
    by_class = judge(scores(st=0.3, mu=0.7, held_map=0.9), scores())
    assert by_class.verdict == "reject" and "AP of ST fell from 0.500 to 0.300" in by_class.reasons[0]
    by_level = judge(scores(ol=(0.5, 0.2, 0.5), held_map=0.9), scores())
    assert by_level.verdict == "reject" and "OL2" in by_level.reasons[0]


def test_a_class_or_level_with_too_few_items_is_not_judged() -> None:
    # OL3 has 3 items in these scores: a fall there is noise, not evidence.
    decision = judge(scores(ol=(0.5, 0.5, 0.0), held_map=0.9), scores(), GateSettings(min_detail_items=10))
    assert decision.verdict == "promote"
    strict = judge(scores(ol=(0.5, 0.5, 0.0), held_map=0.9), scores(), GateSettings(min_detail_items=1))
    assert strict.verdict == "reject"


def test_not_better_on_the_heldout_corrections_is_rejected() -> None:
    same = judge(scores(held_map=0.3), scores(held_map=0.3))
    assert same.verdict == "reject" and "did not improve: 0.300 -> 0.300" in same.reasons[0]
    small_gain = judge(scores(held_map=0.32), scores(held_map=0.3), GateSettings(min_heldout_gain=0.05))
    assert small_gain.verdict == "reject"


def test_missing_more_marked_items_is_rejected_even_with_a_higher_heldout_map() -> None:
    # The swapped-label scenario: a better mAP against wrong names, but fewer items found at all.
    more = judge(scores(held_map=0.26, missed=7), scores(held_map=0.0, missed=4))
    assert more.verdict == "reject"
    assert more.reasons == ["held-out corrections: the candidate misses more marked items at the alarm threshold (4 -> 7)"]
    assert judge(scores(held_map=0.26, missed=4), scores(held_map=0.0, missed=4)).verdict == "promote"


def test_heldout_bags_without_items_are_judged_by_false_alarms() -> None:
    fewer = judge(scores(held_map=0.0, held_labels=False, false_alarm=1),
                  scores(held_map=0.0, held_labels=False, false_alarm=4))
    assert fewer.verdict == "promote"
    more = judge(scores(held_map=0.0, held_labels=False, false_alarm=4),
                 scores(held_map=0.0, held_labels=False, false_alarm=4))
    assert more.verdict == "reject" and "false alarms 4 -> 4" in more.reasons[0]


def test_no_heldout_corrections_leaves_the_decision_to_a_supervisor() -> None:
    assert judge(scores(held_map=None), scores(held_map=None)).verdict == "undecided"
    # ... unless the benchmark already says no.
    assert judge(scores(bench_map=0.1, held_map=None), scores(held_map=None)).verdict == "reject"


# ----------------------------------------------------------------------------- the export
def test_holdout_is_stable_and_near_its_share() -> None:
    hashes = [f"{i:064x}" for i in range(2000)]
    first = [is_held_out(h, 0.2) for h in hashes]
    assert first == [is_held_out(h, 0.2) for h in hashes]
    assert 0.17 < sum(first) / len(first) < 0.23
    assert not any(is_held_out(h, 0.0) for h in hashes)
    # A larger share only adds bags: nothing held out before is ever trained on later.
    assert all(is_held_out(h, 0.3) for h, held in zip(hashes, first) if held)


def test_layout_boxes_stay_inside_and_never_empty() -> None:
    [box] = layout_boxes([Box("Scissor", 10.4, 0.0, 10.6, 99.9)], width=50, height=100)
    assert (box.x1, box.y1, box.x2, box.y2) == (10, 0, 11, 100)


def _stored_bag(world, image: np.ndarray, png: bool = False):
    ok, data = cv2.imencode(".png", image) if png else (True, np.frombuffer(encode_jpg(image), np.uint8))
    assert ok
    return world.store.bags.record_bag(world.inspector_a, lane_id=world.lane_a, width=image.shape[1],
                                       height=image.shape[0], image=data.tobytes())


SCISSOR = Box("Scissor", 5, 5, 30, 20)


def _hard(bag, boxes=(SCISSOR,)) -> HardSample:
    return HardSample(bag_id=bag.id, image_sha256=bag.image_sha256, model_version_id=1, label_version=1,
                      labels=tuple(boxes))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_export_oversamples_holds_out_replays_and_skips_missing_images(world, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    bags = [_stored_bag(world, rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)) for _ in range(24)]
    png_bag = _stored_bag(world, rng.integers(0, 255, (40, 60, 3), dtype=np.uint8), png=True)
    missing = _stored_bag(world, rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
    world.store.images.find(missing.image_sha256).unlink()
    samples = [_hard(b) for b in bags] + [_hard(png_bag), _hard(missing, ())]
    base = make_tiny_dataset(tmp_path / "base", n_train=30, n_test=0)
    settings = ExportSettings(holdout_share=0.25, oversample=3, replay_ratio=0.5)
    export = export_corrections(samples, world.store.images, tmp_path / "export", settings=settings, base_data=base)

    assert [s.bag_id for s in export.skipped] == [missing.id] and "missing" in export.skipped[0].reason
    held = {b for b, _ in export.heldout_bags}
    trained = {b for b, _ in export.train_bags}
    assert held and trained and not held & trained and len(held | trained) == 25
    assert held == {b.id for b in bags + [png_bag] if is_held_out(b.image_sha256, 0.25)}
    train = load_split(export.root, "train")
    corrected = [s for s in train if s.image_id.startswith("c")]
    assert len(corrected) == 3 * len(trained)
    assert len([s for s in train if s.image_id.startswith("r")]) == round(0.5 * len(trained))
    # The copies of one bag are hard links to one file (the content store's, for a JPG).
    copies = [s for s in corrected if s.image_id.startswith(f"c{bags[0].id:07d}-")] if bags[0].id in trained else []
    if copies:
        assert len({os.stat(s.image_path).st_ino for s in copies}) == 1
        assert os.stat(copies[0].image_path).st_ino == os.stat(world.store.images.find(bags[0].image_sha256)).st_ino
    test_ids = {s.image_id for s in load_split(export.root, "test")}
    assert test_ids == {f"c{b:07d}" for b in held}
    # The PNG was rewritten losslessly (the layout has no .png), pixels unchanged.
    png_file = next((s.image_path for s in train + load_split(export.root, "test")
                     if s.image_id.startswith(f"c{png_bag.id:07d}")), None)
    assert png_file is not None and png_file.suffix == ".tiff"
    assert np.array_equal(read_image(png_file), read_image(world.store.images.find(png_bag.image_sha256)))
    assert [b.label for b in train[0].boxes] in (["Scissor"], [b.label for b in train[0].boxes])
    assert json.dumps(export.lineage())  # plain JSON for the registry


# ----------------------------------------------------------------------------- store steps, both engines
def _candidate(world, tmp_path: Path, name: str = "cand"):
    path = tmp_path / f"{name}.pt"
    path.write_bytes(random.randbytes(64))
    return world.store.models.register(world.supervisor, name=name, arch="fast", path=path,
                                       parent_id=world.model_id)


def _audit_actions(world) -> list[str]:
    from sqlalchemy import select  # noqa: PLC0415

    from core.store.schema import AuditEntry  # noqa: PLC0415

    return world.store.db.run(lambda s: list(s.scalars(select(AuditEntry.action).order_by(AuditEntry.seq))),
                              write=False)


def test_gate_verdicts_go_through_the_store_and_the_audit_log(world, tmp_path: Path) -> None:
    store = world.store
    good = _candidate(world, tmp_path, "good")
    promoted = apply_gate(store, world.supervisor, good, judge(scores(held_map=0.5), scores()),
                          expected_active_id=world.model_id)
    assert promoted.status == "active" and store.models.get(world.model_id).status == "retired"
    bad = _candidate(world, tmp_path, "bad")
    rejected = apply_gate(store, world.supervisor, bad, judge(scores(bench_map=0.1), scores()),
                          expected_active_id=good.id)
    assert rejected.status == "rejected" and store.models.active().id == good.id
    # Trained from a model that is no longer active: left for a supervisor, not promoted over the new one.
    late = _candidate(world, tmp_path, "late")
    left = apply_gate(store, world.supervisor, late, judge(scores(held_map=0.5), scores()),
                      expected_active_id=world.model_id)
    assert left.status == "candidate" and store.models.active().id == good.id
    actions = _audit_actions(world)
    steps = [a for a in actions if a in ("model.gate", "model.promote", "model.reject")]
    assert steps[-5:] == ["model.gate", "model.promote", "model.gate", "model.reject", "model.gate"]
    assert store.verify_audit().ok
    with pytest.raises(Exception, match="may not"):
        apply_gate(store, world.inspector_a, late, judge(scores(held_map=0.5), scores()),
                   expected_active_id=good.id)


def test_never_two_jobs_at_once_and_dead_jobs_are_reaped(world, tmp_path: Path) -> None:
    store, sup = world.store, world.supervisor
    data_dir = tmp_path / "data"
    running = store.jobs.create(sup, settings={})
    store.jobs.start(sup, running.id)
    benchmark = make_tiny_dataset(tmp_path / "bench", n_train=0, n_test=2)
    with pytest.raises(JobRefused, match=f"job {running.id} is already running"):
        run_retrain(store, sup, data_dir=data_dir, benchmark=benchmark)
    # Its process died without a word (kill -9): the next job finds out and marks it failed.
    folder = job_dir(data_dir, running.id)
    folder.mkdir(parents=True)
    (folder / "process.json").write_text(json.dumps({"pid": 2**22 + 12345, "host": os.uname().nodename}))
    assert reap_dead_jobs(store, sup, data_dir) == [running.id]
    failed = store.jobs.get(running.id)
    assert failed.state == "failed" and "crashed or was killed" in failed.error
    # A live process (this one) is left alone.
    alive = store.jobs.create(sup, settings={})
    store.jobs.start(sup, alive.id)
    job_dir(data_dir, alive.id).mkdir(parents=True)
    (job_dir(data_dir, alive.id) / "process.json").write_text(json.dumps({"pid": os.getpid(),
                                                                          "host": os.uname().nodename}))
    assert reap_dead_jobs(store, sup, data_dir) == []
    store.jobs.fail(sup, alive.id, "test over")
    # Two starters racing: the second row sees the first and stands down.
    first = store.jobs.create(sup, settings={})
    second = store.jobs.create(sup, settings={})
    from core.training.retrain import _claim_exclusive  # noqa: PLC0415

    _claim_exclusive(store, sup, first)
    with pytest.raises(JobRefused):
        _claim_exclusive(store, sup, second)
    assert store.jobs.get(second.id).state == "cancelled"


def test_no_hard_samples_means_nothing_to_do_and_no_job(world, tmp_path: Path) -> None:
    benchmark = make_tiny_dataset(tmp_path / "bench", n_train=0, n_test=2)
    outcome = run_retrain(world.store, world.supervisor, data_dir=tmp_path / "data", benchmark=benchmark,
                          settings=RetrainSettings())
    assert outcome.status == "nothing_to_do" and "no hard samples" in outcome.message
    assert world.store.jobs.list() == []
    assert world.store.models.active().id == world.model_id


def test_hard_samples_are_judged_at_the_active_models_own_operating_point() -> None:
    from types import SimpleNamespace  # noqa: PLC0415

    from core.training.retrain import DEFAULT_ALARM_THRESHOLD, RetrainSettings, alarm_threshold_for  # noqa: PLC0415

    assert alarm_threshold_for(SimpleNamespace(metrics={"operating_point": {"threshold": 0.31}})) == 0.31
    for metrics in ({}, None, {"operating_point": None}, {"operating_point": {"threshold": 1.5}}):
        assert alarm_threshold_for(SimpleNamespace(metrics=metrics)) == DEFAULT_ALARM_THRESHOLD
    assert alarm_threshold_for(None) == DEFAULT_ALARM_THRESHOLD
    assert RetrainSettings().gate_settings().alarm_threshold == DEFAULT_ALARM_THRESHOLD
    assert RetrainSettings(score_threshold=0.3).gate_settings().alarm_threshold == 0.3
