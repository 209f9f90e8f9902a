"""What every repository shares: the database, the audit trail, ORM-to-value conversion."""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core.store import audit
from core.store.engine import Database
from core.store.errors import NotFound
from core.store.permissions import Actor, load_actor, require
from core.store.schema import (AnnotationRevision, Bag, Base, Decision, ModelVersion, Review, TrainingJob,
                               User, as_utc)
from core.store.values import (BagInfo, Box, DecisionInfo, LabelRevision, ModelVersionInfo, ReviewInfo,
                               TrainingJobInfo, UserInfo)


class RepoBase:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- helpers used inside units of work -------------------------------------------------
    @staticmethod
    def actor(session: Session, who: object, action: str, **scope: Any) -> Actor:
        resolved = load_actor(session, who)
        require(session, resolved, action, **scope)
        return resolved

    @staticmethod
    def get_or_404(session: Session, model: type[Base], key: int, what: str, *, lock: bool = False) -> Any:
        row = session.get(model, key, with_for_update=lock or None)
        if row is None:
            raise NotFound(f"{what} {key} does not exist")
        return row

    @staticmethod
    def audit(session: Session, actor: Actor, action: str, entity: str, entity_id: object,
              **details: Any) -> None:
        audit.append(session, actor=actor.name, action=action, entity=entity, entity_id=entity_id,
                     details=details)


# -- conversions (called inside the transaction that loaded the rows) ------------------------
def user_info(row: User) -> UserInfo:
    return UserInfo(id=row.id, name=row.name, role=row.role, active=row.active, lane_id=row.lane_id)


def bag_info(row: Bag) -> BagInfo:
    return BagInfo(id=row.id, uid=row.uid, lane_id=row.lane_id, scanned_at=as_utc(row.scanned_at),
                   image_sha256=row.image_sha256, width=row.width, height=row.height, source=row.source,
                   screening_model_id=row.screening_model_id)


def decision_info(row: Decision, review: Review | None = None) -> DecisionInfo:
    return DecisionInfo(id=row.id, request_id=row.request_id, bag_id=row.bag_id, user_id=row.user_id,
                        verdict=row.verdict, opened_at=as_utc(row.opened_at), decided_at=as_utc(row.decided_at),
                        review_id=review.id if review else None, review_reason=review.reason if review else None)


def revision_info(row: AnnotationRevision) -> LabelRevision:
    return LabelRevision(bag_id=row.bag_id, version=row.version, author_id=row.author_id, origin=row.origin,
                         created_at=as_utc(row.created_at),
                         boxes=tuple(Box(b.class_name, b.x1, b.y1, b.x2, b.y2) for b in row.boxes))


def review_info(row: Review) -> ReviewInfo:
    return ReviewInfo(id=row.id, bag_id=row.bag_id, decision_id=row.decision_id, reason=row.reason,
                      state=row.state, assigned_to=row.assigned_to, outcome=row.outcome, comment=row.comment,
                      resolved_by=row.resolved_by, created_at=as_utc(row.created_at),
                      updated_at=as_utc(row.updated_at))


def model_info(row: ModelVersion) -> ModelVersionInfo:
    return ModelVersionInfo(id=row.id, name=row.name, arch=row.arch, attention=row.attention, path=row.path,
                            sha256=row.sha256, parent_id=row.parent_id, status=row.status, metrics=row.metrics,
                            job_id=row.job_id, created_at=as_utc(row.created_at),
                            activated_at=as_utc(row.activated_at))


def job_info(row: TrainingJob) -> TrainingJobInfo:
    return TrainingJobInfo(id=row.id, state=row.state, settings=dict(row.settings or {}),
                           base_model_id=row.base_model_id, result_model_id=row.result_model_id,
                           hard_sample_count=row.hard_sample_count, progress=row.progress, metrics=row.metrics,
                           log_path=row.log_path, error=row.error, created_by=row.created_by,
                           created_at=as_utc(row.created_at), started_at=as_utc(row.started_at),
                           finished_at=as_utc(row.finished_at))
