"""``python main.py retrain``: one retraining job from the inspectors' corrections, as its own process.

    python main.py retrain --db URL --data-dir DIR --benchmark DATASET [--base-data DATASET]
                           --user SUPERVISOR [--auto N] [--iters N] [--job-id ID] ...

The job's progress and state are in the store's job row (the GUI polls it);
its log is ``DIR/jobs/job-NNNNN/retrain.log``. SIGTERM or SIGINT (the GUI's
cancel, Ctrl-C) stops it cleanly: the job is marked cancelled and the active
model is untouched. Exit codes: 0 done (promoted, rejected or undecided) or
nothing to do, 1 the job failed, 2 bad input, 3 refused (another job is
running, or --auto and too few new corrections), 130 cancelled.

A job's owner is a supervisor (``--user``): anyone who can run this command
holds the database credentials already, as for the other commands.

Under torchrun (``torchrun --nproc_per_node N main.py retrain ...``, the same
arguments) rank 0 runs the job and alone touches the store; every rank trains
(``core.training.retrain_dist``). The exit codes above are rank 0's; the other
ranks exit 0 (1 if rank 0 never spoke to them).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

from core.config import resolve_data_dir, resolve_db_url
from core.store.errors import StoreError

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_REFUSED, EXIT_CANCELLED = 0, 1, 2, 3, 130


def register(sub) -> None:  # noqa: ANN001 - argparse's private subparsers type
    p = sub.add_parser(
        "retrain", help="retrain the active model from the inspectors' corrections, gate and promote",
        description="Fine-tune the active model on the hard samples in the store (plus a replay share of the "
                    "base data), evaluate candidate and active model on the benchmark and on held-out "
                    "corrections, and promote or reject the candidate. Progress goes to the store's job row.")
    p.add_argument("--db", metavar="URL", default=None, help="database URL (default $XRAY_DB_URL, else DATA_DIR's)")
    p.add_argument("--data-dir", type=Path, default=None, help="data directory (images, models, jobs)")
    p.add_argument("--benchmark", type=Path, required=True,
                   help="fixed benchmark dataset (OPIXray layout; its test split is used)")
    p.add_argument("--base-data", type=Path, default=None,
                   help="base training dataset (OPIXray layout) replayed so the model does not forget")
    p.add_argument("--user", required=True, help="the supervisor who owns the job")
    p.add_argument("--auto", type=int, default=None, metavar="N",
                   help="start only if at least N new hard samples accumulated since the last successful job")
    p.add_argument("--job-id", type=int, default=None, help="run this queued job (created by the GUI)")
    p.add_argument("--iters", type=int, default=200, help="fine-tuning steps (default 200)")
    p.add_argument("--time-budget", type=float, dest="time_budget_min", default=None, metavar="MIN",
                   help="stop fine-tuning after MIN minutes instead of --iters")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--oversample", type=int, default=3, help="times each corrected bag is listed (default 3)")
    p.add_argument("--replay-ratio", type=float, default=1.0,
                   help="replayed base images per corrected training bag (default 1.0)")
    p.add_argument("--holdout-share", type=float, default=0.2,
                   help="share of corrected bags held out for the gate (default 0.2)")
    p.add_argument("--score-threshold", type=float, default=None,
                   help="alarm threshold hard samples are judged at (default: the active model's operating point, "
                        "or 0.5 for a model without one)")
    p.add_argument("--tolerance", type=float, dest="benchmark_tolerance", default=0.02,
                   help="benchmark mAP drop allowed (default 0.02)")
    p.add_argument("--detail-tolerance", type=float, default=0.05,
                   help="per-class / per-OL drop allowed (default 0.05)")
    p.add_argument("--no-promote", dest="auto_promote", action="store_false",
                   help="only record the gate's verdict; a supervisor promotes or rejects by hand")
    p.add_argument("--workers", type=int, default=0, help="data-loading processes (default 0)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dist-timeout", type=float, default=30.0, metavar="MIN",
                   help="under torchrun: how long a rank waits for the others before giving up (default 30)")
    p.set_defaults(func=_run)


def _settings(args: argparse.Namespace):  # noqa: ANN202
    from core.training.retrain import RetrainSettings  # noqa: PLC0415

    return RetrainSettings(iters=None if args.time_budget_min else args.iters, time_budget_min=args.time_budget_min,
                           batch_size=args.batch_size, lr=args.lr, oversample=args.oversample,
                           replay_ratio=args.replay_ratio, holdout_share=args.holdout_share,
                           score_threshold=args.score_threshold, benchmark_tolerance=args.benchmark_tolerance,
                           detail_tolerance=args.detail_tolerance, auto_promote=args.auto_promote,
                           workers=args.workers, device=args.device, seed=args.seed, eval_threads=args.threads)


def _cancel_on_signal(signum, frame) -> None:  # noqa: ANN001, ARG001
    # Outside the training loop (export, evaluation) a signal ends the job here; during
    # training the trainer's own handler finishes the step and the job is cancelled after it.
    from core.training.retrain import JobCancelled  # noqa: PLC0415

    raise JobCancelled(f"signal {signum}")


def _run(args: argparse.Namespace) -> int:
    if not getattr(args, "verbose", False):
        logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings = _settings(args)   # the same arguments on every rank: all of them stop here alike
    except ValueError as exc:
        print(f"retrain: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.threads:
        import torch  # noqa: PLC0415

        torch.set_num_threads(args.threads)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:   # not under torchrun (or with one process)
        return _job(args, settings, None)
    from core.training.distributed import leave_process  # noqa: PLC0415
    from core.training.retrain_dist import Leader, follow, start_cluster  # noqa: PLC0415

    try:
        cluster = start_cluster(settings.device, args.dist_timeout)
    except (RuntimeError, ValueError) as exc:
        print(f"retrain: error: cannot join the process group: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not cluster.is_main:
        leave_process(follow(cluster))   # never returns: see leave_process
    leader, code = Leader(cluster), EXIT_FAILED
    try:
        code = _job(args, settings, leader)
        return code
    finally:  # whatever ended the job before training, the other ranks must not wait for it
        leader.release(f"rank 0 ended without training (exit code {code})")


def _job(args: argparse.Namespace, settings, leader) -> int:  # noqa: ANN001
    from core.training.retrain import JobCancelled, JobRefused, new_hard_samples, run_retrain  # noqa: PLC0415

    if not (args.benchmark / "test").is_dir():
        print(f"retrain: error: {args.benchmark}: not an OPIXray-layout dataset (no test/ folder)", file=sys.stderr)
        return EXIT_BAD_INPUT
    data_dir = resolve_data_dir(args.data_dir)
    previous = signal.signal(signal.SIGTERM, _cancel_on_signal)
    try:
        from core.store.repo import Store  # noqa: PLC0415

        with Store.open(resolve_db_url(args.db, data_dir), data_dir=data_dir) as store:
            user = store.users.get(args.user)
            if user.role not in ("supervisor", "admin") or not user.active:
                raise ValueError(f"{args.user} ({user.role}{'' if user.active else ', disabled'}) cannot own a "
                                 "training job: name an active supervisor")
            if args.auto is not None:
                fresh = len(new_hard_samples(store, user, settings.score_threshold))
                if fresh < args.auto:
                    print(f"retrain: {fresh} new hard sample(s) since the last job, fewer than {args.auto}: "
                          "not starting", file=sys.stderr)
                    return EXIT_REFUSED
            outcome = run_retrain(store, user, data_dir=data_dir, benchmark=args.benchmark,
                                  base_data=args.base_data, settings=settings, job_id=args.job_id,
                                  train=leader.train if leader is not None else None)
    except JobRefused as exc:
        print(f"retrain: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except JobCancelled as exc:  # a signal before the job row existed: nothing to mark
        print(f"retrain: cancelled before the job started ({exc})", file=sys.stderr)
        return EXIT_CANCELLED
    except (StoreError, ValueError, OSError) as exc:
        print(f"retrain: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(json.dumps(outcome.to_dict(), indent=2, default=str))
    print(f"retrain: {outcome.status}: {outcome.message}", file=sys.stderr)
    return {"failed": EXIT_FAILED, "cancelled": EXIT_CANCELLED}.get(outcome.status, EXIT_OK)
