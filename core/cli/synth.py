"""``python main.py synth``: write a synthetic dataset in the OPIXray layout."""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

from core.data.opixray import OutputDirError

log = logging.getLogger(__name__)


def parse_size(text: str) -> tuple[int, int]:
    """'1225x954' -> (1225, 954); argparse shows the message on a bad value."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT in pixels, e.g. 1225x954, got {text!r}") from None
    if not (64 <= w <= 8192 and 64 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"size must be between 64 and 8192 px per side, got {w}x{h}")
    return w, h


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _workers(text: str) -> int:
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError("at least 1 worker is needed")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1], got {value}")
    return value


def register(sub) -> None:
    p = sub.add_parser(
        "synth", help="generate a synthetic X-ray dataset (OPIXray layout)",
        description="Generate physically based synthetic X-ray baggage images with exact boxes and "
                    "measured occlusion levels, in the OPIXray layout. Deterministic for a seed, "
                    "whatever the number of workers.")
    p.add_argument("--out", type=Path, required=True, help="output directory (must not exist or be empty)")
    p.add_argument("--train", type=_count, default=200, metavar="N", help="training images (default 200)")
    p.add_argument("--test", type=_count, default=100, metavar="M", help="test images (default 100)")
    p.add_argument("--seed", type=_count, default=0, help="random seed, a number >= 0 (default 0)")
    p.add_argument("--workers", type=_workers, default=1, metavar="K", help="worker processes (default 1)")
    p.add_argument("--size", type=parse_size, default=(1225, 954), metavar="WxH",
                   help="image size (default 1225x954, OPIXray's); objects scale with it")
    p.add_argument("--two-cutter-rate", type=_rate, default=None, metavar="P",
                   help="fraction of images with two cutters (default 0.02; OPIXray has 0.004)")
    p.add_argument("--preview", type=Path, default=None, metavar="PNG",
                   help="also write a contact sheet of the first test images with boxes and OL labels")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)

    r = sub.add_parser(
        "synth-occlusion", help="write the per-item occlusion tables of a synthetic dataset made before they existed",
        description="Recompose every scene of a dataset `synth` wrote (without rendering it) from the seed it "
                    "was made with, check each against the annotation files, and write "
                    "<split>/<split>_occlusion.csv: one row per item with its occlusion level, occluder "
                    "opacity and covered fraction. New datasets have the tables already.")
    r.add_argument("--data", type=Path, required=True, help="the dataset root synth wrote")
    r.add_argument("--seed", type=_count, required=True, help="the seed synth was given for it")
    r.add_argument("--size", type=parse_size, default=(1225, 954), metavar="WxH", help="its --size (default 1225x954)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(func=_run_occlusion)


def _run_occlusion(args) -> int:
    from core.data.opixray import AnnotationError  # noqa: PLC0415
    from core.synth.occlusion_table import OcclusionTableError, replay_occlusion, table_path  # noqa: PLC0415

    try:
        written = replay_occlusion(args.data, args.seed, args.size, progress=not args.no_progress)
    except (OcclusionTableError, AnnotationError) as exc:
        print(f"synth-occlusion: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"synth-occlusion: cannot read or write the dataset: {exc}", file=sys.stderr)
        return 1
    for split, count in written.items():
        print(f"{table_path(args.data, split)}: {count} items")
    return 0


def _run(args) -> int:
    from core.synth.generator import GenerationError, generate_dataset  # noqa: PLC0415 - keep `--help` fast
    from core.synth.scene import SceneConfig  # noqa: PLC0415

    if args.preview is not None and args.preview.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        print(f"synth: --preview must name a .png or .jpg file, got {args.preview}", file=sys.stderr)
        return 2
    config = SceneConfig(width=args.size[0], height=args.size[1])
    if args.two_cutter_rate is not None:
        config = replace(config, two_cutter_rate=args.two_cutter_rate)
    try:
        summary = generate_dataset(args.out, args.train, args.test, args.seed, args.workers, config,
                                   progress=not args.no_progress)
    except OutputDirError as exc:
        print(f"synth: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"synth: cannot write the dataset: {exc}", file=sys.stderr)
        return 1
    except GenerationError as exc:
        print(f"synth: {exc}; the images written so far are in {args.out}, without list files", file=sys.stderr)
        return 1
    levels = summary.levels
    print(f"wrote {summary.train} train + {summary.test} test images to {summary.root}")
    if summary.test:
        print("test occlusion levels: " + ", ".join(
            f"OL{k} {v} ({100 * v / summary.test:.0f}%)" for k, v in levels.items()))
    print("items per class: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.classes.items())))
    if args.preview is not None:
        from core.synth.preview import write_contact_sheet  # noqa: PLC0415

        try:
            args.preview.parent.mkdir(parents=True, exist_ok=True)
            path = write_contact_sheet(summary.root, args.preview)
        except (OSError, ValueError) as exc:
            print(f"synth: could not write the preview: {exc}", file=sys.stderr)
            return 1
        print(f"contact sheet: {path}")
    return 0
