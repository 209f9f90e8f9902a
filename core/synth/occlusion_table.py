"""Per-item occlusion of a synthetic dataset: ``<root>/<split>/<split>_occlusion.csv``.

OPIXray's OL lists give one level per *test image* (its worst item). The generator knows more:
each cutter's occluder opacity (``core.synth.occlusion``), in both splits. This table keeps it,
one row per item, so that an evaluation can ask where along the opacity scale a detector starts
to lose items (``core.evaluation.occlusion_recall``), and so that the train split has per-item
occlusion at all (a curriculum or a weighted loss would need it).

New datasets get the table from ``generate_dataset``. For a dataset generated before the table
existed, ``replay_occlusion`` recomposes every scene from the dataset's seed without rendering
it (~0.1 s a scene here) and checks each replayed scene's boxes and classes against the
annotation files before it writes anything: a wrong seed, size or generator version is an
error that names the first image that differs, never a table of someone else's scenes.
"""
from __future__ import annotations

import csv
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.data.opixray import Box, load_split

from .occlusion import OL2_FROM, OL3_FROM, Occlusion

# Bins of the opacity scale for reports: OL1 and OL2 as the thresholds draw them; OL3 split in three,
# moderate, heavy and near-opaque cover (> 0.9: a battery or a steel plate, core.synth.occlusion).
DEFAULT_EDGES: tuple[float, ...] = (0.0, OL2_FROM, OL3_FROM, 0.7, 0.9, 1.0)
COLUMNS = ("image_id", "item", "label", "x1", "y1", "x2", "y2", "level", "opacity", "covered")


class OcclusionTableError(ValueError):
    """A table that is missing, malformed, or does not describe the dataset's scenes."""


@dataclass(frozen=True)
class ItemOcclusion:
    """One item of one image: its box as annotated and how much the rest of the bag hides it."""
    image_id: str
    box: Box
    level: int
    opacity: float
    covered: float


def bin_of(opacities: np.ndarray, edges: Sequence[float] = DEFAULT_EDGES) -> np.ndarray:
    """Bin index of each opacity: [e0, e1), [e1, e2), ..., the last bin closed at its top."""
    edges = np.asarray(edges, dtype=np.float64)
    if edges.size < 2 or np.any(np.diff(edges) <= 0) or edges[0] > 0 or edges[-1] < 1:
        raise ValueError(f"bin edges must rise from <= 0 to >= 1, got {list(edges)}")
    return np.clip(np.searchsorted(edges, opacities, side="right") - 1, 0, edges.size - 2)


def bin_names(edges: Sequence[float] = DEFAULT_EDGES) -> list[str]:
    """'0.000-0.245', ... : each bin's label in the reports."""
    return [f"{lo:.3f}-{hi:.3f}" for lo, hi in zip(edges[:-1], edges[1:])]


def items_per_bin(root: Path | str, split: str, edges: Sequence[float] = DEFAULT_EDGES) -> list[int]:
    """How many of a split's items fall in each opacity bin (read_table's errors if it cannot)."""
    opacities = np.array([item.opacity for items in read_table(root, split).values() for item in items])
    return np.bincount(bin_of(opacities, edges), minlength=len(edges) - 1).tolist()


def check_items(image_id: str, items: Sequence[ItemOcclusion], annotated: Sequence[Box]) -> None:
    """OcclusionTableError unless ``items`` describe exactly ``annotated`` (labels, boxes, order):
    a table of other scenes would silently misplace every item's opacity."""
    described = [item.box for item in items]
    if described != list(annotated):
        raise OcclusionTableError(f"image {image_id}: the occlusion table lists {described}, the annotation "
                                  f"{list(annotated)}: the table is not this split's")


def table_path(root: Path | str, split: str) -> Path:
    return Path(root) / split / f"{split}_occlusion.csv"


def items_of(image_id: str, boxes: list[Box], occlusions: list[Occlusion]) -> list[ItemOcclusion]:
    if len(boxes) != len(occlusions):
        raise ValueError(f"image {image_id}: {len(boxes)} boxes but {len(occlusions)} occlusion measures")
    return [ItemOcclusion(image_id, box, o.level, o.opacity, o.covered) for box, o in zip(boxes, occlusions)]


def write_table(root: Path | str, split: str, items: list[ItemOcclusion]) -> Path:
    """Write the split's table atomically (a temporary file renamed over the old one)."""
    path = table_path(root, split)
    tmp = path.with_name(path.name + ".tmp")
    counters: dict[str, int] = {}
    with open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for item in items:
            index = counters.get(item.image_id, 0)
            counters[item.image_id] = index + 1
            b = item.box
            writer.writerow([item.image_id, index, b.label, b.x1, b.y1, b.x2, b.y2, item.level,
                             f"{item.opacity:.5f}", f"{item.covered:.5f}"])
    os.replace(tmp, path)
    return path


