"""Remote-screening queue, hard samples and supervisor statistics."""
from __future__ import annotations

import datetime as dt
import random
import threading
import time

import pytest

from core.store.errors import InvalidState, PermissionDenied
from core.store.hard_samples import compare
from core.store.schema import utcnow
from core.store.values import Box, ScoredBox

KNIFE = Box("Straight_Knife", 10, 10, 60, 40)
SCISSOR = Box("Scissor", 100, 20, 150, 80)


def _bag(world, lane=None, who=None, **kw):
    return world.store.bags.record_bag(who or world.inspector_a, lane_id=lane or world.lane_a, width=200,
                                       height=100, image=b"\x89PNG\r\n\x1a\n" + random.randbytes(16), **kw)


def test_remote_queue_is_fifo_and_each_bag_goes_to_one_inspector(world, password) -> None:
    store = world.store
    remote = [store.users.add(world.admin, f"remote{i}", "inspector", password) for i in range(4)]
    bag_ids = []
    for i in range(12):
        lane, who = (world.lane_a, world.inspector_a) if i % 2 else (world.lane_b, world.inspector_b)
        bag = _bag(world, lane=lane, who=who)
        store.queue.enqueue(who, bag.id)
        bag_ids.append(bag.id)
    assert store.queue.enqueue(world.inspector_a, bag_ids[1]) == store.queue.enqueue(world.inspector_a, bag_ids[1])
    claims: dict[int, list[int]] = {u.id: [] for u in remote}
    barrier = threading.Barrier(len(remote))

    def work(user) -> None:  # noqa: ANN001
        barrier.wait()
        while (claim := store.queue.claim(user)) is not None:
            claims[user.id].append(claim.bag.id)

    threads = [threading.Thread(target=work, args=(u,)) for u in remote]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [b for taken in claims.values() for b in taken]
    assert sorted(everything) == sorted(bag_ids)  # each bag exactly once
    for taken in claims.values():
        assert taken == sorted(taken)  # each inspector sees them in arrival order
    assert store.queue.waiting() == 0
    # A remote inspector may decide the bag they claimed, even from another lane.
    [first_user] = [u for u in remote if claims[u.id]][:1]
    claimed_bag = claims[first_user.id][0]
    assert store.bags.record_decision(first_user, claimed_bag, "clear", opened_at=utcnow()).verdict == "clear"
    unclaimed_user = next(u for u in remote if claimed_bag not in claims[u.id])
    with pytest.raises(PermissionDenied):
        store.bags.record_decision(unclaimed_user, claimed_bag, "clear", opened_at=utcnow())


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgres_claim_skips_a_row_locked_by_another_claim(world) -> None:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from core.store.schema import ScreeningQueueItem

    store = world.store
    first, second = _bag(world), _bag(world)
    store.queue.enqueue(world.inspector_a, first.id)
    store.queue.enqueue(world.inspector_a, second.id)
    # Another workstation is in the middle of claiming the first bag (row locked, not committed).
    with Session(store.db.engine) as other:
        other.execute(select(ScreeningQueueItem).where(ScreeningQueueItem.bag_id == first.id).with_for_update())
        started = time.monotonic()
        claim = store.queue.claim(world.inspector_a)
        assert claim.bag.id == second.id
        assert time.monotonic() - started < 2.0  # skipped, not waited for
        other.rollback()
    assert store.queue.claim(world.inspector_a).bag.id == first.id


def test_claims_can_be_released_back_to_their_place(world, password) -> None:
    store = world.store
    remote = store.users.add(world.admin, "remote", "inspector", password)
    other = store.users.add(world.admin, "other", "inspector", password)
    first, second = _bag(world), _bag(world)
    store.queue.enqueue(world.inspector_a, first.id)
    store.queue.enqueue(world.inspector_a, second.id)
    assert store.queue.claim(remote).bag.id == first.id
    with pytest.raises(PermissionDenied):
        store.queue.release(other, first.id)
    store.queue.release(remote, first.id)
    assert store.queue.claim(other).bag.id == first.id      # FIFO place kept
    assert store.queue.claim(remote).bag.id == second.id
    store.bags.record_decision(remote, second.id, "clear", opened_at=utcnow())
    assert store.queue.release_stale(world.supervisor, dt.timedelta(seconds=0)) == [first.id]
    with pytest.raises(InvalidState, match="already decided"):
        store.queue.release(remote, second.id)
    assert store.queue.waiting() == 1


def test_compare_names_every_kind_of_disagreement() -> None:
    labels = [KNIFE, SCISSOR, Box("Folding_Knife", 160, 10, 190, 40)]
    predictions = [
        ScoredBox(Box("Straight_Knife", 11, 11, 61, 41), 0.9),      # match
        ScoredBox(Box("Utility_Knife", 100, 20, 150, 80), 0.8),     # wrong class on the scissor
        ScoredBox(Box("Folding_Knife", 175, 25, 199, 60), 0.7),     # poor box (IoU < 0.5)
        ScoredBox(Box("Scissor", 60, 85, 90, 99), 0.6),             # false alarm
        ScoredBox(Box("Scissor", 0, 0, 5, 5), 0.1),                 # below threshold: ignored
    ]
    result = compare(labels, predictions)
    assert result.true_positives == 1
    assert sorted(d.kind for d in result.disagreements) == ["false_alarm", "poor_box", "wrong_class"]
    missed = compare(labels, predictions[:1])
    assert sorted(d.kind for d in missed.disagreements) == ["missed", "missed"]


