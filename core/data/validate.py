"""Check a whole OPIXray dataset and list every problem, never stopping at the first.

``core.data.opixray`` parses strictly and raises on the first fault, which is
right for training code. A person handed a dataset needs the opposite: one
report of everything wrong, each with file and line, so that it can be fixed
in one pass. ``scan_dataset`` reads the layout leniently, decodes every image
(in a small thread pool: OpenCV releases the GIL while decoding) and records
what it found; ``validate_dataset`` returns just the problems. ``fix_dataset``
writes a repaired copy; it never changes the source.

Box convention: OPIXray corners are integer pixel indices, inclusive, so a box
lies inside a W x H image when 0 <= x1 < x2 <= W-1 and 0 <= y1 < y2 <= H-1.
The reference loader tolerates x2 == W (it divides by the width and clips at 1),
so a corner exactly one past the last pixel is a warning, anything further an error.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from core.classes import CLASS_TO_INDEX, CLASSES
from core.data.opixray import (
    IMAGE_EXTENSIONS,
    OL_LIST_NAMES,
    SPLITS,
    Box,
    copy_file,
    find_image,
    make_layout,
    ol_list_path,
    prepare_output_dir,
    split_dirs,
    write_annotation,
    write_id_list,
)
from core.imaging.decode import ImageDecodeError, read_image

log = logging.getLogger(__name__)

ERROR = "error"
WARNING = "warning"
DEFAULT_WORKERS = 2


@dataclass(frozen=True)
class Problem:
    """One fault of a dataset: where it is, how bad, a stable code and a sentence."""
    severity: str  # ERROR or WARNING
    path: Path
    line: int | None
    code: str
    message: str

    def format(self) -> str:
        """``path:line: severity: message [code]``, the form compilers use, so editors can jump to it."""
        where = f"{self.path}:{self.line}" if self.line is not None else f"{self.path}"
        return f"{where}: {self.severity}: {self.message} [{self.code}]"

    def to_dict(self) -> dict:
        return {"severity": self.severity, "path": str(self.path), "line": self.line,
                "code": self.code, "message": self.message}


@dataclass
class ItemLine:
    """An annotation line that parsed into a box of a known class."""
    lineno: int
    name: str
    box: Box


@dataclass
class ImageRecord:
    """What the scan learnt about one listed image id of one split."""
    split: str
    image_id: str
    list_line: int
    image_path: Path | None = None
    annotation_path: Path | None = None
    items: list[ItemLine] = field(default_factory=list)
    dropped_lines: list[tuple[int, str]] = field(default_factory=list)  # (line, fault) of unusable lines
    annotation_error: str | None = None  # the annotation file exists but cannot be read as text
    size: tuple[int, int] | None = None  # (width, height) once decoded
    decode_error: str | None = None


@dataclass
class DecodeStats:
    images: int = 0
    bytes: int = 0
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    @property
    def megabytes_per_second(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0


@dataclass
class DatasetScan:
    """Everything ``scan_dataset`` found: the records per split (list order, ids unique) and the problems."""
    root: Path
    records: dict[str, list[ImageRecord]] = field(default_factory=lambda: {s: [] for s in SPLITS})
    ol_ids: dict[int, list[str]] = field(default_factory=dict)  # level -> ids as listed (may hold faults)
    unlisted_images: list[Path] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    decode: DecodeStats = field(default_factory=DecodeStats)

    def add(self, severity: str, path: Path, line: int | None, code: str, message: str) -> None:
        self.problems.append(Problem(severity, Path(path), line, code, message))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == WARNING]


def validate_dataset(root: str | Path, workers: int = DEFAULT_WORKERS) -> list[Problem]:
    """Every problem of the dataset at ``root`` (errors and warnings), sorted by file and line."""
    return scan_dataset(root, decode=True, workers=workers).problems


def scan_dataset(root: str | Path, decode: bool = True, workers: int = DEFAULT_WORKERS) -> DatasetScan:
    """Read the layout leniently; with ``decode`` also decode every image and check boxes against its size."""
    scan = DatasetScan(Path(root))
    if not scan.root.is_dir():
        scan.add(ERROR, scan.root, None, "missing-root", "dataset directory does not exist")
        return scan
    for split in SPLITS:
        _scan_split(scan, split)
    _check_cross_split(scan)
    _scan_occlusion_lists(scan)
    if decode:
        _decode_all(scan, workers)
    _check_boxes(scan, with_sizes=decode)
    scan.problems.sort(key=lambda p: (str(p.path), p.line or 0))
    return scan


def _read_lines(scan: DatasetScan, path: Path) -> list[tuple[int, str]] | None:
    """(line number, text) of a UTF-8 text file, or None (with a problem) if it cannot be read."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        scan.add(ERROR, path, None, "unreadable-file", f"cannot be read ({exc.strerror})")
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        scan.add(ERROR, path, None, "not-text", f"not a UTF-8 text file (byte {exc.start}: {exc.reason})")
        return None
    if text.startswith("\ufeff"):
        scan.add(WARNING, path, 1, "bom", "starts with a byte-order mark; the reference code reads it as part of the first id")
        text = text[1:]
    if "\r" in text:
        # The reference code strips only '\n', so every id would keep a trailing '\r'.
        scan.add(WARNING, path, None, "crlf", "has CR (Windows) line ends; the reference code would keep the '\\r' in ids")
    return [(n, ln) for n, ln in enumerate(text.splitlines(), start=1)]


