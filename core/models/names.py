"""The detector and attention names, without torch: the CLI's parsers are built from these on every start."""
from __future__ import annotations

ARCHS: tuple[str, ...] = ("fast", "ssd", "yolov3", "fcos")
DEFAULT_ARCH = "fast"
ATTENTIONS: tuple[str, ...] = ("none", "doam", "se", "nonlocal", "da")