def test_hard_samples_come_from_labels_vs_the_screening_model(world) -> None:
    store = world.store
    bags = [_bag(world) for _ in range(4)]
    preds = [[ScoredBox(KNIFE, 0.9)], [], [ScoredBox(Box("Scissor", 10, 10, 60, 40), 0.9)], [ScoredBox(KNIFE, 0.9)]]
    truth = [[KNIFE], [SCISSOR], [KNIFE], []]
    for bag, p, t in zip(bags, preds, truth):
        store.bags.record_predictions(world.inspector_a, bag.id, world.model_id, p)
        store.labels.save(world.annotator, bag.id, t, origin="added", base_version=0)
    unlabelled = _bag(world)
    store.bags.record_predictions(world.inspector_a, unlabelled.id, world.model_id, [ScoredBox(KNIFE, 0.9)])
    with pytest.raises(PermissionDenied):
        store.hard_samples.find(world.inspector_a)
    found = {h.bag_id: h.kinds for h in store.hard_samples.find(world.supervisor)}
    assert found == {bags[1].id: ("missed",), bags[2].id: ("wrong_class",), bags[3].id: ("false_alarm",)}
    # A later correction that agrees with the model removes the bag from the hard set.
    store.labels.save(world.annotator, bags[3].id, [KNIFE], origin="added", base_version=1)
    assert bags[3].id not in {h.bag_id for h in store.hard_samples.find(world.supervisor)}


def test_inspector_and_model_statistics(world) -> None:
    store = world.store
    store.reviews.set_qc_share(world.supervisor, 0.0)
    t0 = utcnow() - dt.timedelta(minutes=10)
    # TIP: 2 bags, 1 hit.
    for verdict in ("suspect", "clear"):
        bag = _bag(world, source="tip", tip_truth=[KNIFE])
        store.bags.record_decision(world.inspector_a, bag.id, verdict, opened_at=t0,
                                   decided_at=t0 + dt.timedelta(seconds=4))
    # Clean confirmed bags: 3, one false alarm; the model agrees on 2 of them (no alarm, verdict clear).
    for verdict in ("suspect", "clear", "clear"):
        bag = _bag(world)
        store.bags.record_predictions(world.inspector_a, bag.id, world.model_id, [])
        store.labels.save(world.annotator, bag.id, [], origin="deleted", base_version=0)
        store.bags.record_decision(world.inspector_a, bag.id, verdict, opened_at=t0,
                                   decided_at=t0 + dt.timedelta(seconds=2))
    # A threat bag the model found and the inspector flagged.
    bag = _bag(world)
    store.bags.record_predictions(world.inspector_a, bag.id, world.model_id, [ScoredBox(KNIFE, 0.95)])
    store.labels.save(world.annotator, bag.id, [KNIFE, SCISSOR], origin="added", base_version=0)
    store.bags.record_decision(world.inspector_a, bag.id, "suspect", opened_at=t0,
                               decided_at=t0 + dt.timedelta(seconds=6))

    with pytest.raises(PermissionDenied):
        store.stats.inspectors(world.inspector_a, t0, utcnow() + dt.timedelta(seconds=1))
    [stats] = store.stats.inspectors(world.supervisor, t0, t0 + dt.timedelta(hours=1))
    assert stats.user_id == world.inspector_a.id and stats.bags == 6
    assert (stats.tip_hit_rate.hits, stats.tip_hit_rate.count) == (1, 2)
    assert (stats.false_alarm_rate.hits, stats.false_alarm_rate.count) == (1, 3)
    assert (stats.model_agreement.hits, stats.model_agreement.count) == (3, 4)
    assert stats.median_seconds_per_decision == pytest.approx(3.0)
    assert store.stats.inspectors(world.supervisor, t0 - dt.timedelta(hours=2), t0 - dt.timedelta(hours=1)) == []
    # Per period: slices of 3 s put the 4 s TIP decisions apart from the 2 s clean ones.
    sliced = store.stats.inspectors(world.supervisor, t0, t0 + dt.timedelta(seconds=9),
                                    period=dt.timedelta(seconds=3))
    assert [(s.period_start - t0).total_seconds() for s in sliced] == [0.0, 3.0, 6.0]
    assert [s.bags for s in sliced] == [3, 2, 1]
    assert sliced[1].tip_hit_rate == stats.tip_hit_rate

    model = store.stats.model(world.supervisor, world.model_id)
    assert (model.bags, model.true_positives, model.false_positives, model.false_negatives) == (4, 1, 0, 1)
    assert model.precision == 1.0 and model.recall == 0.5
