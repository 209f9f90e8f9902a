"""The Qt side of ``python main.py bench gui``: the real inspector lane, offscreen, measured.

``core.bench.gui`` (which must not import Qt) calls :func:`run_gui_bench`. It builds
what a workstation runs: a temporary SQLite store with a lane, an inspector and a
registered, promoted model (``resources/models/default.pt`` if present, else an
UNTRAINED fast-doam written to a temporary model file, and the JSON says which);
a ``WorkstationWindow`` whose detector worker follows that active model (loaded with
its sha256 check); and a lane source -- a replay of bags generated beforehand (so the
generator does not compete with the lane) or the live demo lane. Each bag is decided
automatically as soon as its boxes are on screen (alternating clear/suspect).

Measured on the GUI thread while the bags stream:
- stalls: a ``StallMeter`` tick every ``tick_ms``; the gap between ticks (max, p99,
  how many over 50 ms) is how long the window was frozen;
- bag shown -> boxes on screen (the inspector view's own latencies), p50/p95;
- decision commit: ``decide()`` -> ``decision_committed`` (through the SessionWorker
  and the store), p50/p95;
- bags/s from the first bag shown to the last decision committed, and RSS growth;
- the GUI thread's own CPU time per bag (``time.thread_time``: what is ours, unlike the
  stalls, which include the OS running other processes) and the garbage collector's
  pauses while streaming (any thread's collection holds the GIL, so it stalls the GUI).
"""
from __future__ import annotations

import gc
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

STALL_GAP_MS = 50.0


@dataclass
class GuiBenchSettings:
    bags: int = 30
    rate: float = 5.0             # bags per second offered by the lane
    tick_ms: int = 5
    lane: str = "replay"          # "replay" (bags generated first) or "demo" (generated live)
    model: Path | None = None     # default: resources/models/default.pt, else the untrained fallback
    timeout_s: float = 0.0        # 0: 60 s plus 3 s per bag


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "max": None, "count": 0}
    array = np.asarray(values, dtype=np.float64)
    return {"p50": round(float(np.percentile(array, 50)), 2), "p95": round(float(np.percentile(array, 95)), 2),
            "max": round(float(array.max()), 2), "count": int(array.size)}


def _rss_mb() -> float | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


class _GcPauses:
    """Durations of the cyclic garbage collector's runs (any thread) while installed."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []     # (generation, ms)
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((info["generation"], (time.perf_counter() - self._started) * 1e3))

    def summary(self) -> dict[str, Any]:
        full = [ms for generation, ms in self.pauses if generation == 2]
        return {"collections": len(self.pauses), "full_collections": len(full),
                "max_ms": round(max((ms for _, ms in self.pauses), default=0.0), 2),
                "total_ms": round(sum(ms for _, ms in self.pauses), 1)}


def _prepare_model(store: Any, actor: Any, folder: Path, wanted: Path | None) -> dict[str, Any]:
    """Register and promote the bench's model; say whether it is the real one or the untrained fallback."""
    from app.model_loading import DEFAULT_MODEL_PATH  # noqa: PLC0415

    path = wanted or DEFAULT_MODEL_PATH
    if path.is_file():
        source, arch, attention = str(path), None, None
        from core.inference.modelfile import read_model_file  # noqa: PLC0415 - reads the config, no model built

        info, _ = read_model_file(path)
        arch, attention = info.arch, info.attention
    else:
        from core.inference import save_model  # noqa: PLC0415
        from core.models.build import build_detector  # noqa: PLC0415

        path = folder / "untrained-fast-doam.pt"
        save_model(path, build_detector("fast", "doam"), write_sidecar=False)
        source, arch, attention = "untrained fallback (random weights: boxes mean nothing)", "fast", "doam"
    version = store.models.register(actor, name=path.stem, arch=arch, attention=attention, path=path)
    store.models.promote(actor, version.id)
    untrained = "untrained" in source
    return {"source": source, "path": None if untrained else str(path), "version_id": version.id,
            "untrained": untrained}


