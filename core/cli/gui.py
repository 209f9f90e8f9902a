"""``python main.py screenshot --out DIR``: render the workstation's perspectives to PNG offscreen.

Qt is imported only when the command runs (core never loads PySide6 on import).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def add_workstation_arguments(parser: argparse.ArgumentParser) -> None:
    """The workstation's options (also parsed by app.main_window.run_workstation)."""
    parser.add_argument("--lane", choices=("demo", "folder", "replay"), default="demo",
                        help="where bags come from (default: the synthetic demo lane)")
    parser.add_argument("--lane-path", type=Path, help="watched folder, or folder/dataset to replay")
    parser.add_argument("--rate", type=float, default=0.5, help="bags per second for demo and replay lanes")
    parser.add_argument("--tip-share", type=float, default=0.0, help="share of bags given a projected threat")
    parser.add_argument("--model", type=Path, help="model file (default resources/models/default.pt)")
    parser.add_argument("--untrained", action="store_true",
                        help="without a model file, use an UNTRAINED model (demo only, clearly labelled)")
    parser.add_argument("--time-limit", type=float,
                        help="seconds per bag before the warning (default 20, or the value saved in Settings)")
    parser.add_argument("--data-dir", type=Path,
                        help="data directory (default $XRAY_DATA_DIR or ~/.local/share/xray-workstation)")
    parser.add_argument("--db", help="database URL (default $XRAY_DB_URL or <data dir>/workstation.db)")
    parser.add_argument("--admin-password-file", type=Path,
                        help="first start only: the password of the administrator created on an empty store "
                             "(without it a password is generated and shown once)")
    parser.add_argument("--user", help="user name to fill in the login dialog")


def register(subparsers: argparse._SubParsersAction) -> None:
    workstation = subparsers.add_parser("workstation", help="open the workstation with options "
                                        "(lane source, model, time limit)")
    add_workstation_arguments(workstation)
    workstation.set_defaults(func=_workstation)

    parser = subparsers.add_parser(
        "screenshot", help="render the workstation to PNG files offscreen (demo lane, detections, heat map)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the PNG files to")
    parser.add_argument("--model", type=Path,
                        help="model file (default resources/models/default.pt; without one an UNTRAINED "
                             "model is used and labelled as such)")
    parser.add_argument("--seed", type=int, default=7, help="demo lane seed (which bags are shown)")
    parser.set_defaults(func=_screenshot)


def _workstation(args: argparse.Namespace) -> int:
    try:
        from app.main_window import open_workstation, options_from_namespace  # noqa: PLC0415 - Qt when asked
    except ImportError as exc:
        print(f"error: the GUI cannot be loaded: {exc}", file=sys.stderr)
        return 1
    try:
        options = options_from_namespace(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return open_workstation(options)


def _screenshot(args: argparse.Namespace) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        from app.screenshot import ScreenshotError, render_screenshots  # noqa: PLC0415 - Qt only when asked
    except ImportError as exc:
        print(f"error: the GUI cannot be loaded: {exc}", file=sys.stderr)
        return 1
    if args.model is not None and not args.model.is_file():
        print(f"error: model file {args.model} does not exist", file=sys.stderr)
        return 2
    try:
        paths = render_screenshots(args.out, model_path=args.model, seed=args.seed)
    except (ScreenshotError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0
