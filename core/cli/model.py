"""``python main.py model info --arch A --attention X [--table] [--json]``: the paper's Table VIII.

Parameters, model size (MB) and GFLOPs at the model's input size, and with an attention module
the increase over the same architecture without attention. Architectures whose module is not
installed are reported as unavailable, not crashed on.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

log = logging.getLogger(__name__)


def register(sub) -> None:
    model = sub.add_parser("model", help="inspect detector architectures",
                           description="Inspect the detector architectures (complexity as the paper's Table VIII).")
    model_sub = model.add_subparsers(dest="model_command", metavar="SUBCOMMAND")
    info = model_sub.add_parser("info", help="parameters, size (MB) and GFLOPs of a detector",
                                description="Parameters, model size (MB) and GFLOPs at the model's input size; "
                                            "with --table, every architecture x attention.")
    from core.models.names import ARCHS, ATTENTIONS, DEFAULT_ARCH  # noqa: PLC0415 - torch-free names

    info.add_argument("--arch", choices=ARCHS, default=DEFAULT_ARCH, help="architecture (default: %(default)s)")
    info.add_argument("--attention", choices=ATTENTIONS, default="doam", help="attention module (default: %(default)s)")
    info.add_argument("--position", choices=("input", "stem"), default=None,
                      help="where attention plugs in (default: the architecture's own default)")
    info.add_argument("--table", action="store_true", help="every architecture x attention")
    info.add_argument("--json", action="store_true", help="JSON on stdout instead of a table")
    info.set_defaults(func=_info)
    model.set_defaults(func=lambda args: _missing_subcommand(model))


def _missing_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _rows_for_arch(arch: str, attentions: list[str], options: dict) -> list[dict]:
    """Complexity rows for one arch; one 'unavailable' row when the arch cannot be built."""
    from core.evaluation.complexity import complexity_row, measure  # noqa: PLC0415
    from core.models.build import ArchitectureUnavailable, build_detector  # noqa: PLC0415

    try:
        baseline = measure(build_detector(arch, "none", **options))
    except ArchitectureUnavailable as exc:
        return [{"arch": arch, "attention": a, "unavailable": str(exc)} for a in attentions]
    except Exception as exc:  # noqa: BLE001 - one broken arch must not hide the others' rows
        log.debug("building %s failed", arch, exc_info=True)
        return [{"arch": arch, "attention": a, "unavailable": f"{type(exc).__name__}: {exc}"} for a in attentions]
    rows = []
    for attention in attentions:
        try:
            rows.append(complexity_row(arch, attention, baseline=baseline, **options))
        except Exception as exc:  # noqa: BLE001 - report the row as failed, keep going
            log.debug("building %s + %s failed", arch, attention, exc_info=True)
            rows.append({"arch": arch, "attention": attention, "unavailable": f"{type(exc).__name__}: {exc}"})
    return rows


def _format_table(rows: list[dict]) -> str:
    header = f"{'arch':<8} {'attention':<9} {'params':>12} {'+%':>7} {'size MB':>9} {'+%':>7} {'GFLOPs':>9} {'+%':>7}  input"
    lines = [header, "-" * len(header)]

    def pct(value) -> str:
        return "" if value is None else f"{value:+.2f}"

    for row in rows:
        if "unavailable" in row:
            lines.append(f"{row['arch']:<8} {row['attention']:<9} unavailable: {row['unavailable']}")
            continue
        lines.append(f"{row['arch']:<8} {row['attention']:<9} {row['params']:>12,} {pct(row.get('params_increase_pct')):>7} "
                     f"{row['size_mb']:>9.3f} {pct(row.get('size_increase_pct')):>7} {row['gflops']:>9.3f} "
                     f"{pct(row.get('gflops_increase_pct')):>7}  {row['input_size'][0]}x{row['input_size'][1]}")
    return "\n".join(lines)


def _info(args) -> int:
    from core.models.attention import ATTENTIONS  # noqa: PLC0415
    from core.models.build import ARCHS  # noqa: PLC0415

    options = {} if args.position is None else {"position": args.position}
    archs = list(ARCHS) if args.table else [args.arch]
    rows: list[dict] = []
    for arch in archs:
        attentions = list(ATTENTIONS) if args.table else ["none", args.attention]
        # A single model is shown under its no-attention baseline, as Table VIII reads.
        rows += _rows_for_arch(arch, list(dict.fromkeys(attentions)), options)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    else:
        print(_format_table(rows))
    failed = [r for r in rows if "unavailable" in r]
    # A single requested model that cannot be built is an error; in the table it is just a row.
    return 1 if failed and not args.table else 0
