"""``bench gui``: the real inspector lane streaming offscreen; GUI-thread stalls and latencies.

The issue's target: streaming 5 bags/s, the longest GUI-thread stall at most 50 ms.
Runs the workstation's lane (``app.gui_bench``: the real ``WorkstationWindow``, its
detector, session and lane threads, a temporary SQLite store) for ``--gui-bags``
bags offered at ``--gui-rate`` bags/s, decided automatically as soon as their
boxes show. Reports the gap between ticks of a ``--gui-tick-ms`` GUI timer (max,
p99, count over 50 ms), bags/s, bag shown -> boxes shown and decision commit
latencies (p50/p95), RSS growth, and which model ran (the trained
``resources/models/default.pt`` or the untrained fallback).

Qt is imported only when the suite runs (core never loads PySide6 on import);
QT_QPA_PLATFORM is set to offscreen unless the caller set it.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gui-bags", type=int, default=300,
                        help="gui: bags streamed and decided (default 300: 60 s at 5 bags/s)")
    parser.add_argument("--gui-rate", type=float, default=5.0, help="gui: bags per second offered (default 5)")
    parser.add_argument("--gui-tick-ms", type=int, default=5, help="gui: stall-meter timer interval (default 5 ms)")
    parser.add_argument("--gui-lane", choices=("replay", "demo"), default="replay",
                        help="gui: replay bags generated beforehand (default) or the live demo lane")
    parser.add_argument("--gui-model", type=Path,
                        help="gui: model file (default resources/models/default.pt, else an untrained fallback)")


def run(args: argparse.Namespace) -> dict:
    from app.gui_bench import GuiBenchSettings, run_gui_bench  # noqa: PLC0415 - Qt only when the suite runs

    bags = getattr(args, "gui_bags", 30)
    if getattr(args, "quick", False):
        bags = min(bags, 10)
    return run_gui_bench(GuiBenchSettings(bags=bags, rate=getattr(args, "gui_rate", 5.0),
                                          tick_ms=getattr(args, "gui_tick_ms", 5),
                                          lane=getattr(args, "gui_lane", "replay"),
                                          model=getattr(args, "gui_model", None)))
