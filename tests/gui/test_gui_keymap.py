"""The keymap: defaults from the file, overrides in QSettings, reset, clear errors for bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from app.keymap import DEFAULT_KEYMAP_PATH, Keymap, KeymapError


def settings(tmp_path: Path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)


def test_default_keymap_has_the_decisions_and_no_conflicts(tmp_path: Path) -> None:
    keymap = Keymap.load(settings=settings(tmp_path))
    assert keymap.keys("clear") == ("C",) and keymap.keys("suspect") == ("S",)
    assert keymap.keys("redo") == ("Ctrl+Y", "Ctrl+Shift+Z")
    assert keymap.conflicts() == {}


def test_override_persists_and_reset_restores_defaults(tmp_path: Path) -> None:
    keymap = Keymap.load(settings=settings(tmp_path))
    keymap.set_keys("clear", ["space"])
    assert keymap.keys("clear") == ("Space",)
    again = Keymap.load(settings=settings(tmp_path))          # a new session reads the same settings
    assert again.keys("clear") == ("Space",) and again.is_overridden("clear")
    again.set_keys("suspect", ["c"])                            # C is free since clear moved to Space
    again.set_keys("zoom_fit", ["c"])
    assert again.conflicts() == {"C": ["suspect", "zoom_fit"]}
    again.reset("zoom_fit")
    assert again.conflicts() == {}
    again.reset()
    assert Keymap.load(settings=settings(tmp_path)).keys("clear") == ("C",)


def test_bad_keys_are_refused_with_the_action_named(tmp_path: Path) -> None:
    keymap = Keymap.load(settings=settings(tmp_path))
    with pytest.raises(KeymapError, match="'Hyper\\+Q' is not a key"):
        keymap.set_keys("clear", ["Hyper+Q"])
    with pytest.raises(KeymapError, match="unknown keymap action"):
        keymap.set_keys("launch_missiles", ["L"])
    assert keymap.keys("clear") == ("C",)


def test_a_broken_override_in_settings_falls_back_to_the_default(tmp_path: Path) -> None:
    store = settings(tmp_path)
    store.setValue("keymap/clear", "not json [")
    store.setValue("keymap/suspect", json.dumps(["Nonsense+Key"]))
    store.sync()
    keymap = Keymap.load(settings=settings(tmp_path))
    assert keymap.keys("clear") == ("C",) and keymap.keys("suspect") == ("S",)


def test_bad_keymap_files_name_the_file_and_problem(tmp_path: Path) -> None:
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"format": "xray-keymap/1",\n "actions": {,}}')
    with pytest.raises(KeymapError, match=r"bad.json: line 2: not valid JSON"):
        Keymap.load(bad_json, settings(tmp_path))
    bad_key = tmp_path / "badkey.json"
    document = json.loads(DEFAULT_KEYMAP_PATH.read_text())
    document["actions"]["clear"]["keys"] = ["Ctrl+Banana"]
    bad_key.write_text(json.dumps(document))
    with pytest.raises(KeymapError, match=r"badkey.json: action 'clear'"):
        Keymap.load(bad_key, settings(tmp_path))
    with pytest.raises(KeymapError, match="cannot read"):
        Keymap.load(tmp_path / "missing.json", settings(tmp_path))


def _row(dialog, name: str) -> int:
    from PySide6.QtCore import Qt

    return next(r for r in range(dialog.table.rowCount()) if dialog.table.item(r, 0).data(Qt.UserRole) == name)


def test_keymap_dialog_applies_edits_and_refuses_conflicts_and_bad_keys(qtbot, tmp_path: Path) -> None:
    from app.keymap_dialog import KeymapDialog

    keymap = Keymap.load(settings=settings(tmp_path))
    changes = []
    keymap.changed.connect(lambda: changes.append(1))
    dialog = KeymapDialog(keymap)
    qtbot.addWidget(dialog)
    dialog.table.item(_row(dialog, "clear"), 1).setText("Space, Ctrl+Return")
    assert dialog.apply()
    assert keymap.keys("clear") == ("Space", "Ctrl+Return") and changes
    dialog.table.item(_row(dialog, "suspect"), 1).setText("Space")        # taken by clear
    assert not dialog.apply() and "Space is bound to" in dialog.problems.text()
    dialog.table.item(_row(dialog, "suspect"), 1).setText("Hyper+Q")
    assert not dialog.apply() and "not a key" in dialog.problems.text()
    dialog.table.item(_row(dialog, "suspect"), 1).setText("")
    assert not dialog.apply() and "suspect needs a key" in dialog.problems.text()
    assert keymap.keys("suspect") == ("S",)                              # nothing applied on refusal
    dialog.reset_all()
    assert keymap.keys("clear") == ("C",)
    assert dialog.table.item(_row(dialog, "clear"), 1).text() == "C"
