"""A scripted inspector for the GUI correction-loop test (imported by name: tests/gui is on sys.path).

It acts on the lane view only through what a person uses: the keymap's keys sent to
the canvas (accept, delete, relabel, draw, clear/suspect) and mouse drags on the
canvas viewport (a drawn box). Selecting a box is ``canvas.select_box``, the same
call a click on it ends in; fitting an accepted box to the item is
``canvas.resize_box``, the command a finished handle drag pushes. Everything it
saves therefore goes through the inspector view's own path (canvas command ->
``labels_changed`` -> ``SessionWorker`` -> ``StoreSession``).
"""
from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from app.canvas import ImageCanvas
from app.inspector import InspectorView
from core.classes import CLASSES
from core.lane.bag import TruthItem
from core.store.hard_samples import IOU_MATCH, compare
from core.store.values import Box, ScoredBox

FIT_TOLERANCE_PX = 1.0     # an accepted box further than this from the item is fitted to it


def truth_boxes(items: list[TruthItem]) -> tuple[Box, ...]:
    """The lane's known items as store boxes, exactly as ``core.bench.retrain.screen_lane`` takes them."""
    return tuple(Box(t.label, *map(float, t.box)) for t in items)


def press(qtbot, view: InspectorView, action: str) -> None:  # noqa: ANN001 - pytest-qt's qtbot
    """Type the first key the keymap binds to ``action`` (a window shortcut: the window must be active)."""
    combination = view.keymap.sequences(action)[0][0]
    qtbot.keyClick(view.canvas, combination.key(), combination.keyboardModifiers())


def _mouse(canvas: ImageCanvas, kind: QMouseEvent.Type, scene_point: tuple[float, float], buttons) -> None:  # noqa: ANN001
    pos = QPointF(canvas.mapFromScene(QPointF(*scene_point)))
    global_pos = QPointF(canvas.viewport().mapToGlobal(pos.toPoint()))
    button = Qt.LeftButton if kind != QMouseEvent.Type.MouseMove else Qt.NoButton
    QApplication.sendEvent(canvas.viewport(), QMouseEvent(kind, pos, global_pos, button, buttons, Qt.NoModifier))


def drag(canvas: ImageCanvas, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A left-button drag on the viewport between two image points."""
    mid = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
    _mouse(canvas, QMouseEvent.Type.MouseButtonPress, start, Qt.LeftButton)
    _mouse(canvas, QMouseEvent.Type.MouseMove, mid, Qt.LeftButton)
    _mouse(canvas, QMouseEvent.Type.MouseMove, end, Qt.LeftButton)
    _mouse(canvas, QMouseEvent.Type.MouseButtonRelease, end, Qt.NoButton)


def shown_predictions(view: InspectorView) -> tuple[ScoredBox, ...]:
    """The model's boxes the inspector sees now (visible, i.e. at or above the lane's threshold)."""
    return tuple(ScoredBox(Box(CLASSES[d.class_index], *d.rect), float(d.score))
                 for d in view.canvas.visible_predictions())


def missed(truth: tuple[Box, ...], shown: tuple[ScoredBox, ...], threshold: float) -> int:
    """Known items nothing (right or wrong class) was shown on: the same count as ``lane_misses``."""
    return sum(d.kind == "missed" for d in compare(truth, shown, score_threshold=threshold).disagreements)


@dataclass
class Edits:
    accepted: int = 0
    relabelled: int = 0
    fitted: int = 0
    drawn: int = 0
    dismissed: int = 0


def _iou(a: tuple[float, float, float, float], b: Box) -> float:
    return Box(b.class_name, *a).iou(b)


def correct_bag(qtbot, view: InspectorView, truth: tuple[Box, ...]) -> Edits:  # noqa: ANN001
    """Make the bag's labels the truth, the way an inspector would on screen.

    A shown box on an item (IoU >= 0.5) is accepted (or relabelled with the class key when
    its class is wrong) and fitted to the item; an item nothing was shown on is drawn with
    the draw key, its class key and a mouse drag; every other shown box (false alarm) is
    selected and dismissed with the delete key. Each step is checked on the canvas, so a
    key that did nothing fails here rather than as a weaker model later.
    """
    canvas = view.canvas
    edits = Edits()
    remaining = {d.box_id: d for d in canvas.visible_predictions()}
    plan: list[tuple[Box, int | None]] = []
    for item in truth:
        best = max(remaining.values(), key=lambda d: _iou(d.rect, item), default=None)
        if best is not None and _iou(best.rect, item) >= IOU_MATCH:
            plan.append((item, best.box_id))
            del remaining[best.box_id]
        else:
            plan.append((item, None))
    for box_id in remaining:                      # false alarms first: nothing else is selected then
        canvas.select_box(box_id)
        press(qtbot, view, "delete_box")
        assert canvas.box_data(box_id) is None, "the delete key did not dismiss the false alarm"
        edits.dismissed += 1
    for item, box_id in plan:
        class_index = CLASSES.index(item.class_name)
        target = (item.x1, item.y1, item.x2, item.y2)
        if box_id is None:
            canvas.scene().clearSelection()       # a class key would also relabel a selected box
            before = {d.box_id for d in canvas.all_boxes()}
            press(qtbot, view, "draw_box")
            press(qtbot, view, f"class_{class_index + 1}")
            assert canvas.drawing and canvas.draw_class == class_index
            drag(canvas, (item.x1, item.y1), (item.x2, item.y2))
            new = [d for d in canvas.all_boxes() if d.box_id not in before]
            assert len(new) == 1 and new[0].accepted and new[0].class_index == class_index, new
            assert _iou(new[0].rect, item) > 0.95, (new[0].rect, target)
            edits.drawn += 1
            continue
        canvas.select_box(box_id)
        if canvas.box_data(box_id).class_index == class_index:
            press(qtbot, view, "accept_box")
            edits.accepted += 1
        else:
            press(qtbot, view, f"class_{class_index + 1}")
            edits.relabelled += 1
        data = canvas.box_data(box_id)
        assert data.accepted and data.class_index == class_index, data
        if max(abs(a - b) for a, b in zip(data.rect, target)) > FIT_TOLERANCE_PX:
            assert canvas.resize_box(box_id, target)
            edits.fitted += 1
    labels = sorted((CLASSES[d.class_index], *d.rect) for d in canvas.label_snapshot())
    assert len(labels) == len(truth), (labels, truth)
    return edits
