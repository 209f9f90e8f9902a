"""The layer rules: core never imports Qt; app reaches torch only through core."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_core_does_not_load_pyside6():
    # Import every core module in a fresh interpreter, then ask whether Qt got loaded.
    code = (
        "import importlib, pkgutil, sys, core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'core.'):\n"
        "    if '.migrations' in m.name: continue\n"
        "    importlib.import_module(m.name)\n"
        "bad = [n for n in sys.modules if n.startswith(('PySide6', 'PyQt'))]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core loaded Qt: {out.stdout}"


def test_no_qt_import_in_core_source():
    pattern = re.compile(r"^\s*(from|import)\s+(PySide6|PyQt\d?)\b", re.M)
    offenders = [p for p in (ROOT / "core").rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_app_does_not_import_torch():
    pattern = re.compile(r"^\s*(from|import)\s+(torch|torchvision)\b", re.M)
    offenders = [p for p in (ROOT / "app").rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []
