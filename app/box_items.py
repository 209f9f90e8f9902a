"""A detection or label box on the canvas: outline, class and score tag, resize handles.

Boxes live in scene coordinates, which are the image's pixels, so a box's rect is
directly what the session stores. Tags and handles are drawn at a fixed size on
screen (in device pixels) so they stay readable at any zoom.

A box is either a model *prediction* (dashed outline, not part of the labels yet)
or an *accepted* label (solid outline). The item never edits the labels itself: when
a drag ends it reports (box id, old rect, new rect, "moved" | "resized") through a
callback and the canvas turns that into an undoable command.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Callable

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPainterPathStroker, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsRectItem, QGraphicsSceneHoverEvent, QGraphicsSceneMouseEvent

from core.classes import CLASSES, SHORT_NAMES

Rect = tuple[float, float, float, float]   # x1, y1, x2, y2 in image pixels

# One colour per class, chosen to stay distinct on the orange/green/blue X-ray palette.
CLASS_COLOURS: tuple[str, ...] = ("#ff3b30", "#ffcc00", "#ff2dd4", "#00e5ff", "#b4ff39")
HANDLE_PX = 9.0          # handle square side on screen
TAG_FONT_PX = 14         # class/score tag font size on screen
MIN_BOX_PX = 3.0         # smallest box side in image pixels

# Handles by name: which edges they move (left, top, right, bottom).
HANDLES: dict[str, tuple[bool, bool, bool, bool]] = {
    "top_left": (True, True, False, False), "top": (False, True, False, False),
    "top_right": (False, True, True, False), "right": (False, False, True, False),
    "bottom_right": (False, False, True, True), "bottom": (False, False, False, True),
    "bottom_left": (True, False, False, True), "left": (True, False, False, False),
}
_HANDLE_CURSORS = {"top_left": Qt.SizeFDiagCursor, "bottom_right": Qt.SizeFDiagCursor,
                   "top_right": Qt.SizeBDiagCursor, "bottom_left": Qt.SizeBDiagCursor,
                   "top": Qt.SizeVerCursor, "bottom": Qt.SizeVerCursor,
                   "left": Qt.SizeHorCursor, "right": Qt.SizeHorCursor}


@dataclass(frozen=True)
class BoxData:
    """Everything a box is, as a plain value (what undo commands remember)."""
    box_id: int
    class_index: int
    rect: Rect
    score: float | None = None      # the model's score; None for a box drawn by hand
    accepted: bool = False          # True once it is part of the bag's labels

    def with_(self, **changes) -> "BoxData":
        return replace(self, **changes)


def class_colour(class_index: int) -> QColor:
    return QColor(CLASS_COLOURS[class_index % len(CLASS_COLOURS)])


def tag_text(class_index: int, score: float | None) -> str:
    name = CLASSES[class_index].replace("_", " ")
    return f"{SHORT_NAMES[class_index]} {name}" + (f"  {score:.2f}" if score is not None else "")


@functools.lru_cache(maxsize=1)
def tag_font() -> QFont:
    """The tags' font, shared by every box (made on first use: a QFont needs the application)."""
    font = QFont()
    font.setPixelSize(TAG_FONT_PX)
    font.setBold(True)
    return font


@functools.lru_cache(maxsize=1024)
def tag_advance(text: str) -> float:
    # Qt asks a box for its bounding rect on every scene change and repaint; measuring the text
    # each time was most of that call's cost. Tags are few (class x 2-decimal score).
    return QFontMetricsF(tag_font()).horizontalAdvance(text)


def moved_rect(rect: Rect, dx: float, dy: float, bounds: Rect) -> Rect:
    """``rect`` translated by (dx, dy), kept inside ``bounds`` without changing its size."""
    x1, y1, x2, y2 = rect
    bx1, by1, bx2, by2 = bounds
    dx = min(max(dx, bx1 - x1), bx2 - x2)
    dy = min(max(dy, by1 - y1), by2 - y2)
    return (x1 + dx, y1 + dy, x2 + dx, y2 + dy)


