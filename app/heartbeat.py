"""Measure GUI-thread stalls: a fast timer on the GUI thread and how late each tick fires.

A tick that fires ``interval`` + X ms after the previous one means the event loop
was busy for about X ms: that is what an inspector feels as a frozen window.
"""
from __future__ import annotations

import time

from PySide6.QtCore import QObject, Qt, QTimer


class StallMeter(QObject):
    def __init__(self, interval_ms: int = 10, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.interval_ms = interval_ms
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._last: float | None = None
        self.max_stall_ms = 0.0
        self.ticks = 0
        self.stalls: list[float] = []      # lateness of every tick, ms (bounded by the run length)

    def start(self) -> None:
        self.reset()
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        self._last = None

    def reset(self) -> None:
        self.max_stall_ms = 0.0
        self.ticks = 0
        self.stalls.clear()

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            late = max(0.0, (now - self._last) * 1e3 - self.interval_ms)
            self.stalls.append(late)
            self.max_stall_ms = max(self.max_stall_ms, late)
            self.ticks += 1
        self._last = now

    def percentile(self, q: float) -> float:
        if not self.stalls:
            return 0.0
        ordered = sorted(self.stalls)
        return ordered[min(len(ordered) - 1, int(round(q / 100.0 * (len(ordered) - 1))))]
