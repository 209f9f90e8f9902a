"""Exceptions raised by the store; each carries a message fit to show a user."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from core.store.values import Box


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class SchemaError(StoreError):
    """The database is not ours, not a database, or at a schema revision we don't know."""


class StoreUnavailable(StoreError):
    """The database server could not be reached, even after retrying."""


class StoreBusy(StoreError):
    """The database stayed locked by another writer for longer than the busy timeout."""


class NotFound(StoreError):
    """A bag, user, model, review or job that does not exist."""


class PermissionDenied(StoreError):
    """The acting user's role (or lane) does not allow this call."""


class InvalidState(StoreError):
    """The call is not allowed in the object's current state (e.g. promote a rejected model)."""


class InvalidInput(StoreError, ValueError):
    """A value that the rules refuse (unknown class, empty box, bad role...)."""


class AuthError(StoreError):
    """Wrong user name or password, or a disabled account (deliberately not saying which)."""


class LoginLocked(AuthError):
    """Too many failed attempts: the account refuses logins until ``retry_after_s`` has passed."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ConflictError(StoreError):
    """Another session saved newer labels for the bag first; ``current`` holds them."""

    def __init__(self, message: str, bag_id: int, current_version: int,
                 current_boxes: "tuple[Box, ...]") -> None:
        super().__init__(message)
        self.bag_id = bag_id
        self.current_version = current_version
        self.current_boxes = current_boxes
