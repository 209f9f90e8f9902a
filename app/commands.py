"""Undoable box edits as QUndoCommand diffs.

Each command remembers one box's state before and after (a ``BoxData`` value, or
None when the box does not exist), never a copy of the whole canvas. Applying a
state goes through the canvas's small box API (``box_data``, ``put_box``,
``take_box``, ``label_snapshot``, ``emit_labels_changed``).

Every redo and undo that changes the bag's labels (the accepted boxes) asks the
canvas to emit ``labels_changed(origin)``, and the inspector saves a new label
revision with that origin. Undo is itself an edit of the labels, so it is saved
too, with the origin of the inverse edit: undoing an "added" box saves "deleted",
undoing a "moved" box saves "moved" (back). Editing a model prediction (moving,
resizing or relabelling it) makes it a label; undoing that removes it from the
labels again, saved as "deleted".
"""
from __future__ import annotations

from typing import Protocol

from PySide6.QtGui import QUndoCommand

from app.box_items import BoxData

ORIGIN_TEXT = {"accepted_prediction": "Accept box", "moved": "Move box", "resized": "Resize box",
               "relabelled": "Relabel box", "added": "Draw box", "deleted": "Delete box"}


class BoxHost(Protocol):
    """What commands need from the canvas."""

    def box_data(self, box_id: int) -> BoxData | None: ...
    def put_box(self, data: BoxData) -> None: ...
    def take_box(self, box_id: int) -> None: ...
    def label_snapshot(self) -> tuple[BoxData, ...]: ...
    def emit_labels_changed(self, origin: str) -> None: ...


def inverse_origin(before: BoxData | None, after: BoxData | None, origin: str) -> str:
    """The origin to save when undoing a change from ``before`` to ``after`` made as ``origin``."""
    was_label = before is not None and before.accepted
    is_label = after is not None and after.accepted
    if is_label and not was_label:
        return "deleted"      # the edit brought the box into the labels; undo takes it out
    if was_label and not is_label:
        return "added"        # the edit removed a label; undo puts it back
    return origin             # a label changed in place: undo changes it back the same way


class BoxCommand(QUndoCommand):
    """Change one box from ``before`` to ``after`` (either may be None: the box is absent)."""

    def __init__(self, host: BoxHost, box_id: int, before: BoxData | None, after: BoxData | None,
                 origin: str) -> None:
        super().__init__(ORIGIN_TEXT.get(origin, origin))
        if before is None and after is None:
            raise ValueError("a box command needs a state before or after")
        self.host = host
        self.box_id = box_id
        self.before = before
        self.after = after
        self.origin = origin
        self.undo_origin = inverse_origin(before, after, origin)

    def _apply(self, state: BoxData | None, origin: str) -> None:
        labels_before = self.host.label_snapshot()
        if state is None:
            self.host.take_box(self.box_id)
        else:
            self.host.put_box(state)
        if self.host.label_snapshot() != labels_before:
            self.host.emit_labels_changed(origin)

    def redo(self) -> None:
        self._apply(self.after, self.origin)

    def undo(self) -> None:
        self._apply(self.before, self.undo_origin)


def accept_command(host: BoxHost, box_id: int) -> BoxCommand | None:
    """Make a prediction a label; None when the box is missing or already a label."""
    data = host.box_data(box_id)
    if data is None or data.accepted:
        return None
    return BoxCommand(host, box_id, data, data.with_(accepted=True), "accepted_prediction")


def geometry_command(host: BoxHost, box_id: int, old_rect, new_rect, origin: str) -> BoxCommand | None:
    """A finished drag ("moved" or "resized"); the edited box becomes a label."""
    data = host.box_data(box_id)
    if data is None or origin not in ("moved", "resized"):
        return None
    return BoxCommand(host, box_id, data.with_(rect=tuple(old_rect)),
                      data.with_(rect=tuple(new_rect), accepted=True), origin)


def relabel_command(host: BoxHost, box_id: int, class_index: int) -> BoxCommand | None:
    data = host.box_data(box_id)
    if data is None or (data.class_index == class_index and data.accepted):
        return None
    return BoxCommand(host, box_id, data, data.with_(class_index=class_index, accepted=True), "relabelled")


def add_command(host: BoxHost, data: BoxData) -> BoxCommand:
    """A box drawn by hand: a label from the start, without a score."""
    return BoxCommand(host, data.box_id, None, data.with_(accepted=True, score=None), "added")


def delete_command(host: BoxHost, box_id: int) -> BoxCommand | None:
    """Remove a label, or dismiss a prediction (which changes no labels, so saves nothing)."""
    data = host.box_data(box_id)
    if data is None:
        return None
    return BoxCommand(host, box_id, data, None, "deleted")
