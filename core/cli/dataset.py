"""``python main.py dataset check|stats|export|import``: work on OPIXray-layout datasets.

Exit codes: 0 fine, 1 the dataset has errors (``check``), 2 the command could
not run (bad directory, unsafe output, unreadable source); never a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.data.formats import EXPORTERS, FORMATS, IMPORTERS
from core.data.opixray import prepare_output_dir
from core.data.stats import compute_stats, format_tables
from core.data.validate import DEFAULT_WORKERS, DatasetScan, fix_dataset, scan_dataset

EXIT_OK, EXIT_PROBLEMS, EXIT_FAILED = 0, 1, 2

LAYOUT_HELP = """An OPIXray-layout dataset is a directory with
  train/train_image/  train/train_annotation/  train/train_knife.txt
  test/test_image/    test/test_annotation/    test/test_knife.txt  test/test_knife-{1,2,3}.txt
one annotation <id>.txt per image with lines 'NAME.jpg CLASS x1 y1 x2 y2'."""


def register(sub) -> None:
    parser = sub.add_parser("dataset", help="check, count, export and import OPIXray-layout datasets",
                            description="Work on OPIXray-layout datasets.\n\n" + LAYOUT_HELP,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)

    check = commands.add_parser(
        "check", help="list every problem of a dataset (exit 1 if any error)",
        description="Check a dataset and print every problem as 'path:line: severity: message [code]', "
                    "then a summary. Every image is fully decoded (truncated or corrupt files are found). "
                    "Exit code: 0 no errors (warnings allowed), 1 errors found, 2 the check could not run. "
                    "With --fix, the exit code is that of the repaired copy.")
    check.add_argument("dir", type=Path, metavar="DIR", help="dataset root")
    check.add_argument("--fix", type=Path, metavar="OUT",
                       help="write a repaired copy to OUT (new or empty directory outside DIR; DIR is never changed)")
    check.add_argument("--link", action="store_true", help="with --fix, hard-link images instead of copying them")
    check.add_argument("--json", action="store_true", help="print a JSON report instead of text")
    check.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="image decoding threads (default: 2)")
    check.set_defaults(func=_guarded(_check))

    stats = commands.add_parser(
        "stats", help="the paper's Table II and III for a dataset",
        description="Count items per class and split (the paper's Table II) and per class and occlusion "
                    "level in test (Table III), each cell beside the paper's number.")
    stats.add_argument("dir", type=Path, metavar="DIR", help="dataset root")
    stats.add_argument("--json", action="store_true", help="print JSON instead of tables")
    stats.set_defaults(func=_guarded(_stats))

    export = commands.add_parser(
        "export", help="export to Pascal VOC, COCO or YOLO",
        description="Export a valid dataset (run 'check' first) to another format, images included. "
                    "Boxes, ids, splits and occlusion-level lists survive a round trip exactly.")
    export.add_argument("dir", type=Path, metavar="DIR", help="OPIXray-layout dataset root")
    export.add_argument("--format", required=True, choices=FORMATS, help="target format")
    export.add_argument("--out", required=True, type=Path, help="new or empty output directory")
    export.add_argument("--link", action="store_true", help="hard-link images instead of copying them")
    export.set_defaults(func=_guarded(_export))

    importer = commands.add_parser(
        "import", help="import from Pascal VOC, COCO or YOLO into the OPIXray layout",
        description="Import a dataset in the layout 'export' writes into a new OPIXray-layout directory.")
    importer.add_argument("src", type=Path, metavar="SRC", help="exported dataset root")
    importer.add_argument("--format", required=True, choices=FORMATS, help="source format")
    importer.add_argument("--out", required=True, type=Path, help="new or empty output directory")
    importer.add_argument("--link", action="store_true", help="hard-link images instead of copying them")
    importer.set_defaults(func=_guarded(_import))


def _guarded(handler):
    """Turn expected failures (bad paths, unsafe output, malformed input) into a message and exit code 2."""
    def run(args) -> int:
        try:
            return handler(args)
        except (OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
    return run


def _check(args) -> int:
    if not args.dir.is_dir():
        print(f"error: {args.dir}: not a directory", file=sys.stderr)
        return EXIT_FAILED
    if args.fix is not None:
        prepare_output_dir(args.fix, args.dir)  # refuse an unsafe OUT before the (slow) scan
    scan = scan_dataset(args.dir, decode=True, workers=args.workers)
    report = {"dataset": str(args.dir), "problems": [p.to_dict() for p in scan.problems], "summary": _summary(scan)}
    exit_code = EXIT_PROBLEMS if scan.errors else EXIT_OK
    if not args.json:
        for problem in scan.problems:
            print(problem.format())
        print(_summary_line(scan))
    if args.fix is not None:
        changes = fix_dataset(args.dir, args.fix, scan=scan, link=args.link)
        after = scan_dataset(args.fix, decode=True, workers=args.workers)
        report["fix"] = {"out": str(args.fix), "changes": changes,
                         "remaining": [p.to_dict() for p in after.problems], "summary": _summary(after)}
        exit_code = EXIT_PROBLEMS if after.errors else EXIT_OK
        if not args.json:
            print(f"\nrepaired copy written to {args.fix} ({len(changes)} change(s)):")
            for change in changes:
                print(f"  {change}")
            for problem in after.problems:
                print(problem.format())
            print(f"repaired copy: {_summary_line(after)}")
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    return exit_code


def _summary(scan: DatasetScan) -> dict:
    return {"errors": len(scan.errors), "warnings": len(scan.warnings),
            "images": {split: len(records) for split, records in scan.records.items()},
            "decoded_images": scan.decode.images, "decode_seconds": round(scan.decode.seconds, 3),
            "decode_images_per_second": round(scan.decode.images_per_second, 1),
            "decode_megabytes_per_second": round(scan.decode.megabytes_per_second, 1)}


def _summary_line(scan: DatasetScan) -> str:
    counts = ", ".join(f"{len(records)} {split}" for split, records in scan.records.items())
    verdict = "FAILED" if scan.errors else "OK"
    return (f"{verdict}: {len(scan.errors)} error(s), {len(scan.warnings)} warning(s); images listed: {counts}; "
            f"decoded {scan.decode.images} images in {scan.decode.seconds:.2f} s "
            f"({scan.decode.images_per_second:.1f} images/s, {scan.decode.megabytes_per_second:.1f} MB/s)")


def _stats(args) -> int:
    if not args.dir.is_dir():
        print(f"error: {args.dir}: not a directory", file=sys.stderr)
        return EXIT_FAILED
    scan = scan_dataset(args.dir, decode=False)
    stats = compute_stats(scan=scan)
    by_opacity = _items_by_opacity(args.dir)
    if args.json:
        json.dump({**stats.to_dict(), "problems_skipped": len(scan.errors), **by_opacity}, sys.stdout, indent=2)
        print()
    else:
        print(format_tables(stats))
        if by_opacity:
            print(_opacity_lines(by_opacity["items_by_opacity"]))
        if scan.errors:
            print(f"\n({len(scan.errors)} error(s) in the dataset; unusable lines were not counted. "
                  f"Run 'dataset check {args.dir}'.)")
    return EXIT_OK


def _items_by_opacity(root: Path) -> dict:
    """Items per occluder-opacity bin of each split with a per-item occlusion table (synthetic data),
    as {"items_by_opacity": {"edges": [...], split: [counts]}}; {} when no split has one."""
    from core.synth.occlusion_table import DEFAULT_EDGES, bin_names, items_per_bin, table_path  # noqa: PLC0415

    counts: dict = {}
    for split in ("train", "test"):
        if table_path(root, split).is_file():
            try:
                counts[split] = items_per_bin(root, split)
            except (ValueError, OSError) as exc:
                print(f"warning: no items by occlusion for {split}: {exc}", file=sys.stderr)
    return {"items_by_opacity": {"edges": list(DEFAULT_EDGES), "bins": bin_names(DEFAULT_EDGES), **counts}} if counts else {}


def _opacity_lines(table: dict) -> str:
    names = table["bins"]
    lines = ["", "Items by occluder opacity (the share of the signal the rest of the bag removes over each item):",
             f"{'split':<8}" + "".join(f"{n:>14}" for n in names)]
    for split in ("train", "test"):
        if split in table:
            total = max(sum(table[split]), 1)
            lines.append(f"{split:<8}" + "".join(f"{f'{c} ({100 * c / total:.1f}%)':>14}" for c in table[split]))
    return "\n".join(lines)


def _export(args) -> int:
    counts = EXPORTERS[args.format](args.dir, args.out, link=args.link)
    print(f"exported {_counts(counts)} to {args.out} as {args.format}")
    return EXIT_OK


def _import(args) -> int:
    counts = IMPORTERS[args.format](args.src, args.out, link=args.link)
    print(f"imported {_counts(counts)} from {args.src} ({args.format}) into {args.out}")
    return EXIT_OK


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {split} images" for split, n in counts.items())
