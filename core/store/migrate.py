"""Schema migrations, run from code (no alembic.ini): upgrade, current revision, drift check.

The migration scripts live in the ``core.store.migrations`` package (plain
``.py`` files, so they ship with the wheel without package-data settings).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect
from sqlalchemy.exc import DatabaseError

from core.store.engine import WRITE_OPTION
from core.store.errors import SchemaError
from core.store.schema import Base

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None          # revision stamped in the database (None: empty database)
    head: str                    # newest revision this software knows
    known: bool                  # current is one of ours
    differences: list[str] = field(default_factory=list)  # model vs database drift (at head only)

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head and not self.differences


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "the migrations package has no revisions"
    return head


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except DatabaseError as exc:
        raise SchemaError(f"cannot read the schema revision of {engine.url.render_as_string()}: "
                          f"{str(exc.orig).strip()}") from exc


def _check_known(engine: Engine, current: str | None) -> None:
    if current is None:
        return
    script = ScriptDirectory.from_config(_config())
    try:
        script.get_revision(current)
    except Exception as exc:  # noqa: BLE001 - alembic raises several types for an unknown id
        raise SchemaError(
            f"the database {engine.url.render_as_string()} is at schema revision {current!r}, "
            f"which this software does not know (its newest is {head_revision()!r}): it was "
            "probably written by a newer version of the workstation. Upgrade the software; "
            "do not downgrade the database.") from exc


def upgrade(engine: Engine, target: str = "head") -> str:
    """Migrate the database to ``target``; returns the revision reached."""
    _check_known(engine, current_revision(engine))
    _refuse_foreign_tables(engine)
    config = _config()
    with engine.connect() as connection:
        connection = connection.execution_options(**{WRITE_OPTION: True})
        with connection.begin():
            config.attributes["connection"] = connection
            command.upgrade(config, target)
    reached = current_revision(engine)
    log.info("database schema at revision %s", reached)
    return reached or ""


def _refuse_foreign_tables(engine: Engine) -> None:
    """An unstamped database that already has other tables is not ours: don't write into it."""
    with engine.connect() as connection:
        if MigrationContext.configure(connection).get_current_revision() is not None:
            return
        tables = set(inspect(connection).get_table_names())
    ours = set(Base.metadata.tables) | {"alembic_version"}
    foreign = tables - ours
    if tables and foreign:
        raise SchemaError(f"the database {engine.url.render_as_string()} has no workstation schema but "
                          f"other tables ({', '.join(sorted(foreign)[:5])}); refusing to migrate it")


def check(engine: Engine) -> SchemaStatus:
    """Where the database stands against this software's schema."""
    current = current_revision(engine)
    head = head_revision()
    try:
        _check_known(engine, current)
        known = True
    except SchemaError:
        known = current is None
    differences: list[str] = []
    if current == head:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = [repr(diff) for diff in compare_metadata(context, Base.metadata)]
    return SchemaStatus(current=current, head=head, known=known, differences=differences)


def ensure_schema(engine: Engine, *, auto_upgrade: bool) -> None:
    """Make sure the schema is ours and at head: upgrade if allowed, else a clear error."""
    current = current_revision(engine)
    _check_known(engine, current)
    if current == head_revision():
        return
    if not auto_upgrade:
        where = "empty" if current is None else f"at revision {current!r}"
        raise SchemaError(f"the database {engine.url.render_as_string()} is {where}, not at "
                          f"{head_revision()!r}: run `python main.py db upgrade --db URL` first")
    upgrade(engine)
