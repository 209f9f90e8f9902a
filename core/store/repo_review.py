"""The review queue: which decisions a supervisor looks at, and what they do with them.

A bag is flagged when its decision is recorded (same transaction) if:
the inspector said suspect; the inspector cleared a TIP bag (a missed test
threat); the screening model alarmed and the inspector cleared it; or, for
quality control, at random with the share set in the ``review.qc_share``
setting. A review goes open -> assigned -> (returned -> assigned ...) ->
resolved, with outcome ``confirmed`` or ``overruled`` (the supervisor's own
verdict is then recorded as a new decision; the inspector's stays).
"""
from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.store.base import RepoBase, review_info
from core.store.errors import InvalidInput, InvalidState, PermissionDenied
from core.store.schema import REVIEW_STATES, VERDICTS, Bag, Decision, Prediction, Review, Setting, User, utcnow
from core.store.values import ReviewInfo

QC_SHARE_SETTING = "review.qc_share"
DEFAULT_QC_SHARE = 0.02


def qc_share(session: Session) -> float:
    row = session.get(Setting, QC_SHARE_SETTING)
    return float(row.value) if row is not None else DEFAULT_QC_SHARE


def model_alarmed(session: Session, bag: Bag, alarm_threshold: float) -> bool:
    if bag.screening_model_id is None:
        return False
    hit = session.execute(select(Prediction.id).where(
        Prediction.bag_id == bag.id, Prediction.model_version_id == bag.screening_model_id,
        Prediction.score >= alarm_threshold).limit(1)).first()
    return hit is not None


def flag_reason(session: Session, bag: Bag, verdict: str, *, draw: float, qc_share: float,
                alarm_threshold: float) -> str | None:
    """Why this decision goes to review, or None. The first matching rule names it."""
    if verdict == "suspect":
        return "inspector_suspect"
    if bag.source == "tip":
        return "tip_missed"
    if model_alarmed(session, bag, alarm_threshold):
        return "model_alarm_cleared"
    if draw < qc_share:
        return "random_qc"
    return None


