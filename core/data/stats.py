"""The paper's dataset tables, computed from a dataset on disk and set beside the paper's numbers.

Table II: items of each class per split (train, test, total), plus image counts.
Table III: items of each class in each occlusion-level subset of the test split.
As in the paper, a class cell counts items (boxes), the "images" column counts
images; the two differ where an image holds several items (about 35 in OPIXray).
Counting reads the layout leniently (no image decoding): unusable lines are
skipped, and ``dataset check`` reports them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.classes import CLASSES, SHORT_NAMES
from core.data.opixray import SPLITS
from core.data.validate import DatasetScan, ImageRecord, occlusion_levels, scan_dataset

# The paper's Table II (items per class; images per split) and Table III (OL subsets of test).
PAPER_TABLE_II: dict[str, dict[str, int]] = {
    "train": {"Folding_Knife": 1589, "Straight_Knife": 809, "Scissor": 1494, "Utility_Knife": 1635,
              "Multi-tool_Knife": 1612, "images": 7109},
    "test": {"Folding_Knife": 404, "Straight_Knife": 235, "Scissor": 369, "Utility_Knife": 343,
             "Multi-tool_Knife": 430, "images": 1776},
}
PAPER_TABLE_III: dict[int, dict[str, int]] = {
    1: {"Folding_Knife": 206, "Straight_Knife": 88, "Scissor": 160, "Utility_Knife": 214,
        "Multi-tool_Knife": 255, "images": 922},
    2: {"Folding_Knife": 148, "Straight_Knife": 84, "Scissor": 126, "Utility_Knife": 88,
        "Multi-tool_Knife": 105, "images": 548},
    3: {"Folding_Knife": 50, "Straight_Knife": 63, "Scissor": 83, "Utility_Knife": 41,
        "Multi-tool_Knife": 70, "images": 306},
}


def _empty_row() -> dict[str, int]:
    return {**{name: 0 for name in CLASSES}, "images": 0, "multi_item_images": 0}


@dataclass
class DatasetStats:
    """Rows keyed by split ("train", "test", "total") and by occlusion level (1, 2, 3, "total")."""
    table_ii: dict[str, dict[str, int]] = field(default_factory=dict)
    table_iii: dict[str, dict[str, int]] = field(default_factory=dict)
    test_images_without_level: int = 0

    def to_dict(self) -> dict:
        return {"table_ii": self.table_ii, "table_iii": self.table_iii,
                "test_images_without_level": self.test_images_without_level,
                "paper_table_ii": PAPER_TABLE_II,
                "paper_table_iii": {f"OL{k}": v for k, v in PAPER_TABLE_III.items()},
                "class_share_difference_pp": class_share_difference(self)}


def compute_stats(root: str | Path | None = None, scan: DatasetScan | None = None) -> DatasetStats:
    """Count items and images per class, split and occlusion level (from ``root`` or a finished scan)."""
    if scan is None:
        scan = scan_dataset(Path(root), decode=False)
    stats = DatasetStats()
    test_ids = {r.image_id for r in scan.records["test"]}
    levels = occlusion_levels(scan)
    total = _empty_row()
    for split in SPLITS:
        row = _empty_row()
        for record in scan.records[split]:
            if split == "train" and record.image_id in test_ids:
                continue  # counted once, in test (check reports the overlap)
            _count(row, record)
            _count(total, record)
        stats.table_ii[split] = row
    stats.table_ii["total"] = total
    ol_total = _empty_row()
    for level in PAPER_TABLE_III:
        row = _empty_row()
        for record in scan.records["test"]:
            if levels.get(record.image_id) == level:
                _count(row, record)
                _count(ol_total, record)
        stats.table_iii[f"OL{level}"] = row
    stats.table_iii["total"] = ol_total
    stats.test_images_without_level = sum(1 for r in scan.records["test"] if r.image_id not in levels)
    return stats


def _count(row: dict[str, int], record: ImageRecord) -> None:
    row["images"] += 1
    row["multi_item_images"] += len(record.items) > 1
    for item in record.items:
        row[item.box.label] += 1


def class_share_difference(stats: DatasetStats) -> dict[str, float]:
    """Per split, the largest gap (percentage points) between this dataset's and the paper's class shares.

    A synthetic dataset is smaller than OPIXray; its class *proportions* are what
    should match, so the comparison is made on shares rather than counts.
    """
    result = {}
    for split, paper in PAPER_TABLE_II.items():
        ours = stats.table_ii.get(split, {})
        ours_items = sum(ours.get(c, 0) for c in CLASSES)
        paper_items = sum(paper[c] for c in CLASSES)
        if ours_items == 0:
            continue
        result[split] = round(max(abs(100 * ours.get(c, 0) / ours_items - 100 * paper[c] / paper_items)
                                  for c in CLASSES), 2)
    return result


def format_tables(stats: DatasetStats) -> str:
    """Both tables as aligned text, each cell ``ours (paper)``."""
    paper_ii = {**PAPER_TABLE_II, "total": {k: PAPER_TABLE_II["train"][k] + PAPER_TABLE_II["test"][k]
                                            for k in PAPER_TABLE_II["train"]}}
    paper_iii = {f"OL{k}": v for k, v in PAPER_TABLE_III.items()}
    paper_iii["total"] = {k: sum(v[k] for v in PAPER_TABLE_III.values()) for k in PAPER_TABLE_III[1]}
    lines = ["Table II: items per class and split, this dataset (paper)"]
    lines += _format_table(stats.table_ii, paper_ii, "split")
    lines += ["", "Table III: items per class and occlusion level in test, this dataset (paper)"]
    lines += _format_table(stats.table_iii, paper_iii, "level")
    if stats.test_images_without_level:
        lines.append(f"({stats.test_images_without_level} test images are in no OL list)")
    shares = class_share_difference(stats)
    if shares:
        lines += ["", "Largest class-share gap to the paper: "
                  + ", ".join(f"{split} {gap:.1f} pp" for split, gap in shares.items())]
    return "\n".join(lines)


def _format_table(rows: dict[str, dict[str, int]], paper: dict[str, dict[str, int]], key_name: str) -> list[str]:
    headers = [key_name, *SHORT_NAMES, "images", "multi"]
    body = []
    for key, row in rows.items():
        ref = paper.get(key, {})
        cells = [key]
        for column in (*CLASSES, "images"):
            cells.append(f"{row[column]} ({ref[column]})" if column in ref else str(row[column]))
        cells.append(str(row["multi_item_images"]))
        body.append(cells)
    widths = [max(len(r[i]) for r in [headers, *body]) for i in range(len(headers))]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return [fmt(headers), fmt(["-" * w for w in widths]), *(fmt(r) for r in body)]
