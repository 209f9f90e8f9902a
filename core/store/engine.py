"""Engines and units of work for SQLite (embedded default) and PostgreSQL (shared).

SQLite runs in WAL mode with foreign keys on, ``synchronous=FULL`` (a
committed decision survives a power cut, not just a crash) and a busy
timeout; write transactions start with ``BEGIN IMMEDIATE`` so that two
writers queue on the lock instead of failing when a read upgrades to a write.

Every unit of work is a function of a Session run in one transaction by
:meth:`Database.run`. On PostgreSQL a lost connection (server restart,
terminated backend, network) or a serialisation failure re-runs the whole
unit a few times with back-off, then raises :class:`StoreUnavailable`. Units
are written to be idempotent (client-chosen ids), so a retry after a commit
whose acknowledgement was lost finds the first write instead of doubling it.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from core.config import redact_url
from core.store.errors import SchemaError, StoreBusy, StoreUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 15_000
SQLITE_MAGIC = b"SQLite format 3\x00"
WRITE_OPTION = "xray_store_write"
DEFAULT_RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 4.0)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def check_sqlite_file(path: Path) -> None:
    """Refuse a file that exists but is not a SQLite database, naming it."""
    if not path.exists() or path.stat().st_size == 0:
        return
    if path.is_dir():
        raise SchemaError(f"{path} is a directory, not a SQLite database file")
    with path.open("rb") as handle:
        header = handle.read(len(SQLITE_MAGIC))
    if header != SQLITE_MAGIC:
        raise SchemaError(f"{path} is not a SQLite database (header {header[:16]!r}); "
                          "point --db or XRAY_DB_URL at the workstation database")


def create_store_engine(url: str, *, pool_size: int = 5) -> Engine:
    """An engine configured for the store on either backend."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database)
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":  # psycopg 3 is the driver we ship
            url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        # pre_ping replaces pooled connections the server dropped (restart) before use.
        return create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size,
                             connect_args={"connect_timeout": 5})
    raise SchemaError(f"unsupported database URL {redact_url(url)}: use sqlite:///PATH or "
                      "postgresql+psycopg://USER@HOST:PORT/DB")


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:" and not database.startswith("file:"):
        path = Path(database)
        check_sqlite_file(path)
        path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: pysqlite must not open transactions itself; we emit BEGIN below.
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                              "isolation_level": None, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # noqa: ANN001 - DBAPI types
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # noqa: ANN001
        immediate = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """An engine plus the retrying unit-of-work runner that every repository uses."""

    def __init__(self, engine: Engine, *, retry_delays_s: tuple[float, ...] = DEFAULT_RETRY_DELAYS_S) -> None:
        self.engine = engine
        self.retry_delays_s = retry_delays_s
        self.url_for_messages = redact_url(engine.url.render_as_string(hide_password=True))

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.engine)

    def run(self, work: Callable[[Session], T], *, write: bool = True) -> T:
        """Run ``work(session)`` in one transaction, committed before returning.

        ``work`` must build its return value (plain dataclasses) inside the
        transaction and be safe to run again from the start.
        """
        attempts = len(self.retry_delays_s) + 1
        last_error: Exception | None = None
        for attempt in range(attempts):
            try:
                with Session(self.engine, expire_on_commit=False, autoflush=True) as session:
                    if write and self.is_sqlite:
                        # Procure the connection (and so BEGIN IMMEDIATE) before any statement.
                        session.connection(execution_options={WRITE_OPTION: True})
                    result = work(session)
                    session.commit()
                    return result
            except OperationalError as exc:
                if self.is_sqlite:
                    mapped = self._sqlite_error(exc)
                    if mapped is exc:
                        raise
                    raise mapped from exc
                # psycopg reports lost connections, serialisation failures and deadlocks as
                # OperationalError: all are cured by running the whole unit of work again.
                last_error = exc
                if attempt + 1 < attempts:
                    delay = self.retry_delays_s[attempt]
                    log.warning("database %s: %s; retrying in %.1f s (attempt %d of %d)",
                                self.url_for_messages, _first_line(exc), delay, attempt + 2, attempts)
                    time.sleep(delay)
            except DBAPIError as exc:
                if self.is_sqlite and "not a database" in str(exc.orig):
                    raise SchemaError(f"{self.url_for_messages} is not a SQLite database") from exc
                if self.is_sqlite or not exc.connection_invalidated:
                    raise
                # e.g. InterfaceError "the connection is closed": a disconnect by another name.
                last_error = exc
                if attempt + 1 < attempts:
                    time.sleep(self.retry_delays_s[attempt])
        raise StoreUnavailable(
            f"lost the connection to the database {self.url_for_messages} and could not get it back "
            f"after {attempts} attempts over {sum(self.retry_delays_s):.1f} s: {_first_line(last_error)}. "
            "The interrupted operation was not confirmed; everything confirmed before is safe. "
            "Check that the server is running, then try again.") from last_error

    def _sqlite_error(self, exc: OperationalError) -> Exception:
        message = str(exc.orig)
        if "locked" in message or "busy" in message:
            return StoreBusy(f"{self.url_for_messages} stayed locked by another writer for more than "
                             f"{SQLITE_BUSY_TIMEOUT_MS / 1000:.0f} s; nothing was saved, try again")
        if "not a database" in message:
            return SchemaError(f"{self.url_for_messages} is not a SQLite database")
        return exc

    def dispose(self) -> None:
        self.engine.dispose()


def _first_line(exc: Exception | None) -> str:
    if exc is None:
        return "unknown error"
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]