def _read_id_list(scan: DatasetScan, path: Path) -> list[tuple[int, str]]:
    """(line, id) of a list file with duplicates reported and removed (first kept)."""
    lines = _read_lines(scan, path)
    if lines is None:
        return []
    first_seen: dict[str, int] = {}
    ids = []
    for lineno, text in lines:
        image_id = text.strip()
        if not image_id:
            continue
        if len(image_id.split()) != 1:
            scan.add(ERROR, path, lineno, "bad-id", f"id {image_id!r} contains whitespace")
            continue
        if image_id in first_seen:
            scan.add(ERROR, path, lineno, "duplicate-id", f"id {image_id!r} is listed again (first on line {first_seen[image_id]})")
            continue
        first_seen[image_id] = lineno
        ids.append((lineno, image_id))
    return ids


def _scan_split(scan: DatasetScan, split: str) -> None:
    image_dir, ann_dir, list_path = split_dirs(scan.root, split)
    split_dir = scan.root / split
    if not split_dir.is_dir():
        scan.add(ERROR, split_dir, None, "missing-split", f"the {split} split directory is missing")
        return
    for directory, what in ((image_dir, "image"), (ann_dir, "annotation")):
        if not directory.is_dir():
            scan.add(ERROR, directory, None, "missing-dir", f"the {split} {what} directory is missing")
    if not list_path.is_file():
        scan.add(ERROR, list_path, None, "missing-list", f"the {split} list file is missing")
        listed = []
    else:
        listed = _read_id_list(scan, list_path)
    for lineno, image_id in listed:
        record = ImageRecord(split, image_id, lineno)
        scan.records[split].append(record)
        record.image_path = find_image(image_dir, image_id) if image_dir.is_dir() else None
        if record.image_path is None and image_dir.is_dir():
            others = sorted(p.name for p in image_dir.glob(f"{_glob_escape(image_id)}.*"))
            hint = f"; found {', '.join(others)}, which the reference code does not read" if others else ""
            scan.add(ERROR, list_path, lineno, "missing-image",
                     f"no image for id {image_id!r} (tried {', '.join(IMAGE_EXTENSIONS)}){hint}")
        ann_path = ann_dir / f"{image_id}.txt"
        if ann_path.is_file():
            record.annotation_path = ann_path
            _scan_annotation(scan, record)
        elif ann_dir.is_dir():
            scan.add(ERROR, list_path, lineno, "missing-annotation", f"no annotation {ann_path.name} for id {image_id!r}")
    listed_ids = {i for _, i in listed}
    if image_dir.is_dir():
        for path in sorted(image_dir.iterdir()):
            if path.is_file() and path.stem not in listed_ids:
                scan.unlisted_images.append(path)
                scan.add(WARNING, path, None, "unlisted-image", f"image is not in {list_path.name}")
    if ann_dir.is_dir():
        for path in sorted(ann_dir.glob("*.txt")):
            if path.stem not in listed_ids:
                scan.add(WARNING, path, None, "unlisted-annotation", f"annotation is not in {list_path.name}")


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _scan_annotation(scan: DatasetScan, record: ImageRecord) -> None:
    path = record.annotation_path
    lines = _read_lines(scan, path)
    if lines is None:
        record.annotation_error = "annotation unreadable"
        return
    expected_name = record.image_path.name if record.image_path else None
    for lineno, text in lines:
        if not text.strip():
            continue
        parts = text.split()
        if len(parts) != 6:
            scan.add(ERROR, path, lineno, "field-count",
                     f"expected 6 fields 'NAME CLASS x1 y1 x2 y2', got {len(parts)}: {text.strip()!r}")
            record.dropped_lines.append((lineno, f"{len(parts)} fields"))
            continue
        name, label, *coords = parts
        if label not in CLASS_TO_INDEX:
            scan.add(ERROR, path, lineno, "unknown-class", f"unknown class {label!r} (known: {', '.join(CLASSES)})")
            record.dropped_lines.append((lineno, f"unknown class {label!r}"))
            continue
        try:
            values = [float(c) for c in coords]
        except ValueError:
            scan.add(ERROR, path, lineno, "non-numeric", f"coordinates are not numbers: {' '.join(coords)!r}")
            record.dropped_lines.append((lineno, "coordinates are not numbers"))
            continue
        if any(v != v or v in (float("inf"), float("-inf")) for v in values):
            scan.add(ERROR, path, lineno, "non-numeric", f"coordinates are not finite: {' '.join(coords)!r}")
            record.dropped_lines.append((lineno, "coordinates are not finite"))
            continue
        if any(v != round(v) for v in values):
            scan.add(WARNING, path, lineno, "non-integer", f"coordinates are not integers, rounded: {' '.join(coords)!r}")
        if expected_name is not None and name != expected_name:
            scan.add(WARNING, path, lineno, "name-mismatch", f"NAME {name!r} does not match the image file {expected_name!r}")
        x1, y1, x2, y2 = (int(round(v)) for v in values)
        record.items.append(ItemLine(lineno, name, Box(label, x1, y1, x2, y2)))
    if not record.items and not record.dropped_lines:
        scan.add(WARNING, path, None, "empty-annotation", "annotation holds no items")


