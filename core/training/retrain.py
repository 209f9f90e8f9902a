"""The retraining job: inspectors' corrections -> candidate model -> gate -> promoted or rejected.

One job, in order, each step written to the store (and so to the audit log):

1. refuse if another job is queued or running (never two at once; jobs whose
   process died are marked failed first, see :func:`reap_dead_jobs`);
2. read the hard samples; none at all -> nothing to do, no job is created;
3. create (or take over) the job row, start it with its log file;
4. export the corrections and a replay share of the base data
   (``core.training.corrections``);
5. fine-tune the active model on them with the over-sampling strategy
   (``core.training.trainer``), reporting progress to the job row; a cancel
   from the store (another workstation's Models view) or SIGTERM stops it;
6. register the candidate with its lineage (parent, bags, settings), score
   it and the active model (``core.training.gate``), promote or reject;
7. finish the job with the gate's numbers.

Any failure marks the job failed with its error and log path; nothing before
step 6 touches the model registry, so the active model stays as it was. A
``kill -9`` cannot mark its own job: the next job (or the GUI) calls
:func:`reap_dead_jobs`, which recognises the dead process from the
``process.json`` the job leaves in its directory. Under torchrun only rank 0
runs this module's job; the other ranks join its training (``core.training.retrain_dist``).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from core.evaluation.operating_point import saved_threshold
from core.store.errors import InvalidState
from core.store.values import HardSample, ModelVersionInfo, TrainingJobInfo
from core.training.corrections import (
    CorrectionsExport,
    ExportSettings,
    export_corrections,
)
from core.training.gate import (
    GateDecision,
    GateSettings,
    apply_gate,
    judge,
    paired_changes,
    score_model_file,
)

log = logging.getLogger(__name__)

ACTIVE_STATES = ("queued", "running")
PROGRESS_EVERY_S = 2.0
# A queued job nobody started within this time is taken as abandoned.
QUEUED_TIMEOUT = dt.timedelta(minutes=15)


DEFAULT_ALARM_THRESHOLD = 0.5


def alarm_threshold_for(version: ModelVersionInfo | None) -> float:
    """The score a registered model alarms from: its measured operating point, else the default."""
    measured = saved_threshold(version.metrics) if version is not None else None
    return DEFAULT_ALARM_THRESHOLD if measured is None else measured


class JobRefused(RuntimeError):
    """Another job is queued or running: never two at once."""


class JobCancelled(RuntimeError):
    """The job was cancelled (from the store, or by a signal)."""


@dataclass(frozen=True)
class RetrainSettings:
    # What to learn from
    # The alarm threshold hard samples are judged at; None: the active model's own operating point
    # (saved with its metrics by every evaluation), or DEFAULT_ALARM_THRESHOLD for a model without one.
    score_threshold: float | None = None
    holdout_share: float = 0.2
    oversample: int = 3
    replay_ratio: float = 1.0
    # How long and how (the fine-tuning run)
    iters: int | None = 200
    time_budget_min: float | None = None
    batch_size: int = 8
    lr: float | None = 1e-3                # fine-tuning: below the from-scratch default
    warmup_iters: int = 10
    strategy: str = "hard"
    pool_capacity: int = 16
    augment: bool = True
    workers: int = 0
    seed: int = 0
    device: str = "auto"
    eval_threads: int | None = None
    # The gate
    benchmark_tolerance: float = 0.02
    detail_tolerance: float = 0.05
    min_heldout_gain: float = 0.0
    min_detail_items: int = 10
    benchmark_max_images: int | None = None
    auto_promote: bool = True              # False: the gate only recommends; a supervisor decides

    def __post_init__(self) -> None:
        if self.iters is not None and self.iters < 1:
            raise ValueError(f"iters must be at least 1, got {self.iters}")
        if self.time_budget_min is not None and self.time_budget_min <= 0:
            raise ValueError(f"the time budget must be positive, got {self.time_budget_min} min")
        if self.batch_size < 1 or (self.lr is not None and self.lr <= 0):
            raise ValueError(f"need batch_size >= 1 and lr > 0, got {self.batch_size} and {self.lr}")
        self.export_settings()  # their own checks, at once rather than after the job started
        self.gate_settings()

    def export_settings(self) -> ExportSettings:
        return ExportSettings(holdout_share=self.holdout_share, oversample=self.oversample,
                              replay_ratio=self.replay_ratio, seed=self.seed)

    def gate_settings(self) -> GateSettings:
        return GateSettings(benchmark_tolerance=self.benchmark_tolerance, detail_tolerance=self.detail_tolerance,
                            min_heldout_gain=self.min_heldout_gain, min_detail_items=self.min_detail_items,
                            alarm_threshold=(self.score_threshold if self.score_threshold is not None
                                             else DEFAULT_ALARM_THRESHOLD),
                            benchmark_max_images=self.benchmark_max_images)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RetrainOutcome:
    status: str        # nothing_to_do | promoted | rejected | undecided | failed | cancelled
    message: str
    job: TrainingJobInfo | None = None
    candidate: ModelVersionInfo | None = None
    decision: GateDecision | None = None
    export: dict[str, Any] | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message, "job_id": self.job.id if self.job else None,
                "candidate_id": self.candidate.id if self.candidate else None,
                "candidate_status": self.candidate.status if self.candidate else None,
                "decision": self.decision.to_dict() if self.decision else None, "export": self.export,
                "seconds": self.seconds}


# ------------------------------------------------------------------------------------ jobs
def job_dir(data_dir: Path, job_id: int) -> Path:
    return Path(data_dir) / "jobs" / f"job-{job_id:05d}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():  # a recycled pid running something else is not our job
        try:
            return b"retrain" in cmdline.read_bytes() or pid == os.getpid()
        except OSError:
            return True
    return True


def reap_dead_jobs(store, who: object, data_dir: Path) -> list[int]:
    """Mark failed the jobs of this host whose process is gone (crash, kill -9, power cut).

    Jobs of other hosts are left alone (their own host reaps them); a queued job
    that no process took within ``QUEUED_TIMEOUT`` is failed as abandoned.
    """
    host = socket.gethostname()
    reaped = []
    now = dt.datetime.now(dt.UTC)
    for job in store.jobs.list(ACTIVE_STATES):
        marker = job_dir(data_dir, job.id) / "process.json"
        reason = None
        if marker.exists():
            try:
                process = json.loads(marker.read_text())
            except (OSError, ValueError):
                process = {}
            if process.get("host") == host and not _process_alive(int(process.get("pid", -1))):
                reason = (f"the job's process (pid {process.get('pid')} on {host}) is gone: it crashed or was "
                          f"killed; log: {job.log_path or marker.parent / 'retrain.log'}")
        elif job.state == "queued" and now - job.created_at > QUEUED_TIMEOUT:
            reason = f"no process took the queued job within {QUEUED_TIMEOUT}"
        if reason is None:
            continue
        try:
            store.jobs.fail(who, job.id, reason)
            reaped.append(job.id)
            log.warning("job %d marked failed: %s", job.id, reason)
        except InvalidState:  # it finished at the very same moment
            pass
    return reaped


def hard_sample_keys(samples: list[HardSample]) -> set[tuple[int, int]]:
    return {(s.bag_id, s.label_version) for s in samples}


def used_by_last_job(store) -> set[tuple[int, int]]:
    """(bag, label version) pairs the last successful job trained or judged on."""
    done = store.jobs.list(("succeeded",))
    if not done:
        return set()
    lineage = (done[-1].metrics or {}).get("lineage", {})
    return {tuple(pair) for key in ("train_bags", "heldout_bags") for pair in lineage.get(key, [])}


def new_hard_samples(store, who: object, score_threshold: float | None = None) -> list[HardSample]:
    """Hard samples (a bag's latest correction) not yet used by the last successful job."""
    if score_threshold is None:
        score_threshold = alarm_threshold_for(store.models.active())
    used = used_by_last_job(store)
    return [s for s in store.hard_samples.find(who, score_threshold=score_threshold)
            if (s.bag_id, s.label_version) not in used]


def _claim_exclusive(store, who: object, job: TrainingJobInfo) -> None:
    """Keep ``job`` only if no other job with a lower id is queued or running.

    Every starter creates its row first and then looks: of two racing starters
    each sees at least the earlier row, so exactly one (the lowest id) goes on.
    """
    others = [j for j in store.jobs.list(ACTIVE_STATES) if j.id < job.id]
    if others:
        store.jobs.cancel(who, job.id)
        raise JobRefused(f"training job {others[0].id} is already {others[0].state}: never two jobs at once")


class _Progress:
    """Throttled progress to the job row; tells the trainer to stop when the job was cancelled."""

    def __init__(self, store, who: object, job_id: int, callback: Callable[[float, str], None] | None) -> None:
        self.store, self.who, self.job_id, self.callback = store, who, job_id, callback
        self.last = 0.0
        self.cancelled = False

    def __call__(self, fraction: float, stage: str, force: bool = False) -> bool:
        now = time.monotonic()
        if not force and now - self.last < PROGRESS_EVERY_S:
            return not self.cancelled
        self.last = now
        try:
            self.store.jobs.report_progress(self.who, self.job_id, fraction)
        except InvalidState:  # cancelled (or failed) by someone else: stop at the next step
            self.cancelled = True
        if self.callback is not None:
            self.callback(fraction, stage)
        return not self.cancelled


def _train(config, progress: _Progress) -> dict:
    from core.training.trainer import Trainer  # noqa: PLC0415 - torch only in the job

    class JobTrainer(Trainer):
        def _train_step(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            out = super()._train_step(*args, **kwargs)
            cfg, st = self.cfg, self.state
            done = st.step / cfg.iters if cfg.iters else st.train_seconds / (60 * (cfg.time_budget_min or 1))
            if not progress(0.05 + 0.75 * min(1.0, done), "training"):
                self.stop_requested = True
            return out

    return JobTrainer(config).run()


def _install_candidate(result: dict, models_dir: Path, job_id: int) -> Path:
    """Copy the trained file into the data directory's models/ under a unique name, with its sidecar."""
    from core.inference.modelfile import file_sha256, sidecar_path  # noqa: PLC0415

    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / f"retrain-job{job_id:05d}-{result['sha256'][:12]}.pt"
    shutil.copyfile(result["model"], target)
    digest = file_sha256(target)
    if digest != result["sha256"]:
        raise OSError(f"{target}: copy does not match the trained file ({digest} != {result['sha256']})")
    sidecar_path(target).write_text(f"{digest}  {target.name}\n", encoding="ascii")
    return target


def _attach_log(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return handler


def run_retrain(store, who: object, *, data_dir: Path, benchmark: Path, base_data: Path | None = None,
                settings: RetrainSettings = RetrainSettings(), job_id: int | None = None,
                on_progress: Callable[[float, str], None] | None = None,
                train: Callable[[Any, _Progress], dict] | None = None) -> RetrainOutcome:
    """Run one retraining job to its end (see the module docstring). Raises JobRefused only.

    ``train(config, progress)`` runs the fine-tuning (default :func:`_train`); under torchrun
    rank 0 passes ``core.training.retrain_dist.Leader.train``, which trains on every rank.
    """
    data_dir, benchmark = Path(data_dir), Path(benchmark)
    base_data = Path(base_data) if base_data is not None else None
    for path, what in ((benchmark, "benchmark"), (base_data, "base data")):
        if path is not None and not path.is_dir():
            raise ValueError(f"{path}: the {what} dataset does not exist")
    reap_dead_jobs(store, who, data_dir)
    busy = [j for j in store.jobs.list(ACTIVE_STATES) if j.id != job_id]
    if busy:
        raise JobRefused(f"training job {busy[0].id} is already {busy[0].state}: never two jobs at once")
    active = store.models.active()
    if active is None:
        raise ValueError("no model is active: promote a model first, the job fine-tunes the active one")
    if settings.score_threshold is None:
        settings = replace(settings, score_threshold=alarm_threshold_for(active))
    log.info("hard samples judged at the alarm threshold %.2f", settings.score_threshold)
    samples = store.hard_samples.find(who, score_threshold=settings.score_threshold)
    if not samples:
        message = "no hard samples in the store: nothing to retrain on"
        if job_id is not None:
            store.jobs.cancel(who, job_id)
        log.info(message)
        return RetrainOutcome("nothing_to_do", message)
    job_settings = {**settings.to_dict(), "benchmark": str(benchmark),
                    "base_data": str(base_data) if base_data else None, "host": socket.gethostname()}
    job = (store.jobs.get(job_id) if job_id is not None else
           store.jobs.create(who, settings=job_settings, base_model_id=active.id, hard_sample_count=len(samples)))
    _claim_exclusive(store, who, job)
    folder = job_dir(data_dir, job.id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "process.json").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    log_path = folder / "retrain.log"
    handler = _attach_log(log_path)
    job = store.jobs.start(who, job.id, log_path=str(log_path))
    progress = _Progress(store, who, job.id, on_progress)
    outcome = RetrainOutcome("failed", "", job=job)
    try:
        _run_steps(store, who, job, active, samples, folder, benchmark, base_data, settings, progress, outcome,
                   train or _train)
    except (JobCancelled, KeyboardInterrupt) as exc:
        outcome.status, outcome.message = "cancelled", f"cancelled: {exc or 'interrupted'}"
        log.warning("job %d cancelled", job.id)
        _end(store.jobs.cancel, who, job.id)
    except Exception as exc:  # noqa: BLE001 - any failure: the job is failed with its log, active untouched
        outcome.status, outcome.message = "failed", f"{type(exc).__name__}: {exc}"
        log.error("job %d failed: %s\n%s", job.id, outcome.message, traceback.format_exc())
        _end(store.jobs.fail, who, job.id, f"{outcome.message} (log: {log_path})")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    outcome.job = store.jobs.get(job.id)
    return outcome


def _end(action: Callable, who: object, job_id: int, *args: Any) -> None:
    try:
        action(who, job_id, *args)
    except InvalidState:  # already cancelled from the store: leave it as it is
        pass


def _run_steps(store, who: object, job: TrainingJobInfo, active: ModelVersionInfo, samples: list[HardSample],
               folder: Path, benchmark: Path, base_data: Path | None, settings: RetrainSettings,
               progress: _Progress, outcome: RetrainOutcome, train: Callable[[Any, _Progress], dict]) -> None:
    from core.training.config import TrainConfig  # noqa: PLC0415

    log.info("job %d: %d hard samples, fine-tuning model version %d (%s)", job.id, len(samples), active.id,
             active.path)
    t0 = time.perf_counter()
    export: CorrectionsExport = export_corrections(samples, store.images, folder / "dataset",
                                                   settings=settings.export_settings(), base_data=base_data)
    outcome.export = export.summary()
    for skipped in export.skipped:
        log.warning("skipped bag %d: %s", skipped.bag_id, skipped.reason)
    if not export.train_bags:
        raise ValueError(f"no corrected bag left to train on ({len(export.heldout_bags)} held out, "
                         f"{len(export.skipped)} skipped)")
    outcome.seconds["export"] = round(time.perf_counter() - t0, 2)
    progress(0.05, "exported", force=True)

    t0 = time.perf_counter()
    config = TrainConfig(data=str(export.root), out=str(folder / "run"), strategy=settings.strategy,
                         iters=settings.iters, time_budget_min=settings.time_budget_min,
                         epochs=1 if settings.iters or settings.time_budget_min else 3,
                         batch_size=settings.batch_size, lr=settings.lr, warmup_iters=settings.warmup_iters,
                         pool_capacity=settings.pool_capacity, augment=settings.augment, workers=settings.workers,
                         seed=settings.seed, device=settings.device, checkpoint_every_s=300.0,
                         init_from=active.path, init_sha256=active.sha256)
    result = train(config, progress)
    outcome.seconds["train"] = round(time.perf_counter() - t0, 2)
    if result.get("interrupted") or progress.cancelled:
        raise JobCancelled("stopped during training")
    model_path = _install_candidate(result, store.images.root.parent / "models", job.id)
    if os.environ.get("XRAY_RUNTIME", "auto") != "pytorch":
        from core.inference.runtime import warm_cache  # noqa: PLC0415

        warm_cache(model_path, result["sha256"])   # lanes swapping to it then load without an export pause
    progress(0.8, "evaluating", force=True)

    t0 = time.perf_counter()
    gate_settings = settings.gate_settings()
    heldout = export.root if export.heldout_bags else None
    kwargs = dict(settings=gate_settings, device=settings.device, num_threads=settings.eval_threads)
    candidate_scored = score_model_file(model_path, result["sha256"], benchmark, heldout, **kwargs)
    progress(0.9, "evaluating", force=True)
    active_scored = score_model_file(active.path, active.sha256, benchmark, heldout, **kwargs)
    candidate_scores = candidate_scored.scores
    outcome.seconds["evaluate"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    try:
        changes = paired_changes(candidate_scored, active_scored, gate_settings)
    except ValueError as exc:   # the intervals inform; a failure there must not cost the trained candidate
        log.warning("gate: no intervals of the changes: %s", exc)
        changes = {}
    outcome.seconds["intervals"] = round(time.perf_counter() - t0, 2)
    decision = judge(candidate_scores, active_scored.scores, gate_settings, changes=changes)
    log.info("gate: %s", decision.headline())
    if progress.cancelled:
        raise JobCancelled("cancelled before the candidate was registered")

    lineage = {"parent_model_id": active.id, "parent_sha256": active.sha256, **export.lineage(),
               "settings": settings.to_dict(),
               "train_result": {k: result[k] for k in ("step", "train_minutes", "world_size") if k in result}}
    (folder / "lineage.json").write_text(json.dumps(lineage, indent=2))
    candidate = store.models.register(who, name=f"retrain job {job.id}", arch=active.arch,
                                      path=model_path, sha256=result["sha256"], parent_id=active.id, job_id=job.id,
                                      attention=active.attention,
                                      metrics={"gate": decision.to_dict(), "lineage": lineage,
                                               # its own alarm threshold, measured on the benchmark
                                               "operating_point": candidate_scores["benchmark"].get(
                                                   "operating_point")})
    if settings.auto_promote:
        candidate = apply_gate(store, who, candidate, decision, expected_active_id=active.id)
    outcome.candidate, outcome.decision = candidate, decision
    outcome.status = {"active": "promoted", "rejected": "rejected"}.get(candidate.status, "undecided")
    outcome.message = decision.headline()
    store.jobs.finish(who, job.id, result_model_id=candidate.id,
                      metrics={"gate": decision.to_dict(), "lineage": {k: lineage[k] for k in
                                                                       ("train_bags", "heldout_bags")},
                               "export": outcome.export, "seconds": outcome.seconds, "outcome": outcome.status})
