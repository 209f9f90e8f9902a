"""The supervisor's Models view: the model registry, the gate's numbers, promote / reject / roll back, retrain.

Top: every registered model version (the active one highlighted) with its key
numbers; the selected version's metrics, lineage and gate verdict beside it.
Bottom: "Retrain now" (or ``app.auto_retrain`` at N new hard samples) starts ``python main.py
retrain`` as its own process (``app.retrain_process``) on a job row this view creates first.

Every store call runs off the GUI thread (``StoreTasks``). Roles are enforced
in core: promote, reject, roll back and creating a job raise PermissionDenied
for a role without ``manage_models`` / ``manage_jobs``, and the view shows it.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (QAbstractItemView, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QHeaderView,
                               QLabel, QLineEdit, QMessageBox, QPlainTextEdit, QProgressBar, QPushButton, QSpinBox,
                               QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from app.auto_retrain import AutoRetrainControl
from app.model_details import details_text, format_number, key_metrics
from app.retrain_process import (ACTIVE_STATES, ProcessResult, ProcessRunner, prepare_job, retrain_command,
                                 settle_job)
from app.store_session import StoreTasks
from core.store.repo import Store
from core.store.values import ModelVersionInfo, TrainingJobInfo, UserInfo

log = logging.getLogger(__name__)

COLUMNS = ("#", "Name", "Model", "Status", "Parent", "Created", "Benchmark mAP", "Held-out mAP", "Gate", "SHA-256")
ACTIVE_BRUSH = QBrush(QColor("#1f5f3a"))
ACTIVE_TEXT = QBrush(QColor("#f2f4f6"))      # readable on the green whatever the theme
POLL_MS = 1000
LOG_BLOCKS = 5000
SETTINGS_PREFIX = "retrain/"


@dataclass(frozen=True)
class ModelsSnapshot:
    versions: tuple[ModelVersionInfo, ...]
    jobs: tuple[TrainingJobInfo, ...]          # queued or running, whoever started them


def load_snapshot(store: Store) -> ModelsSnapshot:
    return ModelsSnapshot(tuple(store.models.list()), tuple(store.jobs.list(ACTIVE_STATES)))


def ask_confirmation(parent: QWidget, title: str, text: str) -> bool:
    return QMessageBox.question(parent, title, text, QMessageBox.Yes | QMessageBox.No,
                                QMessageBox.No) == QMessageBox.Yes


class ModelsView(QWidget):
    refreshed = Signal(int)              # number of versions listed
    action_done = Signal(str, object)    # action, the ModelVersionInfo it returned
    action_failed = Signal(str, str)     # action, message
    job_finished = Signal(object)        # ProcessResult

    def __init__(self, store: Store, user: UserInfo, parent: QWidget | None = None, *,
                 settings: QSettings | None = None, grace_ms: int | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelsView")
        self.store, self.user = store, user
        self.settings = settings if settings is not None else QSettings()
        self.tasks = StoreTasks(self)
        self.runner = ProcessRunner(self, **({"grace_ms": grace_ms} if grace_ms is not None else {}))
        self.runner.output.connect(lambda _channel, line: self.log_pane.appendPlainText(line))
        self.runner.progress.connect(self._set_progress)
        self.runner.finished.connect(self._on_process_finished)
        # Replaceable in tests: the real one is a modal question box.
        self.confirm: Callable[[QWidget, str, str], bool] = ask_confirmation
        self.versions: list[ModelVersionInfo] = []
        self.snapshot: ModelsSnapshot | None = None
        self.job: TrainingJobInfo | None = None
        self.job_phase = "idle"              # idle | preparing | running | settling
        self.last_error = ""
        self.last_outcome = ""
        self.message_box: QMessageBox | None = None
        self._polling = False
        self._poll = QTimer(self)
        self._poll.setInterval(POLL_MS)
        self._poll.timeout.connect(self._poll_job)
        self._build_ui()
        self._update_buttons()

    # ------------------------------------------------------------------ construction
    def _build_ui(self) -> None:
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("modelsTable")
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._on_selected)
        self.details = QPlainTextEdit()
        self.details.setObjectName("modelDetails")
        self.details.setReadOnly(True)
        self.details.setLineWrapMode(QPlainTextEdit.NoWrap)

        self.buttons: dict[str, QPushButton] = {}
        actions = QHBoxLayout()
        for name, text, slot in (("refresh", "Refresh", self.refresh), ("promote", "Promote…", self.promote_selected),
                                 ("reject", "Reject", self.reject_selected),
                                 ("rollback_to", "Roll back to this version…", self.rollback_to_selected),
                                 ("rollback", "Roll back to previous…", self.rollback_previous)):
            button = QPushButton(text)
            button.setObjectName(f"{name}Button")
            button.clicked.connect(slot)
            self.buttons[name] = button
            actions.addWidget(button)
        actions.addStretch(1)

        self.error, self.status = QLabel(), QLabel()
        self.error.setObjectName("banner")
        self.error.setProperty("severity", "error")
        self.status.setObjectName("modelsStatus")
        for label in (self.error, self.status):
            label.setWordWrap(True)
        self.error.hide()

        top = QSplitter(Qt.Horizontal)
        top.addWidget(self.table)
        top.addWidget(self.details)
        top.setSizes([700, 400])
        upper = QWidget()
        upper_layout = QVBoxLayout(upper)
        upper_layout.setContentsMargins(0, 0, 0, 0)
        upper_layout.addWidget(top, 1)
        upper_layout.addLayout(actions)
        outer_split = QSplitter(Qt.Vertical)
        outer_split.addWidget(upper)
        outer_split.addWidget(self._build_retrain())
        outer_split.setSizes([420, 360])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.addWidget(self.error)
        layout.addWidget(outer_split, 1)
        layout.addWidget(self.status)

    def _build_retrain(self) -> QGroupBox:
        box = QGroupBox("Retraining from the inspectors' corrections")
        self.benchmark_edit = QLineEdit(str(self.settings.value(SETTINGS_PREFIX + "benchmark", "") or ""))
        self.benchmark_edit.setPlaceholderText("benchmark dataset (OPIXray layout, its test/ split is used)")
        self.base_edit = QLineEdit(str(self.settings.value(SETTINGS_PREFIX + "base_data", "") or ""))
        self.base_edit.setPlaceholderText("optional: base training dataset replayed so the model does not forget")
        self.iters_spin = QSpinBox()
        self.iters_spin.setRange(1, 1_000_000)
        self.iters_spin.setValue(int(self.settings.value(SETTINGS_PREFIX + "iters", 200)))
        form = QFormLayout()
        for label, edit in (("Benchmark", self.benchmark_edit), ("Base data", self.base_edit)):
            row = QHBoxLayout()
            row.addWidget(edit, 1)
            browse = QPushButton("Browse…")
            browse.clicked.connect(lambda _=False, e=edit: self._browse(e))
            row.addWidget(browse)
            form.addRow(label, row)
        form.addRow("Fine-tuning steps", self.iters_spin)
        form.addRow("Retrain by itself at", AutoRetrainControl(self))
        self.retrain_button = QPushButton("Retrain now")
        self.retrain_button.setObjectName("retrainButton")
        self.retrain_button.clicked.connect(self.retrain_now)
        self.cancel_button = QPushButton("Cancel job")
        self.cancel_button.setObjectName("cancelJobButton")
        self.cancel_button.clicked.connect(self.cancel_job)
        self.progress = QProgressBar()
        self.progress.setObjectName("jobProgress")
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.job_label = QLabel("No job running.")
        self.job_label.setObjectName("jobLabel")
        self.job_label.setWordWrap(True)
        controls = QHBoxLayout()
        controls.addWidget(self.retrain_button)
        controls.addWidget(self.cancel_button)
        controls.addWidget(self.progress, 1)
        self.log_pane = QPlainTextEdit()
        self.log_pane.setObjectName("jobLog")
        self.log_pane.setReadOnly(True)
        self.log_pane.setMaximumBlockCount(LOG_BLOCKS)
        self.log_pane.setLineWrapMode(QPlainTextEdit.NoWrap)
        layout = QVBoxLayout(box)
        layout.addLayout(form)
        layout.addLayout(controls)
        layout.addWidget(self.job_label)
        layout.addWidget(self.log_pane, 1)
        return box

    def _browse(self, edit: QLineEdit) -> None:
        edit.setText(QFileDialog.getExistingDirectory(self, "Choose a dataset folder", edit.text()) or edit.text())

    # ------------------------------------------------------------------ the registry
    def refresh(self) -> None:
        self.tasks.run(lambda: load_snapshot(self.store), self._show_snapshot,
                       lambda exc: self._show_error("refresh", exc))

    def _show_snapshot(self, snapshot: ModelsSnapshot) -> None:
        selected = self.selected()
        self.snapshot = snapshot
        self.versions = list(snapshot.versions)
        self.table.blockSignals(True)
        self.table.setRowCount(len(self.versions))
        bold = QFont()
        bold.setBold(True)
        for row, v in enumerate(self.versions):
            numbers = key_metrics(v.metrics)
            values = (str(v.id), v.name, f"{v.arch}/{v.attention}", v.status,
                      "" if v.parent_id is None else str(v.parent_id), f"{v.created_at:%Y-%m-%d %H:%M}",
                      format_number(numbers["benchmark_map"]), format_number(numbers["heldout_map"]),
                      numbers["verdict"] or "", v.sha256[:12])
            for column, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setData(Qt.UserRole, v.id)
                if v.status == "active":       # the model every lane screens with
                    item.setFont(bold)
                    item.setBackground(ACTIVE_BRUSH)
                    item.setForeground(ACTIVE_TEXT)
                    item.setToolTip("the active model")
                self.table.setItem(row, column, item)
        self.table.blockSignals(False)
        if selected is not None:
            self.select_version(selected.id)
        self._on_selected()
        others = [j for j in snapshot.jobs if self.job is None or j.id != self.job.id]
        if others and self.job_phase == "idle":
            job = others[0]
            self.job_label.setText(f"Training job {job.id} is {job.state} ({job.progress * 100:.0f} %), "
                                   "started elsewhere: a new job would be refused until it ends.")
        self.refreshed.emit(len(self.versions))

    def select_version(self, version_id: int) -> bool:
        for row, version in enumerate(self.versions):
            if version.id == version_id:
                self.table.selectRow(row)
                return True
        return False

    def selected(self) -> ModelVersionInfo | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows or rows[0].row() >= len(self.versions):
            return None
        return self.versions[rows[0].row()]

    def _on_selected(self) -> None:
        version = self.selected()
        by_id = {v.id: v for v in self.versions}
        self.details.setPlainText(details_text(version, by_id) if version is not None else "")
        self._update_buttons()

    def _update_buttons(self) -> None:
        version = self.selected()
        status = version.status if version is not None else None
        # What the core would refuse anyway is greyed out; the role is left to core to refuse.
        self.buttons["promote"].setEnabled(status == "candidate")
        self.buttons["reject"].setEnabled(status == "candidate")
        self.buttons["rollback_to"].setEnabled(status == "retired")
        self.buttons["rollback"].setEnabled(any(v.status == "active" for v in self.versions))
        self.retrain_button.setEnabled(self.job_phase == "idle")
        self.cancel_button.setEnabled(self.job_phase == "running")

    # ------------------------------------------------------------------ actions (core enforces roles)
    def promote_selected(self) -> None:
        version = self.selected()
        if version is not None and self.confirm(self, "Promote model", f"Make model version {version.id} "
                                                f"({version.name}) the active model on every lane?"):
            self._act("promote", lambda: self.store.models.promote(self.user, version.id))

    def reject_selected(self) -> None:
        version = self.selected()
        if version is not None:
            self._act("reject", lambda: self.store.models.reject(
                self.user, version.id, reason=f"rejected by hand in the Models view by {self.user.name}"))

    def rollback_to_selected(self) -> None:
        """Reactivate an earlier (retired) version: core's promote accepts a retired model for exactly this."""
        version = self.selected()
        if version is not None and self.confirm(self, "Roll back", f"Roll back to model version {version.id} "
                                                f"({version.name})? The active model is retired."):
            self._act("rollback", lambda: self.store.models.promote(self.user, version.id))

    def rollback_previous(self) -> None:
        if self.confirm(self, "Roll back", "Retire the active model and reactivate the one active before it?"):
            self._act("rollback", lambda: self.store.models.rollback(self.user))

    def _act(self, action: str, work: Callable[[], ModelVersionInfo]) -> None:
        def done(version: ModelVersionInfo) -> None:
            self.error.hide()
            self.last_error = ""
            self.status.setText(f"{action}: model version {version.id} ({version.name}) is now {version.status}")
            self.action_done.emit(action, version)
            self.refresh()

        def failed(exc: Exception) -> None:
            self._show_error(action, exc)
            self.action_failed.emit(action, self.last_error)
            self.refresh()
        self.tasks.run(work, done, failed)

    def _show_error(self, action: str, exc: Exception | str, *, details: str = "") -> None:
        text = str(exc) or type(exc).__name__
        self.last_error = f"{action}: {text}"
        self.error.setText(self.last_error)
        self.error.show()
        self.status.setText(self.last_error)
        self._message(QMessageBox.Warning, f"Models: {action}", text, details)

    def _message(self, icon: QMessageBox.Icon, title: str, text: str, details: str = "") -> None:
        """A window-modal box that does not block the event loop (the job's output keeps coming)."""
        if self.message_box is not None:
            self.message_box.close()
        self.message_box = QMessageBox(icon, title, text, QMessageBox.Ok, self)
        if details:
            self.message_box.setDetailedText(details)
        self.message_box.open()

    # ------------------------------------------------------------------ the retraining job
    def store_url(self) -> str:
        return self.store.db.engine.url.render_as_string(hide_password=False)

    def data_dir(self) -> Path | None:
        return self.store.images.root.parent if self.store.images is not None else None

    def retrain_now(self) -> None:
        if self.job_phase != "idle":
            return
        benchmark = self.benchmark_edit.text().strip()
        if not benchmark:
            self._show_error("retrain", "choose the benchmark dataset first (an OPIXray-layout folder)")
            return
        base = self.base_edit.text().strip() or None
        iters = self.iters_spin.value()
        for key, value in (("benchmark", benchmark), ("base_data", base or ""), ("iters", iters)):
            self.settings.setValue(SETTINGS_PREFIX + key, value)
        self._set_phase("preparing", "Creating the training job…")
        data_dir = self.data_dir()
        settings = {"benchmark": benchmark, "base_data": base, "iters": iters}
        self.tasks.run(lambda: prepare_job(self.store, self.user, data_dir, settings),
                       lambda job: self._launch(job, benchmark, base, iters), self._prepare_failed)

    def _prepare_failed(self, exc: Exception) -> None:
        self._set_phase("idle", "No job started.")
        self._show_error("retrain", exc)

    def _launch(self, job: TrainingJobInfo, benchmark: str, base: str | None, iters: int) -> None:
        self.job = job
        try:
            command = retrain_command(db_url=self.store_url(), user=self.user.name, benchmark=benchmark,
                                      data_dir=self.data_dir(), base_data=base, iters=iters, job_id=job.id)
        except ValueError as exc:
            self._on_process_finished(ProcessResult(None, "error", str(exc), False, ()))
            return
        self.start_process(command.program, command.arguments, env=command.env)

    def start_process(self, program: str, arguments: list[str], *, env: dict[str, str] | None = None) -> None:
        """Run the child and watch it (also the entry point for any other job command)."""
        self.log_pane.clear()
        self.log_pane.appendPlainText("$ " + " ".join([program, *arguments]))
        self.progress.setRange(0, 0)             # indeterminate until a number comes
        self._set_phase("running", f"Training job {self.job.id} running…" if self.job else "Job running…")
        self.runner.start(program, arguments, env=env)
        if self.job is not None:
            self._poll.start()

    def cancel_job(self) -> None:
        if self.runner.running():
            self.job_label.setText("Cancelling: the job stops after its current step…")
            self.cancel_button.setEnabled(False)
            self.runner.cancel()

    def _set_progress(self, fraction: float) -> None:
        if self.job_phase != "running":
            return
        self.progress.setRange(0, 1000)
        self.progress.setValue(round(fraction * 1000))

    def _poll_job(self) -> None:
        """The job writes its progress to its row (it prints none): read it, one read at a time."""
        if self._polling or self.job is None:
            return
        self._polling = True
        job_id = self.job.id

        def show(job: TrainingJobInfo) -> None:
            self._polling = False
            if self.job_phase == "running" and job.state == "running" and job.progress > 0:
                self._set_progress(job.progress)
                self.job_label.setText(f"Training job {job.id} running: {job.progress * 100:.0f} %")

        def failed(exc: Exception) -> None:
            self._polling = False
            self.job_label.setText(f"Training job {job_id}: progress unavailable ({exc})")
        self.tasks.run(lambda: self.store.jobs.get(job_id), show, failed)

    def _on_process_finished(self, result: ProcessResult) -> None:
        self._poll.stop()
        self.progress.setRange(0, 1000)
        if result.ok:
            self.progress.setValue(1000)
        job = self.job
        if job is None:
            self._finish(result, None)
            return
        self._set_phase("settling", "The job ended: recording its outcome…")
        self.tasks.run(lambda: settle_job(self.store, self.user, job.id, result),
                       lambda info: self._finish(result, info),
                       lambda exc: self._finish(result, None, f"(the job row could not be updated: {exc})"))

    def _finish(self, result: ProcessResult, job: TrainingJobInfo | None, note: str = "") -> None:
        self.job = None
        name = f"Training job {job.id}" if job is not None else "The job"
        state = f" (job {job.state})" if job is not None else ""
        self.last_outcome = f"{name}: {result.status}: {result.message}{state} {note}".strip()
        self._set_phase("idle", self.last_outcome)
        self.status.setText(self.last_outcome)
        if result.status in ("promoted", "rejected", "undecided", "nothing_to_do", "cancelled", "done"):
            self.error.hide()
            self._message(QMessageBox.Information, "Retraining", self.last_outcome)
        else:
            self._show_error("retrain", f"{self.last_outcome}\n\nLast output:\n{result.last_lines()}",
                             details="\n".join(result.tail))
        self.job_finished.emit(result)
        self.refresh()

    def _set_phase(self, phase: str, text: str) -> None:
        self.job_phase = phase
        self.job_label.setText(text)
        self._update_buttons()

    def shutdown(self) -> None:
        """Closing the workstation cancels a running job (it marks itself cancelled; the active model stays)."""
        self._poll.stop()
        if self.runner.running():
            self.runner.cancel()
            if not self.runner.wait(self.runner.grace_ms):
                self.runner.kill()
                self.runner.wait(2000)
        self.tasks.wait(5000)
