"""The screening canvas: the bag image, the attention heat map, editable boxes, zoom and pan.

Scene coordinates are image pixels. The canvas owns the boxes on screen and the
undo stack of their edits; it emits ``labels_changed(origin)`` whenever an edit (or
its undo/redo) changes the set of accepted boxes, and the inspector saves a label
revision. It draws only: arrays arrive ready (screening functions and the heat-map
colours are computed off the GUI thread) and are wrapped into pixmaps here; a QImage
already in the pixmap's native format (``app.qimages.display_qimage``, built by a
worker) is shown without converting a pixel on the GUI thread.
"""
from __future__ import annotations

import itertools
import logging
import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPen, QPixmap, QUndoStack, QWheelEvent
from PySide6.QtWidgets import QFrame, QGraphicsPixmapItem, QGraphicsRectItem, QGraphicsScene, QGraphicsView

from app import commands
from app.box_items import BoxData, BoxItem, Rect, class_colour
from app.qimages import display_qimage
from app.session import LabelBox

log = logging.getLogger(__name__)

ZOOM_STEP = 1.25
ZOOM_RANGE = (0.05, 40.0)      # relative to 1 image pixel = 1 screen pixel
BACKGROUND = QColor("#15161a")


def _pixmap(image: np.ndarray | QImage) -> QPixmap:
    # An array is converted here, on the GUI thread (fine for a user's action, not for every bag).
    return QPixmap.fromImage(image if isinstance(image, QImage) else display_qimage(image))


