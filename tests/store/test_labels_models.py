"""Label revisions (append-only, version check), model registry, training jobs."""
from __future__ import annotations

import hashlib
import random
import threading
from pathlib import Path

import pytest

from core.store.errors import ConflictError, InvalidInput, InvalidState, PermissionDenied
from core.store.values import Box

KNIFE = Box("Straight_Knife", 10, 10, 60, 40)
SCISSOR = Box("Scissor", 100, 20, 150, 80)


def _bag(world):
    return world.store.bags.record_bag(world.inspector_a, lane_id=world.lane_a, width=200, height=100,
                                       image=b"\x89PNG\r\n\x1a\n" + random.randbytes(16))


def test_revisions_are_appended_and_the_latest_is_current(world) -> None:
    labels = world.store.labels
    bag = _bag(world)
    assert labels.current(bag.id).version == 0
    r1 = labels.save(world.inspector_a, bag.id, [KNIFE], origin="accepted_prediction", base_version=0)
    r2 = labels.save(world.annotator, bag.id, [KNIFE, SCISSOR], origin="added", base_version=1)
    r3 = labels.save(world.annotator, bag.id, [], origin="deleted", base_version=2)
    assert (r1.version, r2.version, r3.version) == (1, 2, 3)
    current = labels.current(bag.id)
    assert current.version == 3 and current.boxes == () and current.author_id == world.annotator.id
    history = labels.history(bag.id)
    assert [h.boxes for h in history] == [(KNIFE,), (KNIFE, SCISSOR), ()]
    assert [h.origin for h in history] == ["accepted_prediction", "added", "deleted"]


def test_two_sessions_editing_the_same_bag_the_loser_sees_the_newer_labels(world) -> None:
    labels = world.store.labels
    bag = _bag(world)
    labels.save(world.annotator, bag.id, [KNIFE], origin="added", base_version=0)
    # Both open version 1; the annotator saves first.
    labels.save(world.annotator, bag.id, [KNIFE, SCISSOR], origin="added", base_version=1)
    with pytest.raises(ConflictError) as conflict:
        labels.save(world.inspector_a, bag.id, [], origin="deleted", base_version=1)
    assert conflict.value.current_version == 2
    assert conflict.value.current_boxes == (KNIFE, SCISSOR)
    assert labels.current(bag.id).boxes == (KNIFE, SCISSOR)


def test_concurrent_saves_from_threads_never_lose_an_edit(world) -> None:
    labels = world.store.labels
    bag = _bag(world)
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def edit(box: Box) -> None:
        barrier.wait()
        try:
            labels.save(world.annotator, bag.id, [box], origin="added", base_version=0)
            outcomes.append("saved")
        except ConflictError as exc:
            assert exc.current_version == 1
            outcomes.append("conflict")

    boxes = [Box("Scissor", 10 * i, 10, 10 * i + 5, 20) for i in range(1, 5)]
    threads = [threading.Thread(target=edit, args=(b,)) for b in boxes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 3 + ["saved"]
    assert len(labels.history(bag.id)) == 1


def test_label_rules(world) -> None:
    bag = _bag(world)
    with pytest.raises(PermissionDenied):
        world.store.labels.save(world.supervisor, bag.id, [KNIFE], origin="added", base_version=0)
    with pytest.raises(InvalidInput, match="outside"):
        world.store.labels.save(world.annotator, bag.id, [Box("Scissor", 150, 50, 250, 90)], origin="added",
                                base_version=0)
    with pytest.raises(InvalidInput, match="origin"):
        world.store.labels.save(world.annotator, bag.id, [KNIFE], origin="guessed", base_version=0)


def test_model_lifecycle_one_active_promote_reject_rollback(world, tmp_path: Path) -> None:
    models = world.store.models
    weights = tmp_path / "candidate.pt"
    weights.write_bytes(b"weights v2")
    with pytest.raises(InvalidInput, match="sha256"):
        models.register(world.supervisor, name="v2", arch="fast", path=weights, sha256="c" * 64)
    v2 = models.register(world.supervisor, name="v2", arch="fast", path=weights, parent_id=world.model_id,
                         metrics={"mAP": 0.5})
    assert v2.status == "candidate" and v2.sha256 == hashlib.sha256(b"weights v2").hexdigest()
    with pytest.raises(InvalidInput, match="already registered"):
        models.register(world.supervisor, name="again", arch="fast", path=weights)
    with pytest.raises(PermissionDenied):
        models.promote(world.inspector_a, v2.id)
    assert models.promote(world.supervisor, v2.id).status == "active"
    assert models.get(world.model_id).status == "retired"
    assert [m.id for m in models.list("active")] == [v2.id]
    back = models.rollback(world.supervisor)
    assert back.id == world.model_id and models.get(v2.id).status == "retired"
    v3 = models.register(world.supervisor, name="v3", arch="fast", path="/gone.pt", sha256="d" * 64)
    assert models.reject(world.supervisor, v3.id, "worse recall").status == "rejected"
    with pytest.raises(InvalidState, match="rejected"):
        models.promote(world.supervisor, v3.id)
    assert models.active().id == world.model_id


def test_training_job_lifecycle(world, tmp_path: Path) -> None:
    jobs = world.store.jobs
    with pytest.raises(PermissionDenied):
        jobs.create(world.inspector_a, settings={"epochs": 1})
    job = jobs.create(world.supervisor, settings={"epochs": 3}, base_model_id=world.model_id, hard_sample_count=7)
    assert job.state == "queued"
    with pytest.raises(InvalidState):
        jobs.finish(world.supervisor, job.id, result_model_id=None)
    jobs.start(world.supervisor, job.id, log_path=str(tmp_path / "job.log"))
    jobs.report_progress(world.supervisor, job.id, 0.4)
    assert jobs.get(job.id).progress == pytest.approx(0.4)
    model = world.store.models.register(world.supervisor, name="from job", arch="fast", path="/j.pt",
                                        sha256="e" * 64, job_id=job.id, parent_id=world.model_id)
    done = jobs.finish(world.supervisor, job.id, result_model_id=model.id, metrics={"mAP": 0.61})
    assert done.state == "succeeded" and done.result_model_id == model.id and done.finished_at is not None
    failing = jobs.create(world.supervisor, settings={})
    jobs.start(world.supervisor, failing.id)
    assert jobs.fail(world.supervisor, failing.id, "CUDA out of memory").error == "CUDA out of memory"
    assert [j.id for j in jobs.list(("failed",))] == [failing.id]
