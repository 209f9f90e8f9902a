"""Bags, predictions, decisions, flagging and the review workflow, with the role rules."""
from __future__ import annotations

import datetime as dt
import random

import pytest

from core.store.errors import InvalidInput, InvalidState, NotFound, PermissionDenied
from core.store.schema import utcnow
from core.store.values import Box, ScoredBox

KNIFE = Box("Straight_Knife", 10, 10, 60, 40)
PNG = b"\x89PNG\r\n\x1a\n"


def _bag(world, lane=None, who=None, source="lane", **kw):
    return world.store.bags.record_bag(who or world.inspector_a, lane_id=lane or world.lane_a, width=200,
                                       height=100, image=PNG + random.randbytes(32), source=source, **kw)


def test_bag_image_stored_once_by_content_hash(world) -> None:
    data = PNG + b"same pixels"
    first = world.store.bags.record_bag(world.inspector_a, lane_id=world.lane_a, width=5, height=5, image=data)
    second = world.store.bags.record_bag(world.inspector_a, lane_id=world.lane_a, width=5, height=5, image=data)
    assert first.id != second.id and first.image_sha256 == second.image_sha256
    path = world.store.images.find(first.image_sha256)
    assert path is not None and path.suffix == ".png" and path.read_bytes() == data
    assert world.store.images.read_bytes(first.image_sha256) == data


def test_retried_bag_and_decision_are_not_duplicated(world) -> None:
    bag = _bag(world, uid="scanner-0001")
    again = _bag(world, uid="scanner-0001")
    assert again.id == bag.id
    opened = utcnow()
    d1 = world.store.bags.record_decision(world.inspector_a, bag.id, "clear", opened_at=opened, request_id="r-1")
    d2 = world.store.bags.record_decision(world.inspector_a, bag.id, "clear", opened_at=opened, request_id="r-1")
    assert d1.id == d2.id
    assert len(world.store.bags.decisions(bag.id)) == 1


def test_inspector_is_bound_to_their_lane(world) -> None:
    bag_b = _bag(world, lane=world.lane_b, who=world.inspector_b)
    with pytest.raises(PermissionDenied, match="lane"):
        world.store.bags.record_decision(world.inspector_a, bag_b.id, "clear", opened_at=utcnow())
    with pytest.raises(PermissionDenied):
        _bag(world, lane=world.lane_b, who=world.inspector_a)
    with pytest.raises(PermissionDenied):
        world.store.labels.save(world.inspector_a, bag_b.id, [KNIFE], origin="added", base_version=0)


@pytest.mark.parametrize("role", ["supervisor", "annotator"])
def test_only_inspectors_decide(world, role) -> None:
    bag = _bag(world)
    who = world.supervisor if role == "supervisor" else world.annotator
    with pytest.raises(PermissionDenied, match="may not decide"):
        world.store.bags.record_decision(who, bag.id, "clear", opened_at=utcnow())


def test_bad_input_is_refused_with_a_message(world) -> None:
    bag = _bag(world)
    with pytest.raises(InvalidInput, match="unknown verdict"):
        world.store.bags.record_decision(world.inspector_a, bag.id, "maybe", opened_at=utcnow())
    with pytest.raises(InvalidInput, match="unknown class"):
        Box("Banana", 0, 0, 1, 1)
    with pytest.raises(InvalidInput, match="empty box"):
        Box("Scissor", 5, 5, 5, 9)
    with pytest.raises(InvalidInput, match="TIP"):
        _bag(world, source="tip")
    with pytest.raises(NotFound, match="bag 999999"):
        world.store.bags.record_decision(world.inspector_a, 999_999, "clear", opened_at=utcnow())
    with pytest.raises(InvalidInput, match="outside"):
        world.store.bags.record_predictions(world.inspector_a, bag.id, world.model_id,
                                            [ScoredBox(KNIFE, 1.5)])


