"""The supervisor's review queue: side by side, resolve, overrule, return, assign."""
from __future__ import annotations

import pytest

from app.review import ReviewView
from store_world import World


pytestmark = pytest.mark.usefixtures("cheap_passwords")   # tests/gui/conftest.py


@pytest.fixture
def review_view(qtbot, world: World):
    view = ReviewView(world.store, world.supervisor)
    qtbot.addWidget(view)
    view.resize(1200, 700)
    view.show()
    with qtbot.waitSignal(view.refreshed, timeout=5000):
        view.refresh()
    yield view
    view.shutdown()


def open_review(qtbot, view: ReviewView, reason: str) -> int:
    review = next(r for r in view.reviews if r.reason == reason)
    with qtbot.waitSignal(view.detail_shown, timeout=5000):
        view.select_review(review.id)
    return review.id


def test_the_queue_lists_the_flagged_bags_with_why(review_view: ReviewView) -> None:
    assert sorted(r.reason for r in review_view.reviews) == ["inspector_suspect", "model_alarm_cleared",
                                                             "tip_missed"]
    assert review_view.table.rowCount() == 3
    assert review_view.assign_combo.count() == 2     # sue and admin: not the supervisor themself


def test_a_bag_opens_side_by_side_with_the_decision(qtbot, review_view: ReviewView, world: World) -> None:
    open_review(qtbot, review_view, "inspector_suspect")
    assert "ines" in review_view.decision_label.text() and "SUSPECT" in review_view.decision_label.text()
    model_boxes = review_view.model_canvas.all_boxes()
    assert len(model_boxes) == 2 and all(not b.accepted for b in model_boxes)
    labels = review_view.label_canvas.all_boxes()
    assert [(b.class_index, b.accepted) for b in labels] == [(1, True)]
    assert review_view.overrule_button.text() == "Overrule → CLEAR"
    open_review(qtbot, review_view, "tip_missed")
    assert "TIP bag" in review_view.decision_label.text()           # the supervisor sees the TIP truth
    assert len(review_view.label_canvas.all_boxes()) == 1


def test_resolve_confirms_and_leaves_the_queue(qtbot, review_view: ReviewView, world: World) -> None:
    review_id = open_review(qtbot, review_view, "inspector_suspect")
    review_view.comment_field.setText("knife confirmed")
    with qtbot.waitSignal(review_view.refreshed, timeout=5000):
        assert review_view.resolve()
    stored = world.store.reviews.get(world.supervisor, review_id)
    assert (stored.state, stored.outcome, stored.resolved_by) == ("resolved", "confirmed", world.supervisor.id)
    assert "knife confirmed" in stored.comment
    assert review_id not in [r.id for r in review_view.reviews] and review_view.detail is None


def test_overrule_needs_a_comment_and_records_the_supervisors_verdict(qtbot, review_view: ReviewView,
                                                                     world: World) -> None:
    review_id = open_review(qtbot, review_view, "model_alarm_cleared")
    review_view.overrule()
    qtbot.waitUntil(lambda: "needs a comment" in review_view.last_error, timeout=5000)
    assert world.store.reviews.get(world.supervisor, review_id).state == "open"
    review_view.comment_field.setText("blade visible at the handle")
    with qtbot.waitSignal(review_view.refreshed, timeout=5000):
        review_view.overrule()
    stored = world.store.reviews.get(world.supervisor, review_id)
    assert stored.outcome == "overruled"
    verdicts = [(d.user_id, d.verdict) for d in world.store.bags.decisions(stored.bag_id)]
    assert verdicts == [(world.inspector.id, "clear"), (world.supervisor.id, "suspect")]


def test_return_with_a_comment_and_assign_to_another_supervisor(qtbot, review_view: ReviewView,
                                                                world: World) -> None:
    review_id = open_review(qtbot, review_view, "tip_missed")
    assert not review_view.return_to_queue()                     # no comment: refused before the store
    assert "comment" in review_view.last_error
    review_view.comment_field.setText("ask the inspector about the TIP image")
    with qtbot.waitSignal(review_view.refreshed, timeout=5000):
        assert review_view.return_to_queue()
    stored = world.store.reviews.get(world.supervisor, review_id)
    assert stored.state == "returned" and stored.assigned_to is None and "TIP image" in stored.comment
    open_review(qtbot, review_view, "tip_missed")
    sue = review_view.assign_combo.findData(world.supervisor2.id)
    review_view.assign_combo.setCurrentIndex(sue)
    with qtbot.waitSignal(review_view.refreshed, timeout=5000):
        review_view.assign_button.click()
    assert world.store.reviews.get(world.supervisor, review_id).assigned_to == world.supervisor2.id
    # Now it is Sue's: Sam may not resolve it (the store says so, the view shows it).
    open_review(qtbot, review_view, "tip_missed")
    review_view.resolve()
    qtbot.waitUntil(lambda: "assigned to" in review_view.last_error, timeout=5000)
    assert world.store.reviews.get(world.supervisor, review_id).state == "assigned"
