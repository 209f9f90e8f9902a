"""Log out: save what is pending, stop the lane, close the window, let the next user log in.

Order matters for a screening console: the lane belt and the detector stop first
(so no new bag or prediction adds writes), then the view waits -- without
blocking the GUI thread -- until every session call already queued (a decision
being committed, label revisions, recorded bags) has been saved by the
``SessionWorker``. A call that fails is retried by the inspector view as usual
and the logout keeps waiting, saying so: a decision is never dropped to let
someone log out. Only then are the workers shut down and the window closed;
``WorkstationWindow.logged_out`` tells ``app.main_window`` to show the login
dialog again.

The logout is audited (``store.users.logout``) from the global thread pool: a database
write never runs on the GUI thread, and a store that is down only costs the audit line
(logged), never the logout.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QThreadPool, QTimer

if TYPE_CHECKING:
    from app.perspectives import WorkstationWindow

log = logging.getLogger(__name__)

FLUSH_POLL_MS = 50


class Logout(QObject):
    def __init__(self, window: WorkstationWindow) -> None:
        super().__init__(window)
        self.window = window
        self.started = 0.0
        self._timer = QTimer(self)
        self._timer.setInterval(FLUSH_POLL_MS)
        self._timer.timeout.connect(self._check)

    def start(self) -> None:
        self.started = time.perf_counter()
        inspector = self.window.inspector
        if inspector is not None:
            inspector.begin_closing()
        self.window.logout_action.setEnabled(False)
        self._check()
        if not self.window.did_log_out:
            self._timer.start()

    def pending(self) -> int:
        inspector = self.window.inspector
        return inspector.unsaved_writes() if inspector is not None else 0

    def _check(self) -> None:
        pending = self.pending()
        if pending:
            self.window.statusBar().showMessage(f"Logging out: saving {pending} pending change(s)…")
            return
        self._timer.stop()
        self._finish()

    def _finish(self) -> None:
        window = self.window
        user = window.user
        window.shutdown()               # the session worker's queue is empty: this does not wait on writes
        window.did_log_out = True
        log.info("%s (%s) logged out after %.2f s", user.name, user.role, time.perf_counter() - self.started)
        QThreadPool.globalInstance().start(lambda store=window.store: _audit_logout(store, user))
        window.close()
        window.logged_out.emit(user)


def _audit_logout(store, user) -> None:  # noqa: ANN001 - core.store.repo.Store, UserInfo
    try:
        store.users.logout(user)
    except Exception as exc:  # noqa: BLE001 - the session is over either way; say why it is not audited
        log.warning("logout of %s not written to the audit log: %s", user.name, exc)
