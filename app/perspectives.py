"""After login: the perspectives a role may use, as tabs of one window.

inspector -> the lane; supervisor -> review, statistics and models; annotator -> annotate;
admin -> all of them. This only decides what is SHOWN: what each role may DO is
enforced in core (``core.store.permissions``) on every store call, so a view
opened by the wrong role is refused there too (tests check both).

A supervisor gets no lane: the store refuses decisions from anyone but an
inspector (or admin), and the GUI does not offer what would be refused.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence
from PySide6.QtWidgets import QInputDialog, QLabel, QMainWindow, QMenuBar, QTabWidget, QWidget

from app.hot_swap import DEFAULT_POLL_S, make_watcher
from app.inspector import InspectorSettings, InspectorView
from app.keymap import Keymap
from app.keymap_dialog import KeymapDialog
from app.logout import Logout
from app.model_loading import ModelChoice
from app.store_session import StoreSession, StoreTasks, find_model_version
from core.lane.sources import LaneSource
from core.store.repo import Store
from core.store.values import UserInfo

log = logging.getLogger(__name__)

ROLE_PERSPECTIVES: dict[str, tuple[str, ...]] = {
    "inspector": ("lane",),
    "supervisor": ("review", "stats", "models"),
    "annotator": ("annotate",),
    "admin": ("lane", "review", "stats", "models", "annotate"),
}
TIME_LIMIT_KEY = "inspector/time_limit_s"
TITLES = {"lane": "Lane", "review": "Review queue", "stats": "Statistics", "models": "Models",
          "annotate": "Annotate"}


def perspectives_for(role: str) -> tuple[str, ...]:
    try:
        return ROLE_PERSPECTIVES[role]
    except KeyError:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLE_PERSPECTIVES)}") from None


@dataclass
class LaneSetup:
    """What the lane perspective needs besides the store and the user."""
    source: LaneSource
    model: ModelChoice
    keymap: Keymap
    settings: InspectorSettings = field(default_factory=InspectorSettings)
    lane_id: int | None = None          # None: the user's lane, else the first lane (admin)
    follow_active: bool = False         # hot swap: follow the store's active model (app.hot_swap)
    model_poll_s: float = DEFAULT_POLL_S   # how often the detector worker asks the store, between bags


def add_lane_menus(window: QMainWindow, menubar: QMenuBar, inspector: InspectorView) -> None:
    """The lane's View and Edit menus (the actions and their keys belong to the inspector view)."""
    view = menubar.addMenu("&View")
    for name in ("zoom_in", "zoom_out", "zoom_fit", "zoom_actual", "toggle_heat", "reset_view"):
        view.addAction(inspector.action(name))
    edit = menubar.addMenu("&Edit")
    for name in ("undo", "redo", "accept_box", "accept_all", "delete_box", "draw_box"):
        edit.addAction(inspector.action(name))
    settings = menubar.addMenu("&Settings")
    settings.addAction("&Keys…").triggered.connect(lambda: KeymapDialog(inspector.keymap, window).open())
    settings.addAction("Reset keys to defaults").triggered.connect(inspector.keymap.reset)
    settings.addAction("Per-bag &time limit…").triggered.connect(lambda: ask_time_limit(window, inspector))


def ask_time_limit(parent: QWidget, inspector: InspectorView) -> None:
    seconds, ok = QInputDialog.getDouble(parent, "Per-bag time limit", "Seconds before the timer warns:",
                                         inspector.settings.time_limit_s, 1.0, 600.0, 0)
    if ok:
        inspector.set_time_limit(seconds)
        QSettings().setValue(TIME_LIMIT_KEY, seconds)


def lane_for(store: Store, user: UserInfo, wanted: int | None) -> int | None:
    """The lane the user screens: the one asked for, their own, or (admin) the first one."""
    if wanted is not None:
        return wanted
    if user.lane_id is not None:
        return user.lane_id
    if user.role == "admin":
        lanes = store.users.lanes()
        return lanes[0].id if lanes else None
    return None


