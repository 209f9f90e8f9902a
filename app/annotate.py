"""The annotator perspective: browse bags, filter, edit labels with undo, mark reviewed, export.

The canvas is the lane's (``ImageCanvas``): the model's boxes dashed, the labels
solid, the same keys and handles, QUndoCommand diffs. Every change of the labels
(an edit, an undo, a redo) is saved as a new label revision on top of the version
this view last saw; if someone saved a newer one meanwhile, the store refuses
(``ConflictError``), nothing is lost, and the view reloads the newer labels and
says so. Store calls run off the GUI thread, in order (``StoreTasks``).
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QHBoxLayout, QLabel, QListWidget, QListWidgetItem,
                               QMenu, QPushButton, QSplitter, QToolButton, QVBoxLayout, QWidget)

from app.annotate_data import (EXPORT_FORMATS, REVIEWED_ORIGIN, BagEntry, Filters, export_entries, import_dataset,
                               list_entries, refresh_entry)
from app.canvas import ImageCanvas
from app.review import show_boxes, show_predictions
from app.store_session import StoreTasks, decode_store_image
from app.style import restyle
from core.classes import CLASSES
from core.store.errors import ConflictError
from core.store.repo import Store
from core.store.values import Box, UserInfo

log = logging.getLogger(__name__)

ANY = "Any"


class AnnotateView(QWidget):
    entries_loaded = Signal(int)        # entries shown after filtering
    bag_opened = Signal(int)            # store bag id
    labels_saved = Signal(object)       # LabelRevision
    exported = Signal(object)           # counts

    def __init__(self, store: Store, user: UserInfo, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("annotateView")
        self.store, self.user = store, user
        self.tasks = StoreTasks(self)
        self.entries: list[BagEntry] = []
        self.shown: list[BagEntry] = []
        self.current: BagEntry | None = None
        self.levels: dict[str, tuple[str, int | None]] = {}   # imported uid -> (image id, OL)
        self._base = {"version": 0}     # read and written only by the (single) store task thread
        self.message_text = ""
        self._build_ui()

    # ------------------------------------------------------------------ construction
    def _build_ui(self) -> None:
        self.class_combo = QComboBox()
        self.class_combo.addItems([ANY] + [c.replace("_", " ") for c in CLASSES])
        self.ol_combo = QComboBox()
        self.ol_combo.addItems([ANY, "OL1", "OL2", "OL3"])
        self.disagree_check = QCheckBox("Disagrees with model")
        self.unreviewed_check = QCheckBox("Not yet reviewed")
        for widget in (self.class_combo, self.ol_combo):
            widget.currentIndexChanged.connect(self.apply_filters)
        for check in (self.disagree_check, self.unreviewed_check):
            check.toggled.connect(self.apply_filters)
        import_button = QPushButton("Import OPIXray dataset…")
        import_button.clicked.connect(self._ask_import)
        export_button = QToolButton()
        export_button.setText("Export shown")
        export_button.setPopupMode(QToolButton.InstantPopup)
        menu = QMenu(export_button)
        for fmt in EXPORT_FORMATS:
            menu.addAction(fmt.upper() if fmt != "opixray" else "OPIXray").triggered.connect(
                lambda checked=False, f=fmt: self._ask_export(f))
        export_button.setMenu(menu)
        filters = QHBoxLayout()
        filters.addWidget(QLabel("Class"))
        filters.addWidget(self.class_combo)
        filters.addWidget(QLabel("Occlusion"))
        filters.addWidget(self.ol_combo)
        filters.addWidget(self.disagree_check)
        filters.addWidget(self.unreviewed_check)
        filters.addStretch(1)
        filters.addWidget(import_button)
        filters.addWidget(export_button)

        self.message = QLabel()
        self.message.setObjectName("banner")
        self.message.setWordWrap(True)
        self.message.hide()
        self.count_label = QLabel()
        self.bag_list = QListWidget()
        self.bag_list.setObjectName("bagList")
        self.bag_list.currentRowChanged.connect(self._on_row)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.count_label)
        left_layout.addWidget(self.bag_list, 1)

        self.canvas = ImageCanvas()
        self.canvas.set_score_threshold(0.3)
        self.canvas.labels_changed.connect(self._on_labels_changed)
        self.bag_title = QLabel("Choose a bag")
        self.bag_title.setObjectName("bagLabel")
        self.revision_label = QLabel()
        self.revision_label.setObjectName("revisionLabel")
        tools = QHBoxLayout()
        for text, slot, key in (("Undo", self.canvas.undo_stack.undo, QKeySequence.Undo),
                                ("Redo", self.canvas.undo_stack.redo, QKeySequence.Redo),
                                ("Accept shown", self.canvas.accept_all_visible, "Shift+A"),
                                ("Draw box", self.canvas.begin_draw, "B"),
                                ("Delete box", self.canvas.delete_selected, QKeySequence.Delete),
                                ("Mark reviewed", self.mark_reviewed, "Ctrl+R")):
            button = QPushButton(text)
            button.setFocusPolicy(Qt.NoFocus)
            button.clicked.connect(lambda checked=False, s=slot: s())
            action = QAction(text, self)
            action.setShortcut(QKeySequence(key))
            action.setShortcutContext(Qt.WidgetWithChildrenShortcut)
            action.triggered.connect(lambda checked=False, s=slot: s())
            self.addAction(action)
            tools.addWidget(button)
        tools.addStretch(1)
        tools.addWidget(self.revision_label)
        centre = QWidget()
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(0, 0, 0, 0)
        centre_layout.addWidget(self.bag_title)
        centre_layout.addWidget(self.canvas, 1)
        centre_layout.addLayout(tools)

        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(centre)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([300, 1200])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.addWidget(self.message)
        layout.addLayout(filters)
        layout.addWidget(splitter, 1)

    # ------------------------------------------------------------------ browsing
    def filters(self) -> Filters:
        cls = self.class_combo.currentIndex()
        ol = self.ol_combo.currentIndex()
        return Filters(CLASSES[cls - 1] if cls > 0 else None, ol if ol > 0 else None,
                       self.disagree_check.isChecked(), self.unreviewed_check.isChecked())

    def refresh(self) -> None:
        levels = dict(self.levels)
        self.tasks.run(lambda: list_entries(self.store, self.user, levels=levels), self._on_listed, self._show_error)

    def _on_listed(self, entries: list[BagEntry]) -> None:
        self.entries = entries
        self.apply_filters()

    def apply_filters(self) -> None:
        wanted = self.filters()
        current = self.current.bag.id if self.current is not None else None
        self.shown = [e for e in self.entries if wanted.accepts(e)]
        self.bag_list.blockSignals(True)
        self.bag_list.clear()
        for entry in self.shown:
            self.bag_list.addItem(QListWidgetItem(self._row_text(entry)))
        self.bag_list.blockSignals(False)
        self.count_label.setText(f"{len(self.shown)} of {len(self.entries)} bags")
        rows = [i for i, e in enumerate(self.shown) if e.bag.id == current]
        if rows:
            self.bag_list.blockSignals(True)
            self.bag_list.setCurrentRow(rows[0])
            self.bag_list.blockSignals(False)
        self.entries_loaded.emit(len(self.shown))

    @staticmethod
    def _row_text(entry: BagEntry) -> str:
        parts = [entry.title, f"{len(entry.labels.boxes)} label(s)" if entry.labels.version else "unlabelled"]
        if entry.occlusion_level is not None:
            parts.append(f"OL{entry.occlusion_level}")
        if entry.disagrees:
            parts.append("≠ model")
        parts.append("✓ reviewed" if entry.reviewed else "to review")
        return " · ".join(parts)

    def open_row(self, row: int) -> None:
        self.bag_list.setCurrentRow(row)

    def _on_row(self, row: int) -> None:
        if 0 <= row < len(self.shown):
            entry = self.shown[row]
            self.tasks.run(lambda: (refresh_entry(self.store, self.user, entry),
                                    decode_store_image(self.store, entry.bag.image_sha256)),
                           self._show_entry, self._show_error)

    def _show_entry(self, loaded) -> None:  # noqa: ANN001 - (BagEntry, image)
        entry, image = loaded
        self.current = entry
        self._base["version"] = entry.labels.version   # safe: no store task is running while this runs
        self.canvas.set_image(image)
        show_predictions(self.canvas, entry.predictions)
        show_boxes(self.canvas, entry.labels.boxes)
        self.bag_title.setText(f"{entry.title} · {entry.bag.width}×{entry.bag.height} · source {entry.bag.source}")
        self._show_revision(entry.labels.version, entry.labels.origin)
        self._replace_entry(entry)
        self.bag_opened.emit(entry.bag.id)

    def _show_revision(self, version: int, origin: str | None) -> None:
        self.revision_label.setText(f"labels v{version}" + (f" ({origin})" if origin else " (none yet)"))

    def _replace_entry(self, entry: BagEntry) -> None:
        self.entries = [entry if e.bag.id == entry.bag.id else e for e in self.entries]
        for row, shown in enumerate(self.shown):
            if shown.bag.id == entry.bag.id:
                self.shown[row] = entry
                item = self.bag_list.item(row)
                if item is not None:
                    item.setText(self._row_text(entry))

    # ------------------------------------------------------------------ editing
    def _canvas_boxes(self) -> list[Box]:
        return [Box(CLASSES[b.class_index], b.x1, b.y1, b.x2, b.y2) for b in self.canvas.label_boxes()]

    def _on_labels_changed(self, origin: str) -> None:
        self._save(self._canvas_boxes(), origin)

    def mark_reviewed(self) -> bool:
        if self.current is None:
            return False
        self._save(self._canvas_boxes(), REVIEWED_ORIGIN)
        return True

    def _save(self, boxes: list[Box], origin: str) -> None:
        if self.current is None:
            return
        bag_id = self.current.bag.id

        def work():  # noqa: ANN202 - runs on the store task thread, in order with earlier saves
            revision = self.store.labels.save(self.user, bag_id, boxes, origin=origin,
                                              base_version=self._base["version"])
            self._base["version"] = revision.version
            return revision
        self.tasks.run(work, self._on_saved, self._on_save_failed)

    def _on_saved(self, revision) -> None:  # noqa: ANN001 - LabelRevision
        if self.current is not None and revision.bag_id == self.current.bag.id:
            self.current = replace(self.current, labels=revision,
                                   reviewed=self.user.role == "annotator" or self.current.reviewed)
            self._replace_entry(self.current)
            self._show_revision(revision.version, revision.origin)
        self.labels_saved.emit(revision)

    def _on_save_failed(self, exc: Exception) -> None:
        self._show_error(exc)
        if isinstance(exc, ConflictError) and self.current is not None and self.current.bag.id == exc.bag_id:
            self._on_row(self.bag_list.currentRow())   # reload the newer labels the store kept

    # ------------------------------------------------------------------ import and export
    def import_dataset(self, root: Path) -> None:
        def work():  # noqa: ANN202
            return import_dataset(self.store, self.user, Path(root))
        self.tasks.run(work, self._on_imported, self._show_error)

    def _on_imported(self, levels: dict[str, tuple[str, int | None]]) -> None:
        self.levels.update(levels)
        self._show_note(f"imported {len(levels)} image(s)")
        self.refresh()

    def export(self, out: Path, fmt: str) -> None:
        entries = list(self.shown)
        self.tasks.run(lambda: export_entries(self.store, entries, Path(out), fmt),
                       self._on_exported, self._show_error)

    def _on_exported(self, counts: dict[str, int]) -> None:
        self._show_note("exported " + ", ".join(f"{v} {k}" for k, v in counts.items()))
        self.exported.emit(counts)

    def _ask_import(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "OPIXray-format dataset")
        if folder:
            self.import_dataset(Path(folder))

    def _ask_export(self, fmt: str) -> None:
        folder = QFileDialog.getExistingDirectory(self, f"Export to {fmt} (an empty or new folder)")
        if folder:
            self.export(Path(folder), fmt)

    # ------------------------------------------------------------------ messages
    def _show_error(self, exc: Exception) -> None:
        self._set_message(str(exc), "error")

    def _show_note(self, text: str) -> None:
        self._set_message(text, "warning")

    def _set_message(self, text: str, severity: str) -> None:
        self.message_text = text
        self.message.setText(text)
        restyle(self.message, "severity", severity)
        self.message.show()

    def shutdown(self) -> None:
        self.tasks.wait(5000)

