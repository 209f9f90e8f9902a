"""``run_workstation``, what ``python main.py`` opens, the theme, and the lane-only window.

``python main.py`` opens the store (the SQLite file in the data directory unless
``--db`` says otherwise; created and migrated on first start), creates the first
administrator on an empty store, asks for a login, and opens the perspectives of
the user's role (``app.perspectives``). ``MainWindow`` is the lane alone on any
``ScreeningSession`` (tests, benchmarks, the in-memory screenshot).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QSettings, QThreadPool
from PySide6.QtGui import QCloseEvent, QColor, QKeySequence, QPalette
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow

from app.inspector import InspectorSettings, InspectorView
from app.keymap import Keymap, KeymapError
from app.keymap_dialog import KeymapDialog
from app.model_loading import ModelChoice, adopting, choose_model
from app.perspectives import TIME_LIMIT_KEY, LaneSetup, WorkstationWindow, add_lane_menus
from app.session import ScreeningSession
from core.config import resolve_data_dir, resolve_db_url, redact_url
from core.lane.sources import DemoLaneSource, LaneSource, ReplaySource, WatchedFolderSource
from core.cli.gui import add_workstation_arguments
from core.lane.tip import TipPolicy, TipSource

log = logging.getLogger(__name__)

ORGANISATION = "xray-workstation"
APPLICATION = "workstation"

DARK_STYLE = """
QWidget { background: #1b1d22; color: #e6e8eb; font-size: 13px; }
QMainWindow, QStatusBar { background: #111216; }
QStatusBar QLabel { color: #aab0b8; padding: 0 10px; border-left: 1px solid #2c2f36; }
QGroupBox { border: 1px solid #30343c; border-radius: 6px; margin-top: 14px; padding-top: 8px; font-weight: bold; }
QGroupBox::title { subcontrol-origin: margin; left: 10px; color: #8f96a0; }
QPushButton#clearButton, QPushButton#suspectButton {
    font-size: 22px; font-weight: 800; letter-spacing: 2px; border-radius: 8px; color: #ffffff; }
QPushButton#clearButton { background: #1f8f4e; border: 2px solid #2ecc71; }
QPushButton#suspectButton { background: #b3261e; border: 2px solid #ff5a4f; }
QPushButton#clearButton:disabled, QPushButton#suspectButton:disabled {
    background: #2a2d33; border-color: #3a3e46; color: #6b717a; }
QToolButton { background: #262930; border: 1px solid #3a3e46; border-radius: 5px; padding: 4px; }
QToolButton:checked { background: #2d6cdf; border-color: #5b8ff0; color: #ffffff; }
QSlider::groove:horizontal { height: 6px; background: #30343c; border-radius: 3px; }
QSlider::handle:horizontal { width: 14px; margin: -5px 0; background: #d0d4da; border-radius: 7px; }
QListWidget { background: #14161a; border: 1px solid #2c2f36; }
QListWidget#errorList { color: #ff7b72; font-size: 12px; }
QLabel#bagLabel { font-size: 18px; font-weight: bold; }
QLabel#modelBadge { color: #8fd3ff; font-size: 13px; }
QLabel#modelBadge[missing="true"] { color: #ffffff; background: #b3261e; font-weight: bold; padding: 2px 8px; }
QLabel#sessionNote { color: #e0a93b; border: none; }
QLabel#timerLabel { font-size: 22px; font-weight: bold; font-family: monospace; color: #e6e8eb; }
QLabel#timerLabel[late="true"] { color: #ffffff; background: #b3261e; border-radius: 4px; padding: 0 8px; }
QLabel#banner { font-size: 15px; font-weight: bold; padding: 8px 14px; }
QLabel#banner[severity="error"] { background: #b3261e; color: #ffffff; }
QLabel#banner[severity="warning"] { background: #b7791f; color: #111216; }
QMenuBar { background: #111216; } QMenuBar::item:selected, QMenu::item:selected { background: #2d6cdf; }
"""


def apply_dark_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    palette = QPalette()
    for role, colour in ((QPalette.Window, "#1b1d22"), (QPalette.WindowText, "#e6e8eb"), (QPalette.Base, "#14161a"),
                         (QPalette.AlternateBase, "#1b1d22"), (QPalette.Text, "#e6e8eb"), (QPalette.Button, "#262930"),
                         (QPalette.ButtonText, "#e6e8eb"), (QPalette.Highlight, "#2d6cdf"),
                         (QPalette.HighlightedText, "#ffffff")):
        palette.setColor(role, QColor(colour))
    app.setPalette(palette)
    app.setStyleSheet(DARK_STYLE)


class MainWindow(QMainWindow):
    def __init__(self, session: ScreeningSession, source: LaneSource, model: ModelChoice, keymap: Keymap,
                 settings: InspectorSettings | None = None, *, session_note: str | None = None) -> None:
        super().__init__()
        self.setWindowTitle("X-ray screening workstation — inspector")
        self.inspector = InspectorView(session, source, model.loader, keymap, settings, model_note=model.note)
        self.setCentralWidget(self.inspector)
        if session_note:
            note = QLabel(session_note)
            note.setObjectName("sessionNote")
            self.inspector.status.addWidget(note)
        self._build_menus()
        self._closed = False

    def _build_menus(self) -> None:
        lane = self.menuBar().addMenu("&Lane")
        quit_action = lane.addAction("&Quit")
        quit_action.setShortcut(QKeySequence.Quit)
        quit_action.triggered.connect(self.close)
        add_lane_menus(self, self.menuBar(), self.inspector)

    def open_keymap_dialog(self) -> KeymapDialog:
        dialog = KeymapDialog(self.inspector.keymap, self)
        dialog.open()
        return dialog

    def start(self) -> None:
        self.inspector.start()

    def shutdown(self) -> None:
        if not self._closed:
            self._closed = True
            self.inspector.shutdown()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)


# --------------------------------------------------------------------------- entry point
@dataclass
class WorkstationOptions:
    lane: str = "demo"
    lane_path: Path | None = None
    rate: float = 0.5
    tip_share: float = 0.0
    model: Path | None = None
    untrained: bool = False
    time_limit: float = 20.0
    time_limit_given: bool = False     # the command line wins over the saved setting
    data_dir: Path | None = None
    db_url: str | None = None
    admin_password_file: Path | None = None
    user: str = ""


def options_from_namespace(ns: argparse.Namespace) -> WorkstationOptions:
    """Options parsed by ``core.cli.gui.add_workstation_arguments``; ValueError for bad values."""
    if ns.time_limit is not None and ns.time_limit <= 0:
        raise ValueError(f"--time-limit must be positive, got {ns.time_limit}")
    if ns.rate <= 0:
        raise ValueError(f"--rate must be positive, got {ns.rate}")
    return WorkstationOptions(ns.lane, ns.lane_path, ns.rate, ns.tip_share, ns.model, ns.untrained,
                              ns.time_limit if ns.time_limit is not None else 20.0, ns.time_limit is not None,
                              ns.data_dir, ns.db, ns.admin_password_file, ns.user or "")


def parse_options(argv: list[str]) -> WorkstationOptions:
    parser = argparse.ArgumentParser(prog="python main.py workstation", description="Open the screening workstation.")
    add_workstation_arguments(parser)
    return options_from_namespace(parser.parse_args(argv))


def build_source(options: WorkstationOptions) -> LaneSource:
    if options.lane == "demo":
        source: LaneSource = DemoLaneSource(rate_per_s=options.rate)
    elif options.lane_path is None:
        raise ValueError(f"--lane {options.lane} needs --lane-path")
    elif options.lane == "folder":
        source = WatchedFolderSource(options.lane_path)
    elif (options.lane_path / "ImageSet").is_dir() or (options.lane_path / "test").is_dir():
        source = ReplaySource.from_dataset(options.lane_path, rate_per_s=options.rate)
    else:
        source = ReplaySource.from_folder(options.lane_path, rate_per_s=options.rate)
    if options.tip_share > 0:
        source = TipSource(source, TipPolicy(options.tip_share))
    return source


def _stored_time_limit(default: float) -> float:
    try:
        value = float(QSettings().value(TIME_LIMIT_KEY, default))
    except (TypeError, ValueError):
        return default
    return value if value > 0 else default


def make_application() -> QApplication:
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "workstation"])
    QCoreApplication.setOrganizationName(ORGANISATION)
    QCoreApplication.setApplicationName(APPLICATION)
    apply_dark_theme(app)
    return app


def run_workstation(argv: list[str] | None = None) -> int:
    """``python main.py`` (no command): open the workstation and run until the window closes."""
    try:
        options = parse_options(list(argv) if argv is not None else [])
    except SystemExit as exc:   # --help, or a usage error argparse already printed
        return int(exc.code or 0)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return open_workstation(options)


def open_store(options: WorkstationOptions):  # noqa: ANN201 - a core.store.repo.Store
    """The store the options name; created and migrated on first start (SQLite)."""
    from core.store.repo import Store  # noqa: PLC0415 - SQLAlchemy only when the workstation opens

    data_dir = resolve_data_dir(options.data_dir)
    url = resolve_db_url(options.db_url, data_dir)
    log.info("opening the store %s (data in %s)", redact_url(url), data_dir)
    return Store.open(url, data_dir=data_dir)


def lane_model(store, options: WorkstationOptions) -> ModelChoice:  # noqa: ANN001 - a Store
    """``--model`` if given; else the store's active model (verified against its sha256); else the default file."""
    if options.model is None:
        from core.inference.registry import load_detector  # noqa: PLC0415 - torch loads in the worker
        from core.store.errors import StoreError  # noqa: PLC0415

        try:
            active = store.models.active()
        except StoreError as exc:
            log.warning("cannot read the active model from the store: %s", exc)
            active = None
        if active is not None:
            return ModelChoice(lambda: load_detector(active), f"active model {active.name} ({active.path})")
    choice = choose_model(options.model, allow_untrained=options.untrained)
    if options.model is None and choice.loader is not None and choice.note is None:
        choice = adopting(choice, store)      # the bundled model becomes the registry's first active version
    return choice


def _open_window(app: QApplication, store, user, source: LaneSource, keymap: Keymap,  # noqa: ANN001
                 options: WorkstationOptions) -> WorkstationWindow:
    model = lane_model(store, options)
    time_limit = options.time_limit if options.time_limit_given else _stored_time_limit(options.time_limit)
    # Without --model the lane follows the store's active model (hot swap between bags).
    window = WorkstationWindow(store, user, LaneSetup(source, model, keymap, InspectorSettings(time_limit_s=time_limit),
                                                      follow_active=options.model is None))
    window.resize(1500, 950)
    window.show()
    window.start()
    log.info("workstation open for %s (%s): lane %s, %s, Qt platform %s", user.name, user.role, options.lane,
             model.description, os.environ.get("QT_QPA_PLATFORM", app.platformName()))
    return window


def open_workstation(options: WorkstationOptions) -> int:
    from app.login import authenticate  # noqa: PLC0415
    from core.store.errors import StoreError  # noqa: PLC0415

    try:
        source = build_source(options)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app = make_application()
    try:
        keymap = Keymap.load(settings=QSettings())
    except KeymapError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        store = open_store(options)
    except (StoreError, OSError) as exc:
        print(f"error: cannot open the store: {exc}", file=sys.stderr)
        return 1
    try:
        user_name, password_file = options.user, options.admin_password_file
        while True:     # one pass per login: "Log out" closes the window and shows the login again
            try:
                user = authenticate(store, admin_password_file=password_file, user_name=user_name)
            except StoreError as exc:   # an unusable --admin-password-file, a store that went away
                print(f"error: {exc}", file=sys.stderr)
                return 2
            if user is None:
                return 0    # login cancelled
            window = _open_window(app, store, user, source, keymap, options)
            try:
                code = app.exec()
            finally:
                window.shutdown()
            if not window.did_log_out:
                return code
            # The next user gets a fresh lane source (the old one was stopped) and the current model.
            user_name, password_file, source = "", None, build_source(options)
    finally:
        QThreadPool.globalInstance().waitForDone(5000)   # e.g. the logout's audit write
        store.close()
