"""Passwords are hashed, logins are rate-limited in the database, user management follows the roles."""
from __future__ import annotations

import datetime as dt

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, text

from core.store import auth
from core.store.errors import AuthError, InvalidInput, LoginLocked, PermissionDenied
from core.store.schema import User, utcnow


def test_production_hash_is_argon2id_and_verifies() -> None:
    previous = auth.set_hasher(PasswordHasher())
    try:
        stored = auth.hash_password("s3cret-enough")
        assert stored.startswith("$argon2id$")
        assert "s3cret-enough" not in stored
        assert auth.verify_password(stored, "s3cret-enough")
        assert not auth.verify_password(stored, "s3cret-enougH")
        assert not auth.verify_password("garbage", "s3cret-enough")
    finally:
        auth.set_hasher(previous)


def test_short_password_is_refused() -> None:
    with pytest.raises(InvalidInput, match="at least 8"):
        auth.hash_password("short")


def test_no_plaintext_password_in_the_database(world, password) -> None:
    dump = world.store.db.run(lambda s: [tuple(r) for t in ("users", "audit_log", "settings")
                                         for r in s.execute(text(f"SELECT * FROM {t}"))], write=False)
    assert password not in repr(dump)


def test_login_ok_and_wrong_password(world, password) -> None:
    users = world.store.users
    assert users.login("ins_a", password).id == world.inspector_a.id
    with pytest.raises(AuthError, match="wrong user name or password"):
        users.login("ins_a", "not the password")
    with pytest.raises(AuthError, match="wrong user name or password"):
        users.login("nobody", password)


def test_repeated_failures_lock_the_account_with_growing_delay(world, password) -> None:
    users = world.store.users
    now = utcnow()
    for _ in range(auth.FREE_ATTEMPTS - 1):
        with pytest.raises(AuthError) as info:
            users.login("ins_a", "guess", now=now)
        assert not isinstance(info.value, LoginLocked)
    with pytest.raises(LoginLocked) as locked:
        users.login("ins_a", "guess", now=now)
    assert locked.value.retry_after_s == pytest.approx(auth.BASE_LOCK_S)
    # While locked even the right password is refused, and it costs no counter.
    with pytest.raises(LoginLocked):
        users.login("ins_a", password, now=now + dt.timedelta(seconds=1))
    later = now + dt.timedelta(seconds=auth.BASE_LOCK_S + 0.5)
    with pytest.raises(LoginLocked) as longer:
        users.login("ins_a", "guess again", now=later)
    assert longer.value.retry_after_s == pytest.approx(2 * auth.BASE_LOCK_S)
    # The counters live in the database, visible to every workstation.
    failed = world.store.db.run(lambda s: s.scalar(select(User.failed_logins).where(User.name == "ins_a")),
                                write=False)
    assert failed == auth.FREE_ATTEMPTS + 1
    after = later + dt.timedelta(seconds=2 * auth.BASE_LOCK_S + 0.5)
    assert users.login("ins_a", password, now=after).name == "ins_a"
    assert world.store.db.run(lambda s: s.scalar(select(User.failed_logins).where(User.name == "ins_a")),
                              write=False) == 0


def test_lock_delay_is_capped() -> None:
    assert auth.lock_seconds(0) == 0
    assert auth.lock_seconds(auth.FREE_ATTEMPTS) == auth.BASE_LOCK_S
    assert auth.lock_seconds(100) == auth.MAX_LOCK_S


def test_disabled_user_cannot_log_in_or_act(world, password) -> None:
    users = world.store.users
    users.disable(world.supervisor, "ins_a")
    with pytest.raises(AuthError):
        users.login("ins_a", password)
    # A UserInfo obtained before the disable no longer works either.
    with pytest.raises(PermissionDenied, match="disabled"):
        world.store.bags.record_bag(world.inspector_a, lane_id=world.lane_a, width=10, height=10,
                                    image=b"\x89PNG\r\n\x1a\n fake")


def test_password_change_by_self_and_by_supervisor(world) -> None:
    users = world.store.users
    users.set_password(world.inspector_a, "ins_a", "a brand new one")
    assert users.login("ins_a", "a brand new one").name == "ins_a"
    users.set_password(world.supervisor, "ins_a", "reset by the boss")
    assert users.login("ins_a", "reset by the boss").name == "ins_a"
    with pytest.raises(PermissionDenied):
        users.set_password(world.inspector_b, "ins_a", "hijacked!!")


def test_role_rules_for_managing_users(world, password) -> None:
    users = world.store.users
    users.add(world.supervisor, "new_inspector", "inspector", password, lane_id=world.lane_a)
    with pytest.raises(PermissionDenied, match="may not manage supervisor"):
        users.add(world.supervisor, "new_boss", "supervisor", password)
    with pytest.raises(PermissionDenied):
        users.add(world.inspector_a, "friend", "admin", password)
    with pytest.raises(PermissionDenied):
        users.disable(world.annotator, "ins_b")
    users.add(world.admin, "new_boss", "supervisor", password)
    with pytest.raises(InvalidInput, match="already exists"):
        users.add(world.admin, "new_boss", "inspector", password)
    with pytest.raises(InvalidInput, match="unknown role"):
        users.add(world.admin, "x", "king", password)


def test_forged_user_info_gets_no_extra_rights(world, password) -> None:
    from dataclasses import replace

    forged = replace(world.inspector_a, role="admin")
    with pytest.raises(PermissionDenied):
        world.store.users.add(forged, "mole", "admin", password)