def _check_cross_split(scan: DatasetScan) -> None:
    train_ids = {r.image_id for r in scan.records["train"]}
    _, _, test_list = split_dirs(scan.root, "test")
    for record in scan.records["test"]:
        if record.image_id in train_ids:
            scan.add(ERROR, test_list, record.list_line, "train-test-overlap",
                     f"id {record.image_id!r} is in both the train and the test list")


def _scan_occlusion_lists(scan: DatasetScan) -> None:
    test_ids = {r.image_id for r in scan.records["test"]}
    level_of: dict[str, int] = {}
    present = 0
    for level in OL_LIST_NAMES:
        path = ol_list_path(scan.root, level)
        if not path.is_file():
            if (scan.root / "test").is_dir():
                scan.add(WARNING, path, None, "missing-ol-list", f"occlusion level list OL{level} is missing")
            continue
        present += 1
        scan.ol_ids[level] = []
        for lineno, image_id in _read_id_list(scan, path):
            scan.ol_ids[level].append(image_id)
            if image_id not in test_ids:
                scan.add(ERROR, path, lineno, "ol-not-in-test", f"id {image_id!r} is not in test_knife.txt")
            elif image_id in level_of:
                scan.add(ERROR, path, lineno, "ol-in-two-lists",
                         f"id {image_id!r} is already in the OL{level_of[image_id]} list")
            else:
                level_of[image_id] = level
    if present:
        _, _, test_list = split_dirs(scan.root, "test")
        for record in scan.records["test"]:
            if record.image_id not in level_of:
                scan.add(WARNING, test_list, record.list_line, "no-ol", f"test id {record.image_id!r} is in no OL list")


