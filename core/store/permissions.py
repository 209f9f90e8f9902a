"""Who may do what: the role rules, checked in core on every call.

The acting user is re-read from the database inside the transaction, so a
caller cannot pass a home-made ``UserInfo`` with a stronger role, and a user
disabled a second ago is refused at once. The command-line tools act as a
:class:`SystemActor` (whoever can run them already holds the database
credentials); it has the admin's rights and is named in the audit log.
"""
from __future__ import annotations

import getpass
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.store.errors import PermissionDenied
from core.store.schema import ScreeningQueueItem, User

# Action -> roles allowed. "Lane-bound" actions additionally need the bag's lane
# to be the inspector's (or the bag claimed by them from the remote queue).
RULES: dict[str, frozenset[str]] = {
    "record_bag": frozenset({"inspector", "admin"}),
    "import_bag": frozenset({"annotator", "supervisor", "admin"}),
    "decide": frozenset({"inspector", "admin"}),
    "edit_labels": frozenset({"inspector", "annotator", "admin"}),
    "review": frozenset({"supervisor", "admin"}),
    "manage_models": frozenset({"supervisor", "admin"}),
    "manage_jobs": frozenset({"supervisor", "admin"}),
    "manage_users": frozenset({"supervisor", "admin"}),
    "manage_lanes": frozenset({"admin"}),
    "view_stats": frozenset({"supervisor", "admin"}),
    "read_hard_samples": frozenset({"supervisor", "admin"}),
    "change_settings": frozenset({"supervisor", "admin"}),
    "claim_remote": frozenset({"inspector", "admin"}),
    "read": frozenset({"inspector", "supervisor", "annotator", "admin"}),
}
LANE_BOUND = frozenset({"record_bag", "decide", "edit_labels"})
# A supervisor manages the people they supervise; only an admin creates supervisors and admins.
SUPERVISOR_MANAGES = frozenset({"inspector", "annotator"})


@dataclass(frozen=True)
class SystemActor:
    """The operator of a command-line tool; admin rights, named in the audit trail."""
    name: str = ""

    @property
    def label(self) -> str:
        return f"system:{self.name or getpass.getuser()}"


@dataclass(frozen=True)
class Actor:
    """The acting user as the database knows them right now."""
    id: int | None
    name: str
    role: str
    lane_id: int | None


def load_actor(session: Session, actor: object) -> Actor:
    """Resolve the caller to an :class:`Actor`, refusing unknown or disabled users."""
    if isinstance(actor, SystemActor):
        return Actor(id=None, name=actor.label, role="admin", lane_id=None)
    user_id = getattr(actor, "id", None)
    if not isinstance(user_id, int):
        raise PermissionDenied(f"not a user: {actor!r}")
    row = session.get(User, user_id)
    if row is None or not row.active:
        raise PermissionDenied(f"user id {user_id} does not exist or is disabled")
    return Actor(id=row.id, name=row.name, role=row.role, lane_id=row.lane_id)


def require(session: Session, actor: Actor, action: str, *, bag_lane_id: int | None = None,
            bag_id: int | None = None) -> None:
    """Raise PermissionDenied unless ``actor`` may do ``action`` (on this bag's lane)."""
    allowed = RULES.get(action)
    if allowed is None:
        raise ValueError(f"unknown action {action!r}")
    if actor.role not in allowed:
        raise PermissionDenied(f"{actor.name} ({actor.role}) may not {action.replace('_', ' ')}")
    if actor.role == "inspector" and action in LANE_BOUND and bag_lane_id is not None:
        if actor.lane_id == bag_lane_id:
            return
        if bag_id is not None and _claimed_by(session, bag_id, actor.id):
            return
        raise PermissionDenied(f"{actor.name} (inspector of lane {actor.lane_id}) may not "
                               f"{action.replace('_', ' ')} bag {bag_id} of lane {bag_lane_id}")


def _claimed_by(session: Session, bag_id: int, user_id: int | None) -> bool:
    return session.execute(select(ScreeningQueueItem.id).where(
        ScreeningQueueItem.bag_id == bag_id, ScreeningQueueItem.claimed_by == user_id)).first() is not None


def require_can_manage_role(actor: Actor, role: str) -> None:
    if actor.role == "admin":
        return
    if actor.role == "supervisor" and role in SUPERVISOR_MANAGES:
        return
    raise PermissionDenied(f"{actor.name} ({actor.role}) may not manage {role} accounts")
