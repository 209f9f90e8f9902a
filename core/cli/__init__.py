"""The command line: ``python main.py <command> ...``.

Each module of this package adds its own sub-commands through a function
``register(subparsers)``; the command's handler is stored as ``func`` and
returns the process exit code. Handlers are thin: they parse, call the Python
API under ``core`` and print.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Mapping

from core import __version__
from core.allocator import keep_freed_memory


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python main.py",
        description="X-ray baggage inspection workstation. With no command, opens the workstation.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Every module here that defines register() contributes its commands, in name order.
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


# Headless jobs that allocate large tensors step after step keep freed memory for reuse
# (core/allocator.py): 5-6 % faster training steps here. XRAY_KEEP_FREED_MEMORY=0 turns it off.
# It was opt-in while a torchrun follower rank sometimes aborted at exit with it on (2 of 20 runs of
# tests/test_retrain_ddp.py, 0 of 10 with it off); followers now skip the interpreter's teardown
# (core.training.distributed.leave_process) and 20 of 20 runs passed with it on.
# The GUI, which runs for days, keeps glibc's defaults either way.
KEEP_FREED_MEMORY_VARIABLE = "XRAY_KEEP_FREED_MEMORY"
BATCH_JOBS = frozenset({"train", "eval", "compare", "experiment", "retrain", "bench", "detect", "synth", "export-onnx"})


def keeps_freed_memory(command: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether ``command`` runs with core.allocator's setting: a batch job, unless the variable is 0."""
    return command in BATCH_JOBS and environ.get(KEEP_FREED_MEMORY_VARIABLE, "1") != "0"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        return _open_workstation(parser)
    if keeps_freed_memory(args.command):
        keep_freed_memory()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _open_workstation(parser: argparse.ArgumentParser) -> int:
    try:
        from app.main_window import run_workstation  # noqa: PLC0415 - Qt only when asked for
    except ImportError:
        print("The workstation GUI is not built yet. Available commands:\n", file=sys.stderr)
        parser.print_help(sys.stderr)
        return 0
    return run_workstation()
