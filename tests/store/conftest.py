"""Store fixtures: every test runs on SQLite and on a real PostgreSQL server.

The PostgreSQL server is started once per test session (initdb + pg_ctl on a
temporary directory, loopback only, a free port; through ``su postgres``
when running as root) and stopped at the end. Each test gets an empty,
migrated database: a fresh file on SQLite, a TRUNCATE on PostgreSQL.
Without PostgreSQL binaries the PostgreSQL half is skipped locally but
FAILS in CI (``CI=true``), where it must run.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import text

from core.store import auth, migrate
from core.store.engine import create_store_engine
from core.store.permissions import SystemActor
from core.store.pgserver import PostgresUnavailable, TempPostgres
from core.store.repo import Store
from core.store.schema import Base
from core.store.values import UserInfo

PASSWORD = "correct horse battery"
ENGINES = ("sqlite", "postgresql")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def password() -> str:
    """The password every user of the ``world`` fixture has."""
    return PASSWORD


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashing():
    """argon2 at test-friendly cost (the production parameters are exercised in test_auth)."""
    previous = auth.set_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    yield
    auth.set_hasher(previous)


@pytest.fixture(scope="session")
def postgres_server():
    try:
        server = TempPostgres(durable=False).start()
    except PostgresUnavailable as exc:
        if _in_ci():
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(f"PostgreSQL not available locally: {exc}")
    engine = create_store_engine(server.url)
    migrate.upgrade(engine)
    engine.dispose()
    yield server
    server.cleanup()


def _truncate_all(url: str) -> None:
    engine = create_store_engine(url)
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        # A test may have stamped a foreign revision (the newer-schema test).
        connection.execute(text("UPDATE alembic_version SET version_num = :head"),
                           {"head": migrate.head_revision()})
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """One migrated SQLite file, copied for each test (cheaper than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "workstation.db"
    engine = create_store_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()  # the last connection closing checkpoints the WAL into the file
    return path


@pytest.fixture(params=ENGINES)
def db_url(request, tmp_path: Path) -> str:
    """A migrated, empty database URL on each engine."""
    if request.param == "sqlite":
        target = tmp_path / "workstation.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        return f"sqlite:///{target}"
    server = request.getfixturevalue("postgres_server")
    _truncate_all(server.url)
    return server.url


@pytest.fixture
def store(db_url: str, tmp_path: Path):
    opened = Store.open(db_url, data_dir=tmp_path / "data", retry_delays_s=(0.1, 0.2, 0.4))
    yield opened
    opened.close()


@dataclass
class World:
    """A small site: two lanes, one user of each role, an active model."""
    store: Store
    system: SystemActor
    lane_a: int
    lane_b: int
    inspector_a: UserInfo
    inspector_b: UserInfo
    supervisor: UserInfo
    annotator: UserInfo
    admin: UserInfo
    model_id: int


@pytest.fixture
def world(store: Store) -> World:
    system = SystemActor("pytest")
    lane_a = store.users.add_lane(system, "lane-A").id
    lane_b = store.users.add_lane(system, "lane-B").id
    users = {
        "ins_a": store.users.add(system, "ins_a", "inspector", PASSWORD, lane_id=lane_a),
        "ins_b": store.users.add(system, "ins_b", "inspector", PASSWORD, lane_id=lane_b),
        "sup": store.users.add(system, "sup", "supervisor", PASSWORD),
        "ann": store.users.add(system, "ann", "annotator", PASSWORD),
        "adm": store.users.add(system, "adm", "admin", PASSWORD),
    }
    model = store.models.register(users["sup"], name="base", arch="fast", path="/nonexistent/base.pt",
                                  sha256="a" * 64)
    store.models.promote(users["sup"], model.id)
    return World(store, system, lane_a, lane_b, users["ins_a"], users["ins_b"], users["sup"], users["ann"],
                 users["adm"], model.id)
