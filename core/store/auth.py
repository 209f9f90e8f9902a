"""Passwords (argon2id) and login rate limiting, both kept in the database.

No plaintext password is stored, logged or put in the audit log. Failed
logins are counted per user in the ``users`` row, so every workstation
sharing the store sees the same count: after ``FREE_ATTEMPTS`` failures the
account refuses logins for a delay that doubles with each further failure,
up to ``MAX_LOCK_S``. A successful login resets the count. While locked, the
password is not even checked, so guessing costs the attacker the delay.
"""
from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from core.store.errors import InvalidInput

FREE_ATTEMPTS = 3
BASE_LOCK_S = 2.0
MAX_LOCK_S = 15 * 60.0
MIN_PASSWORD_LENGTH = 8

# argon2-cffi's defaults (RFC 9106 low-memory profile). Tests swap in a cheaper hasher.
_hasher = PasswordHasher()


def set_hasher(hasher: PasswordHasher) -> PasswordHasher:
    """Replace the module hasher (tests use cheap parameters); returns the previous one."""
    global _hasher
    previous, _hasher = _hasher, hasher
    return previous


def check_password_policy(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if password != password.strip():
        raise InvalidInput("a password may not start or end with white space")


def hash_password(password: str) -> str:
    check_password_policy(password)
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


def lock_seconds(failed_attempts: int) -> float:
    """How long the account stays locked after this many consecutive failures."""
    if failed_attempts < FREE_ATTEMPTS:
        return 0.0
    return min(MAX_LOCK_S, BASE_LOCK_S * 2 ** (failed_attempts - FREE_ATTEMPTS))
