"""``bench store``: 8 concurrent writers (processes) recording bags, predictions and decisions.

Each writer is a separate process with its own Store, like a workstation: per
iteration it records a bag (image bytes into the content store), the model's
predictions and the inspector's decision. Measured per engine: sustained
decisions/s over the timed window, commit latency of ``record_decision``
(p50/p95/p99), and afterwards a check that every decision a writer reported
is in the database exactly once (lost / duplicated rows). PostgreSQL runs on
a temporary server with fsync on; SQLite in WAL with synchronous=FULL.
"""
from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import random
import statistics
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)
ENGINES = ("sqlite", "postgresql")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store-writers", type=int, default=8, help="store: concurrent writer processes")
    parser.add_argument("--store-seconds", type=float, default=10.0, help="store: timed window per engine")
    parser.add_argument("--store-engines", default=",".join(ENGINES),
                        help="store: comma-separated engines (sqlite,postgresql)")


def _writer(url: str, data_dir: str, user_id: int, lane_id: int, model_id: int, index: int,
            start: mp.Event, stop: mp.Event, results: mp.Queue) -> None:
    """One workstation: loop bag -> predictions -> decision until told to stop."""
    from core.classes import CLASSES  # noqa: PLC0415 - imported in the child
    from core.store.repo import Store  # noqa: PLC0415
    from core.store.schema import utcnow  # noqa: PLC0415
    from core.store.values import Box, ScoredBox, UserInfo  # noqa: PLC0415

    rng = random.Random(index)
    store = Store.open(url, data_dir=Path(data_dir), auto_upgrade=False)
    me = UserInfo(id=user_id, name="", role="inspector", active=True, lane_id=lane_id)
    reported: list[str] = []
    latencies: list[float] = []
    errors: list[str] = []
    results.put({"ready": index})
    start.wait()
    i = 0
    while not stop.is_set():
        try:
            opened = utcnow()
            bag = store.bags.record_bag(me, lane_id=lane_id, width=1225, height=954,
                                        image=b"\x89PNG\r\n\x1a\n" + rng.randbytes(2048))
            predictions = [ScoredBox(Box(rng.choice(CLASSES), 10.0 * k, 20.0, 10.0 * k + 80, 90.0), rng.random())
                           for k in range(rng.randint(0, 3))]
            store.bags.record_predictions(me, bag.id, model_id, predictions)
            request_id = f"bench-{index}-{i}"
            t0 = time.perf_counter()
            store.bags.record_decision(me, bag.id, rng.choice(("clear", "clear", "suspect")), opened_at=opened,
                                       request_id=request_id)
            latencies.append(time.perf_counter() - t0)
            reported.append(request_id)
        except Exception as exc:  # noqa: BLE001 - reported to the parent, the bench goes on
            errors.append(f"{type(exc).__name__}: {exc}")
            if len(errors) > 20:
                break
        i += 1
    store.close()
    results.put({"index": index, "reported": reported, "latencies": latencies, "errors": errors[:5],
                 "error_count": len(errors)})


def _prepare(url: str, data_dir: Path, writers: int) -> tuple[int, list[int], int]:
    from core.store.permissions import SystemActor  # noqa: PLC0415
    from core.store.repo import Store  # noqa: PLC0415

    system = SystemActor("bench")
    with Store.open(url, data_dir=data_dir, auto_upgrade=True) as store:
        lane = store.users.add_lane(system, "bench-lane")
        users = [store.users.add(system, f"bench{i}", "inspector", "bench-password-1", lane_id=lane.id).id
                 for i in range(writers)]
        sup = store.users.add(system, "bench-sup", "supervisor", "bench-password-1")
        model = store.models.register(sup, name="bench", arch="fast", path="/bench.pt", sha256="f" * 64)
        store.models.promote(sup, model.id)
        store.reviews.set_qc_share(system, 0.02)
    return lane.id, users, model.id


def _verify(url: str, reported: list[str]) -> dict:
    from sqlalchemy import func, select  # noqa: PLC0415

    from core.store.repo import Store  # noqa: PLC0415
    from core.store.schema import Decision  # noqa: PLC0415

    with Store.open(url, auto_upgrade=False) as store:
        def count(session) -> tuple[int, int, set[str]]:  # noqa: ANN001
            total = session.scalar(select(func.count(Decision.id)).where(Decision.request_id.like("bench-%")))
            distinct = session.scalar(select(func.count(func.distinct(Decision.request_id)))
                                      .where(Decision.request_id.like("bench-%")))
            ids = set(session.scalars(select(Decision.request_id).where(Decision.request_id.like("bench-%"))))
            return total, distinct, ids
        total, distinct, ids = store.db.run(count, write=False)
        audit = store.verify_audit()
    return {"rows": total, "duplicated": total - distinct, "lost": len(set(reported) - ids),
            "audit_chain_ok": audit.ok, "audit_rows": audit.checked}


def _run_engine(url: str, data_dir: Path, writers: int, seconds: float) -> dict:
    lane_id, users, model_id = _prepare(url, data_dir, writers)
    ctx = mp.get_context("spawn")
    start, stop, results = ctx.Event(), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, str(data_dir), users[i], lane_id, model_id, i, start, stop,
                                               results), daemon=True) for i in range(writers)]
    for p in procs:
        p.start()
    # The clock starts once every child has imported and connected (slow on a loaded machine).
    for _ in procs:
        results.get(timeout=300)
    t0 = time.perf_counter()
    start.set()
    time.sleep(seconds)
    stop.set()
    outputs = [results.get(timeout=120) for _ in procs]
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join(timeout=30)
    reported = [r for o in outputs for r in o["reported"]]
    latencies = sorted(x for o in outputs for x in o["latencies"])
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [float("nan")] * 99
    result = {
        "writers": writers, "seconds": round(elapsed, 2), "decisions": len(reported),
        "decisions_per_s": round(len(reported) / elapsed, 1),
        "decision_commit_ms_p50": round(q[49] * 1000, 2), "decision_commit_ms_p95": round(q[94] * 1000, 2),
        "decision_commit_ms_p99": round(q[98] * 1000, 2),
        "errors": sum(o["error_count"] for o in outputs),
        "error_samples": sorted({e for o in outputs for e in o["errors"]})[:5],
    }
    result.update(_verify(url, reported))
    return result


def run(args: argparse.Namespace) -> dict:
    from core.store.pgserver import PostgresUnavailable, TempPostgres  # noqa: PLC0415

    logging.getLogger("alembic").setLevel(logging.WARNING)
    writers = getattr(args, "store_writers", 8)
    seconds = getattr(args, "store_seconds", 10.0)
    if getattr(args, "quick", False):
        seconds = min(seconds, 3.0)
    engines = [e.strip() for e in getattr(args, "store_engines", ",".join(ENGINES)).split(",") if e.strip()]
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="xray-bench-store-") as tmp:
        root = Path(tmp)
        if "sqlite" in engines:
            data_dir = root / "sqlite"
            out["sqlite"] = _run_engine(f"sqlite:///{data_dir / 'workstation.db'}", data_dir, writers, seconds)
        if "postgresql" in engines:
            try:
                with TempPostgres(durable=True) as server:
                    out["postgresql"] = _run_engine(server.url, root / "pg", writers, seconds)
            except PostgresUnavailable as exc:
                out["postgresql"] = {"skipped": str(exc)}
    return out