class ImageCanvas(QGraphicsView):
    labels_changed = Signal(str)        # origin of the edit that changed the accepted boxes
    zoom_changed = Signal(float)

    def __init__(self, parent=None) -> None:  # noqa: ANN001 - Qt parent
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        # A few dozen boxes that all change with every bag: a BSP index costs more to rebuild (it asks
        # every new box for its bounding rect, in Python) than a linear search of so few items.
        self.scene().setItemIndexMethod(QGraphicsScene.NoIndex)
        self.setBackgroundBrush(BACKGROUND)
        self.setFrameShape(QFrame.NoFrame)
        self.setRenderHint(QPainter.SmoothPixmapTransform, True)
        self.setTransformationAnchor(QGraphicsView.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.AnchorViewCenter)
        self.setDragMode(QGraphicsView.ScrollHandDrag)
        # Panning is by drag and keys; scroll bars would only eat screen space around a fitted bag.
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setViewportUpdateMode(QGraphicsView.SmartViewportUpdate)
        self.undo_stack = QUndoStack(self)
        self._image_item = QGraphicsPixmapItem()
        self._image_item.setTransformationMode(Qt.SmoothTransformation)
        self._heat_item = QGraphicsPixmapItem()
        self._heat_item.setZValue(1)
        self._heat_item.setOpacity(0.4)
        # Scaling a 1-MP pixmap smoothly on every repaint (a box drag, a tag) is the GUI thread's largest
        # cost; a device-coordinate cache rescales only when the zoom or the pixmap changes.
        self._image_item.setCacheMode(QGraphicsPixmapItem.DeviceCoordinateCache)
        self._heat_item.setCacheMode(QGraphicsPixmapItem.DeviceCoordinateCache)
        self.scene().addItem(self._image_item)
        self.scene().addItem(self._heat_item)
        self._boxes: dict[int, BoxItem] = {}
        self._ids = itertools.count(1)
        self._bounds: Rect = (0.0, 0.0, 0.0, 0.0)
        self._threshold = 0.0
        self._heat_visible = True
        self._drawing = False
        self._draw_start: QPointF | None = None
        self._rubber: QGraphicsRectItem | None = None
        self.draw_class = 0
        self.editable = True

    # ------------------------------------------------------------------ image and overlays
    def has_image(self) -> bool:
        return not self._image_item.pixmap().isNull()

    def set_image(self, rgb: np.ndarray | QImage, *, new_bag: bool = True) -> None:
        """Show an image (HxWx3 RGB array or a QImage). A new bag clears boxes, undo history and heat map,
        and fits the view."""
        pixmap = _pixmap(rgb)
        if new_bag:
            self.clear_bag()
        self._image_item.setPixmap(pixmap)
        self._bounds = (0.0, 0.0, float(pixmap.width()), float(pixmap.height()))
        self.scene().setSceneRect(QRectF(0, 0, pixmap.width(), pixmap.height()))
        if new_bag:
            self.fit()

    def clear_bag(self) -> None:
        for box_id in list(self._boxes):
            self._remove_item(box_id)
        self.undo_stack.clear()
        self._heat_item.setPixmap(QPixmap())
        self._image_item.setPixmap(QPixmap())
        self.cancel_draw()

    def set_heat_map(self, rgba: np.ndarray | QImage | None) -> None:
        """The attention overlay (HxWx4 array or a QImage with alpha encoding the attention), or None."""
        self._heat_item.setPixmap(QPixmap() if rgba is None else _pixmap(rgba))
        self._heat_item.setVisible(self._heat_visible)

    def has_heat_map(self) -> bool:
        return not self._heat_item.pixmap().isNull()

    def set_heat_opacity(self, opacity: float) -> None:
        self._heat_item.setOpacity(min(max(float(opacity), 0.0), 1.0))

    def heat_opacity(self) -> float:
        return self._heat_item.opacity()

    def set_heat_visible(self, visible: bool) -> None:
        self._heat_visible = bool(visible)
        self._heat_item.setVisible(self._heat_visible)

    # ------------------------------------------------------------------ predictions and threshold
    def set_predictions(self, boxes: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> list[int]:
        """Add the model's boxes as (unaccepted) predictions; returns their ids."""
        ids = []
        for box, label, score in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(labels).reshape(-1),
                                     np.asarray(scores).reshape(-1)):
            x1, y1, x2, y2 = (float(v) for v in box)
            if x2 - x1 < 1 or y2 - y1 < 1:
                continue   # degenerate after clipping to the image: nothing to show or edit
            data = BoxData(next(self._ids), int(label), (x1, y1, x2, y2), float(score), accepted=False)
            self.put_box(data)
            ids.append(data.box_id)
        return ids

    def set_score_threshold(self, threshold: float) -> None:
        """Hide predictions scoring below ``threshold`` (labels always show)."""
        self._threshold = float(threshold)
        for item in self._boxes.values():
            self._apply_visibility(item)

    def _apply_visibility(self, item: BoxItem) -> None:
        data = item.data_
        item.setVisible(data.accepted or data.score is None or data.score >= self._threshold)

    def visible_predictions(self) -> list[BoxData]:
        return [i.data_ for i in self._boxes.values() if i.isVisible() and not i.data_.accepted]

    # ------------------------------------------------------------------ box API (used by commands)
    def box_data(self, box_id: int) -> BoxData | None:
        item = self._boxes.get(box_id)
        return item.data_ if item is not None else None

    def put_box(self, data: BoxData) -> None:
        item = self._boxes.get(data.box_id)
        if item is None:
            item = BoxItem(data, self._bounds, self._on_item_edited)
            item.set_view_scale(self._scale())
            item.editable = self.editable
            self._boxes[data.box_id] = item
            self._apply_visibility(item)    # before adding: a hidden prediction then costs the scene no repaint
            self.scene().addItem(item)
        else:
            item.apply(data)
            self._apply_visibility(item)

    def take_box(self, box_id: int) -> None:
        self._remove_item(box_id)

    def _remove_item(self, box_id: int) -> None:
        item = self._boxes.pop(box_id, None)
        if item is not None:
            self.scene().removeItem(item)

    def label_snapshot(self) -> tuple[BoxData, ...]:
        return tuple(sorted((i.data_ for i in self._boxes.values() if i.data_.accepted), key=lambda d: d.box_id))

    def emit_labels_changed(self, origin: str) -> None:
        self.labels_changed.emit(origin)

    def all_boxes(self) -> list[BoxData]:
        return sorted((i.data_ for i in self._boxes.values()), key=lambda d: d.box_id)

    def label_boxes(self) -> list[LabelBox]:
        """The bag's current labels as session values."""
        return [LabelBox(d.class_index, *d.rect) for d in self.label_snapshot()]

    def box_item(self, box_id: int) -> BoxItem | None:
        return self._boxes.get(box_id)

    # ------------------------------------------------------------------ user edits (undoable)
    def _on_item_edited(self, box_id: int, old: Rect, new: Rect, kind: str) -> None:
        self._push(commands.geometry_command(self, box_id, old, new, kind))

    def _push(self, command) -> bool:  # noqa: ANN001 - a QUndoCommand or None
        if command is None or not self.editable:
            return False
        self.undo_stack.push(command)
        return True

    def selected_ids(self) -> list[int]:
        return [i.box_id for i in self._boxes.values() if i.isSelected() and i.isVisible()]

    def select_box(self, box_id: int) -> None:
        self.scene().clearSelection()
        item = self._boxes.get(box_id)
        if item is not None:
            item.setSelected(True)

    def select_next(self) -> int | None:
        """Cycle the selection through visible boxes, highest score first (keyboard-only editing)."""
        visible = sorted((i for i in self._boxes.values() if i.isVisible()),
                         key=lambda i: (-(i.data_.score or 2.0), i.box_id))
        if not visible:
            return None
        current = self.selected_ids()
        ids = [i.box_id for i in visible]
        nxt = ids[(ids.index(current[0]) + 1) % len(ids)] if current and current[0] in ids else ids[0]
        self.select_box(nxt)
        return nxt

    def move_box(self, box_id: int, new_rect: Rect) -> bool:
        data = self.box_data(box_id)
        return data is not None and self._push(commands.geometry_command(self, box_id, data.rect, new_rect, "moved"))

    def resize_box(self, box_id: int, new_rect: Rect) -> bool:
        data = self.box_data(box_id)
        return data is not None and self._push(commands.geometry_command(self, box_id, data.rect, new_rect,
                                                                         "resized"))

    def accept_box(self, box_id: int) -> bool:
        return self._push(commands.accept_command(self, box_id))

    def relabel_box(self, box_id: int, class_index: int) -> bool:
        return self._push(commands.relabel_command(self, box_id, class_index))

    def delete_box(self, box_id: int) -> bool:
        return self._push(commands.delete_command(self, box_id))

    def add_box(self, rect: Rect, class_index: int) -> int | None:
        data = BoxData(next(self._ids), int(class_index), tuple(float(v) for v in rect), None, accepted=True)
        return data.box_id if self._push(commands.add_command(self, data)) else None

    def accept_selected(self) -> int:
        return sum(self.accept_box(i) for i in self.selected_ids())

    def accept_all_visible(self) -> int:
        return sum(self.accept_box(d.box_id) for d in self.visible_predictions())

    def delete_selected(self) -> int:
        return sum(self.delete_box(i) for i in self.selected_ids())

    def relabel_selected(self, class_index: int) -> int:
        return sum(self.relabel_box(i, class_index) for i in self.selected_ids())

    # ------------------------------------------------------------------ drawing a missed item
    def begin_draw(self, class_index: int | None = None) -> None:
        """The next left-button drag draws a new label box."""
        if class_index is not None:
            self.draw_class = int(class_index)
        self._drawing = self.editable and self.has_image()
        if self._drawing:
            self.setDragMode(QGraphicsView.NoDrag)
            self.viewport().setCursor(Qt.CrossCursor)

    def cancel_draw(self) -> None:
        self._drawing = False
        self._draw_start = None
        if self._rubber is not None:
            self.scene().removeItem(self._rubber)
            self._rubber = None
        self.setDragMode(QGraphicsView.ScrollHandDrag)
        self.viewport().unsetCursor()

    @property
    def drawing(self) -> bool:
        return self._drawing

    def _clamped(self, point: QPointF) -> QPointF:
        x1, y1, x2, y2 = self._bounds
        return QPointF(min(max(point.x(), x1), x2), min(max(point.y(), y1), y2))

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if self._drawing and event.button() == Qt.LeftButton:
            self._draw_start = self._clamped(self.mapToScene(event.position().toPoint()))
            pen = QPen(class_colour(self.draw_class), 2, Qt.DashLine)
            pen.setCosmetic(True)
            self._rubber = self.scene().addRect(QRectF(self._draw_start, self._draw_start), pen)
            self._rubber.setZValue(20)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._drawing and self._draw_start is not None and self._rubber is not None:
            end = self._clamped(self.mapToScene(event.position().toPoint()))
            self._rubber.setRect(QRectF(self._draw_start, end).normalized())
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._drawing and self._draw_start is not None and self._rubber is not None:
            rect = self._rubber.rect()
            self.cancel_draw()
            if rect.width() >= 3 and rect.height() >= 3:
                box_id = self.add_box((rect.left(), rect.top(), rect.right(), rect.bottom()), self.draw_class)
                if box_id is not None:
                    self.select_box(box_id)
            event.accept()
            return
        super().mouseReleaseEvent(event)

    # ------------------------------------------------------------------ zoom and pan
    def _scale(self) -> float:
        return float(self.transform().m11()) or 1.0

    def zoom_by(self, factor: float) -> None:
        scale = self._scale()
        target = min(max(scale * factor, ZOOM_RANGE[0]), ZOOM_RANGE[1])
        if abs(target - scale) < 1e-9:
            return
        self.scale(target / scale, target / scale)
        self._scale_changed()

    def zoom_in(self) -> None:
        self.zoom_by(ZOOM_STEP)

    def zoom_out(self) -> None:
        self.zoom_by(1 / ZOOM_STEP)

    def actual_size(self) -> None:
        self.resetTransform()
        self._scale_changed()

    def fit(self) -> None:
        if self.has_image():
            self.fitInView(self._image_item.boundingRect(), Qt.KeepAspectRatio)
            self._scale_changed()

    def zoom_level(self) -> float:
        return self._scale()

    def _scale_changed(self) -> None:
        scale = self._scale()
        for item in self._boxes.values():
            item.set_view_scale(scale)
        self.zoom_changed.emit(scale)

    def wheelEvent(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(ZOOM_STEP ** steps)
            event.accept()
        else:
            super().wheelEvent(event)

    def pan_by(self, dx: int, dy: int) -> None:
        """Scroll by (dx, dy) screen pixels (keyboard panning)."""
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() + dx)
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() + dy)

    def resizeEvent(self, event) -> None:  # noqa: ANN001 - Qt signature
        super().resizeEvent(event)
        # Keep a fitted view fitted when the window changes size (a zoomed view stays where it is).
        if self.has_image() and self._scale() <= self._fit_scale() * 1.001:
            self.fit()

    def _fit_scale(self) -> float:
        rect = self._image_item.boundingRect()
        if rect.isEmpty():
            return 1.0
        view = self.viewport().rect()
        return min(view.width() / rect.width(), view.height() / rect.height())

    def set_editable(self, editable: bool) -> None:
        self.editable = bool(editable)
        for item in self._boxes.values():
            item.editable = self.editable
