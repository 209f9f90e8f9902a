"""Login, and the first-run administrator.

On a fresh store (no users) the workstation creates the account ``admin`` with a
password either read from ``--admin-password-file`` or generated and shown ONCE
in a dialog (it is stored only as an argon2 hash). It also creates the first lane
so an inspector can be put on it. Wrong passwords and lock-outs are the store's
business (``UsersRepo.login``): this dialog only shows what it says.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout,
                               QWidget)

from app.store_session import StoreTasks
from core.store.auth import check_password_policy
from core.store.errors import AuthError, InvalidInput, StoreError
from core.store.permissions import SystemActor
from core.store.repo import Store
from core.store.values import UserInfo

log = logging.getLogger(__name__)

ADMIN_NAME = "admin"
FIRST_LANE = "lane-1"
GENERATED_PASSWORD_BYTES = 12      # 16 URL-safe characters


@dataclass(frozen=True)
class FirstAdmin:
    user: UserInfo
    password: str
    generated: bool                 # True: the password must be shown once


def read_password_file(path: Path) -> str:
    """The password in ``path`` (one line; the trailing newline is not part of it)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read the admin password file {path}: {exc.strerror or exc}") from exc
    password = text.rstrip("\r\n")
    if not password.strip():
        raise InvalidInput(f"the admin password file {path} is empty")
    check_password_policy(password)
    return password


def needs_first_admin(store: Store) -> bool:
    return store.users.count() == 0


def create_first_admin(store: Store, password: str | None = None) -> FirstAdmin:
    """Create ``admin`` (and the first lane) on an empty store; InvalidInput if users exist already."""
    if not needs_first_admin(store):
        raise InvalidInput("the store already has users: the first-run administrator is created only once")
    generated = password is None
    password = password if password is not None else secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
    check_password_policy(password)
    operator = SystemActor("first-run")
    if not store.users.lanes():
        store.users.add_lane(operator, FIRST_LANE, "created on first start")
    user = store.users.add(operator, ADMIN_NAME, "admin", password)
    log.info("first start: created the administrator %r", ADMIN_NAME)
    return FirstAdmin(user, password, generated)


class FirstAdminDialog(QDialog):
    """Shows a generated administrator password once; it cannot be shown again."""

    def __init__(self, admin: FirstAdmin, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("First start: administrator account")
        self.setObjectName("firstAdminDialog")
        layout = QVBoxLayout(self)
        intro = QLabel(f"The workstation created the administrator <b>{admin.user.name}</b>.<br>"
                       "Write the password down now: <b>it is shown only this once</b> and is stored "
                       "only as a hash. Log in with it and create the other accounts.<br>"
                       "<small>Lost it? <code>python main.py user passwd admin</code> sets a new one.</small>")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.password_field = QLineEdit(admin.password)
        self.password_field.setObjectName("generatedPassword")
        self.password_field.setReadOnly(True)
        self.password_field.setStyleSheet("font-family: monospace; font-size: 18px; padding: 6px;")
        layout.addWidget(self.password_field)
        copy = QPushButton("Copy to clipboard")
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(admin.password))
        buttons = QDialogButtonBox()
        buttons.addButton(copy, QDialogButtonBox.ActionRole)
        buttons.addButton("I have written it down", QDialogButtonBox.AcceptRole)
        buttons.accepted.connect(self.accept)
        layout.addWidget(buttons)
        self.setMinimumWidth(460)

    def done(self, result: int) -> None:
        self.password_field.clear()     # do not keep the secret in a widget once seen
        super().done(result)


class LoginDialog(QDialog):
    """User name and password; the check runs off the GUI thread (argon2 is slow on purpose)."""

    def __init__(self, store: Store, parent: QWidget | None = None, *, user_name: str = "") -> None:
        super().__init__(parent)
        self.store = store
        self.user: UserInfo | None = None
        self.tasks = StoreTasks(self)
        self.setWindowTitle("X-ray screening workstation — log in")
        self.setObjectName("loginDialog")
        title = QLabel("X-ray screening workstation")
        title.setObjectName("loginTitle")
        title.setStyleSheet("font-size: 20px; font-weight: bold; padding-bottom: 8px;")
        self.name_field = QLineEdit(user_name)
        self.name_field.setObjectName("userName")
        self.password_field = QLineEdit()
        self.password_field.setObjectName("password")
        self.password_field.setEchoMode(QLineEdit.Password)
        form = QFormLayout()
        form.addRow("User", self.name_field)
        form.addRow("Password", self.password_field)
        self.message = QLabel()
        self.message.setObjectName("loginMessage")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #ff7b72;")
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.button(QDialogButtonBox.Ok).setText("Log in")
        self.buttons.accepted.connect(self.try_login)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(380)
        (self.password_field if user_name else self.name_field).setFocus(Qt.OtherFocusReason)

    def try_login(self) -> None:
        name, password = self.name_field.text().strip(), self.password_field.text()
        if not name or not password:
            self.message.setText("Enter your user name and password.")
            return
        self._set_busy(True)
        self.tasks.run(lambda: self.store.users.login(name, password), self._on_logged_in, self._on_refused)

    def _set_busy(self, busy: bool) -> None:
        self.buttons.setEnabled(not busy)
        if busy:
            self.message.setText("Checking…")

    def _on_logged_in(self, user: UserInfo) -> None:
        self._set_busy(False)
        self.user = user
        self.password_field.clear()
        log.info("%s (%s) logged in", user.name, user.role)
        self.accept()

    def _on_refused(self, exc: Exception) -> None:
        self._set_busy(False)
        self.password_field.clear()
        self.password_field.setFocus(Qt.OtherFocusReason)
        if isinstance(exc, AuthError):
            self.message.setText(str(exc))
        elif isinstance(exc, StoreError):
            self.message.setText(f"The store cannot be reached: {exc}")
        else:
            self.message.setText(f"Login failed: {type(exc).__name__}: {exc}")

    def done(self, result: int) -> None:
        self.tasks.wait(5000)
        super().done(result)


def authenticate(store: Store, *, admin_password_file: Path | None = None, user_name: str = "",
                 parent: QWidget | None = None) -> UserInfo | None:
    """First-run administrator if needed, then the login dialog; None when the user cancels.

    Raises InvalidInput for an unusable ``--admin-password-file`` (the caller reports it).
    """
    if needs_first_admin(store):
        password = read_password_file(admin_password_file) if admin_password_file is not None else None
        admin = create_first_admin(store, password)
        if admin.generated:
            FirstAdminDialog(admin, parent).exec()
        user_name = user_name or admin.user.name
    elif admin_password_file is not None:
        log.info("the store already has users: --admin-password-file is ignored")
    dialog = LoginDialog(store, parent, user_name=user_name)
    if dialog.exec() != QDialog.Accepted:
        return None
    return dialog.user
