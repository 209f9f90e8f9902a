"""The tables (SQLAlchemy 2 typed ORM), shared by SQLite and PostgreSQL.

Rules that the database itself can hold are written here as constraints, so
that no code path (nor a second workstation running older code) can break
them: one active model (a partial unique index), one label revision per
version number and bag (the optimistic-concurrency check), one decision per
request id (idempotent retries), closed sets of roles and states (CHECKs).

Timestamps are stored in UTC; SQLite hands them back naive, so callers go
through :func:`as_utc`. Alembic migrations in ``migrations/versions`` create
the same schema; ``db check`` compares the two.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (JSON, Boolean, CheckConstraint, DateTime, Float, ForeignKey, Index, Integer,
                        MetaData, String, Text, UniqueConstraint, text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ROLES = ("inspector", "supervisor", "annotator", "admin")
BAG_SOURCES = ("lane", "import", "tip")
VERDICTS = ("clear", "suspect")
MODEL_STATUSES = ("candidate", "active", "retired", "rejected")
REVISION_ORIGINS = ("accepted_prediction", "moved", "resized", "relabelled", "added", "deleted",
                    "imported", "mixed")
REVIEW_STATES = ("open", "assigned", "returned", "resolved")
REVIEW_REASONS = ("inspector_suspect", "model_alarm_cleared", "tip_missed", "random_qc")
REVIEW_OUTCOMES = ("confirmed", "overruled")
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")

# Stable constraint names make Alembic migrations reproducible on both engines.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """A timestamp read back from either engine as an aware UTC datetime."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: DateTime(timezone=True), dict[str, Any]: JSON}


class Lane(Base):
    """A scanner lane or remote-screening workstation."""
    __tablename__ = "lanes"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_one_of("role", ROLES), name="role"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    # An argon2 PHC string ("$argon2id$..."); never a plaintext password.
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    lane_id: Mapped[int | None] = mapped_column(ForeignKey("lanes.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Login rate limiting lives in the database so that every workstation sees it.
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_login: Mapped[dt.datetime | None]
    locked_until: Mapped[dt.datetime | None]
    last_login: Mapped[dt.datetime | None]


class Bag(Base):
    __tablename__ = "bags"
    __table_args__ = (CheckConstraint(_one_of("source", BAG_SOURCES), name="source"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    # Client-chosen unique id: a retried insert after a lost connection finds the first one.
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    lane_id: Mapped[int] = mapped_column(ForeignKey("lanes.id"), index=True)
    scanned_at: Mapped[dt.datetime] = mapped_column(index=True)
    image_sha256: Mapped[str] = mapped_column(String(64), index=True)
    width: Mapped[int]
    height: Mapped[int]
    source: Mapped[str] = mapped_column(String(10))
    # For TIP bags, the projected threats (list of boxes); never shown to the inspector.
    tip_truth: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # The model whose predictions the inspector saw (set even when it found nothing).
    screening_model_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    screened_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TrainingJob(Base):
    __tablename__ = "training_jobs"
    __table_args__ = (CheckConstraint(_one_of("state", JOB_STATES), name="state"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[str] = mapped_column(String(12), default="queued", index=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    base_model_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    result_model_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    hard_sample_count: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    log_path: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        CheckConstraint(_one_of("status", MODEL_STATUSES), name="status"),
        # At most one active model, enforced by the database on both engines.
        Index("uq_model_versions_one_active", "status", unique=True,
              sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'")),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    arch: Mapped[str] = mapped_column(String(50))
    attention: Mapped[str] = mapped_column(String(50), default="none")
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    status: Mapped[str] = mapped_column(String(12), default="candidate")
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # use_alter: jobs point at models and models at jobs; this side is added after both tables.
    job_id: Mapped[int | None] = mapped_column(ForeignKey("training_jobs.id", use_alter=True))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[dt.datetime | None]


class Prediction(Base):
    __tablename__ = "predictions"
    id: Mapped[int] = mapped_column(primary_key=True)
    bag_id: Mapped[int] = mapped_column(ForeignKey("bags.id"), index=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    class_name: Mapped[str] = mapped_column(String(50))
    score: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Decision(Base):
    __tablename__ = "decisions"
    __table_args__ = (CheckConstraint(_one_of("verdict", VERDICTS), name="verdict"),
                      Index("ix_decisions_user_decided", "user_id", "decided_at"))
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(String(36), unique=True)
    bag_id: Mapped[int] = mapped_column(ForeignKey("bags.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    verdict: Mapped[str] = mapped_column(String(10))
    opened_at: Mapped[dt.datetime]
    decided_at: Mapped[dt.datetime]


class AnnotationRevision(Base):
    """One full label set of a bag; never updated, the newest version is the truth."""
    __tablename__ = "annotation_revisions"
    __table_args__ = (
        UniqueConstraint("bag_id", "version", name="uq_annotation_revisions_bag_version"),
        CheckConstraint(_one_of("origin", REVISION_ORIGINS), name="origin"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    bag_id: Mapped[int] = mapped_column(ForeignKey("bags.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    origin: Mapped[str] = mapped_column(String(24))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    boxes: Mapped[list["AnnotationBox"]] = relationship(
        order_by="AnnotationBox.position", cascade="all, delete-orphan", lazy="selectin")


class AnnotationBox(Base):
    __tablename__ = "annotation_boxes"
    id: Mapped[int] = mapped_column(primary_key=True)
    revision_id: Mapped[int] = mapped_column(ForeignKey("annotation_revisions.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    class_name: Mapped[str] = mapped_column(String(50))
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)


class Review(Base):
    __tablename__ = "reviews"
    __table_args__ = (
        CheckConstraint(_one_of("state", REVIEW_STATES), name="state"),
        CheckConstraint(_one_of("reason", REVIEW_REASONS), name="reason"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    bag_id: Mapped[int] = mapped_column(ForeignKey("bags.id"), index=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"), unique=True)
    reason: Mapped[str] = mapped_column(String(24))
    state: Mapped[str] = mapped_column(String(10), default="open", index=True)
    assigned_to: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    outcome: Mapped[str | None] = mapped_column(String(12))
    comment: Mapped[str] = mapped_column(Text, default="")
    resolved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ScreeningQueueItem(Base):
    """Remote screening: bags wait here in arrival order until one inspector claims each."""
    __tablename__ = "screening_queue"
    id: Mapped[int] = mapped_column(primary_key=True)
    bag_id: Mapped[int] = mapped_column(ForeignKey("bags.id"), unique=True)
    enqueued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    claimed_at: Mapped[dt.datetime | None]


class Setting(Base):
    """Store-wide settings shared by all workstations (e.g. the random QC share)."""
    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)


class AuditEntry(Base):
    """The audit trail, chained: ``hash = sha256(prev_hash + canonical row)``."""
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    at: Mapped[dt.datetime]
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    entity: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[str] = mapped_column(String(64))
    # Canonical JSON text (sorted keys): hashed exactly as stored.
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
