"""The per-bag timer in the lane's header: seconds since the bag was shown, red past the limit."""
from __future__ import annotations

from PySide6.QtCore import QElapsedTimer, QTimer, Signal
from PySide6.QtWidgets import QLabel, QWidget

from app.style import restyle

TICK_MS = 200


class BagTimerLabel(QLabel):
    """Counts from ``start()``; past ``limit_s`` its ``late`` property turns on (the style sheet colours it)."""
    ticked = Signal()

    def __init__(self, limit_s: float, parent: QWidget | None = None) -> None:
        super().__init__("0.0 s", parent)
        self.setObjectName("timerLabel")
        self.setProperty("late", False)
        self.limit_s = float(limit_s)
        self._elapsed = QElapsedTimer()
        self._tick = QTimer(self)
        self._tick.setInterval(TICK_MS)
        self._tick.timeout.connect(self.update_now)
        self._tick.start()

    def start(self) -> None:
        self._elapsed.start()
        self.update_now()

    def reset(self) -> None:
        """No bag on screen: a dash, not late."""
        self._elapsed.invalidate()
        self.setText("–")
        self._set_late(False)

    def stop(self) -> None:
        self._tick.stop()

    def set_limit(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"the per-bag time limit must be positive, got {seconds}")
        self.limit_s = float(seconds)
        self.update_now()

    def is_late(self) -> bool:
        return bool(self.property("late"))

    def update_now(self) -> None:
        if not self._elapsed.isValid():
            return
        seconds = self._elapsed.elapsed() / 1000.0
        late = seconds > self.limit_s
        self.setText(f"⚠ {seconds:.1f} s  OVER {self.limit_s:.0f} s LIMIT" if late
                     else f"{seconds:.1f} s / {self.limit_s:.0f} s")
        self._set_late(late)
        self.ticked.emit()

    def _set_late(self, late: bool) -> None:
        if self.property("late") != late:
            restyle(self, "late", late)
