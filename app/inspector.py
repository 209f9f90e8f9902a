"""The lane view: one bag at a time, its detections and heat map, a decision by key.

Flow (left to right): the LaneWorker brings a bag -> it is recorded and shown at
once -> the DetectorWorker's boxes and heat map appear when ready -> the inspector
decides (clear / suspect) -> the decision is committed by the SessionWorker ->
only then does the next bag show. Box corrections on the canvas become label
revisions through the same SessionWorker.

A model that failed to load, a lost session, a bad image: each shows as a banner
or an error entry, and the lane goes on. Nothing here decides what a decision or a
correction means; it only records what the inspector did.
"""
from __future__ import annotations

import datetime as dt
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QHBoxLayout, QLabel, QStatusBar, QVBoxLayout, QWidget

from app.bag_timer import BagTimerLabel
from app.canvas import ImageCanvas
from app.gc_pauses import freeze_long_lived
from app.inspector_panel import ScreeningPanel
from app.keymap import Keymap
from app.session import ScreeningSession, prediction_record
from app.style import restyle
from app.workers import DetectionResult, DetectorWorker, EnhanceWorker, LaneWorker, SessionWorker
from core.classes import CLASSES, SHORT_NAMES
from core.lane.bag import Bag
from core.lane.sources import LaneSource

log = logging.getLogger(__name__)

RETRY_WRITES_MS = 2000
PAN_STEP_PX = 80


@dataclass
class InspectorSettings:
    time_limit_s: float = 20.0          # per-bag limit; past it the timer turns red
    score_threshold: float = 0.5        # display threshold for predictions
    heat_opacity: float = 0.45
    max_pending: int = 50               # undecided bags before the belt stops
    detector_capacity: int = 2          # latest-wins queue length


