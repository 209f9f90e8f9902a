"""The supervisor's review queue: flagged bags, side by side, and what to do with them.

Left: the open, assigned and returned reviews (why each was flagged: the inspector
said suspect, cleared a TIP bag or a model alarm, or random QC). Right: the bag
with the inspector's decision, the model's boxes on one canvas and the current
labels (plus any TIP truth, which only a supervisor may see) on the other; then
resolve (confirm the inspector), overrule (the other verdict, with a comment),
return with a comment, or assign to another supervisor.

Every store call runs off the GUI thread (``StoreTasks``); the store enforces
who may do what and the view shows its refusals as they come.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QGridLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel,
                               QLineEdit, QPlainTextEdit, QPushButton, QSplitter, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from app.box_items import BoxData
from app.canvas import ImageCanvas
from app.store_session import StoreTasks, decode_store_image
from core.classes import CLASS_TO_INDEX
from core.store.repo import Store
from core.store.values import BagInfo, Box, DecisionInfo, LabelRevision, ReviewInfo, ScoredBox, UserInfo

log = logging.getLogger(__name__)

REASON_TEXT = {"inspector_suspect": "inspector: suspect", "model_alarm_cleared": "model alarm cleared",
               "tip_missed": "TIP missed", "random_qc": "random QC"}
LABEL_ID_BASE = 1_000_000     # ids of label boxes drawn read-only, apart from the canvas's own
MODEL_SCORE_SHOWN = 0.3       # the model's boxes drawn on the review canvas (the rest are counted)


def show_boxes(canvas: ImageCanvas, boxes: Sequence[Box], *, first_id: int = LABEL_ID_BASE) -> None:
    """Draw store boxes on a canvas as accepted labels (no undo entry, no labels_changed)."""
    for offset, box in enumerate(boxes):
        canvas.put_box(BoxData(first_id + offset, CLASS_TO_INDEX[box.class_name], (box.x1, box.y1, box.x2, box.y2),
                               None, accepted=True))


def show_predictions(canvas: ImageCanvas, predictions: Sequence[ScoredBox]) -> None:
    if not predictions:
        return
    canvas.set_predictions(np.array([[p.box.x1, p.box.y1, p.box.x2, p.box.y2] for p in predictions], np.float32),
                           np.array([CLASS_TO_INDEX[p.box.class_name] for p in predictions]),
                           np.array([p.score for p in predictions], np.float32))


@dataclass(frozen=True)
class ReviewDetail:
    review: ReviewInfo
    bag: BagInfo
    image: np.ndarray
    decisions: tuple[DecisionInfo, ...]
    predictions: tuple[ScoredBox, ...]
    labels: LabelRevision
    tip_truth: tuple[Box, ...] | None
    user_names: dict[int, str]


def load_review_detail(store: Store, user: UserInfo, review: ReviewInfo) -> ReviewDetail:
    """Everything the right-hand side shows (runs on a worker thread)."""
    bag = store.bags.get(review.bag_id)
    tip = store.bags.tip_truth(user, bag.id)
    return ReviewDetail(review, bag, decode_store_image(store, bag.image_sha256),
                        tuple(store.bags.decisions(bag.id)), tuple(store.bags.predictions(bag.id)),
                        store.labels.current(bag.id), tuple(tip) if tip is not None else None,
                        {u.id: u.name for u in store.users.list()})


class ReviewView(QWidget):
    review_changed = Signal(object)     # the ReviewInfo an action returned
    detail_shown = Signal(int)          # review id
    refreshed = Signal(int)             # number of reviews listed

    def __init__(self, store: Store, user: UserInfo, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("reviewView")
        self.store, self.user = store, user
        self.tasks = StoreTasks(self)
        self.reviews: list[ReviewInfo] = []
        self.detail: ReviewDetail | None = None
        self.supervisors: list[UserInfo] = []
        self.last_error = ""
        self._build_ui()
        self._set_actions_enabled(False)

    # ------------------------------------------------------------------ construction
    def _build_ui(self) -> None:
        self.table = QTableWidget(0, 5)
        self.table.setObjectName("reviewTable")
        self.table.setHorizontalHeaderLabels(["#", "Bag", "Why", "State", "Assigned"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._on_selected)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        left = QVBoxLayout()
        title = QLabel("Flagged bags")
        title.setObjectName("sectionTitle")
        left.addWidget(title)
        left.addWidget(self.table, 1)
        left.addWidget(refresh)
        left_widget = QWidget()
        left_widget.setLayout(left)

        self.error = QLabel()
        self.error.setObjectName("banner")
        self.error.setProperty("severity", "error")
        self.error.setWordWrap(True)
        self.error.hide()
        self.header = QLabel("Select a flagged bag")
        self.header.setObjectName("bagLabel")
        self.decision_label = QLabel()
        self.decision_label.setObjectName("decisionSummary")
        self.decision_label.setWordWrap(True)
        self.model_canvas = ImageCanvas()
        self.label_canvas = ImageCanvas()
        for canvas in (self.model_canvas, self.label_canvas):
            canvas.set_editable(False)
            canvas.setMinimumSize(200, 160)
        canvases = QHBoxLayout()
        self.canvas_boxes: list[QGroupBox] = []
        for title_text, canvas, name in (("Model's boxes", self.model_canvas, "modelBox"),
                                         ("Current labels", self.label_canvas, "labelBox")):
            box = QGroupBox(title_text)
            box.setObjectName(name)
            layout = QVBoxLayout(box)
            layout.setContentsMargins(4, 4, 4, 4)
            layout.addWidget(canvas)
            canvases.addWidget(box, 1)
            self.canvas_boxes.append(box)

        self.comments = QPlainTextEdit()
        self.comments.setReadOnly(True)
        self.comments.setMaximumHeight(80)
        self.comment_field = QLineEdit()
        self.comment_field.setPlaceholderText("Comment (needed to overrule or return)")
        self.resolve_button = QPushButton("Confirm inspector")
        self.resolve_button.setObjectName("resolveButton")
        self.overrule_button = QPushButton("Overrule")
        self.overrule_button.setObjectName("overruleButton")
        self.return_button = QPushButton("Return with comment")
        self.assign_combo = QComboBox()
        self.assign_button = QPushButton("Assign to")
        self.take_button = QPushButton("Take")
        self.resolve_button.clicked.connect(self.resolve)
        self.overrule_button.clicked.connect(self.overrule)
        self.return_button.clicked.connect(self.return_to_queue)
        self.assign_button.clicked.connect(lambda: self.assign(self.assign_combo.currentData()))
        self.take_button.clicked.connect(lambda: self.assign(self.user.id))
        actions = QGridLayout()
        actions.addWidget(self.comment_field, 0, 0, 1, 4)
        actions.addWidget(self.take_button, 1, 0)
        actions.addWidget(self.resolve_button, 1, 1)
        actions.addWidget(self.overrule_button, 1, 2)
        actions.addWidget(self.return_button, 1, 3)
        actions.addWidget(self.assign_combo, 2, 0, 1, 3)
        actions.addWidget(self.assign_button, 2, 3)

        right = QVBoxLayout()
        right.addWidget(self.header)
        right.addWidget(self.decision_label)
        right.addLayout(canvases, 1)
        right.addWidget(self.comments)
        right.addLayout(actions)
        right_widget = QWidget()
        right_widget.setLayout(right)

        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(left_widget)
        splitter.addWidget(right_widget)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([360, 1100])
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.error)
        outer.addWidget(splitter, 1)

    # ------------------------------------------------------------------ loading
    def refresh(self) -> None:
        self.tasks.run(lambda: (self.store.reviews.list(self.user),
                                [u for u in self.store.users.list() if u.role in ("supervisor", "admin") and u.active]),
                       self._on_listed, self._show_error)

    def _on_listed(self, result: tuple[list[ReviewInfo], list[UserInfo]]) -> None:
        self.reviews, self.supervisors = result
        names = {u.id: u.name for u in self.supervisors}
        selected = self.detail.review.id if self.detail is not None else None
        self.table.blockSignals(True)
        self.table.setRowCount(len(self.reviews))
        for row, review in enumerate(self.reviews):
            values = (str(review.id), str(review.bag_id), REASON_TEXT.get(review.reason, review.reason),
                      review.state, names.get(review.assigned_to, "") if review.assigned_to else "")
            for column, value in enumerate(values):
                self.table.setItem(row, column, QTableWidgetItem(value))
        self.table.blockSignals(False)
        self.assign_combo.clear()
        for supervisor in self.supervisors:
            if supervisor.id != self.user.id:
                self.assign_combo.addItem(f"{supervisor.name} ({supervisor.role})", supervisor.id)
        self._clear_error()
        if selected is not None and any(r.id == selected for r in self.reviews):
            self.select_review(selected)
        elif self.detail is not None:
            self._clear_detail()
        self.refreshed.emit(len(self.reviews))

    def select_review(self, review_id: int) -> None:
        for row, review in enumerate(self.reviews):
            if review.id == review_id:
                if self.table.currentRow() == row and self.table.selectionModel().isRowSelected(row):
                    self._on_selected()      # already selected: load it again (its state may have changed)
                else:
                    self.table.selectRow(row)
                return
        raise KeyError(f"review {review_id} is not in the queue")

    def _on_selected(self) -> None:
        rows = {index.row() for index in self.table.selectedIndexes()}
        if not rows:
            return
        review = self.reviews[min(rows)]
        self.tasks.run(lambda: load_review_detail(self.store, self.user, review), self._show_detail, self._show_error)

    def _show_detail(self, detail: ReviewDetail) -> None:
        self.detail = detail
        names = detail.user_names
        inspector = next((d for d in detail.decisions if d.id == detail.review.decision_id), None)
        self.header.setText(f"Bag {detail.bag.id} · {REASON_TEXT.get(detail.review.reason, detail.review.reason)}"
                            f" · {detail.review.state}")
        if inspector is not None:
            seconds = (inspector.decided_at - inspector.opened_at).total_seconds()
            text = (f"Inspector <b>{names.get(inspector.user_id, inspector.user_id)}</b> said "
                    f"<b>{inspector.verdict.upper()}</b> after {seconds:.1f} s "
                    f"({inspector.decided_at:%Y-%m-%d %H:%M:%S} UTC)")
        else:
            text = "The inspector's decision is missing."
        if detail.tip_truth:
            text += f" · <span style='color:#e0a93b'>TIP bag: {len(detail.tip_truth)} projected threat(s)</span>"
        self.decision_label.setText(text)
        self.model_canvas.set_image(detail.image)
        self.label_canvas.set_image(detail.image)
        self.model_canvas.set_score_threshold(MODEL_SCORE_SHOWN)
        show_predictions(self.model_canvas, detail.predictions)
        show_boxes(self.label_canvas, detail.labels.boxes)
        if detail.tip_truth:
            show_boxes(self.label_canvas, detail.tip_truth, first_id=LABEL_ID_BASE * 2)
        shown = sum(p.score >= MODEL_SCORE_SHOWN for p in detail.predictions)
        self.canvas_boxes[0].setTitle(f"Model's boxes — {shown} with score ≥ {MODEL_SCORE_SHOWN:.2f}"
                                      + (f", {len(detail.predictions) - shown} lower hidden"
                                         if len(detail.predictions) > shown else ""))
        labels = detail.labels
        title = (f"Current labels — v{labels.version} by {names.get(labels.author_id, '?')} ({labels.origin}), "
                 f"{len(labels.boxes)} box(es)" if labels.version else "Current labels — none yet")
        if detail.tip_truth:
            title += f" + {len(detail.tip_truth)} TIP truth"
        self.canvas_boxes[1].setTitle(title)
        self.comments.setPlainText(detail.review.comment or "(no comments yet)")
        self._set_actions_enabled(detail.review.state != "resolved")
        if inspector is not None:
            other = "clear" if inspector.verdict == "suspect" else "suspect"
            self.overrule_button.setText(f"Overrule → {other.upper()}")
            self.overrule_button.setProperty("verdict", other)
        self.detail_shown.emit(detail.review.id)

    def _clear_detail(self) -> None:
        self.detail = None
        self.header.setText("Select a flagged bag")
        self.decision_label.setText("")
        self.comments.setPlainText("")
        self.model_canvas.clear_bag()
        self.label_canvas.clear_bag()
        self.canvas_boxes[0].setTitle("Model's boxes")
        self.canvas_boxes[1].setTitle("Current labels")
        self._set_actions_enabled(False)

    def _set_actions_enabled(self, enabled: bool) -> None:
        for button in (self.resolve_button, self.overrule_button, self.return_button, self.assign_button,
                       self.take_button):
            button.setEnabled(enabled)

    # ------------------------------------------------------------------ actions
    def _act(self, action: Callable[[int], Any]) -> bool:
        if self.detail is None:
            return False
        review_id = self.detail.review.id
        self._set_actions_enabled(False)
        self.tasks.run(lambda: action(review_id), self._on_action_done, self._on_action_failed)
        return True

    def resolve(self) -> bool:
        comment = self.comment_field.text()
        return self._act(lambda rid: self.store.reviews.resolve(self.user, rid, comment))

    def overrule(self) -> bool:
        verdict, comment = self.overrule_button.property("verdict"), self.comment_field.text()
        return self._act(lambda rid: self.store.reviews.overrule(self.user, rid, verdict, comment))

    def return_to_queue(self) -> bool:
        comment = self.comment_field.text()
        if not comment.strip():
            self._show_error(ValueError("say why you return it: type a comment first"))
            return False
        return self._act(lambda rid: self._return(rid, comment))

    def _return(self, review_id: int, comment: str) -> ReviewInfo:
        # Only an assigned review can be returned: one still open is taken first (same caller, same thread).
        if self.store.reviews.get(self.user, review_id).state != "assigned":
            self.store.reviews.assign(self.user, review_id)
        return self.store.reviews.return_(self.user, review_id, comment)

    def assign(self, supervisor_id: int | None) -> bool:
        if supervisor_id is None:
            self._show_error(ValueError("there is no other supervisor to assign to"))
            return False
        return self._act(lambda rid: self.store.reviews.assign(self.user, rid, supervisor_id))

    def _on_action_done(self, review: ReviewInfo) -> None:
        self.comment_field.clear()
        self.review_changed.emit(review)
        self.refresh()

    def _on_action_failed(self, exc: Exception) -> None:
        self._show_error(exc)
        if self.detail is not None:
            self._set_actions_enabled(self.detail.review.state != "resolved")

    def _show_error(self, exc: Exception) -> None:
        self.last_error = str(exc)
        self.error.setText(str(exc))
        self.error.show()

    def _clear_error(self) -> None:
        self.last_error = ""
        self.error.hide()

    def shutdown(self) -> None:
        self.tasks.wait(5000)
