"""Login, the first-run administrator, and ``python main.py`` opening the store behind a login."""
from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QDialogButtonBox

import app.main_window as main_window
from app.login import (FirstAdminDialog, LoginDialog, create_first_admin, needs_first_admin, read_password_file)
from app.model_loading import ModelChoice
from app.perspectives import WorkstationWindow
from core.store.errors import AuthError, InvalidInput
from core.store.repo import Store
from store_world import PASSWORD, cheap_hashing


@pytest.fixture(autouse=True)
def _cheap_hashing():
    previous = cheap_hashing()
    yield
    from core.store import auth
    auth.set_hasher(previous)


@pytest.fixture
def empty_store(tmp_path: Path):
    store = Store.open(None, data_dir=tmp_path / "data")
    yield store
    store.close()


def test_first_run_creates_one_admin_with_a_generated_password_shown_once(qtbot, empty_store: Store) -> None:
    assert needs_first_admin(empty_store)
    admin = create_first_admin(empty_store)
    assert admin.generated and len(admin.password) >= 16 and admin.user.role == "admin"
    assert [lane.name for lane in empty_store.users.lanes()] == ["lane-1"]
    assert empty_store.users.login("admin", admin.password).role == "admin"
    dialog = FirstAdminDialog(admin)
    qtbot.addWidget(dialog)
    assert dialog.password_field.text() == admin.password
    dialog.accept()
    assert dialog.password_field.text() == ""       # not kept in the widget once seen
    with pytest.raises(InvalidInput, match="only once"):
        create_first_admin(empty_store)


def test_admin_password_file_is_used_and_checked(tmp_path: Path, empty_store: Store) -> None:
    good = tmp_path / "pw.txt"
    good.write_text(PASSWORD + "\n")
    assert read_password_file(good) == PASSWORD
    short = tmp_path / "short.txt"
    short.write_text("abc\n")
    with pytest.raises(InvalidInput, match="at least"):
        read_password_file(short)
    with pytest.raises(InvalidInput, match="cannot read"):
        read_password_file(tmp_path / "missing.txt")
    admin = create_first_admin(empty_store, read_password_file(good))
    assert not admin.generated
    assert empty_store.users.login("admin", PASSWORD).name == "admin"


def test_login_dialog_refuses_a_wrong_password_then_accepts_the_right_one(qtbot, empty_store: Store) -> None:
    create_first_admin(empty_store, PASSWORD)
    dialog = LoginDialog(empty_store, user_name="admin")
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.password_field.setText("wrong password!")
    dialog.buttons.button(QDialogButtonBox.Ok).click()
    qtbot.waitUntil(lambda: "wrong" in dialog.message.text(), timeout=5000)
    assert dialog.user is None and dialog.isVisible() and dialog.password_field.text() == ""
    dialog.password_field.setText(PASSWORD)
    with qtbot.waitSignal(dialog.accepted, timeout=5000):
        dialog.buttons.button(QDialogButtonBox.Ok).click()
    assert dialog.user is not None and dialog.user.role == "admin"
    with pytest.raises(AuthError):        # the store counted the failure and the success, nothing else
        empty_store.users.login("admin", "still wrong")


def test_main_py_first_start_creates_the_store_and_logs_the_admin_in(qtbot, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(main_window, "choose_model", lambda path, **kw: ModelChoice(None, "no model"))
    data_dir = tmp_path / "fresh"
    password_file = tmp_path / "admin.txt"
    password_file.write_text(PASSWORD)
    seen: dict[str, object] = {}

    def fill_login() -> None:
        dialogs = [w for w in QApplication.topLevelWidgets() if isinstance(w, LoginDialog) and w.isVisible()]
        if not dialogs:
            QTimer.singleShot(100, fill_login)
            return
        seen["prefilled"] = dialogs[0].name_field.text()
        dialogs[0].password_field.setText(PASSWORD)
        dialogs[0].try_login()
        QTimer.singleShot(300, look_and_quit)

    def look_and_quit() -> None:
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, WorkstationWindow) and w.isVisible()]
        if not windows:
            QTimer.singleShot(100, look_and_quit)
            return
        seen["tabs"] = [windows[0].tabs.tabText(i) for i in range(windows[0].tabs.count())]
        windows[0].close()

    QTimer.singleShot(100, fill_login)
    code = main_window.run_workstation(["--data-dir", str(data_dir), "--admin-password-file", str(password_file),
                                        "--lane", "replay", "--lane-path", str(tmp_path), "--rate", "20"])
    assert code == 0
    assert (data_dir / "workstation.db").is_file()
    assert seen["prefilled"] == "admin"
    assert seen["tabs"] == ["Lane", "Review queue", "Statistics", "Models", "Annotate"]


def test_main_py_first_start_without_a_password_file_shows_the_generated_one_once(qtbot, tmp_path: Path,
                                                                                monkeypatch) -> None:
    monkeypatch.setattr(main_window, "choose_model", lambda path, **kw: ModelChoice(None, "no model"))
    monkeypatch.setenv("XRAY_DATA_DIR", str(tmp_path / "default-data"))
    seen: dict[str, object] = {}

    def read_and_accept() -> None:
        shown = [w for w in QApplication.topLevelWidgets() if isinstance(w, FirstAdminDialog) and w.isVisible()]
        if not shown:
            QTimer.singleShot(50, read_and_accept)
            return
        seen["password"] = shown[0].password_field.text()
        shown[0].accept()
        QTimer.singleShot(50, log_in)

    def log_in() -> None:
        dialogs = [w for w in QApplication.topLevelWidgets() if isinstance(w, LoginDialog) and w.isVisible()]
        if not dialogs:
            QTimer.singleShot(50, log_in)
            return
        dialogs[0].password_field.setText(str(seen["password"]))
        dialogs[0].try_login()
        QTimer.singleShot(50, quit_window)

    def quit_window() -> None:
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, WorkstationWindow) and w.isVisible()]
        if not windows:
            QTimer.singleShot(50, quit_window)
            return
        seen["user"] = windows[0].user.name
        windows[0].close()

    QTimer.singleShot(50, read_and_accept)
    assert main_window.run_workstation(["--lane", "replay", "--lane-path", str(tmp_path), "--rate", "20"]) == 0
    assert seen["user"] == "admin" and len(str(seen["password"])) >= 16
    assert (tmp_path / "default-data" / "workstation.db").is_file()


def test_repeated_failures_show_the_stores_lock_out(qtbot, empty_store: Store) -> None:
    from core.store.auth import FREE_ATTEMPTS

    create_first_admin(empty_store, PASSWORD)
    dialog = LoginDialog(empty_store, user_name="admin")
    qtbot.addWidget(dialog)
    for _ in range(FREE_ATTEMPTS):
        dialog.password_field.setText("not the password")
        dialog.try_login()
        qtbot.waitUntil(lambda: dialog.buttons.isEnabled(), timeout=5000)
    assert "too many failures" in dialog.message.text()
    dialog.password_field.setText(PASSWORD)         # even the right password is refused while locked
    dialog.try_login()
    qtbot.waitUntil(lambda: "try again in" in dialog.message.text(), timeout=5000)
    assert dialog.user is None
