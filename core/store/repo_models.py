"""Model versions (the registry) and training jobs.

A model is registered as a ``candidate`` with the sha256 of its file. A
supervisor promotes it to ``active`` (the previous active one is retired in
the same transaction; a partial unique index guarantees one active model),
rejects it, or rolls back to the model that was active before.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.store.base import RepoBase, job_info, model_info
from core.store.errors import InvalidInput, InvalidState
from core.store.schema import JOB_STATES, MODEL_STATUSES, ModelVersion, TrainingJob, utcnow
from core.store.values import ModelVersionInfo, TrainingJobInfo


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class ModelsRepo(RepoBase):
    def register(self, who: object, *, name: str, arch: str, path: Path | str, attention: str = "none",
                 sha256: str | None = None, parent_id: int | None = None, metrics: dict[str, Any] | None = None,
                 job_id: int | None = None) -> ModelVersionInfo:
        """Register a model file as a candidate; its sha256 is computed (and checked if given)."""
        path = Path(path)
        if path.is_file():
            actual = file_sha256(path)
            if sha256 is not None and sha256.lower() != actual:
                raise InvalidInput(f"model file {path} has sha256 {actual}, not the {sha256} given")
            sha256 = actual
        elif sha256 is None:
            raise InvalidInput(f"model file {path} does not exist and no sha256 was given")
        if len(sha256) != 64:
            raise InvalidInput(f"bad sha256 {sha256!r}")

        def work(session: Session) -> ModelVersionInfo:
            actor = self.actor(session, who, "manage_models")
            if session.execute(select(ModelVersion.id).where(ModelVersion.sha256 == sha256)).first():
                raise InvalidInput(f"a model with sha256 {sha256} is already registered")
            if parent_id is not None:
                self.get_or_404(session, ModelVersion, parent_id, "parent model version")
            if job_id is not None:
                self.get_or_404(session, TrainingJob, job_id, "training job")
            row = ModelVersion(name=name, arch=arch, attention=attention, path=str(path), sha256=sha256,
                               parent_id=parent_id, status="candidate", metrics=metrics, job_id=job_id,
                               created_by=actor.id)
            session.add(row)
            session.flush()
            self.audit(session, actor, "model.register", "model_version", row.id, name=name, sha256=sha256,
                       parent_id=parent_id, job_id=job_id)
            return model_info(row)
        return self.db.run(work)

    def promote(self, who: object, model_id: int) -> ModelVersionInfo:
        def work(session: Session) -> ModelVersionInfo:
            actor = self.actor(session, who, "manage_models")
            row = self.get_or_404(session, ModelVersion, model_id, "model version", lock=True)
            if row.status not in ("candidate", "retired"):
                raise InvalidState(f"model version {model_id} is {row.status}; only a candidate or retired "
                                   "model can be made active")
            previous = self._retire_active(session)
            row.status, row.activated_at = "active", utcnow()
            session.flush()
            self.audit(session, actor, "model.promote", "model_version", model_id,
                       previous_active=previous.id if previous else None)
            return model_info(row)
        return self._run_unique_active(work)

    def reject(self, who: object, model_id: int, reason: str = "") -> ModelVersionInfo:
        def work(session: Session) -> ModelVersionInfo:
            actor = self.actor(session, who, "manage_models")
            row = self.get_or_404(session, ModelVersion, model_id, "model version", lock=True)
            if row.status != "candidate":
                raise InvalidState(f"model version {model_id} is {row.status}; only a candidate can be rejected")
            row.status = "rejected"
            self.audit(session, actor, "model.reject", "model_version", model_id, reason=reason)
            return model_info(row)
        return self.db.run(work)

    def rollback(self, who: object) -> ModelVersionInfo:
        """Retire the active model and reactivate the one that was active before it."""
        def work(session: Session) -> ModelVersionInfo:
            actor = self.actor(session, who, "manage_models")
            current = session.execute(select(ModelVersion).where(ModelVersion.status == "active")
                                      .with_for_update()).scalar_one_or_none()
            if current is None:
                raise InvalidState("no model is active: nothing to roll back")
            previous = session.execute(
                select(ModelVersion).where(ModelVersion.status == "retired", ModelVersion.activated_at.is_not(None),
                                           ModelVersion.id != current.id)
                .order_by(ModelVersion.activated_at.desc()).limit(1).with_for_update()).scalar_one_or_none()
            if previous is None:
                raise InvalidState(f"model version {current.id} is the only one ever active: nothing to roll back to")
            current.status = "retired"
            session.flush()
            previous.status, previous.activated_at = "active", utcnow()
            session.flush()
            self.audit(session, actor, "model.rollback", "model_version", previous.id, retired=current.id)
            return model_info(previous)
        return self._run_unique_active(work)

    def _run_unique_active(self, work) -> ModelVersionInfo:  # noqa: ANN001
        try:
            return self.db.run(work)
        except IntegrityError as exc:  # two supervisors promoting at the same instant
            raise InvalidState("another model was made active at the same time; reload and try again") from exc

    @staticmethod
    def _retire_active(session: Session) -> ModelVersion | None:
        current = session.execute(select(ModelVersion).where(ModelVersion.status == "active")
                                  .with_for_update()).scalar_one_or_none()
        if current is not None:
            current.status = "retired"
            session.flush()  # before the new one turns active: the unique index is checked per statement
        return current

    def active(self) -> ModelVersionInfo | None:
        def work(session: Session) -> ModelVersionInfo | None:
            row = session.execute(select(ModelVersion).where(ModelVersion.status == "active")).scalar_one_or_none()
            return model_info(row) if row else None
        return self.db.run(work, write=False)

    def get(self, model_id: int) -> ModelVersionInfo:
        return self.db.run(lambda s: model_info(self.get_or_404(s, ModelVersion, model_id, "model version")),
                           write=False)

    def list(self, status: str | None = None) -> list[ModelVersionInfo]:
        if status is not None and status not in MODEL_STATUSES:
            raise InvalidInput(f"unknown model status {status!r}")

        def work(session: Session) -> list[ModelVersionInfo]:
            query = select(ModelVersion).order_by(ModelVersion.id)
            if status is not None:
                query = query.where(ModelVersion.status == status)
            return [model_info(r) for r in session.scalars(query)]
        return self.db.run(work, write=False)


# Allowed job transitions: from-state -> to-states.
_JOB_MOVES = {"queued": {"running", "cancelled", "failed"}, "running": {"succeeded", "failed", "cancelled"}}


class JobsRepo(RepoBase):
    def create(self, who: object, *, settings: dict[str, Any], base_model_id: int | None = None,
               hard_sample_count: int = 0) -> TrainingJobInfo:
        def work(session: Session) -> TrainingJobInfo:
            actor = self.actor(session, who, "manage_jobs")
            if actor.id is None:
                raise InvalidInput("a training job needs a real supervisor as its owner")
            if base_model_id is not None:
                self.get_or_404(session, ModelVersion, base_model_id, "base model version")
            job = TrainingJob(state="queued", settings=dict(settings), base_model_id=base_model_id,
                              hard_sample_count=int(hard_sample_count), created_by=actor.id, progress=0.0)
            session.add(job)
            session.flush()
            self.audit(session, actor, "job.create", "training_job", job.id, settings=settings,
                       base_model_id=base_model_id, hard_sample_count=hard_sample_count)
            return job_info(job)
        return self.db.run(work)

    def _move(self, who: object, job_id: int, state: str, **changes: Any) -> TrainingJobInfo:
        def work(session: Session) -> TrainingJobInfo:
            actor = self.actor(session, who, "manage_jobs")
            job = self.get_or_404(session, TrainingJob, job_id, "training job", lock=True)
            if state not in _JOB_MOVES.get(job.state, set()):
                raise InvalidState(f"training job {job_id} is {job.state}; it cannot become {state}")
            if changes.get("result_model_id") is not None:
                self.get_or_404(session, ModelVersion, changes["result_model_id"], "result model version")
            job.state = state
            for key, value in changes.items():
                setattr(job, key, value)
            if state == "running":
                job.started_at = utcnow()
            else:
                job.finished_at = utcnow()
            self.audit(session, actor, f"job.{state}", "training_job", job_id,
                       **{k: v for k, v in changes.items() if k != "metrics"})
            return job_info(job)
        return self.db.run(work)

    def start(self, who: object, job_id: int, *, log_path: str | None = None) -> TrainingJobInfo:
        return self._move(who, job_id, "running", log_path=log_path)

    def finish(self, who: object, job_id: int, *, result_model_id: int | None,
               metrics: dict[str, Any] | None = None) -> TrainingJobInfo:
        return self._move(who, job_id, "succeeded", result_model_id=result_model_id, metrics=metrics, progress=1.0)

    def fail(self, who: object, job_id: int, error: str) -> TrainingJobInfo:
        return self._move(who, job_id, "failed", error=error[:10_000])

    def cancel(self, who: object, job_id: int) -> TrainingJobInfo:
        return self._move(who, job_id, "cancelled")

    def report_progress(self, who: object, job_id: int, progress: float) -> None:
        """Progress is a display value, not a state change: updated in place and not audited."""
        def work(session: Session) -> None:
            self.actor(session, who, "manage_jobs")
            job = self.get_or_404(session, TrainingJob, job_id, "training job")
            if job.state != "running":
                raise InvalidState(f"training job {job_id} is {job.state}, not running")
            job.progress = min(1.0, max(0.0, float(progress)))
        self.db.run(work)

    def get(self, job_id: int) -> TrainingJobInfo:
        return self.db.run(lambda s: job_info(self.get_or_404(s, TrainingJob, job_id, "training job")), write=False)

    def list(self, states: tuple[str, ...] = JOB_STATES) -> list[TrainingJobInfo]:
        def work(session: Session) -> list[TrainingJobInfo]:
            rows = session.scalars(select(TrainingJob).where(TrainingJob.state.in_(states)).order_by(TrainingJob.id))
            return [job_info(r) for r in rows]
        return self.db.run(work, write=False)
