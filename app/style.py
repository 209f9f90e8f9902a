"""Dynamic style-sheet properties: a widget painted by a property the style sheet selects on."""
from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QWidget


def restyle(widget: QWidget, name: str, value: Any) -> None:
    """Set ``name`` (e.g. ``severity``, ``missing``) and repaint: Qt re-reads the style sheet only on polish."""
    widget.setProperty(name, value)
    widget.style().unpolish(widget)
    widget.style().polish(widget)