def read_table(root: Path | str, split: str) -> dict[str, list[ItemOcclusion]]:
    """Items per image id, in annotation order; OcclusionTableError names the line at fault."""
    path = table_path(root, split)
    if not path.is_file():
        raise OcclusionTableError(f"{path} does not exist: generate the dataset again, or write the table with "
                                  f"`python main.py synth-occlusion --data {root} --seed SEED`")
    items: dict[str, list[ItemOcclusion]] = {}
    try:
        with open(path, newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or tuple(header) != COLUMNS:
                raise OcclusionTableError(f"{path}: expected the header {','.join(COLUMNS)}, got {header}")
            for row in reader:
                if row:       # a blank line (an editor's trailing newline) holds no item
                    items.setdefault(row[0], []).append(_parse_row(row, f"{path}, line {reader.line_num}"))
    except (csv.Error, UnicodeDecodeError) as exc:    # NUL bytes, binary garbage: not a table
        raise OcclusionTableError(f"{path}: not a readable CSV table: {exc}") from None
    return items


def _parse_row(row: list[str], where: str) -> ItemOcclusion:
    if len(row) != len(COLUMNS):
        raise OcclusionTableError(f"{where}: expected {len(COLUMNS)} fields, got {len(row)}")
    try:
        x1, y1, x2, y2, level = (int(v) for v in row[3:8])
        opacity, covered = float(row[8]), float(row[9])
        box = Box(row[2], x1, y1, x2, y2)
        box.class_index   # an unknown class name raises KeyError here
    except (ValueError, KeyError) as exc:
        raise OcclusionTableError(f"{where}: {exc}") from None
    if level not in (1, 2, 3) or not (0.0 <= opacity <= 1.0 and 0.0 <= covered <= 1.0):   # NaN fails too
        raise OcclusionTableError(f"{where}: level must be 1-3 and opacity, covered within [0, 1], "
                                  f"got {level}, {opacity}, {covered}")
    return ItemOcclusion(row[0], box, level, opacity, covered)


def replay_occlusion(root: Path | str, seed: int, size: tuple[int, int] = (1225, 954),
                     splits: tuple[str, ...] = ("train", "test"), progress: bool = True) -> dict[str, int]:
    """Recompose the scenes of a dataset ``python main.py synth`` wrote and write its tables.

    Image ids follow the generator's numbering (train first, then test); every replayed scene
    must give exactly the annotated classes and boxes, else nothing is written. Returns the
    items written per split.
    """
    from .generator import image_seed, split_config   # noqa: PLC0415 - the generator imports this module
    from .scene import SceneConfig, compose_scene, default_catalogue   # noqa: PLC0415

    root = Path(root)
    samples = {split: load_split(root, split) for split in ("train", "test")}
    catalogue = default_catalogue()
    first_number = {"train": 1, "test": len(samples["train"]) + 1}
    tables: dict[str, list[ItemOcclusion]] = {}
    for split in splits:
        config = split_config(SceneConfig(width=size[0], height=size[1]), split, True)
        rows: list[ItemOcclusion] = []
        for sample in tqdm(samples[split], desc=f"replay {split}", unit="scene", file=sys.stderr,
                           disable=not progress):
            index = _index_of(sample.image_id, first_number[split], split)
            try:
                scene = compose_scene(np.random.default_rng(image_seed(seed, split, index)), config, catalogue,
                                      render_image=False)
            except (RuntimeError, ValueError) as exc:   # e.g. a --size the scenes cannot be laid out in
                raise OcclusionTableError(f"{split} image {sample.image_id}: replaying it with seed {seed} at "
                                          f"{size[0]}x{size[1]} failed ({exc}): wrong seed or size? "
                                          f"nothing was written") from None
            replayed = [Box(label, *box) for label, box in zip(scene.labels, scene.boxes)]
            if replayed != list(sample.boxes):
                raise OcclusionTableError(
                    f"{split} image {sample.image_id}: seed {seed} at {size[0]}x{size[1]} gives "
                    f"{[b.as_list() + [b.label] for b in replayed]}, the annotation has "
                    f"{[b.as_list() + [b.label] for b in sample.boxes]}: wrong seed or size, or a dataset "
                    f"from another version of the generator; nothing was written")
            rows += items_of(sample.image_id, replayed, scene.occlusions)
        tables[split] = rows
    for split, rows in tables.items():
        write_table(root, split, rows)
    return {split: len(rows) for split, rows in tables.items()}


def _index_of(image_id: str, first_number: int, split: str) -> int:
    try:
        index = int(image_id) - first_number
    except ValueError:
        index = -1
    if index < 0:
        raise OcclusionTableError(f"{split} image id {image_id!r} is not one the generator numbers "
                                  f"(6 digits, train first from 000001, then test)")
    return index
