"""The inspector's side panel: verdict buttons, detection controls, screening functions, bad bags.

Widgets only: it emits what the user asked for and shows what it is told. The
panel never takes keyboard focus, so every key goes to the keymap's shortcuts and
the canvas (a screening console is driven from the keyboard).
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QGridLayout, QGroupBox, QLabel, QListWidget, QListWidgetItem,
                               QPushButton, QSizePolicy, QSlider, QToolButton, QVBoxLayout, QWidget)

from app.keymap import Keymap
from core.imaging.enhance import canonical_chain

# (function name, button text); pseudo-colour is what shows when none is on.
SCREENING_BUTTONS: tuple[tuple[str, str], ...] = (
    ("black_and_white", "B/W"), ("negative", "Negative"), ("organic_only", "Organic"),
    ("inorganic_only", "Inorganic"), ("high_penetration", "High pen."), ("low_penetration", "Low pen."),
    ("edge_enhance", "Edges"),
)
# Pairs that contradict each other: switching one on switches the other off.
EXCLUSIVE = {"organic_only": "inorganic_only", "inorganic_only": "organic_only",
             "high_penetration": "low_penetration", "low_penetration": "high_penetration"}
MAX_ERRORS_SHOWN = 200


def _no_focus(widget: QWidget) -> QWidget:
    widget.setFocusPolicy(Qt.NoFocus)
    return widget


class ScreeningPanel(QWidget):
    verdict_requested = Signal(str)
    threshold_changed = Signal(float)
    heat_opacity_changed = Signal(float)
    heat_toggled = Signal(bool)
    functions_changed = Signal(tuple)

    def __init__(self, keymap: Keymap, threshold: float, heat_opacity: float, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("screeningPanel")
        self.setFixedWidth(300)
        self.keymap = keymap
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 10)
        layout.setSpacing(10)

        self.clear_button = self._verdict_button("clear", "CLEAR", "clearButton")
        self.suspect_button = self._verdict_button("suspect", "SUSPECT", "suspectButton")
        layout.addWidget(self.clear_button)
        layout.addWidget(self.suspect_button)

        detections = QGroupBox("Detections")
        grid = QGridLayout(detections)
        self.threshold_slider = _no_focus(QSlider(Qt.Horizontal))
        self.threshold_slider.setRange(1, 99)
        self.threshold_slider.setValue(round(threshold * 100))
        self.threshold_value = QLabel()
        self.threshold_slider.valueChanged.connect(self._on_threshold)
        # Once the inspector moves the slider (mouse or keys), a model's suggested threshold no longer applies.
        self.threshold_set_by_user = False
        self.threshold_slider.actionTriggered.connect(lambda _action: setattr(self, "threshold_set_by_user", True))
        self.heat_check = _no_focus(QCheckBox("Heat map"))
        self.heat_check.setChecked(True)
        self.heat_check.toggled.connect(self.heat_toggled)
        self.opacity_slider = _no_focus(QSlider(Qt.Horizontal))
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(round(heat_opacity * 100))
        self.opacity_slider.valueChanged.connect(lambda v: self.heat_opacity_changed.emit(v / 100.0))
        grid.addWidget(QLabel("Score ≥"), 0, 0)
        grid.addWidget(self.threshold_slider, 0, 1)
        grid.addWidget(self.threshold_value, 0, 2)
        grid.addWidget(self.heat_check, 1, 0)
        grid.addWidget(self.opacity_slider, 1, 1, 1, 2)
        self.detection_list = _no_focus(QListWidget())
        self.detection_list.setObjectName("detectionList")
        self.detection_list.setMaximumHeight(120)
        grid.addWidget(self.detection_list, 2, 0, 1, 3)
        layout.addWidget(detections)
        self._on_threshold(self.threshold_slider.value())

        functions = QGroupBox("Screening functions")
        fgrid = QGridLayout(functions)
        self.function_buttons: dict[str, QToolButton] = {}
        for i, (name, text) in enumerate(SCREENING_BUTTONS):
            button = _no_focus(QToolButton())
            button.setText(f"{text}\n{self._key_hint(name)}")
            button.setCheckable(True)
            button.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
            button.setMinimumHeight(40)
            button.toggled.connect(lambda on, n=name: self._on_function(n, on))
            fgrid.addWidget(button, i // 2, i % 2)
            self.function_buttons[name] = button
        layout.addWidget(functions)

        errors = QGroupBox("Bad bags")
        elayout = QVBoxLayout(errors)
        self.error_list = _no_focus(QListWidget())
        self.error_list.setObjectName("errorList")
        self.error_list.setWordWrap(True)
        elayout.addWidget(self.error_list)
        layout.addWidget(errors, 1)

    def _key_hint(self, action: str) -> str:
        keys = self.keymap.keys(action)
        return f"[{keys[0]}]" if keys else ""

    def _verdict_button(self, verdict: str, text: str, object_name: str) -> QPushButton:
        button = _no_focus(QPushButton(f"{text}   {self._key_hint(verdict)}"))
        button.setObjectName(object_name)
        button.setMinimumHeight(64)
        button.clicked.connect(lambda: self.verdict_requested.emit(verdict))
        return button

    # ------------------------------------------------------------------ state shown
    def set_decision_enabled(self, enabled: bool) -> None:
        self.clear_button.setEnabled(enabled)
        self.suspect_button.setEnabled(enabled)

    def threshold(self) -> float:
        return self.threshold_slider.value() / 100.0

    def step_threshold(self, steps: int) -> None:
        self.threshold_set_by_user = True
        self.threshold_slider.setValue(self.threshold_slider.value() + 5 * steps)

    def suggest_threshold(self, threshold: float | None) -> None:
        """A model's own operating point (measured on held-out data), unless the inspector chose one."""
        if threshold is not None and not self.threshold_set_by_user:
            self.threshold_slider.setValue(round(threshold * 100))

    def _on_threshold(self, value: int) -> None:
        self.threshold_value.setText(f"{value / 100:.2f}")
        self.threshold_changed.emit(value / 100.0)

    def toggle_heat(self) -> None:
        self.heat_check.setChecked(not self.heat_check.isChecked())

    def chain(self) -> tuple[str, ...]:
        return canonical_chain([n for n, b in self.function_buttons.items() if b.isChecked()])

    def toggle_function(self, name: str) -> None:
        button = self.function_buttons[name]
        button.setChecked(not button.isChecked())

    def reset_functions(self) -> None:
        changed = False
        for button in self.function_buttons.values():
            if button.isChecked():
                button.blockSignals(True)
                button.setChecked(False)
                button.blockSignals(False)
                changed = True
        if changed:
            self.functions_changed.emit(self.chain())

    def _on_function(self, name: str, on: bool) -> None:
        partner = EXCLUSIVE.get(name)
        if on and partner and self.function_buttons[partner].isChecked():
            other = self.function_buttons[partner]
            other.blockSignals(True)
            other.setChecked(False)
            other.blockSignals(False)
        self.functions_changed.emit(self.chain())

    def set_detections(self, rows: list[str]) -> None:
        self.detection_list.clear()
        self.detection_list.addItems(rows or ["(none above the threshold)"])

    def add_error(self, text: str) -> None:
        item = QListWidgetItem(text)
        item.setForeground(Qt.red)
        self.error_list.insertItem(0, item)
        while self.error_list.count() > MAX_ERRORS_SHOWN:
            self.error_list.takeItem(self.error_list.count() - 1)

    def errors(self) -> list[str]:
        return [self.error_list.item(i).text() for i in range(self.error_list.count())]