def _prepare_source(settings: GuiBenchSettings, folder: Path) -> tuple[Any, str]:
    from core.lane.sources import DemoLaneSource, ReplaySource  # noqa: PLC0415

    if settings.lane == "demo":
        return (DemoLaneSource(rate_per_s=settings.rate, seed=11, limit=settings.bags),
                f"demo lane generating {settings.bags} bags live")
    generator = DemoLaneSource(seed=11)
    folder.mkdir(parents=True)
    paths = []
    for index in range(settings.bags):
        bag = generator.make_bag(index)
        path = folder / f"bag{index:05d}.jpg"
        path.write_bytes(bag.encoded)
        paths.append(path)
    return ReplaySource(paths, rate_per_s=settings.rate), f"replay of {settings.bags} generated bags"


def run_gui_bench(settings: GuiBenchSettings) -> dict[str, Any]:
    if settings.bags < 1 or settings.rate <= 0 or settings.tick_ms < 1:
        raise ValueError("bench gui needs bags >= 1, rate > 0 and tick_ms >= 1")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication  # noqa: PLC0415 - Qt only when the bench runs

    app = QApplication.instance() or QApplication(["bench-gui"])
    quit_on_close = app.quitOnLastWindowClosed()
    app.setQuitOnLastWindowClosed(False)     # the bench's window must not end a caller's event loop
    try:
        with tempfile.TemporaryDirectory(prefix="bench-gui-") as tmp:
            return _run(app, settings, Path(tmp))
    finally:
        app.setQuitOnLastWindowClosed(quit_on_close)