def resized_rect(rect: Rect, handle: str, dx: float, dy: float, bounds: Rect, min_size: float = MIN_BOX_PX) -> Rect:
    """``rect`` with the edges named by ``handle`` moved by (dx, dy), clipped and at least ``min_size``."""
    left, top, right, bottom = HANDLES[handle]
    x1, y1, x2, y2 = rect
    bx1, by1, bx2, by2 = bounds
    if left:
        x1 = min(max(x1 + dx, bx1), x2 - min_size)
    if right:
        x2 = max(min(x2 + dx, bx2), x1 + min_size)
    if top:
        y1 = min(max(y1 + dy, by1), y2 - min_size)
    if bottom:
        y2 = max(min(y2 + dy, by2), y1 + min_size)
    return (x1, y1, x2, y2)


def _qrect(rect: Rect) -> QRectF:
    x1, y1, x2, y2 = rect
    return QRectF(QPointF(x1, y1), QPointF(x2, y2))


class BoxItem(QGraphicsRectItem):
    """An editable box. ``on_edit(box_id, old_rect, new_rect, kind)`` is called when a drag ends."""

    def __init__(self, data: BoxData, bounds: Rect, on_edit: Callable[[int, Rect, Rect, str], None]) -> None:
        super().__init__(_qrect(data.rect))
        self.data_ = data
        self.bounds = bounds
        self._on_edit = on_edit
        self._view_scale = 1.0
        self._drag: tuple[str, QPointF, Rect] | None = None   # (handle or "body", press pos, rect at press)
        self.editable = True
        self.setFlag(QGraphicsItem.ItemIsSelectable, True)
        self.setAcceptHoverEvents(True)
        self.setZValue(10 if data.accepted else 5)
        self._tag_font = tag_font()

    # ------------------------------------------------------------------ state
    @property
    def box_id(self) -> int:
        return self.data_.box_id

    def current(self) -> BoxData:
        """The box as now drawn (the rect may differ from ``data_`` during a drag)."""
        r = self.rect()
        return self.data_.with_(rect=(r.left(), r.top(), r.right(), r.bottom()))

    def apply(self, data: BoxData) -> None:
        """Show ``data`` (called by the canvas when a command changes the box)."""
        self.prepareGeometryChange()
        self.data_ = data
        self.setRect(_qrect(data.rect))
        self.setZValue(10 if data.accepted else 5)
        self.update()

    def set_view_scale(self, scale: float) -> None:
        """Device pixels per image pixel; handles and tags are sized from it."""
        if scale > 0 and scale != self._view_scale:
            self.prepareGeometryChange()
            self._view_scale = scale

    # ------------------------------------------------------------------ geometry
    def _px(self, device_px: float) -> float:
        return device_px / self._view_scale

    def _handle_rects(self) -> dict[str, QRectF]:
        r = self.rect()
        half = self._px(HANDLE_PX) / 2
        xs = {"left": r.left(), "mid": r.center().x(), "right": r.right()}
        ys = {"top": r.top(), "mid": r.center().y(), "bottom": r.bottom()}
        spots = {"top_left": ("left", "top"), "top": ("mid", "top"), "top_right": ("right", "top"),
                 "right": ("right", "mid"), "bottom_right": ("right", "bottom"), "bottom": ("mid", "bottom"),
                 "bottom_left": ("left", "bottom"), "left": ("left", "mid")}
        return {name: QRectF(xs[x] - half, ys[y] - half, 2 * half, 2 * half) for name, (x, y) in spots.items()}

    def handle_at(self, pos: QPointF) -> str | None:
        """The handle under ``pos`` (item coordinates), "body" inside the box, else None."""
        if self.isSelected() and self.editable:
            for name, rect in self._handle_rects().items():
                if rect.contains(pos):
                    return name
        grab = self._px(HANDLE_PX) / 2
        return "body" if self.rect().adjusted(-grab, -grab, grab, grab).contains(pos) else None

    def boundingRect(self) -> QRectF:
        pad = self._px(HANDLE_PX)
        tag_h = self._px(TAG_FONT_PX + 8)
        tag_w = self._px(tag_advance(tag_text(self.data_.class_index, self.data_.score)) + 12)
        r = self.rect()
        return QRectF(r.left() - pad, r.top() - tag_h - pad, max(r.width(), tag_w) + 2 * pad,
                      r.height() + tag_h + 2 * pad)

    def shape(self) -> QPainterPath:
        # Only the outline (and handles) grab the mouse: clicks inside a large box must still pan.
        path = QPainterPath()
        path.addRect(self.rect())
        stroker = QPainterPathStroker()
        stroker.setWidth(self._px(HANDLE_PX) * 1.5)
        outline = stroker.createStroke(path)
        if self.isSelected():
            outline.addRect(self.rect())
        return outline

    # ------------------------------------------------------------------ painting
    def paint(self, painter: QPainter, option, widget=None) -> None:  # noqa: ANN001 - Qt signature
        data = self.data_
        colour = class_colour(data.class_index)
        pen = QPen(colour, 3.0 if data.accepted else 2.0)
        pen.setCosmetic(True)   # width in screen pixels at any zoom
        if not data.accepted:
            pen.setStyle(Qt.DashLine)
        painter.setRenderHint(QPainter.Antialiasing, False)
        painter.setPen(pen)
        painter.setBrush(Qt.NoBrush)
        painter.drawRect(self.rect())
        if self.isSelected():
            halo = QPen(QColor(255, 255, 255, 200), 1.0, Qt.DotLine)
            halo.setCosmetic(True)
            painter.setPen(halo)
            painter.drawRect(self.rect())
            if self.editable:
                painter.setPen(QPen(Qt.black, 0))
                painter.setBrush(QBrush(Qt.white))
                for rect in self._handle_rects().values():
                    painter.drawRect(rect)
        self._paint_tag(painter, colour)

    def _paint_tag(self, painter: QPainter, colour: QColor) -> None:
        # A prediction's tag is dark with coloured text (and a dashed box); a label's is filled.
        text = tag_text(self.data_.class_index, self.data_.score)
        anchor = painter.worldTransform().map(self.rect().topLeft())
        painter.save()
        painter.resetTransform()   # draw in device pixels: same size at any zoom
        painter.setFont(self._tag_font)
        metrics = QFontMetricsF(self._tag_font)
        box = QRectF(anchor.x() - 1, anchor.y() - metrics.height() - 6, metrics.horizontalAdvance(text) + 10,
                     metrics.height() + 6)
        if box.top() < 0:   # a box touching the top of the view: tag inside it, never cut off
            box.moveTop(max(anchor.y(), 0.0))
        painter.setPen(Qt.NoPen)
        painter.setBrush(colour if self.data_.accepted else QColor(20, 20, 24, 220))
        painter.drawRect(box)
        painter.setPen(QColor("#101014") if self.data_.accepted else colour)
        painter.drawText(box, Qt.AlignCenter, text)
        painter.restore()

    # ------------------------------------------------------------------ mouse
    def hoverMoveEvent(self, event: QGraphicsSceneHoverEvent) -> None:
        handle = self.handle_at(event.pos())
        self.setCursor(_HANDLE_CURSORS.get(handle, Qt.SizeAllCursor if handle == "body" else Qt.ArrowCursor))
        super().hoverMoveEvent(event)

    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        handle = self.handle_at(event.pos())
        if event.button() != Qt.LeftButton or handle is None or not self.editable:
            event.ignore()
            return
        super().mousePressEvent(event)   # selection
        self._drag = (handle, event.scenePos(), self.current().rect)
        event.accept()

    def mouseMoveEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        if self._drag is None:
            return
        handle, start, rect = self._drag
        delta = event.scenePos() - start
        if handle == "body":
            new = moved_rect(rect, delta.x(), delta.y(), self.bounds)
        else:
            new = resized_rect(rect, handle, delta.x(), delta.y(), self.bounds)
        self.prepareGeometryChange()
        self.setRect(_qrect(new))

    def mouseReleaseEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        if self._drag is None:
            super().mouseReleaseEvent(event)
            return
        handle, _, old = self._drag
        self._drag = None
        new = self.current().rect
        if any(abs(a - b) > 1e-6 for a, b in zip(old, new)):
            self._on_edit(self.box_id, old, new, "moved" if handle == "body" else "resized")
        event.accept()
