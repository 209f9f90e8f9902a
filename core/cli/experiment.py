"""``python main.py experiment paper``: the paper's tables on a generated benchmark."""
from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("experiment", help="reproduce the paper's experiments on the synthetic benchmark",
                       description="Train and evaluate every configuration of the paper's Tables IV, V, VII, "
                                   "VIII and IX on one generated benchmark; resumable (finished runs are kept).")
    which = p.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    paper = which.add_parser("paper", help="Tables IV/V, VII, VIII and IX",
                             description="Writes OUT/paper_tables.md; runs that finished earlier are reused.")
    paper.add_argument("--scale", default="small", choices=["tiny", "small", "medium", "full"],
                       help="tiny: plumbing check; small: this CPU (~45 min, 300 steps a run); medium: "
                            "this CPU across sessions (~2.5 h, 1500 steps); full: a GPU (3500 steps, 3 seeds)")
    paper.add_argument("--out", default="reports/paper", help="output directory (benchmark, runs, report)")
    paper.add_argument("--arch", default="fast", choices=["fast", "ssd", "yolov3", "fcos"],
                       help="detector (the paper used SSD; on this CPU the fast default is the practical one)")
    paper.add_argument("--workers", type=int, default=2)
    paper.add_argument("--only", nargs="*", metavar="RUN", help="run only these configurations")
    paper.set_defaults(func=_run)


def _run(args) -> int:
    from core.training.experiments import run_paper_experiments  # noqa: PLC0415

    try:
        path = run_paper_experiments(args.out, args.scale, args.arch, args.workers, args.only)
    except ValueError as exc:
        print(f"experiment: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"experiment: {exc or 'interrupted'}; run the same command again to resume", file=sys.stderr)
        return 130
    print(f"wrote {path}")
    return 0