class ReviewsRepo(RepoBase):
    def set_qc_share(self, who: object, share: float) -> None:
        if not 0.0 <= float(share) <= 1.0:
            raise InvalidInput(f"the QC share must be within [0, 1], got {share}")

        def work(session: Session) -> None:
            actor = self.actor(session, who, "change_settings")
            row = session.get(Setting, QC_SHARE_SETTING)
            old = row.value if row else DEFAULT_QC_SHARE
            if row is None:
                session.add(Setting(key=QC_SHARE_SETTING, value=float(share)))
            else:
                row.value = float(share)
            self.audit(session, actor, "setting.change", "setting", QC_SHARE_SETTING, old=old, new=float(share))
        self.db.run(work)

    def get_qc_share(self) -> float:
        return self.db.run(qc_share, write=False)

    def list(self, who: object, *, states: tuple[str, ...] = ("open", "assigned", "returned"),
             limit: int = 200) -> list[ReviewInfo]:
        unknown = set(states) - set(REVIEW_STATES)
        if unknown:
            raise InvalidInput(f"unknown review state(s) {sorted(unknown)}")

        def work(session: Session) -> list[ReviewInfo]:
            self.actor(session, who, "review")
            rows = session.scalars(select(Review).where(Review.state.in_(states)).order_by(Review.id).limit(limit))
            return [review_info(r) for r in rows]
        return self.db.run(work, write=False)

    def get(self, who: object, review_id: int) -> ReviewInfo:
        def work(session: Session) -> ReviewInfo:
            self.actor(session, who, "review")
            return review_info(self.get_or_404(session, Review, review_id, "review"))
        return self.db.run(work, write=False)

    def assign(self, who: object, review_id: int, supervisor_id: int | None = None) -> ReviewInfo:
        """Assign to a supervisor (default: the caller)."""
        def work(session: Session) -> ReviewInfo:
            actor = self.actor(session, who, "review")
            target = supervisor_id if supervisor_id is not None else actor.id
            if target is None:
                raise InvalidInput("the command-line operator must name the supervisor to assign to")
            user = self.get_or_404(session, User, target, "user")
            if user.role not in ("supervisor", "admin") or not user.active:
                raise InvalidInput(f"{user.name} ({user.role}) cannot take reviews")
            review = self.get_or_404(session, Review, review_id, "review", lock=True)
            if review.state == "resolved":
                raise InvalidState(f"review {review_id} is already resolved")
            review.state, review.assigned_to, review.updated_at = "assigned", target, utcnow()
            self.audit(session, actor, "review.assign", "review", review_id, assigned_to=target)
            return review_info(review)
        return self.db.run(work)

    def return_(self, who: object, review_id: int, comment: str) -> ReviewInfo:
        """Give an assigned review back unresolved (with the reason), for someone else to take."""
        def work(session: Session) -> ReviewInfo:
            actor = self.actor(session, who, "review")
            review = self._owned(session, actor, review_id)
            if review.state != "assigned":
                raise InvalidState(f"review {review_id} is {review.state}; only an assigned review can be returned")
            review.state, review.assigned_to, review.updated_at = "returned", None, utcnow()
            review.comment = _append_comment(review.comment, actor.name, comment)
            self.audit(session, actor, "review.return", "review", review_id, comment=comment)
            return review_info(review)
        return self.db.run(work)

    def resolve(self, who: object, review_id: int, comment: str = "") -> ReviewInfo:
        """Confirm the inspector's decision."""
        return self._close(who, review_id, "confirmed", comment, None)

    def overrule(self, who: object, review_id: int, verdict: str, comment: str) -> ReviewInfo:
        """Replace the inspector's verdict with the supervisor's (recorded as a new decision)."""
        if verdict not in VERDICTS:
            raise InvalidInput(f"unknown verdict {verdict!r}")
        if not comment.strip():
            raise InvalidInput("overruling a decision needs a comment saying why")
        return self._close(who, review_id, "overruled", comment, verdict)

    def _close(self, who: object, review_id: int, outcome: str, comment: str, verdict: str | None) -> ReviewInfo:
        request_id = uuid.uuid4().hex

        def work(session: Session) -> ReviewInfo:
            actor = self.actor(session, who, "review")
            review = self._owned(session, actor, review_id)
            if review.state == "resolved":
                raise InvalidState(f"review {review_id} is already resolved ({review.outcome})")
            now = utcnow()
            if verdict is not None:
                if actor.id is None:
                    raise InvalidState("the command-line operator cannot overrule: log in as a supervisor")
                original = self.get_or_404(session, Decision, review.decision_id, "decision")
                if verdict == original.verdict:
                    raise InvalidInput(f"the inspector already said {verdict}: resolve instead of overruling")
                session.add(Decision(request_id=request_id, bag_id=review.bag_id, user_id=actor.id, verdict=verdict,
                                     opened_at=now, decided_at=now))
            review.state, review.outcome, review.resolved_by, review.updated_at = "resolved", outcome, actor.id, now
            if review.assigned_to is None:
                review.assigned_to = actor.id
            review.comment = _append_comment(review.comment, actor.name, comment)
            self.audit(session, actor, f"review.{outcome}", "review", review_id, verdict=verdict, comment=comment)
            return review_info(review)
        return self.db.run(work)

    @staticmethod
    def _owned(session: Session, actor, review_id: int) -> Review:  # noqa: ANN001
        review = RepoBase.get_or_404(session, Review, review_id, "review", lock=True)
        if review.assigned_to not in (None, actor.id) and actor.role != "admin":
            raise PermissionDenied(f"review {review_id} is assigned to user {review.assigned_to}, not {actor.name}")
        return review


def _append_comment(existing: str, author: str, comment: str) -> str:
    comment = comment.strip()
    if not comment:
        return existing
    line = f"[{utcnow():%Y-%m-%d %H:%M} {author}] {comment}"
    return f"{existing}\n{line}" if existing else line