class InspectorView(QWidget):
    bag_shown = Signal(str)
    decision_committed = Signal(object)     # DecisionRecord
    boxes_shown = Signal(str)               # bag id, once its detections are on screen

    def __init__(self, session: ScreeningSession, source: LaneSource, detector_loader: Callable[[], Any] | None,
                 keymap: Keymap, settings: InspectorSettings | None = None, *, model_note: str | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("inspectorView")
        self.settings = settings or InspectorSettings()
        self.keymap = keymap
        self.model_note = model_note
        self.lane = LaneWorker(source, self.settings.max_pending, self)
        self.detector = DetectorWorker(detector_loader, self.settings.detector_capacity, self)
        self.session_worker = SessionWorker(session, self)
        self.enhancer = EnhanceWorker(parent=self)

        self._pending: deque[Bag] = deque()
        self._current: Bag | None = None
        self._opened_at: dt.datetime | None = None
        self._shown_perf = 0.0
        self._decision: tuple[int, str, dt.datetime] | None = None   # (seq, verdict, decided_at) being saved
        self._results: dict[str, DetectionResult] = {}
        self._enhance_token = 0            # newest screening request (0: plain image)
        self._enhance_shown = 0            # the request whose result is on the canvas
        self._model_failed: str | None = None
        # The bag on screen has no boxes and none are coming (no model yet, or its prediction failed):
        # the next model to load screens it, so a lane that starts before its model never loses a bag's boxes.
        self._needs_boxes = False
        self._swap_warning: str | None = None     # a promoted model was refused; the old one still screens
        self._closing = False                    # logging out: no new bag is shown
        self._swapped_version: Any = None
        self._lane_message: str | None = None
        self._session_error: str | None = None
        # Session writes carry a sequence number kept across retries, so they are saved in order.
        self._write_seq = itertools.count(1)
        self._in_flight: dict[int, tuple[int, str, tuple]] = {}     # worker token -> (seq, method, args)
        self._failed_writes: list[tuple[int, str, tuple]] = []      # (seq, method, args) to send again
        self.model_id: str | None = None
        self.model_version: Any = None          # ModelVersionInfo when the model came from the store
        self.decided = 0
        self.latencies_ms: list[float] = []     # bag shown -> boxes on screen
        self._actions: dict[str, QAction] = {}
        self._retry_timer = QTimer(self)
        self._retry_timer.setSingleShot(True)
        self._retry_timer.timeout.connect(self._retry_failed_writes)

        self._build_ui()
        self._connect()
        self._install_actions()
        keymap.changed.connect(self._install_actions)
        self._show_waiting()

    # ------------------------------------------------------------------ construction
    def _build_ui(self) -> None:
        self.banner = QLabel()
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.hide()
        self.bag_label = QLabel("Waiting for the first bag…")
        self.bag_label.setObjectName("bagLabel")
        self.model_badge = QLabel("model: loading…")
        self.model_badge.setObjectName("modelBadge")
        self.timer_label = BagTimerLabel(self.settings.time_limit_s)
        self.timer_label.ticked.connect(self._update_status)
        header = QHBoxLayout()
        header.setContentsMargins(12, 6, 12, 6)
        header.addWidget(self.bag_label)
        header.addStretch(1)
        header.addWidget(self.model_badge)
        header.addSpacing(24)
        header.addWidget(self.timer_label)

        self.canvas = ImageCanvas()
        self.canvas.setFocusPolicy(Qt.StrongFocus)
        self.panel = ScreeningPanel(self.keymap, self.settings.score_threshold, self.settings.heat_opacity)
        self.canvas.set_heat_opacity(self.settings.heat_opacity)
        self.canvas.set_score_threshold(self.settings.score_threshold)
        body = QHBoxLayout()
        body.setContentsMargins(0, 0, 0, 0)
        body.setSpacing(0)
        body.addWidget(self.canvas, 1)
        body.addWidget(self.panel)

        self.status = QStatusBar()
        self.status.setSizeGripEnabled(False)
        self.status_model = QLabel()
        self.status_queue = QLabel()
        self.status_latency = QLabel("boxes: –")
        self.status_decided = QLabel("decided: 0")
        self.status_note = QLabel()
        for label in (self.status_model, self.status_queue, self.status_latency, self.status_decided):
            self.status.addPermanentWidget(label)
        self.status.addWidget(self.status_note, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.banner)
        layout.addLayout(header)
        layout.addLayout(body, 1)
        layout.addWidget(self.status)

    def _connect(self) -> None:
        self.lane.bag_arrived.connect(self._on_bag_arrived)
        self.lane.bag_failed.connect(self._on_bag_failed)
        self.lane.lane_error.connect(self._on_lane_error)
        self.detector.model_loaded.connect(self._on_model_loaded)
        self.detector.model_failed.connect(self._on_model_failed)
        self.detector.model_swapped.connect(self._on_model_swapped)
        self.detector.result_ready.connect(self._on_result)
        self.detector.prediction_failed.connect(self._on_prediction_failed)
        self.session_worker.done.connect(self._on_session_done)
        self.session_worker.failed.connect(self._on_session_failed)
        self.enhancer.ready.connect(self._on_enhanced)
        self.enhancer.failed.connect(lambda token, msg: self.status_note.setText(f"screening function failed: {msg}"))
        self.canvas.labels_changed.connect(self._on_labels_changed)
        self.panel.verdict_requested.connect(self.decide)
        self.panel.threshold_changed.connect(self._on_threshold)
        self.panel.heat_opacity_changed.connect(self.canvas.set_heat_opacity)
        self.panel.heat_toggled.connect(self.canvas.set_heat_visible)
        self.panel.functions_changed.connect(lambda chain: self._refresh_image())
        self._on_threshold(self.panel.threshold())  # the panel announced its starting value before this hook-up

    def _install_actions(self) -> None:
        handlers: dict[str, Callable[[], Any]] = {
            "clear": lambda: self.decide("clear"), "suspect": lambda: self.decide("suspect"),
            "accept_box": self.canvas.accept_selected, "accept_all": self.canvas.accept_all_visible,
            "delete_box": self.canvas.delete_selected, "draw_box": self.canvas.begin_draw,
            "next_box": self.canvas.select_next,
            "undo": self.canvas.undo_stack.undo, "redo": self.canvas.undo_stack.redo,
            "zoom_in": self.canvas.zoom_in, "zoom_out": self.canvas.zoom_out, "zoom_fit": self.canvas.fit,
            "zoom_actual": self.canvas.actual_size,
            "pan_left": lambda: self.canvas.pan_by(-PAN_STEP_PX, 0), "pan_right": lambda: self.canvas.pan_by(PAN_STEP_PX, 0),
            "pan_up": lambda: self.canvas.pan_by(0, -PAN_STEP_PX), "pan_down": lambda: self.canvas.pan_by(0, PAN_STEP_PX),
            "toggle_heat": self.panel.toggle_heat, "reset_view": self.panel.reset_functions,
            "threshold_up": lambda: self.panel.step_threshold(1), "threshold_down": lambda: self.panel.step_threshold(-1),
        }
        for index in range(len(SHORT_NAMES)):
            handlers[f"class_{index + 1}"] = lambda i=index: self._relabel(i)
        for name in self.panel.function_buttons:
            handlers[name] = lambda n=name: self.panel.toggle_function(n)
        for action in self._actions.values():
            self.removeAction(action)
        self._actions.clear()
        for name in self.keymap.names():
            handler = handlers.get(name)
            if handler is None:
                continue   # an action for another perspective
            action = QAction(self.keymap.label(name), self)
            action.setShortcuts(self.keymap.sequences(name))
            action.setShortcutContext(Qt.WindowShortcut)
            action.triggered.connect(lambda checked=False, h=handler: h())
            self.addAction(action)
            self._actions[name] = action

    def action(self, name: str) -> QAction:
        return self._actions[name]

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        freeze_long_lived()     # see app.gc_pauses: full collections must not freeze the lane
        self.session_worker.start()
        self.detector.start()
        self.lane.start()

    def begin_closing(self) -> None:
        """Logging out: no more bags or decisions; the writes already queued still go to the store."""
        self._closing = True
        self.panel.set_decision_enabled(False)
        self.canvas.set_editable(False)
        self.lane.stop()
        self.detector.stop()

    def unsaved_writes(self) -> int:
        """Session calls not yet saved (queued, running, or failed and waiting to be sent again)."""
        return len(self._in_flight) + len(self._failed_writes)

    def shutdown(self) -> None:
        """Stop the lane, then the detector; let the session finish its queued writes."""
        self.timer_label.stop()
        self._retry_timer.stop()
        if self._failed_writes or self._decision is not None:
            log.error("closing with unsaved work: %d failed session write(s)%s", len(self._failed_writes),
                      ", a pending decision" if self._decision is not None else "")
        self.lane.stop()
        self.detector.stop()
        self.enhancer.wait()
        self.session_worker.stop()

    # ------------------------------------------------------------------ lane
    def _on_bag_arrived(self, bag: Bag) -> None:
        self._write("record_bag", bag)
        self._pending.append(bag)
        if self._current is None and self._decision is None:
            self._show_next()
        self._update_status()

    def _on_bag_failed(self, bag: Bag) -> None:
        self._write("record_bag", bag)
        stamp = time.strftime("%H:%M:%S")
        self.panel.add_error(f"{stamp}  {bag.bag_id}: {bag.error}")

    def _on_lane_error(self, message: str) -> None:
        self._lane_message = message
        self.panel.add_error(message)
        self._update_banner()

    def _show_next(self) -> None:
        if not self._pending or self._closing:
            self._show_waiting()
            return
        bag = self._pending.popleft()
        self._current = bag
        self._opened_at = dt.datetime.now(dt.timezone.utc)
        self._shown_perf = time.perf_counter()
        prepared = self.lane.take_image(bag.bag_id)     # converted by the lane thread (None: not prepared)
        self.canvas.set_image(prepared if prepared is not None else bag.image)
        self._enhance_shown = 0                         # the plain image is on the canvas
        self.canvas.set_editable(True)
        self.canvas.setFocus()
        self.panel.set_decision_enabled(True)
        self.bag_label.setText(f"Bag {bag.bag_id}")
        self._refresh_image()
        cached = self._results.pop(bag.bag_id, None)
        self._needs_boxes = cached is None and self._model_failed is not None
        if cached is not None:
            self._show_result(cached)
        elif self._model_failed is None:
            self.detector.submit(bag.bag_id, bag.image)
            self.status_latency.setText("boxes: pending…")
        self.timer_label.start()
        self._update_status()
        self.bag_shown.emit(bag.bag_id)

    def _show_waiting(self) -> None:
        self._current = None
        self.canvas.clear_bag()
        self.panel.set_decision_enabled(False)
        self.panel.set_detections([])
        self.bag_label.setText("Waiting for the next bag…")
        self.timer_label.reset()

    @property
    def current_bag_id(self) -> str | None:
        return self._current.bag_id if self._current is not None else None

    def pending_count(self) -> int:
        return len(self._pending)

    # ------------------------------------------------------------------ detections
    def _on_model_swapped(self, version: Any) -> None:
        # Always followed by model_loaded (same thread, so in order), which makes it current; the
        # model note was about the fallback model, which no longer screens.
        self._swapped_version, self.model_note = version, None
        self.status_note.setText(f"now screening with model version {version.id} ({version.name})")

    def _model_text(self) -> str:
        if self.model_version is not None and self.model_id is not None:
            return f"{self.model_version.name} v{self.model_version.id} ({self.model_id})"
        return self.model_id or "loading…"

    def _on_model_loaded(self, model_id: str) -> None:
        # A model loaded without model_swapped (a file, swap_model) is not known to be a registered version.
        self.model_version, self._swapped_version = self._swapped_version, None
        self.model_id = model_id
        freeze_long_lived()     # the model's objects live as long as it screens: keep them out of full collections
        self._model_failed = None
        self._swap_warning = None
        self.panel.suggest_threshold(self.detector.operating_threshold)
        self.model_badge.setText(f"model: {self._model_text()}")
        restyle(self.model_badge, "missing", False)
        if self._current is not None and self._needs_boxes and self._decision is None:   # not once decided
            self._needs_boxes = False
            self.detector.submit(self._current.bag_id, self._current.image)
            self.status_latency.setText("boxes: pending…")
        self._update_banner()
        self._update_status()

    def _on_model_failed(self, message: str) -> None:
        if self.model_id is None:
            self._model_failed = message
            self.model_badge.setText("NO MODEL")
            restyle(self.model_badge, "missing", True)       # the style sheet paints it red
            self._update_detection_list()
        else:
            self._swap_warning = message      # stays up until a model loads
        self._update_banner()
        self._update_status()

    def _on_result(self, result: DetectionResult) -> None:
        self._write("record_prediction", result.bag_id, prediction_record(
            result.bag_id, result.model_id, result.boxes, result.labels, result.scores,
            model_version_id=result.model_version_id))
        if self._current is not None and result.bag_id == self._current.bag_id:
            self._show_result(result)
        elif any(b.bag_id == result.bag_id for b in self._pending):
            self._results[result.bag_id] = result

    def _show_result(self, result: DetectionResult) -> None:
        self.canvas.set_predictions(result.boxes, result.labels, result.scores)
        self.canvas.set_heat_map(result.heat_image if result.heat_image is not None else result.heat_rgba)
        latency = (time.perf_counter() - self._shown_perf) * 1e3
        self.latencies_ms.append(latency)
        self.status_latency.setText(f"boxes in {latency:.0f} ms (model {result.timings.get('total', 0):.0f} ms)")
        self._update_detection_list()
        self.boxes_shown.emit(result.bag_id)

    def _on_prediction_failed(self, bag_id: str, message: str) -> None:
        if self._current is None or bag_id != self._current.bag_id:
            return
        self._needs_boxes = True
        if self._model_failed is None:
            self.status_latency.setText("boxes: failed")
            self.panel.add_error(f"{time.strftime('%H:%M:%S')}  {bag_id}: detection failed: {message}")

    def _on_threshold(self, threshold: float) -> None:
        self.canvas.set_score_threshold(threshold)
        if hasattr(self.session_worker.session, "alarm_threshold"):   # "the model alarmed" = it showed a box
            self.session_worker.session.alarm_threshold = threshold
        self._update_detection_list()

    def _update_detection_list(self) -> None:
        rows = [f"{'✓' if d.accepted else '·'} {CLASSES[d.class_index].replace('_', ' ')}"
                + (f"  {d.score:.2f}" if d.score is not None else "  (drawn)")
                for d in sorted(self.canvas.all_boxes(), key=lambda d: -(d.score or 0))
                if d.accepted or (d.score or 0) >= self.panel.threshold()]
        if not rows and self._model_failed:
            rows = ["(no model: no detections)"]
        self.panel.set_detections(rows)

    def _relabel(self, class_index: int) -> None:
        if self.canvas.drawing:
            self.canvas.draw_class = class_index
        self.canvas.relabel_selected(class_index)

    # ------------------------------------------------------------------ screening functions
    def _refresh_image(self) -> None:
        if self._current is None:
            return
        chain = self.panel.chain()
        if not chain:
            self._enhance_token = 0
            if self._enhance_shown:      # an enhanced image is on screen (else the plain one already is)
                self.canvas.set_image(self._current.image, new_bag=False)
                self._enhance_shown = 0
            return
        self._enhance_token = self.enhancer.request(self._current.bag_id, self._current.image, chain)

    def _on_enhanced(self, token: int, image: Any) -> None:
        if token == self._enhance_token and self._current is not None:
            self.canvas.set_image(image, new_bag=False)
            self._enhance_shown = token

    def screening_pending(self) -> bool:
        """True while the screening functions asked for are still being computed."""
        return self._enhance_token != 0 and self._enhance_shown != self._enhance_token

    # ------------------------------------------------------------------ decisions and labels
    def _write(self, method: str, *args: Any) -> int:
        """Queue a session call in order; kept until saved, sent again (in order) if it fails."""
        seq = next(self._write_seq)
        if self._failed_writes or self._retry_timer.isActive():
            self._failed_writes.append((seq, method, args))   # hold behind the failed ones
        else:
            self._in_flight[self.session_worker.call(method, *args)] = (seq, method, args)
        return seq

    def decide(self, verdict: str) -> bool:
        """Commit a verdict for the bag on screen; False when there is none or one is being saved."""
        if self._current is None or self._decision is not None or self._opened_at is None:
            return False
        decided_at = max(dt.datetime.now(dt.timezone.utc), self._opened_at)
        seq = self._write("decide", self._current.bag_id, verdict, self._opened_at, decided_at)
        self._decision = (seq, verdict, decided_at)
        self.panel.set_decision_enabled(False)
        self.canvas.set_editable(False)    # the labels are final once the verdict is given
        self.status_note.setText(f"saving decision {verdict}…")
        return True

    def _retry_failed_writes(self) -> None:
        failed, self._failed_writes = sorted(self._failed_writes, key=lambda f: f[0]), []
        self.session_worker.resume()
        for seq, method, args in failed:
            self._in_flight[self.session_worker.call(method, *args)] = (seq, method, args)

    def _on_session_done(self, token: int, method: str, result: Any) -> None:
        seq, _, _ = self._in_flight.pop(token, (None, None, None))
        if self._session_error and not self._failed_writes and not self._retry_timer.isActive():
            self._session_error = None
            self._update_banner()
        if method != "decide" or self._decision is None or seq != self._decision[0]:
            return
        self._decision = None
        self.decided += 1
        self.status_note.setText("")
        self._results.pop(result.bag_id, None)
        self.lane.release_bag()
        self.decision_committed.emit(result)
        self._show_next()
        self._update_status()

    def _on_session_failed(self, token: int, method: str, message: str) -> None:
        # Nothing is dropped: the call is kept and sent again, in order, until the session takes it.
        entry = self._in_flight.pop(token, None)
        if entry is not None:
            self._failed_writes.append(entry)
        if message == SessionWorker.HELD_MESSAGE:
            return   # not a new failure: the one that caused the hold is already reported
        if self._decision is not None and entry is not None and entry[0] == self._decision[0]:
            self._session_error = f"DECISION NOT SAVED ({message}); the next bag waits; retrying…"
        elif not (self._session_error or "").startswith("DECISION"):
            self._session_error = f"changes not saved ({message}); retrying…"
        if not self._retry_timer.isActive():
            self._retry_timer.start(RETRY_WRITES_MS)
        self._update_banner()

    def _on_labels_changed(self, origin: str) -> None:
        if self._current is not None:
            self._write("save_labels", self._current.bag_id, self.canvas.label_boxes(), origin)
        self._update_detection_list()

    # ------------------------------------------------------------------ banner, clock, status
    def _update_banner(self, extra: str | None = None) -> None:
        lines = [m for m in (self._session_error, self._model_failed, self._swap_warning, self._lane_message,
                             self.model_note, extra) if m]
        self.banner.setText("\n".join(lines))
        severe = bool(self._session_error or self._model_failed or self._lane_message or self._swap_warning)
        restyle(self.banner, "severity", "error" if severe else "warning")
        self.banner.setVisible(bool(lines))

    def banner_text(self) -> str:
        return self.banner.text() if not self.banner.isHidden() else ""

    def is_late(self) -> bool:
        return self.timer_label.is_late()

    def set_time_limit(self, seconds: float) -> None:
        self.timer_label.set_limit(seconds)
        self.settings.time_limit_s = float(seconds)

    def _update_status(self) -> None:
        self.status_model.setText("model: NONE" if self._model_failed else f"model: {self._model_text()}")
        self.status_queue.setText(f"queue: {len(self._pending)} waiting · detector {self.detector.queue_length()}")
        self.status_decided.setText(f"decided: {self.decided}")