def occlusion_levels(scan: DatasetScan) -> dict[str, int]:
    """id -> level of the test ids, first list wins (the fault of a second list is reported by the scan)."""
    test_ids = {r.image_id for r in scan.records["test"]}
    levels: dict[str, int] = {}
    for level in sorted(scan.ol_ids):
        for image_id in scan.ol_ids[level]:
            if image_id in test_ids:
                levels.setdefault(image_id, level)
    return levels


def _decode_one(path: Path) -> tuple[tuple[int, int] | None, str | None, int]:
    try:
        image = read_image(path)
    except ImageDecodeError as exc:
        # The problem already names the file; keep only the decoder's reason.
        return None, str(exc).removeprefix(f"{path}: "), 0
    return (image.shape[1], image.shape[0]), None, path.stat().st_size


def _decode_all(scan: DatasetScan, workers: int) -> None:
    """Fully decode every listed image: header-only reads would miss truncated and corrupt files."""
    records = [r for split in SPLITS for r in scan.records[split] if r.image_path is not None]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(_decode_one, [r.image_path for r in records]))
    scan.decode = DecodeStats(len(records), sum(n for *_, n in results), time.perf_counter() - start)
    for record, (size, error, _) in zip(records, results):
        record.size, record.decode_error = size, error
        if error is not None:
            scan.add(ERROR, record.image_path, None, "unreadable-image", error)
    log.debug("decoded %d images in %.2f s (%.1f images/s, %.1f MB/s)", scan.decode.images, scan.decode.seconds,
             scan.decode.images_per_second, scan.decode.megabytes_per_second)


def _check_boxes(scan: DatasetScan, with_sizes: bool) -> None:
    for split in SPLITS:
        for record in scan.records[split]:
            for item in record.items:
                b, path = item.box, record.annotation_path
                if b.x2 <= b.x1 or b.y2 <= b.y1:
                    scan.add(ERROR, path, item.lineno, "inverted-box",
                             f"box {b.as_list()} is inverted or empty (needs x1 < x2 and y1 < y2)")
                    continue
                if with_sizes and record.size is not None:
                    _check_inside(scan, path, item.lineno, b, *record.size)


def _check_inside(scan: DatasetScan, path: Path, lineno: int, b: Box, width: int, height: int) -> None:
    if b.x1 < 0 or b.y1 < 0 or b.x2 > width or b.y2 > height:
        scan.add(ERROR, path, lineno, "box-outside", f"box {b.as_list()} lies outside the {width}x{height} image")
    elif b.x2 == width or b.y2 == height:
        scan.add(WARNING, path, lineno, "box-edge",
                 f"box {b.as_list()} ends one pixel past the {width}x{height} image (corners are inclusive)")


def clip_box(box: Box, width: int, height: int) -> Box | None:
    """The box clipped to the image's pixels (inclusive corners), or None if nothing of it remains."""
    x1, y1 = max(box.x1, 0), max(box.y1, 0)
    x2, y2 = min(box.x2, width - 1), min(box.y2, height - 1)
    if x2 <= x1 or y2 <= y1:
        return None
    return Box(box.label, x1, y1, x2, y2)


