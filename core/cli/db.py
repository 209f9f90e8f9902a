"""``db upgrade|check|verify-audit``, ``user add|passwd|disable`` and ``lane add``.

Each takes ``--db URL`` (default: ``$XRAY_DB_URL``, else the embedded SQLite
store in the data directory, see core.config). Passwords are never command
arguments: they are prompted on a terminal (twice) and read from the first
line of stdin otherwise (``printf '%s\\n' "$PW" | python main.py user add ...``).
"""
from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from core.config import redact_url, resolve_data_dir, resolve_db_url
from core.store.errors import StoreError
from core.store.schema import ROLES

log = logging.getLogger(__name__)


def _add_location(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="URL", default=None,
                        help="database URL (sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB); "
                             "default $XRAY_DB_URL, else DATA_DIR/workstation.db")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="data directory (default $XRAY_DATA_DIR, else ~/.local/share/xray-workstation)")


def register(sub) -> None:  # noqa: ANN001 - argparse's private subparsers type
    db = sub.add_parser("db", help="database schema and audit checks")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    for name, handler, text in (("upgrade", _db_upgrade, "create or migrate the schema to this version"),
                                ("check", _db_check,
                                 "report the schema revision and any drift (exit 1 if not current)"),
                                ("verify-audit", _db_verify_audit, "verify the audit hash chain (exit 1 if broken)")):
        p = db_sub.add_parser(name, help=text, description=text)
        _add_location(p)
        p.set_defaults(func=_guarded(handler))

    user = sub.add_parser("user", help="manage user accounts")
    user_sub = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    p = user_sub.add_parser("add", help="add a user (password prompted or read from stdin)")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--lane", default=None, help="the inspector's lane (by name)")
    _add_location(p)
    p.set_defaults(func=_guarded(_user_add))
    p = user_sub.add_parser("passwd", help="set a user's password (prompted or read from stdin)")
    p.add_argument("name")
    _add_location(p)
    p.set_defaults(func=_guarded(_user_passwd))
    p = user_sub.add_parser("disable", help="disable a user account (kept for the audit trail)")
    p.add_argument("name")
    _add_location(p)
    p.set_defaults(func=_guarded(_user_disable))

    lane = sub.add_parser("lane", help="manage lanes / workstations")
    lane_sub = lane.add_subparsers(dest="lane_command", metavar="ACTION", required=True)
    p = lane_sub.add_parser("add", help="add a lane")
    p.add_argument("name")
    p.add_argument("--description", default="")
    _add_location(p)
    p.set_defaults(func=_guarded(_lane_add))


def _guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn the store's deliberate errors into one line on stderr and exit code 2."""
    def run(args: argparse.Namespace) -> int:
        # Alembic logs every step at INFO; only show that when asked for.
        if not getattr(args, "verbose", False):
            logging.getLogger("alembic").setLevel(logging.WARNING)
        try:
            return handler(args)
        except (StoreError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return run


def _url(args: argparse.Namespace) -> tuple[str, Path]:
    data_dir = resolve_data_dir(args.data_dir)
    return resolve_db_url(args.db, data_dir), data_dir


def _engine(args: argparse.Namespace):  # noqa: ANN202
    from core.store.engine import create_store_engine  # noqa: PLC0415 - keep `--help` fast

    url, _ = _url(args)
    return create_store_engine(url), url


def _open_store(args: argparse.Namespace):  # noqa: ANN202
    from core.store.repo import Store  # noqa: PLC0415

    url, _ = _url(args)
    # No image directory needed for these commands; an embedded store is migrated on first use.
    return Store.open(url)


def _db_upgrade(args: argparse.Namespace) -> int:
    from core.store import migrate  # noqa: PLC0415

    engine, url = _engine(args)
    try:
        before = migrate.current_revision(engine)
        reached = migrate.upgrade(engine)
    finally:
        engine.dispose()
    print(f"{redact_url(url)}: schema {before or '(empty)'} -> {reached}")
    return 0


def _db_check(args: argparse.Namespace) -> int:
    from core.store import migrate  # noqa: PLC0415

    engine, url = _engine(args)
    try:
        status = migrate.check(engine)
    finally:
        engine.dispose()
    print(f"database: {redact_url(url)}")
    print(f"schema revision: {status.current or '(none: empty database)'}; this software: {status.head}")
    if not status.known:
        print("the database revision is unknown to this software (written by a newer version?)")
    for difference in status.differences:
        print(f"drift: {difference}")
    print("up to date" if status.up_to_date else "NOT up to date: run `python main.py db upgrade`")
    return 0 if status.up_to_date else 1


def _db_verify_audit(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        report = store.verify_audit()
    for problem in report.problems:
        print(f"TAMPERED: {problem}")
    print(f"audit log: {report.checked} rows checked, "
          f"{'chain intact' if report.ok else f'{len(report.problems)} problem(s)'}")
    return 0 if report.ok else 1


def read_password(prompt: str = "Password: ", *, stream=None) -> str:  # noqa: ANN001
    """Prompt twice on a terminal; otherwise the first line of stdin (no echo, never argv)."""
    stream = stream or sys.stdin
    if stream.isatty():
        first = getpass.getpass(prompt)
        if getpass.getpass("Repeat: ") != first:
            raise StoreErrorForCli("the two passwords differ")
        return first
    line = stream.readline()
    if not line:
        raise StoreErrorForCli("no password on stdin (pipe it in, one line)")
    return line.rstrip("\r\n")


class StoreErrorForCli(StoreError):
    """A problem with the command-line input itself."""


def _operator():  # noqa: ANN202
    from core.store.permissions import SystemActor  # noqa: PLC0415

    return SystemActor(f"cli:{getpass.getuser()}")


def _user_add(args: argparse.Namespace) -> int:
    password = read_password(f"Password for {args.name}: ")
    with _open_store(args) as store:
        lane_id = store.users.lane_by_name(args.lane).id if args.lane else None
        user = store.users.add(_operator(), args.name, args.role, password, lane_id=lane_id)
    print(f"added {user.role} {user.name} (id {user.id})")
    return 0


def _user_passwd(args: argparse.Namespace) -> int:
    password = read_password(f"New password for {args.name}: ")
    with _open_store(args) as store:
        store.users.set_password(_operator(), args.name, password)
    print(f"password of {args.name} changed")
    return 0


def _user_disable(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        store.users.disable(_operator(), args.name)
    print(f"{args.name} disabled")
    return 0


def _lane_add(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        lane = store.users.add_lane(_operator(), args.name, args.description)
    print(f"added lane {lane.name} (id {lane.id})")
    return 0
