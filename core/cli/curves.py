"""``python main.py curves``: the learning curves of several training runs, side by side."""
from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("curves", help="compare the learning curves of training runs (plot and table)",
                       description="Reads each run's evals.jsonl (train with --curve-every/--curve-data), prints "
                                   "a Markdown table of mAP at the first run's curve points (steps in brackets) "
                                   "and, with --out, plots mAP by training minutes and by optimiser steps.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="training run directories")
    p.add_argument("--out", help="PNG to write")
    p.add_argument("--names", nargs="+", help="a label per run (default: the directories' names)")
    p.add_argument("--levels", action="store_true", help="also plot OL1/OL2/OL3")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from core.training.compare_curves import compare  # noqa: PLC0415

    try:
        print(compare(args.runs, args.out, args.names, args.levels))
    except (OSError, ValueError) as exc:
        print(f"curves: error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        print(f"wrote {args.out}", file=sys.stderr)
    return 0
