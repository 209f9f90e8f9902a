"""Remote screening: one FIFO queue of bags from all lanes; each goes to one inspector once.

``claim`` takes the oldest unclaimed bag. On PostgreSQL the row is selected
``FOR UPDATE SKIP LOCKED``, so concurrent inspectors never wait on each
other nor take the same bag; on SQLite the write transaction (BEGIN
IMMEDIATE) makes the select-and-mark atomic, which gives the same contract.
A claim whose inspector went away (workstation died) can be released back to
its place in the queue, by the claimer or by a supervisor.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.store.base import RepoBase, bag_info
from core.store.errors import InvalidState
from core.store.permissions import load_actor, require
from core.store.schema import Bag, Decision, ScreeningQueueItem, as_utc, utcnow
from core.store.values import QueueClaim


class ScreeningQueue(RepoBase):
    def enqueue(self, who: object, bag_id: int) -> int:
        """Put a recorded bag in the remote-screening queue (idempotent); returns its queue id."""
        def work(session: Session) -> int:
            bag = self.get_or_404(session, Bag, bag_id, "bag")
            actor = self.actor(session, who, "record_bag", bag_lane_id=bag.lane_id)
            existing = session.execute(select(ScreeningQueueItem.id)
                                       .where(ScreeningQueueItem.bag_id == bag_id)).scalar_one_or_none()
            if existing is not None:
                return existing
            item = ScreeningQueueItem(bag_id=bag_id)
            session.add(item)
            session.flush()
            self.audit(session, actor, "queue.enqueue", "bag", bag_id, queue_id=item.id)
            return item.id
        return self.db.run(work)

    def claim(self, who: object) -> QueueClaim | None:
        """The oldest waiting bag, now assigned to the caller; None when the queue is empty."""
        def work(session: Session) -> QueueClaim | None:
            actor = self.actor(session, who, "claim_remote")
            if actor.id is None:
                raise InvalidState("only a logged-in inspector can take bags from the queue")
            item = session.execute(
                select(ScreeningQueueItem).where(ScreeningQueueItem.claimed_by.is_(None))
                .order_by(ScreeningQueueItem.id).limit(1)
                .with_for_update(skip_locked=True)).scalar_one_or_none()
            if item is None:
                return None
            item.claimed_by, item.claimed_at = actor.id, utcnow()
            bag = session.get(Bag, item.bag_id)
            self.audit(session, actor, "queue.claim", "bag", item.bag_id, queue_id=item.id)
            return QueueClaim(queue_id=item.id, bag=bag_info(bag), claimed_at=as_utc(item.claimed_at))
        return self.db.run(work)

    def release(self, who: object, bag_id: int) -> None:
        """Put a claimed, undecided bag back at its place in the queue (claimer or supervisor)."""
        def work(session: Session) -> None:
            actor = load_actor(session, who)
            item = session.execute(select(ScreeningQueueItem).where(ScreeningQueueItem.bag_id == bag_id)
                                   .with_for_update()).scalar_one_or_none()
            if item is None or item.claimed_by is None:
                raise InvalidState(f"bag {bag_id} is not claimed from the remote-screening queue")
            if item.claimed_by != actor.id:
                require(session, actor, "review")  # only supervisors release someone else's claim
            if self._decided(session, item):
                raise InvalidState(f"bag {bag_id} was already decided by its inspector")
            previous = item.claimed_by
            item.claimed_by, item.claimed_at = None, None
            self.audit(session, actor, "queue.release", "bag", bag_id, queue_id=item.id, was_claimed_by=previous)
        self.db.run(work)

    def release_stale(self, who: object, older_than: dt.timedelta) -> list[int]:
        """Return to the queue the bags claimed longer ago than ``older_than`` and still undecided
        (an inspector whose workstation died); returns their bag ids."""
        def work(session: Session) -> list[int]:
            actor = self.actor(session, who, "review")
            cutoff = utcnow() - older_than
            items = session.scalars(select(ScreeningQueueItem).where(
                ScreeningQueueItem.claimed_by.is_not(None), ScreeningQueueItem.claimed_at < cutoff)
                .order_by(ScreeningQueueItem.id).with_for_update(skip_locked=True)).all()
            released = []
            for item in items:
                if not self._decided(session, item):
                    self.audit(session, actor, "queue.release", "bag", item.bag_id, queue_id=item.id,
                               was_claimed_by=item.claimed_by, stale=True)
                    item.claimed_by, item.claimed_at = None, None
                    released.append(item.bag_id)
            return released
        return self.db.run(work)

    @staticmethod
    def _decided(session: Session, item: ScreeningQueueItem) -> bool:
        query = select(Decision.id).where(Decision.bag_id == item.bag_id, Decision.user_id == item.claimed_by)
        return session.execute(query.limit(1)).first() is not None

    def waiting(self) -> int:
        return self.db.run(lambda s: s.scalar(select(func.count(ScreeningQueueItem.id))
                                              .where(ScreeningQueueItem.claimed_by.is_(None))) or 0, write=False)
