"""Automatic retraining: start a job when N new hard samples have accumulated (a setting, off by default).

The supervisor's Models view owns one ``AutoRetrainControl``. Every ``interval_ms`` it counts
the hard samples not yet used by the last successful job (``core.training.retrain.new_hard_samples``,
off the GUI thread) and, at or above the threshold, starts the same job as "Retrain now".
Never two jobs at once: nothing is counted while a job is being prepared or runs, and core
refuses a second job anyway (another workstation may have started one).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSpinBox, QWidget

if TYPE_CHECKING:
    from app.models_view import ModelsView

log = logging.getLogger(__name__)

SETTING = "retrain/auto_threshold"
CHECK_MS = 60_000


def count_new_hard_samples(store, user) -> int:  # noqa: ANN001 - a Store, a UserInfo
    from core.training.retrain import new_hard_samples  # noqa: PLC0415 - torch only in the worker thread

    return len(new_hard_samples(store, user))


class AutoRetrainControl(QWidget):
    triggered = Signal(int)          # the count of new hard samples that started a job

    def __init__(self, view: ModelsView, interval_ms: int = CHECK_MS) -> None:
        super().__init__(view)
        self.view = view
        self.count_new = lambda: count_new_hard_samples(view.store, view.user)   # replaceable in tests
        self.spin = QSpinBox()
        self.spin.setObjectName("autoRetrainThreshold")
        self.spin.setRange(0, 1_000_000)
        self.spin.setSpecialValueText("off")
        self.spin.setSuffix(" new hard samples")
        self.spin.setValue(int(view.settings.value(SETTING, 0) or 0))
        self.status = QLabel()
        self.status.setObjectName("autoRetrainStatus")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.spin)
        row.addWidget(self.status, 1)
        self._counting = False
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.check)
        self.spin.valueChanged.connect(self._set_threshold)
        self._set_threshold(self.spin.value())

    @property
    def threshold(self) -> int:
        return self.spin.value()

    def _set_threshold(self, value: int) -> None:
        self.view.settings.setValue(SETTING, value)
        if value > 0:
            self.status.setText(f"a job starts by itself at {value} new hard samples (checked every "
                                f"{self.timer.interval() // 1000} s)")
            self.timer.start()
        else:
            self.status.setText("automatic retraining is off")
            self.timer.stop()

    def check(self) -> None:
        """Count (off the GUI thread) and start a job if there are enough new hard samples."""
        if self.threshold <= 0 or self._counting or self.view.job_phase != "idle":
            return
        if not self.view.benchmark_edit.text().strip():
            self.status.setText("automatic retraining waits for a benchmark dataset")
            return
        self._counting = True
        self.view.tasks.run(self.count_new, self._counted, self._failed)

    def _counted(self, count: int) -> None:
        self._counting = False
        self.status.setText(f"{count} new hard sample(s); a job starts at {self.threshold}")
        if 0 < self.threshold <= count and self.view.job_phase == "idle":
            log.info("automatic retraining: %d new hard samples (threshold %d)", count, self.threshold)
            self.triggered.emit(count)
            self.view.retrain_now()

    def _failed(self, exc: Exception) -> None:
        self._counting = False
        self.status.setText(f"cannot count the hard samples: {exc}")
