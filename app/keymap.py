"""The rebindable keymap: defaults from ``resources/keymap.json``, user overrides in QSettings.

Actions have stable names ("clear", "suspect", "zoom_in"...). Keys are written in
Qt's portable text ("C", "Ctrl+Z", "F2", "Del"). A user's binding replaces the
default keys of that one action and is kept in QSettings under ``keymap/<action>``;
``reset`` removes overrides. A file or override that does not parse is an error
naming the file, the action and the key, never a silently dead key.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Qt, Signal
from PySide6.QtGui import QKeySequence

log = logging.getLogger(__name__)

DEFAULT_KEYMAP_PATH = Path(__file__).resolve().parents[1] / "resources" / "keymap.json"
KEYMAP_FORMAT = "xray-keymap/1"
SETTINGS_GROUP = "keymap"


class KeymapError(ValueError):
    """The keymap file or an override is not usable."""


@dataclass(frozen=True)
class KeyAction:
    name: str
    label: str
    default_keys: tuple[str, ...]


def parse_key(text: str, where: str) -> QKeySequence:
    """A single key combination from portable text; KeymapError naming ``where`` otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise KeymapError(f"{where}: empty key {text!r}")
    sequence = QKeySequence.fromString(text.strip(), QKeySequence.PortableText)
    if sequence.count() != 1 or sequence[0].key() in (Qt.Key_unknown, 0):
        raise KeymapError(f"{where}: {text!r} is not a key (examples: 'C', 'Ctrl+Z', 'F2', 'Del')")
    return sequence


def canonical_key(text: str, where: str = "key") -> str:
    return parse_key(text, where).toString(QKeySequence.PortableText)


def load_actions(path: Path) -> dict[str, KeyAction]:
    """Read and validate a keymap file."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeymapError(f"{path}: cannot read the keymap ({exc.strerror or exc})") from exc
    except json.JSONDecodeError as exc:
        raise KeymapError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from exc
    if not isinstance(document, dict) or document.get("format") != KEYMAP_FORMAT:
        raise KeymapError(f"{path}: not a keymap (expected \"format\": \"{KEYMAP_FORMAT}\")")
    entries = document.get("actions")
    if not isinstance(entries, dict) or not entries:
        raise KeymapError(f"{path}: \"actions\" must be a non-empty object")
    actions: dict[str, KeyAction] = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("keys"), list):
            raise KeymapError(f"{path}: action {name!r} needs a \"keys\" list")
        keys = tuple(canonical_key(k, f"{path}: action {name!r}") for k in entry["keys"])
        actions[name] = KeyAction(name, str(entry.get("label", name)), keys)
    return actions


class Keymap(QObject):
    changed = Signal()

    def __init__(self, actions: dict[str, KeyAction], settings: QSettings | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._actions = dict(actions)
        self._settings = settings if settings is not None else QSettings()
        self._overrides: dict[str, tuple[str, ...]] = {}
        self._read_overrides()

    @classmethod
    def load(cls, path: Path | None = None, settings: QSettings | None = None) -> "Keymap":
        return cls(load_actions(path or DEFAULT_KEYMAP_PATH), settings)

    def _read_overrides(self) -> None:
        self._settings.beginGroup(SETTINGS_GROUP)
        try:
            for name in self._settings.childKeys():
                if name not in self._actions:
                    log.warning("keymap: ignoring a setting for unknown action %r", name)
                    continue
                raw = self._settings.value(name, "")
                try:
                    keys = json.loads(raw) if isinstance(raw, str) else raw
                    self._overrides[name] = tuple(canonical_key(k, f"settings keymap/{name}") for k in keys)
                except (KeymapError, TypeError, ValueError) as exc:
                    # A broken override must not lock the inspector out of a key: use the default.
                    log.warning("keymap: ignoring the override of %s (%s)", name, exc)
        finally:
            self._settings.endGroup()

    # ------------------------------------------------------------------ queries
    def names(self) -> list[str]:
        return list(self._actions)

    def label(self, name: str) -> str:
        return self._action(name).label

    def keys(self, name: str) -> tuple[str, ...]:
        return self._overrides.get(name, self._action(name).default_keys)

    def sequences(self, name: str) -> list[QKeySequence]:
        return [QKeySequence.fromString(k, QKeySequence.PortableText) for k in self.keys(name)]

    def is_overridden(self, name: str) -> bool:
        return name in self._overrides

    def conflicts(self) -> dict[str, list[str]]:
        """Keys bound to more than one action (the user must resolve them)."""
        owners: dict[str, list[str]] = {}
        for name in self._actions:
            for key in self.keys(name):
                owners.setdefault(key, []).append(name)
        return {key: names for key, names in owners.items() if len(names) > 1}

    # ------------------------------------------------------------------ changes
    def set_keys(self, name: str, keys: list[str] | tuple[str, ...]) -> None:
        self._action(name)
        canonical = tuple(canonical_key(k, f"action {name!r}") for k in keys)
        self._overrides[name] = canonical
        self._settings.setValue(f"{SETTINGS_GROUP}/{name}", json.dumps(list(canonical)))
        self._settings.sync()
        self.changed.emit()

    def reset(self, name: str | None = None) -> None:
        """Back to the file's defaults, for one action or all."""
        names = [name] if name is not None else list(self._overrides)
        for item in names:
            self._action(item)
            self._overrides.pop(item, None)
            self._settings.remove(f"{SETTINGS_GROUP}/{item}")
        self._settings.sync()
        self.changed.emit()

    def _action(self, name: str) -> KeyAction:
        try:
            return self._actions[name]
        except KeyError:
            raise KeymapError(f"unknown keymap action {name!r}") from None