def test_flagging_rules(world) -> None:
    bags = world.store.bags
    world.store.reviews.set_qc_share(world.supervisor, 0.0)
    # suspect -> review
    b1 = _bag(world)
    assert bags.record_decision(world.inspector_a, b1.id, "suspect", opened_at=utcnow()).review_reason == \
        "inspector_suspect"
    # model alarmed, inspector cleared -> review
    b2 = _bag(world)
    bags.record_predictions(world.inspector_a, b2.id, world.model_id, [ScoredBox(KNIFE, 0.9)])
    assert bags.record_decision(world.inspector_a, b2.id, "clear", opened_at=utcnow()).review_reason == \
        "model_alarm_cleared"
    # a low-score prediction is not an alarm
    b3 = _bag(world)
    bags.record_predictions(world.inspector_a, b3.id, world.model_id, [ScoredBox(KNIFE, 0.2)])
    assert bags.record_decision(world.inspector_a, b3.id, "clear", opened_at=utcnow()).review_id is None
    # TIP threat cleared -> missed
    b4 = _bag(world, source="tip", tip_truth=[KNIFE])
    assert bags.record_decision(world.inspector_a, b4.id, "clear", opened_at=utcnow()).review_reason == "tip_missed"
    # the TIP truth is hidden from inspectors
    with pytest.raises(PermissionDenied):
        bags.tip_truth(world.inspector_a, b4.id)
    assert bags.tip_truth(world.supervisor, b4.id) == [KNIFE]
    # random QC at share 1.0 flags everything
    world.store.reviews.set_qc_share(world.supervisor, 1.0)
    b5 = _bag(world)
    assert bags.record_decision(world.inspector_a, b5.id, "clear", opened_at=utcnow()).review_reason == "random_qc"
    with pytest.raises(PermissionDenied):
        world.store.reviews.set_qc_share(world.inspector_a, 0.5)
    with pytest.raises(InvalidInput):
        world.store.reviews.set_qc_share(world.supervisor, 1.5)


def test_predictions_are_recorded_once_per_bag(world) -> None:
    bag = _bag(world)
    bags = world.store.bags
    assert bags.record_predictions(world.inspector_a, bag.id, world.model_id, [ScoredBox(KNIFE, 0.7)]) == 1
    assert bags.record_predictions(world.inspector_a, bag.id, world.model_id, [ScoredBox(KNIFE, 0.7)]) == 1
    other = world.store.models.register(world.supervisor, name="x", arch="fast", path="/x.pt", sha256="b" * 64)
    with pytest.raises(InvalidState, match="already screened"):
        bags.record_predictions(world.inspector_a, bag.id, other.id, [])
    assert bags.get(bag.id).screening_model_id == world.model_id
    assert bags.predictions(bag.id) == [ScoredBox(KNIFE, 0.7)]


def test_review_workflow(world) -> None:
    reviews = world.store.reviews
    bag = _bag(world)
    decision = world.store.bags.record_decision(world.inspector_a, bag.id, "suspect",
                                                opened_at=utcnow() - dt.timedelta(seconds=3))
    with pytest.raises(PermissionDenied):
        reviews.list(world.inspector_a)
    [review] = reviews.list(world.supervisor)
    assert review.decision_id == decision.id and review.state == "open"
    assigned = reviews.assign(world.supervisor, review.id)
    assert assigned.state == "assigned" and assigned.assigned_to == world.supervisor.id
    returned = reviews.return_(world.supervisor, review.id, "need a second opinion")
    assert returned.state == "returned" and returned.assigned_to is None and "second opinion" in returned.comment
    reviews.assign(world.supervisor, review.id)
    with pytest.raises(InvalidInput, match="comment"):
        reviews.overrule(world.supervisor, review.id, "clear", "")
    with pytest.raises(InvalidInput, match="resolve instead"):
        reviews.overrule(world.supervisor, review.id, "suspect", "same")
    closed = reviews.overrule(world.supervisor, review.id, "clear", "it is a hair dryer")
    assert closed.state == "resolved" and closed.outcome == "overruled" and closed.resolved_by == world.supervisor.id
    verdicts = [d.verdict for d in world.store.bags.decisions(bag.id)]
    assert verdicts == ["suspect", "clear"]  # the inspector's decision stays, the overrule is added
    with pytest.raises(InvalidState, match="already resolved"):
        reviews.resolve(world.supervisor, review.id)
    assert reviews.list(world.supervisor) == []


def test_review_assigned_to_someone_else_cannot_be_closed(world, password) -> None:
    other = world.store.users.add(world.admin, "sup2", "supervisor", password)
    bag = _bag(world)
    world.store.bags.record_decision(world.inspector_a, bag.id, "suspect", opened_at=utcnow())
    [review] = world.store.reviews.list(world.supervisor)
    world.store.reviews.assign(world.supervisor, review.id, other.id)
    with pytest.raises(PermissionDenied, match="assigned to"):
        world.store.reviews.resolve(world.supervisor, review.id)
    assert world.store.reviews.resolve(other, review.id, "fine").outcome == "confirmed"
