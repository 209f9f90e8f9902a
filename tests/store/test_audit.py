"""The audit chain: written for every state change, intact under concurrency, names tampering."""
from __future__ import annotations

import random
import threading

import pytest
from sqlalchemy import select, text

from core.cli import main as cli_main
from core.store.errors import PermissionDenied
from core.store.schema import AuditEntry, utcnow


def _actions(store) -> list[str]:  # noqa: ANN001
    return store.db.run(lambda s: list(s.scalars(select(AuditEntry.action).order_by(AuditEntry.seq))), write=False)


def _bag(world):
    return world.store.bags.record_bag(world.inspector_a, lane_id=world.lane_a, width=20, height=20,
                                       image=b"\x89PNG\r\n\x1a\n" + random.randbytes(16))


def test_every_state_change_is_audited(world) -> None:
    bag = _bag(world)
    world.store.bags.record_decision(world.inspector_a, bag.id, "suspect", opened_at=utcnow())
    actions = _actions(world.store)
    assert actions[:2] == ["lane.add", "lane.add"]
    assert actions.count("user.add") == 5
    for expected in ("model.register", "model.promote", "bag.record", "decision.record"):
        assert expected in actions
    report = world.store.verify_audit()
    assert report.ok and report.checked == len(actions)


def test_chain_stays_intact_with_concurrent_writers(world) -> None:
    def writer() -> None:
        for _ in range(5):
            bag = _bag(world)
            world.store.bags.record_decision(world.inspector_a, bag.id, "clear", opened_at=utcnow())

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = world.store.verify_audit()
    assert report.ok, report.problems


def _execute(store, sql: str) -> None:  # noqa: ANN001
    store.db.run(lambda s: s.execute(text(sql)))


def test_edited_row_is_named(world) -> None:
    _execute(world.store, "UPDATE audit_log SET actor = 'somebody_else' WHERE seq = 4")
    report = world.store.verify_audit()
    assert not report.ok
    assert any("seq 4" in p and "altered" in p for p in report.problems)


def test_deleted_row_is_named(world) -> None:
    _execute(world.store, "DELETE FROM audit_log WHERE seq = 3")
    report = world.store.verify_audit()
    assert any("seq 3 are missing" in p for p in report.problems), report.problems


def test_deleted_tail_is_detected(world) -> None:
    last = world.store.db.run(lambda s: s.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1)),
                              write=False)
    _execute(world.store, f"DELETE FROM audit_log WHERE seq = {last}")
    report = world.store.verify_audit()
    assert any(f"seq {last}..{last}" in p for p in report.problems), report.problems


def test_rehashed_row_breaks_the_link_to_the_next(world) -> None:
    # A forger who recomputes the row's own hash still breaks the next row's prev_hash.
    from core.store.audit import entry_hash

    def forge(session) -> None:  # noqa: ANN001
        row = session.scalars(select(AuditEntry).where(AuditEntry.seq == 2)).one()
        row.details = '{"name":"forged"}'
        row.hash = entry_hash(row.seq, row.at, row.actor, row.action, row.entity, row.entity_id, row.details,
                              row.prev_hash)
    world.store.db.run(forge)
    problems = world.store.verify_audit().problems
    assert any("seq 3" in p and "does not link" in p for p in problems), problems


def test_verify_audit_command(world, db_url, capsys) -> None:
    assert cli_main(["db", "verify-audit", "--db", db_url]) == 0
    assert "chain intact" in capsys.readouterr().out
    _execute(world.store, "UPDATE audit_log SET details = '{}' WHERE seq = 5")
    assert cli_main(["db", "verify-audit", "--db", db_url]) == 1
    out = capsys.readouterr().out
    assert "TAMPERED: audit row seq 5" in out


def test_logout_is_audited_for_active_users_only(world) -> None:
    world.store.users.logout(world.inspector_a)
    assert _actions(world.store)[-1] == "user.logout"
    world.store.users.disable(world.admin, world.inspector_b.name)
    with pytest.raises(PermissionDenied):
        world.store.users.logout(world.inspector_b)
    assert world.store.verify_audit().ok
