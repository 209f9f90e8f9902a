"""Nothing committed is lost: a writer killed mid-stream, a PostgreSQL connection lost mid-session."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from core.store.engine import create_store_engine
from core.store.errors import StoreUnavailable
from core.store.repo import Store
from core.store.schema import Decision, Lane, utcnow

ROOT = Path(__file__).resolve().parents[2]

# The child records a bag and a decision per iteration and reports each decision
# only after record_decision returned (i.e. after the commit), as the GUI would.
WRITER = textwrap.dedent("""
    import random, sys
    from core.store.repo import Store
    from core.store.schema import utcnow
    from core.store.values import UserInfo
    url, data_dir, user_id, lane_id = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    store = Store.open(url, data_dir=__import__("pathlib").Path(data_dir))
    me = UserInfo(id=user_id, name="", role="inspector", active=True, lane_id=lane_id)
    print("ready", flush=True)
    i = 0
    while True:
        bag = store.bags.record_bag(me, lane_id=lane_id, width=64, height=64,
                                    image=b"\\x89PNG\\r\\n\\x1a\\n" + random.randbytes(64))
        d = store.bags.record_decision(me, bag.id, "clear" if i % 3 else "suspect", opened_at=utcnow(),
                                       request_id=f"crash-{i}")
        print(d.request_id, flush=True)
        i += 1
""")


def test_killed_writer_loses_no_reported_decision(world, db_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", WRITER, db_url, str(tmp_path / "data"),
                              str(world.inspector_a.id), str(world.lane_a)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    reported: list[str] = []
    try:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        deadline = time.monotonic() + 60
        while len(reported) < 40 and time.monotonic() < deadline:
            line = child.stdout.readline().strip()
            if not line:
                break
            reported.append(line)
        # Kill mid-stream: the child is inside its next write when the signal lands.
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    # Lines written before the kill but not yet read are reported commits too.
    reported += [line.strip() for line in child.stdout.read().splitlines() if line.strip()]
    assert len(reported) >= 40, child.stderr.read()
    assert child.returncode == -signal.SIGKILL

    with Store.open(db_url) as store:
        stored = set(store.db.run(lambda s: list(s.scalars(
            select(Decision.request_id).where(Decision.request_id.like("crash-%")))), write=False))
        assert set(reported) <= stored
        assert len(stored) - len(reported) <= 1  # at most the one committed but not yet printed
        assert store.verify_audit().ok
    if db_url.startswith("sqlite"):
        engine = create_store_engine(db_url)
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            assert connection.execute(text("PRAGMA foreign_key_check")).first() is None
        engine.dispose()


# Connection loss is a PostgreSQL matter: these tests run on that engine only.
postgres_only = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture
def pg_store(postgres_server, db_url: str):
    store = Store.open(db_url, retry_delays_s=(0.2, 0.4, 0.8))
    yield store
    store.close()


def _terminate_other_backends(url: str) -> int:
    engine = create_store_engine(url)
    with engine.connect() as connection:
        killed = connection.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND datname = current_database()")).scalar()
    engine.dispose()
    return int(killed or 0)


@postgres_only
def test_terminated_backend_mid_transaction_is_retried_once_and_not_doubled(pg_store, db_url) -> None:
    attempts = []

    def work(session) -> int:  # noqa: ANN001
        attempts.append(1)
        session.add(Lane(name="retried-lane", description=""))
        session.flush()
        if len(attempts) == 1:
            # Another session kills ours while our transaction is open.
            killer = threading.Thread(target=_terminate_other_backends, args=(db_url,))
            killer.start()
            killer.join()
        return session.scalar(select(func.count(Lane.id)).where(Lane.name == "retried-lane"))

    assert pg_store.db.run(work) == 1
    assert len(attempts) == 2
    assert len([lane for lane in pg_store.users.lanes() if lane.name == "retried-lane"]) == 1


@postgres_only
def test_idle_connections_killed_between_calls_are_replaced(world, pg_store, db_url) -> None:
    bag = world.store.bags.record_bag(world.inspector_a, lane_id=world.lane_a, width=5, height=5,
                                      image=b"\x89PNG\r\n\x1a\nidle")
    assert _terminate_other_backends(db_url) >= 1
    decision = world.store.bags.record_decision(world.inspector_a, bag.id, "clear", opened_at=utcnow())
    assert world.store.bags.decisions(bag.id)[0].id == decision.id


@postgres_only
def test_server_down_gives_a_clear_error_and_loses_nothing(world, pg_store, postgres_server) -> None:
    store = pg_store
    bag = world.store.bags.record_bag(world.inspector_a, lane_id=world.lane_a, width=5, height=5,
                                      image=b"\x89PNG\r\n\x1a\ndown")
    committed = store.bags.record_decision(world.inspector_a, bag.id, "clear", opened_at=utcnow())
    postgres_server.stop()
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="could not get it back after 4 attempts") as info:
            store.bags.record_decision(world.inspector_a, bag.id, "suspect", opened_at=utcnow(),
                                       request_id="while-down")
        assert time.monotonic() - started >= 1.4  # it did wait and retry
        assert "not confirmed" in str(info.value) and "Check that the server is running" in str(info.value)
    finally:
        postgres_server.restart()
    # The same Store works again once the server is back, and the committed decision is there.
    decisions = store.bags.decisions(bag.id)
    assert [d.id for d in decisions] == [committed.id]
    store.bags.record_decision(world.inspector_a, bag.id, "suspect", opened_at=utcnow(), request_id="after")
    assert len(store.bags.decisions(bag.id)) == 2
