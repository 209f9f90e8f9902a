"""Settings dialog for the keymap: see every action's keys, rebind, reset to the defaults.

Keys are typed in Qt's portable text, several separated by ", " ("Ctrl+Y, Ctrl+Shift+Z").
Nothing changes until Apply/OK; a key that does not parse, or one bound to two
actions, is shown and refused, so a dialog can never leave the inspector without
a working decision key.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QHeaderView, QLabel, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from app.keymap import Keymap, KeymapError, canonical_key

KEY_SEPARATOR = ", "


def split_keys(text: str) -> list[str]:
    return [part.strip() for part in text.split(KEY_SEPARATOR) if part.strip()]


class KeymapDialog(QDialog):
    def __init__(self, keymap: Keymap, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keys")
        self.keymap = keymap
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Action", "Keys"])
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.problems = QLabel()
        self.problems.setObjectName("keymapProblems")
        self.problems.setStyleSheet("color: #ff7b72;")
        self.problems.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Apply | QDialogButtonBox.Cancel)
        reset = QPushButton("Reset all to defaults")
        buttons.addButton(reset, QDialogButtonBox.ResetRole)
        reset.clicked.connect(self.reset_all)
        buttons.button(QDialogButtonBox.Apply).clicked.connect(self.apply)
        buttons.accepted.connect(self._ok)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(self.problems)
        layout.addWidget(buttons)
        self.resize(560, 640)
        self.load()

    def load(self) -> None:
        names = self.keymap.names()
        self.table.setRowCount(len(names))
        for row, name in enumerate(names):
            label = QTableWidgetItem(self.keymap.label(name))
            label.setFlags(label.flags() & ~Qt.ItemIsEditable)
            label.setData(Qt.UserRole, name)
            self.table.setItem(row, 0, label)
            self.table.setItem(row, 1, QTableWidgetItem(KEY_SEPARATOR.join(self.keymap.keys(name))))
        self.problems.clear()

    def edited(self) -> dict[str, list[str]]:
        """Action name -> keys as typed in the table."""
        return {self.table.item(row, 0).data(Qt.UserRole): split_keys(self.table.item(row, 1).text())
                for row in range(self.table.rowCount())}

    def validate(self) -> list[str]:
        """Problems with the table as edited (empty when it can be applied)."""
        problems: list[str] = []
        owners: dict[str, list[str]] = {}
        for row in range(self.table.rowCount()):
            name = self.table.item(row, 0).data(Qt.UserRole)
            cell = self.table.item(row, 1)
            bad = False
            for key in split_keys(cell.text()):
                try:
                    owners.setdefault(canonical_key(key, name), []).append(name)
                except KeymapError as exc:
                    problems.append(str(exc))
                    bad = True
            cell.setForeground(QColor("#ff7b72") if bad else QColor("#e6e8eb"))
        for key, names in owners.items():
            if len(names) > 1:
                problems.append(f"{key} is bound to {', '.join(names)}")
        for required in ("clear", "suspect"):
            if required in self.edited() and not self.edited()[required]:
                problems.append(f"{required} needs a key")
        return problems

    def apply(self) -> bool:
        problems = self.validate()
        self.problems.setText("\n".join(problems))
        if problems:
            return False
        for name, keys in self.edited().items():
            if tuple(canonical_key(k, name) for k in keys) != self.keymap.keys(name):
                self.keymap.set_keys(name, keys)
        return True

    def reset_all(self) -> None:
        self.keymap.reset()
        self.load()

    def _ok(self) -> None:
        if self.apply():
            self.accept()
