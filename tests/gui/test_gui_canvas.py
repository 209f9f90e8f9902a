"""Canvas, box items and undo commands: every edit, undo and redo saves the right label revision."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from app.box_items import moved_rect, resized_rect
from app.canvas import ImageCanvas
from app.session import InMemorySession, LabelBox


@pytest.fixture
def canvas(qtbot, session: InMemorySession, recorded_bag, rgb):
    view = ImageCanvas()
    view.resize(640, 480)
    qtbot.addWidget(view)
    view.show()
    view.set_image(rgb)
    # What the inspector does: each labels_changed saves the whole current set as a revision.
    view.labels_changed.connect(lambda origin: session.save_labels(recorded_bag.bag_id, view.label_boxes(), origin))
    view.set_predictions(np.array([[50, 60, 120, 140], [200, 30, 260, 90]], np.float32),
                         np.array([0, 2]), np.array([0.9, 0.3], np.float32))
    return view


def ids(view: ImageCanvas) -> list[int]:
    return [d.box_id for d in view.all_boxes()]


def test_edit_undo_redo_sequence_of_revisions(canvas: ImageCanvas, session: InMemorySession) -> None:
    first, second = ids(canvas)
    assert session.origins("bag-1") == []          # predictions alone are not labels

    assert canvas.accept_box(first)
    assert canvas.move_box(first, (60, 70, 130, 150))
    assert canvas.resize_box(first, (60, 70, 150, 170))
    assert canvas.relabel_box(first, 3)
    drawn = canvas.add_box((10, 10, 40, 50), 1)
    assert drawn is not None
    assert canvas.delete_box(first)
    assert canvas.delete_box(second)               # dismissing a prediction changes no labels
    assert session.origins("bag-1") == ["accepted_prediction", "moved", "resized", "relabelled", "added", "deleted"]
    assert session.latest_labels("bag-1").boxes == (LabelBox(1, 10, 10, 40, 50),)

    stack = canvas.undo_stack
    stack.undo()   # un-dismiss the prediction: no revision
    stack.undo()   # undo delete: the label comes back
    stack.undo()   # undo draw: the drawn box goes
    stack.undo()   # undo relabel: back to class 0
    assert session.origins("bag-1")[6:] == ["added", "deleted", "relabelled"]
    assert session.latest_labels("bag-1").boxes == (LabelBox(0, 60, 70, 150, 170),)
    assert canvas.box_data(second) is not None and not canvas.box_data(second).accepted

    stack.undo()   # resize back
    stack.undo()   # move back
    stack.undo()   # un-accept: the prediction leaves the labels
    assert session.origins("bag-1")[9:] == ["resized", "moved", "deleted"]
    assert session.latest_labels("bag-1").boxes == ()
    data = canvas.box_data(first)
    assert data.rect == (50, 60, 120, 140) and not data.accepted and data.score == pytest.approx(0.9)

    stack.redo()
    stack.redo()
    assert session.origins("bag-1")[12:] == ["accepted_prediction", "moved"]
    assert session.latest_labels("bag-1").boxes == (LabelBox(0, 60, 70, 130, 150),)
    # Every revision is kept: labels are append-only.
    versions = [r.version for r in session.revisions["bag-1"]]
    assert versions == list(range(1, 15))


def test_editing_a_prediction_makes_it_a_label_and_undo_removes_it(canvas, session) -> None:
    first, _ = ids(canvas)
    assert canvas.relabel_box(first, 4)
    assert session.latest_labels("bag-1").boxes == (LabelBox(4, 50, 60, 120, 140),)
    canvas.undo_stack.undo()
    assert session.origins("bag-1") == ["relabelled", "deleted"]
    assert canvas.box_data(first).class_index == 0 and not canvas.box_data(first).accepted


def test_threshold_hides_predictions_not_labels(canvas) -> None:
    first, second = ids(canvas)
    canvas.accept_box(second)                       # score 0.3, now a label
    canvas.set_score_threshold(0.95)
    assert canvas.box_item(first).isVisible() is False
    assert canvas.box_item(second).isVisible() is True
    canvas.set_score_threshold(0.5)
    assert canvas.box_item(first).isVisible() is True


def _send_mouse(view: ImageCanvas, kind, scene_point, buttons) -> None:
    pos = QPointF(view.mapFromScene(QPointF(*scene_point)))
    global_pos = QPointF(view.viewport().mapToGlobal(pos.toPoint()))
    button = Qt.LeftButton if kind != QMouseEvent.Type.MouseMove else Qt.NoButton
    event = QMouseEvent(kind, pos, global_pos, button, buttons, Qt.NoModifier)
    QApplication.sendEvent(view.viewport(), event)


def test_mouse_drag_moves_then_resizes_through_the_undo_stack(canvas, session) -> None:
    first, _ = ids(canvas)
    # Drag the left edge of the box body (the outline grabs the mouse) by 20 image pixels.
    _send_mouse(canvas, QMouseEvent.Type.MouseButtonPress, (50, 100), Qt.LeftButton)
    _send_mouse(canvas, QMouseEvent.Type.MouseMove, (60, 105), Qt.LeftButton)
    _send_mouse(canvas, QMouseEvent.Type.MouseMove, (70, 110), Qt.LeftButton)
    _send_mouse(canvas, QMouseEvent.Type.MouseButtonRelease, (70, 110), Qt.NoButton)
    assert session.origins("bag-1") == ["moved"]
    moved = session.latest_labels("bag-1").boxes[0]
    x1, y1, x2, y2 = moved.x1, moved.y1, moved.x2, moved.y2
    assert (x2 - x1, y2 - y1) == pytest.approx((70, 80), abs=1.5)     # moved, same size
    assert x1 == pytest.approx(70, abs=1.5) and y1 == pytest.approx(70, abs=1.5)
    # The box is selected now, so its bottom-right handle resizes it.
    _send_mouse(canvas, QMouseEvent.Type.MouseButtonPress, (x2, y2), Qt.LeftButton)
    _send_mouse(canvas, QMouseEvent.Type.MouseMove, (x2 + 30, y2 + 20), Qt.LeftButton)
    _send_mouse(canvas, QMouseEvent.Type.MouseButtonRelease, (x2 + 30, y2 + 20), Qt.NoButton)
    assert session.origins("bag-1") == ["moved", "resized"]
    box = session.latest_labels("bag-1").boxes[0]
    assert (box.x2 - box.x1, box.y2 - box.y1) == pytest.approx((100, 100), abs=2.5)
    canvas.undo_stack.undo()
    canvas.undo_stack.undo()
    assert session.origins("bag-1")[2:] == ["resized", "deleted"]


def test_draw_mode_adds_a_box(canvas, session) -> None:
    canvas.begin_draw(2)
    _send_mouse(canvas, QMouseEvent.Type.MouseButtonPress, (150, 150), Qt.LeftButton)
    _send_mouse(canvas, QMouseEvent.Type.MouseMove, (190, 200), Qt.LeftButton)
    _send_mouse(canvas, QMouseEvent.Type.MouseButtonRelease, (190, 200), Qt.NoButton)
    assert session.origins("bag-1") == ["added"]
    box = session.latest_labels("bag-1").boxes[0]
    assert box.class_index == 2 and box.x2 - box.x1 == pytest.approx(40, abs=2)
    assert not canvas.drawing


def test_zoom_keeps_limits_and_fit_restores(canvas) -> None:
    fitted = canvas.zoom_level()
    canvas.zoom_in()
    assert canvas.zoom_level() == pytest.approx(fitted * 1.25)
    for _ in range(100):
        canvas.zoom_in()
    assert canvas.zoom_level() == pytest.approx(40.0)
    canvas.fit()
    assert canvas.zoom_level() == pytest.approx(fitted)


def test_rect_helpers_clip_to_the_image() -> None:
    bounds = (0.0, 0.0, 100.0, 80.0)
    assert moved_rect((10, 10, 30, 30), -50, 100, bounds) == (0, 60, 20, 80)
    assert resized_rect((10, 10, 30, 30), "bottom_right", 200, 200, bounds) == (10, 10, 100, 80)
    assert resized_rect((10, 10, 30, 30), "left", 50, 0, bounds) == (27, 10, 30, 30)   # min size 3


def test_heat_map_overlay_opacity(canvas) -> None:
    heat = np.zeros((240, 320, 4), np.uint8)
    heat[..., 0] = 255
    heat[..., 3] = 128
    canvas.set_heat_map(heat)
    canvas.set_heat_opacity(0.7)
    assert canvas.has_heat_map() and canvas.heat_opacity() == pytest.approx(0.7)
    canvas.set_heat_opacity(3)
    assert canvas.heat_opacity() == 1.0


def test_keyboard_pan_moves_a_zoomed_view_and_read_only_canvas_refuses_edits(canvas, session) -> None:
    for _ in range(4):
        canvas.zoom_in()
    before = (canvas.horizontalScrollBar().value(), canvas.verticalScrollBar().value())
    canvas.pan_by(60, 40)
    after = (canvas.horizontalScrollBar().value(), canvas.verticalScrollBar().value())
    assert after[0] > before[0] and after[1] > before[1]
    canvas.set_editable(False)
    first = canvas.all_boxes()[0].box_id
    assert not canvas.accept_box(first) and not canvas.delete_box(first)
    assert canvas.add_box((1, 1, 20, 20), 0) is None
    assert session.origins("bag-1") == []