def fix_dataset(root: str | Path, out: str | Path, scan: DatasetScan | None = None,
                link: bool = False, workers: int = DEFAULT_WORKERS) -> list[str]:
    """Write a repaired copy of the dataset at ``root`` to ``out`` and return what was changed.

    The source is only read. Repairs: unreadable or missing images and their entries
    are dropped, unusable annotation lines dropped, boxes clipped to the image, boxes
    empty after clipping dropped, NAME fields set to the image file name, lists
    deduplicated, ids listed in both splits kept only in test (the benchmark split),
    OL lists limited to test ids with one level each (the first list wins).
    Raises ``OutputDirError`` before writing anything if ``out`` is not safe.
    """
    root = Path(root)
    out = prepare_output_dir(Path(out), root)
    if scan is None:
        scan = scan_dataset(root, decode=True, workers=workers)
    changes: list[str] = []
    make_layout(out)
    test_ids = {r.image_id for r in scan.records["test"]}
    kept: dict[str, list[str]] = {}
    for split in SPLITS:
        kept[split] = []
        for record in scan.records[split]:
            where = f"{split}/{record.image_id}"
            if split == "train" and record.image_id in test_ids:
                changes.append(f"{where}: dropped from train, the id is also in test")
            elif record.image_path is None:
                changes.append(f"{where}: dropped, no image")
            elif record.decode_error is not None:
                changes.append(f"{where}: dropped, unreadable image ({record.decode_error})")
            elif record.annotation_path is None or record.annotation_error is not None:
                changes.append(f"{where}: dropped, {record.annotation_error or 'no annotation'}")
            else:
                boxes = _repaired_boxes(record, changes)
                copy_file(record.image_path, split_dirs(out, split)[0] / record.image_path.name, link)
                write_annotation(split_dirs(out, split)[1] / f"{record.image_id}.txt", record.image_path.name, boxes)
                kept[split].append(record.image_id)
        dropped_dups = _count_duplicates(scan, split_dirs(root, split)[2])
        if dropped_dups:
            changes.append(f"{split}_knife.txt: removed {dropped_dups} duplicate line(s)")
        write_id_list(split_dirs(out, split)[2], kept[split])
    for path in scan.unlisted_images:
        changes.append(f"{path.relative_to(root)}: not copied, the image is in no list")
    _write_fixed_ol_lists(scan, out, set(kept["test"]), changes)
    for line in changes:
        log.debug("fix: %s", line)
    log.info("repaired copy of %s written to %s with %d change(s)", root, out, len(changes))
    return changes


def _repaired_boxes(record: ImageRecord, changes: list[str]) -> list[Box]:
    where = f"{record.split}/{record.image_id}"
    for lineno, fault in record.dropped_lines:
        changes.append(f"{where}: dropped annotation line {lineno} ({fault})")
    boxes = []
    width, height = record.size
    for item in record.items:
        clipped = clip_box(item.box, width, height)
        if clipped is None:
            changes.append(f"{where}: dropped box {item.box.as_list()} of line {item.lineno} (empty inside the image)")
            continue
        if clipped != item.box:
            changes.append(f"{where}: clipped box {item.box.as_list()} of line {item.lineno} to {clipped.as_list()}")
        if item.name != record.image_path.name:
            changes.append(f"{where}: NAME {item.name!r} of line {item.lineno} set to {record.image_path.name!r}")
        boxes.append(clipped)
    return boxes


def _write_fixed_ol_lists(scan: DatasetScan, out: Path, test_ids: set[str], changes: list[str]) -> None:
    if not scan.ol_ids:
        return
    placed: dict[str, int] = {}
    for level in OL_LIST_NAMES:
        ids = []
        for image_id in dict.fromkeys(scan.ol_ids.get(level, [])):  # ordered dedup
            if image_id not in test_ids:
                changes.append(f"{OL_LIST_NAMES[level]}: removed {image_id!r}, not in the (repaired) test list")
            elif image_id in placed:
                changes.append(f"{OL_LIST_NAMES[level]}: removed {image_id!r}, already in OL{placed[image_id]}")
            else:
                placed[image_id] = level
                ids.append(image_id)
        removed_dups = _count_duplicates(scan, ol_list_path(scan.root, level))
        if removed_dups:
            changes.append(f"{OL_LIST_NAMES[level]}: removed {removed_dups} duplicate line(s)")
        write_id_list(ol_list_path(out, level), ids)


def _count_duplicates(scan: DatasetScan, list_path: Path) -> int:
    return sum(1 for p in scan.problems if p.code == "duplicate-id" and p.path == list_path)