def _run(app: Any, settings: GuiBenchSettings, tmp: Path) -> dict[str, Any]:
    import secrets  # noqa: PLC0415

    from PySide6.QtCore import QEventLoop, QSettings, QTimer  # noqa: PLC0415

    from app.heartbeat import StallMeter  # noqa: PLC0415
    from app.inspector import InspectorSettings  # noqa: PLC0415
    from app.keymap import Keymap  # noqa: PLC0415
    from app.model_loading import ModelChoice  # noqa: PLC0415
    from app.perspectives import LaneSetup, WorkstationWindow  # noqa: PLC0415
    from core.store.permissions import SystemActor  # noqa: PLC0415
    from core.store.repo import Store  # noqa: PLC0415

    t_prepare = time.perf_counter()
    store = Store.open(None, data_dir=tmp / "data")
    actor = SystemActor("bench-gui")
    lane_info = store.users.add_lane(actor, "bench-lane")
    inspector = store.users.add(actor, "bench-inspector", "inspector", secrets.token_urlsafe(16), lane_id=lane_info.id)
    model = _prepare_model(store, actor, tmp, settings.model)
    source, lane_text = _prepare_source(settings, tmp / "bags")
    keymap = Keymap.load(settings=QSettings(str(tmp / "settings.ini"), QSettings.IniFormat))
    setup = LaneSetup(source, ModelChoice(None, "the store's active model"), keymap,
                      InspectorSettings(max_pending=max(50, settings.bags)), follow_active=True)
    window = WorkstationWindow(store, inspector, setup)
    view = window.inspector
    window.resize(1500, 950)
    window.show()

    loop = QEventLoop()
    # Load the model before the belt starts: its load time is not part of "bag shown -> boxes".
    loaded: dict[str, str] = {}
    view.detector.model_loaded.connect(lambda model_id: (loaded.setdefault("id", model_id), loop.quit()))
    view.detector.model_failed.connect(lambda message: (loaded.setdefault("failed", message), loop.quit()))
    view.detector.start()
    QTimer.singleShot(120_000, loop.quit)
    loop.exec()
    prepare_s = time.perf_counter() - t_prepare

    meter = StallMeter(interval_ms=settings.tick_ms)
    asked: dict[str, float] = {}
    commit_ms: list[float] = []
    marks: dict[str, float] = {}
    counts = {"shown": 0, "boxes": 0, "failed": 0}
    shown_ids: list[str] = []
    gc_pauses = _GcPauses()
    cpu = {"start": 0.0, "end": None}       # the GUI thread's CPU seconds (time.thread_time)

    def decide_now() -> None:
        bag_id = view.current_bag_id
        verdict = "suspect" if counts["boxes"] % 2 else "clear"
        if bag_id is not None and bag_id not in asked and view.decide(verdict):
            asked[bag_id] = time.perf_counter()

    def on_shown(bag_id: str) -> None:
        counts["shown"] += 1
        shown_ids.append(bag_id)
        if "first_shown" not in marks:
            marks["first_shown"] = time.perf_counter()
            cpu["start"] = time.thread_time()
            gc.callbacks.append(gc_pauses)
            meter.start()

    def on_boxes(bag_id: str) -> None:
        counts["boxes"] += 1
        QTimer.singleShot(0, decide_now)

    def on_prediction_failed(bag_id: str, message: str) -> None:
        counts["failed"] += 1
        QTimer.singleShot(0, decide_now)      # the inspector decides without boxes; the lane goes on

    def on_committed(record: Any) -> None:
        started = asked.get(record.bag_id)
        if started is not None:
            commit_ms.append((time.perf_counter() - started) * 1e3)
        if view.decided == 1:
            rss["warm"] = _rss_mb()      # after the first bag: caches and pools exist
        if view.decided >= settings.bags:
            marks["last_committed"] = time.perf_counter()
            cpu["end"] = time.thread_time()
            meter.stop()
            loop.quit()

    view.bag_shown.connect(on_shown)
    view.boxes_shown.connect(on_boxes)
    view.detector.prediction_failed.connect(on_prediction_failed)
    view.decision_committed.connect(on_committed)
    timeout_s = settings.timeout_s or 60.0 + 3.0 * settings.bags
    timed_out = {"value": False}
    deadline = QTimer()
    deadline.setSingleShot(True)
    deadline.timeout.connect(lambda: (timed_out.update(value=True), loop.quit()))
    rss = {"start": _rss_mb()}
    marks["lane_started"] = time.perf_counter()
    window.start()
    deadline.start(int(timeout_s * 1000))
    loop.exec()
    deadline.stop()
    meter.stop()
    if gc_pauses in gc.callbacks:
        gc.callbacks.remove(gc_pauses)
    cpu_ms = ((cpu["end"] or time.thread_time()) - cpu["start"]) * 1e3 if counts["shown"] else None
    rss["end"] = _rss_mb()
    window.shutdown()
    window.hide()
    stored = _stored_screenings(store, window.session, shown_ids, int(model["version_id"]))
    window.deleteLater()
    store.close()

    # From the belt's start (the first bag comes at once) to the last decision committed.
    elapsed = marks.get("last_committed", time.perf_counter()) - marks["lane_started"]
    warm, end = rss.get("warm"), rss.get("end")
    gaps = [late + settings.tick_ms for late in meter.stalls]
    return {
        "lane": lane_text,
        "bags": settings.bags,
        "rate_offered_per_s": settings.rate,
        "bags_shown": counts["shown"],
        "bags_with_boxes": counts["boxes"],
        "bags_detection_failed": counts["failed"],
        "bags_decided": view.decided,
        "bags_screened_in_store": stored,
        "timed_out": timed_out["value"],
        "elapsed_s": round(elapsed, 3),
        "bags_per_s": round(view.decided / elapsed, 3) if elapsed > 0 else None,
        "stall": {
            "tick_ms": settings.tick_ms, "ticks": len(gaps),
            "gap_max_ms": round(max(gaps), 2) if gaps else None,
            "gap_p99_ms": round(float(np.percentile(gaps, 99)), 2) if gaps else None,
            "gaps_over_50ms": sum(1 for g in gaps if g > STALL_GAP_MS),
        },
        "gui_thread_cpu_ms_per_bag": round(cpu_ms / counts["shown"], 2) if cpu_ms is not None else None,
        "gc_while_streaming": gc_pauses.summary(),
        "bag_shown_to_boxes_ms": _percentiles(list(view.latencies_ms)),
        "decision_commit_ms": _percentiles(commit_ms),
        "model": {**model, "model_id": loaded.get("id"), "load_failed": loaded.get("failed")},
        "rss_mb": {**rss, "growth_after_first_bag": round(end - warm, 1) if warm and end else None},
        "detector_dropped": view.detector.dropped_count,
        "prepare_s": round(prepare_s, 2),
        "qt_platform": app.platformName(),
    }


def _stored_screenings(store: Any, session: Any, bag_ids: list[str], version_id: int) -> int:
    """How many of the shown bags the store says were screened (boxes kept) by the bench's model version."""
    return sum(1 for bag_id in bag_ids
               if store.bags.get(session.store_bag_id(bag_id)).screening_model_id == version_id)
