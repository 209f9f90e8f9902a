"""Users, lanes and login."""
from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.store import auth
from core.store.base import RepoBase, user_info
from core.store.errors import AuthError, InvalidInput, LoginLocked, NotFound
from core.store.permissions import Actor, load_actor, require_can_manage_role
from core.store.schema import ROLES, Lane, User, as_utc, utcnow
from core.store.values import LaneInfo, UserInfo

log = logging.getLogger(__name__)
MAX_NAME_LENGTH = 100


def _check_name(name: str, what: str) -> str:
    cleaned = (name or "").strip()
    if not cleaned or len(cleaned) > MAX_NAME_LENGTH or any(c.isspace() for c in cleaned):
        raise InvalidInput(f"{what} name {name!r} must be 1-{MAX_NAME_LENGTH} characters without spaces")
    return cleaned


class UsersRepo(RepoBase):
    # -- lanes -------------------------------------------------------------------------------
    def add_lane(self, who: object, name: str, description: str = "") -> LaneInfo:
        name = _check_name(name, "lane")

        def work(session: Session) -> LaneInfo:
            actor = self.actor(session, who, "manage_lanes")
            existing = session.execute(select(Lane).where(Lane.name == name)).scalar_one_or_none()
            if existing is not None:
                raise InvalidInput(f"lane {name!r} already exists")
            lane = Lane(name=name, description=description)
            session.add(lane)
            session.flush()
            self.audit(session, actor, "lane.add", "lane", lane.id, name=name)
            return LaneInfo(lane.id, lane.name, lane.description)
        return self.db.run(work)

    def lanes(self) -> list[LaneInfo]:
        return self.db.run(lambda s: [LaneInfo(r.id, r.name, r.description)
                                      for r in s.scalars(select(Lane).order_by(Lane.id))], write=False)

    def lane_by_name(self, name: str) -> LaneInfo:
        def work(session: Session) -> LaneInfo:
            row = session.execute(select(Lane).where(Lane.name == name)).scalar_one_or_none()
            if row is None:
                raise NotFound(f"lane {name!r} does not exist")
            return LaneInfo(row.id, row.name, row.description)
        return self.db.run(work, write=False)

    # -- users -------------------------------------------------------------------------------
    def add(self, who: object, name: str, role: str, password: str, *, lane_id: int | None = None) -> UserInfo:
        name = _check_name(name, "user")
        if role not in ROLES:
            raise InvalidInput(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
        # Hash outside the transaction: argon2 is deliberately slow and must not hold the write lock.
        password_hash = auth.hash_password(password)

        def work(session: Session) -> UserInfo:
            actor = self.actor(session, who, "manage_users")
            require_can_manage_role(actor, role)
            if session.execute(select(User.id).where(User.name == name)).first() is not None:
                raise InvalidInput(f"user {name!r} already exists")
            if lane_id is not None:
                self.get_or_404(session, Lane, lane_id, "lane")
            user = User(name=name, role=role, password_hash=password_hash, active=True, lane_id=lane_id,
                        failed_logins=0)
            session.add(user)
            try:
                session.flush()
            except IntegrityError as exc:  # a concurrent add of the same name
                raise InvalidInput(f"user {name!r} already exists") from exc
            self.audit(session, actor, "user.add", "user", user.id, name=name, role=role, lane_id=lane_id)
            return user_info(user)
        return self.db.run(work)

    def _by_name(self, session: Session, name: str, *, lock: bool = False) -> User:
        query = select(User).where(User.name == name)
        if lock:
            query = query.with_for_update()
        row = session.execute(query).scalar_one_or_none()
        if row is None:
            raise NotFound(f"user {name!r} does not exist")
        return row

    def get(self, name: str) -> UserInfo:
        return self.db.run(lambda s: user_info(self._by_name(s, name)), write=False)

    def list(self) -> list[UserInfo]:
        return self.db.run(lambda s: [user_info(u) for u in s.scalars(select(User).order_by(User.name))],
                           write=False)

    def count(self) -> int:
        return self.db.run(lambda s: s.scalar(select(func.count(User.id))) or 0, write=False)

    def set_password(self, who: object, name: str, password: str) -> None:
        password_hash = auth.hash_password(password)

        def work(session: Session) -> None:
            actor = self._managing(session, who, name, allow_self=True)
            user = self._by_name(session, name, lock=True)
            user.password_hash = password_hash
            user.failed_logins, user.locked_until = 0, None
            self.audit(session, actor, "user.passwd", "user", user.id, name=name)
        self.db.run(work)

    def disable(self, who: object, name: str) -> None:
        def work(session: Session) -> None:
            actor = self._managing(session, who, name, allow_self=False)
            user = self._by_name(session, name, lock=True)
            if not user.active:
                return
            user.active = False
            self.audit(session, actor, "user.disable", "user", user.id, name=name)
        self.db.run(work)

    def set_lane(self, who: object, name: str, lane_id: int | None) -> None:
        def work(session: Session) -> None:
            actor = self._managing(session, who, name, allow_self=False)
            user = self._by_name(session, name, lock=True)
            if lane_id is not None:
                self.get_or_404(session, Lane, lane_id, "lane")
            user.lane_id = lane_id
            self.audit(session, actor, "user.set_lane", "user", user.id, name=name, lane_id=lane_id)
        self.db.run(work)

    def logout(self, who: object) -> None:
        """Audit the end of a session (the workstation logs out only once every pending write is saved)."""
        def work(session: Session) -> None:
            actor = load_actor(session, who)
            self.audit(session, actor, "user.logout", "user", actor.id)
        self.db.run(work)

    def _managing(self, session: Session, who: object, name: str, *, allow_self: bool) -> Actor:
        actor = load_actor(session, who)
        target = self._by_name(session, name)
        if allow_self and actor.id == target.id:
            return actor
        self.actor(session, who, "manage_users")
        require_can_manage_role(actor, target.role)
        return actor

    # -- login -------------------------------------------------------------------------------
    def login(self, name: str, password: str, *, now: dt.datetime | None = None) -> UserInfo:
        """The user if the password is right; AuthError / LoginLocked otherwise.

        Each attempt, right or wrong, is committed before returning, so the
        failure count holds even when attempts come from several workstations.
        """
        now = now or utcnow()

        def work(session: Session) -> tuple[UserInfo | None, Exception | None]:
            user = session.execute(select(User).where(User.name == name).with_for_update()).scalar_one_or_none()
            if user is None or not user.active:
                # Same message as a wrong password: don't reveal which accounts exist.
                return None, AuthError("wrong user name or password")
            locked_until = as_utc(user.locked_until)
            if locked_until is not None and locked_until > now:
                wait = (locked_until - now).total_seconds()
                return None, LoginLocked(f"too many failed logins for {name}: try again in {wait:.0f} s", wait)
            if not auth.verify_password(user.password_hash, password):
                user.failed_logins += 1
                user.last_failed_login = now
                lock = auth.lock_seconds(user.failed_logins)
                user.locked_until = now + dt.timedelta(seconds=lock) if lock else None
                self.audit(session, Actor(user.id, user.name, user.role, user.lane_id), "user.login_failed",
                           "user", user.id, failed_logins=user.failed_logins, locked_s=lock)
                if lock:
                    return None, LoginLocked(f"wrong password for {name}; too many failures: "
                                             f"locked for {lock:.0f} s", lock)
                return None, AuthError("wrong user name or password")
            if auth.needs_rehash(user.password_hash):
                user.password_hash = auth.hash_password(password)
            user.failed_logins, user.locked_until, user.last_login = 0, None, now
            self.audit(session, Actor(user.id, user.name, user.role, user.lane_id), "user.login", "user", user.id)
            return user_info(user), None

        # The counters must be committed even when the attempt fails, so the error
        # is returned from the unit of work and raised only after the commit.
        info, error = self.db.run(work)
        if error is not None:
            log.info("login refused for %r: %s", name, error)
            raise error
        assert info is not None
        return info