class WorkstationWindow(QMainWindow):
    logged_out = Signal(object)          # the UserInfo who logged out (the window has closed)

    def __init__(self, store: Store, user: UserInfo, lane: LaneSetup | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.user = user
        self.allowed = perspectives_for(user.role)
        self.setWindowTitle(f"X-ray screening workstation — {user.name} ({user.role})")
        self.tabs = QTabWidget()
        self.tabs.setObjectName("perspectiveTabs")
        self.tabs.setDocumentMode(True)
        badge = QLabel(f"  {user.name} · {user.role}  ")
        badge.setObjectName("userBadge")
        self.tabs.setCornerWidget(badge, Qt.TopRightCorner)
        self.setCentralWidget(self.tabs)
        self.inspector: InspectorView | None = None
        self.session: StoreSession | None = None
        self.views: dict[str, QWidget] = {}
        file_menu = self.menuBar().addMenu("&Workstation")
        quit_action = file_menu.addAction("&Quit")
        quit_action.setShortcut(QKeySequence.Quit)
        quit_action.triggered.connect(self.close)
        self.logout_action = file_menu.addAction("&Log out")
        self.logout_action.setObjectName("logoutAction")
        self.logout_action.triggered.connect(self.logout)
        self.keymap = lane.keymap if lane is not None else None
        self._bind_logout_key()
        if self.keymap is not None:
            self.keymap.changed.connect(self._bind_logout_key)
        self.logging_out = None          # app.logout.Logout while the pending writes are flushed
        self.did_log_out = False
        for name in self.allowed:
            widget = self._build(name, lane)
            if widget is not None:
                self.views[name] = widget
                self.tabs.addTab(widget, TITLES[name])
        self._closed = False

    def _build(self, name: str, lane: LaneSetup | None) -> QWidget | None:
        if name == "lane":
            return self._build_lane(lane)
        if name == "review":
            from app.review import ReviewView  # noqa: PLC0415 - each view only when the role has it
            return ReviewView(self.store, self.user)
        if name == "stats":
            from app.stats_view import StatsView  # noqa: PLC0415
            return StatsView(self.store, self.user)
        if name == "models":
            from app.models_view import ModelsView  # noqa: PLC0415
            return ModelsView(self.store, self.user)
        if name == "annotate":
            from app.annotate import AnnotateView  # noqa: PLC0415
            return AnnotateView(self.store, self.user)
        raise ValueError(f"unknown perspective {name!r}")

    def _build_lane(self, lane: LaneSetup | None) -> QWidget | None:
        if lane is None:
            return None
        lane_id = lane_for(self.store, self.user, lane.lane_id)
        if lane_id is None:
            note = QLabel(f"{self.user.name} is not assigned to a lane: ask a supervisor to assign one.")
            note.setAlignment(Qt.AlignCenter)
            note.setObjectName("noLane")
            return note
        self.session = StoreSession(self.store, self.user, lane_id)
        self.inspector = InspectorView(self.session, lane.source, lane.model.loader, lane.keymap, lane.settings,
                                       model_note=lane.model.note)
        if lane.follow_active:
            self.inspector.detector.follow(make_watcher(self.store, min_interval_s=lane.model_poll_s))
        add_lane_menus(self, self.menuBar(), self.inspector)
        self.registry_note = QLabel()
        self.registry_note.setObjectName("sessionNote")
        self.inspector.status.addWidget(self.registry_note)
        self.tasks = StoreTasks(self)
        self.inspector.detector.model_loaded.connect(self._check_registered)
        return self.inspector

    def _check_registered(self, model_id: str) -> None:
        """Say so when the lane's model is not in the registry: its boxes then cannot be stored."""
        def show(version: int | None) -> None:
            self.registry_note.setText("" if version is not None else
                                       f"model {model_id} is not registered: its boxes are not kept in the store")
        self.tasks.run(lambda: find_model_version(self.store, model_id), show,
                       lambda exc: self.registry_note.setText(f"model registry unavailable: {exc}"))

    def _bind_logout_key(self) -> None:
        if self.keymap is not None and "logout" in self.keymap.names():
            self.logout_action.setShortcuts(self.keymap.sequences("logout"))
        else:
            self.logout_action.setShortcut("Ctrl+L")

    def logout(self) -> None:
        """Save what is pending, stop the lane, close; ``logged_out`` then lets another user log in."""
        if self.logging_out is None and not self._closed:
            self.logging_out = Logout(self)
            self.logging_out.start()

    def view(self, name: str) -> QWidget:
        return self.views[name]

    def show_perspective(self, name: str) -> None:
        self.tabs.setCurrentWidget(self.views[name])

    def start(self) -> None:
        if self.inspector is not None:
            self.inspector.start()
        for name, widget in self.views.items():
            if name != "lane" and hasattr(widget, "refresh"):
                widget.refresh()

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.inspector is not None:
            self.inspector.shutdown()
            self.tasks.wait(5000)
        for name, widget in self.views.items():
            if name != "lane" and hasattr(widget, "shutdown"):
                widget.shutdown()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)
