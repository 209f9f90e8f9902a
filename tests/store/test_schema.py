"""Schema, migrations and engine setup on both engines; bad database files give clear errors."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from core.store import migrate
from core.store.engine import create_store_engine
from core.store.errors import SchemaError
from core.store.repo import Store


def test_migrated_schema_matches_the_models(db_url: str) -> None:
    engine = create_store_engine(db_url)
    status = migrate.check(engine)
    engine.dispose()
    assert status.current == status.head
    assert status.known
    assert status.differences == []
    assert status.up_to_date


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
    engine.dispose()


def test_first_start_creates_and_migrates_the_embedded_store(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with Store.open(data_dir=data_dir) as store:
        assert store.users.count() == 0
    assert (data_dir / "workstation.db").is_file()
    assert (data_dir / "images").is_dir()
    engine = create_store_engine(f"sqlite:///{data_dir / 'workstation.db'}")
    assert migrate.current_revision(engine) == migrate.head_revision()
    engine.dispose()


def test_a_file_that_is_not_a_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    bogus = tmp_path / "workstation.db"
    bogus.write_bytes(b"these are my holiday photos, not a database\n" * 20)
    before = bogus.read_bytes()
    with pytest.raises(SchemaError, match="not a SQLite database"):
        Store.open(f"sqlite:///{bogus}")
    assert bogus.read_bytes() == before


def test_a_database_from_a_newer_schema_is_refused(db_url: str) -> None:
    engine = create_store_engine(db_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00d_from_the_future'"))
    engine.dispose()
    with pytest.raises(SchemaError, match="f00d_from_the_future.*newer version"):
        Store.open(db_url)


def test_a_foreign_database_is_not_migrated(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    engine = create_store_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL)"))
    with pytest.raises(SchemaError, match="invoices"):
        migrate.upgrade(engine)
    engine.dispose()


def test_shared_postgres_is_not_migrated_implicitly(postgres_server) -> None:
    admin = create_store_engine(postgres_server.url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("DROP DATABASE IF EXISTS fresh_for_test"))
        connection.execute(text("CREATE DATABASE fresh_for_test"))
    admin.dispose()
    url = postgres_server.url.rsplit("/", 1)[0] + "/fresh_for_test"
    with pytest.raises(SchemaError, match="db upgrade"):
        Store.open(url)
    with Store.open(url, auto_upgrade=True) as store:
        assert store.users.count() == 0
