"""Read and write the OPIXray layout exactly as the reference code reads it.

Layout::

    <root>/train/train_image/       <root>/test/test_image/
    <root>/train/train_annotation/  <root>/test/test_annotation/
    <root>/train/train_knife.txt    <root>/test/test_knife.txt
                                    <root>/test/test_knife-1.txt  (OL1 ids)
                                    <root>/test/test_knife-2.txt  (OL2 ids)
                                    <root>/test/test_knife-3.txt  (OL3 ids)

One annotation file ``<id>.txt`` per image, one line per item:
``NAME.jpg CLASS x1 y1 x2 y2`` (integer pixels, top-left and bottom-right).
List files hold one image id (file stem) per line.

Parsing here is strict and raises ``AnnotationError`` with file and line;
``core.data.validate`` collects every problem of a whole dataset instead.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from core.classes import CLASS_TO_INDEX, CLASSES

SPLITS = ("train", "test")
IMAGE_EXTENSIONS = (".jpg", ".TIFF", ".tiff")  # the order the reference code tries
OL_LIST_NAMES = {1: "test_knife-1.txt", 2: "test_knife-2.txt", 3: "test_knife-3.txt"}


class AnnotationError(ValueError):
    """A malformed annotation or list file; the message names file and line."""


@dataclass(frozen=True)
class Box:
    """One labelled item: class name and integer pixel corners (x2, y2 inclusive as in OPIXray)."""
    label: str
    x1: int
    y1: int
    x2: int
    y2: int

    @property
    def class_index(self) -> int:
        return CLASS_TO_INDEX[self.label]

    def as_list(self) -> list[int]:
        return [self.x1, self.y1, self.x2, self.y2]


@dataclass
class Sample:
    """One image of a split with its items (and, for test images, its occlusion level)."""
    image_id: str
    image_path: Path
    boxes: list[Box] = field(default_factory=list)
    occlusion_level: int | None = None


def split_dirs(root: Path, split: str) -> tuple[Path, Path, Path]:
    """(image dir, annotation dir, list file) of a split."""
    base = Path(root) / split
    return base / f"{split}_image", base / f"{split}_annotation", base / f"{split}_knife.txt"


def ol_list_path(root: Path, level: int) -> Path:
    return Path(root) / "test" / OL_LIST_NAMES[level]


def find_image(image_dir: Path, image_id: str) -> Path | None:
    """The image file of an id, trying the extensions the reference code accepts."""
    for ext in IMAGE_EXTENSIONS:
        candidate = image_dir / f"{image_id}{ext}"
        if candidate.is_file():
            return candidate
    return None


def format_annotation_line(image_name: str, box: Box) -> str:
    return f"{image_name} {box.label} {box.x1} {box.y1} {box.x2} {box.y2}"


def parse_annotation_line(line: str, where: str = "") -> tuple[str, Box]:
    """Parse ``NAME CLASS x1 y1 x2 y2``; raises AnnotationError naming ``where``."""
    parts = line.split()
    if len(parts) != 6:
        raise AnnotationError(f"{where}: expected 'NAME CLASS x1 y1 x2 y2', got {len(parts)} fields: {line.strip()!r}")
    name, label, *coords = parts
    if label not in CLASS_TO_INDEX:
        raise AnnotationError(f"{where}: unknown class {label!r} (known: {', '.join(CLASSES)})")
    try:
        # The reference code reads coordinates with int(); accept '12.0' too but keep integers.
        x1, y1, x2, y2 = (int(round(float(c))) for c in coords)
    except ValueError as exc:
        raise AnnotationError(f"{where}: coordinates are not numbers: {' '.join(coords)!r}") from exc
    return name, Box(label, x1, y1, x2, y2)


def read_annotation(path: Path) -> list[Box]:
    """All boxes of one annotation file (blank lines ignored)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise AnnotationError(f"{path}: not a text file ({exc.reason})") from exc
    boxes = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            boxes.append(parse_annotation_line(line, f"{path}:{lineno}")[1])
    return boxes


def write_annotation(path: Path, image_name: str, boxes: list[Box]) -> None:
    """Write one annotation file in the reference format (LF line ends, trailing newline)."""
    text = "".join(format_annotation_line(image_name, b) + "\n" for b in boxes)
    Path(path).write_text(text, encoding="utf-8", newline="\n")


def read_id_list(path: Path) -> list[str]:
    """Image ids of a list file, one per line, in file order."""
    return [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]


def write_id_list(path: Path, ids: list[str]) -> None:
    Path(path).write_text("".join(f"{i}\n" for i in ids), encoding="utf-8", newline="\n")


def make_layout(root: Path) -> None:
    """Create the empty directory structure of both splits."""
    for split in SPLITS:
        image_dir, ann_dir, _ = split_dirs(root, split)
        image_dir.mkdir(parents=True, exist_ok=True)
        ann_dir.mkdir(parents=True, exist_ok=True)


def read_occlusion_levels(root: Path) -> dict[str, int]:
    """image id -> occlusion level from the test OL lists that exist."""
    levels: dict[str, int] = {}
    for level in OL_LIST_NAMES:
        path = ol_list_path(root, level)
        if path.is_file():
            for image_id in read_id_list(path):
                levels[image_id] = level
    return levels


def load_split(root: Path, split: str) -> list[Sample]:
    """Strictly load a split (raises on the first problem; use validate for a full report)."""
    root = Path(root)
    image_dir, ann_dir, list_path = split_dirs(root, split)
    if not list_path.is_file():
        raise AnnotationError(f"{list_path}: missing list file of the {split} split")
    levels = read_occlusion_levels(root) if split == "test" else {}
    samples = []
    for image_id in read_id_list(list_path):
        image_path = find_image(image_dir, image_id)
        if image_path is None:
            raise AnnotationError(f"{list_path}: image of id {image_id!r} not found in {image_dir}")
        ann_path = ann_dir / f"{image_id}.txt"
        if not ann_path.is_file():
            raise AnnotationError(f"{ann_path}: missing annotation of id {image_id!r}")
        samples.append(Sample(image_id, image_path, read_annotation(ann_path), levels.get(image_id)))
    return samples


def write_sample(root: Path, split: str, image_id: str, image_bytes: bytes, boxes: list[Box],
                 ext: str = ".jpg") -> Path:
    """Write one encoded image and its annotation into a split (list files are written separately)."""
    image_dir, ann_dir, _ = split_dirs(root, split)
    image_path = image_dir / f"{image_id}{ext}"
    image_path.write_bytes(image_bytes)
    write_annotation(ann_dir / f"{image_id}.txt", image_path.name, boxes)
    return image_path


def write_lists(root: Path, split: str, ids: list[str], levels: dict[str, int] | None = None) -> None:
    """Write a split's list file and, for the test split, the three OL lists."""
    _, _, list_path = split_dirs(root, split)
    write_id_list(list_path, ids)
    if split == "test" and levels is not None:
        for level in OL_LIST_NAMES:
            write_id_list(ol_list_path(root, level), [i for i in ids if levels.get(i) == level])


class OutputDirError(ValueError):
    """An output directory that must not be written (inside the source, or not empty)."""


def prepare_output_dir(out: Path, source: Path | None = None) -> Path:
    """Create ``out`` for a new copy of a dataset, refusing anything that could lose data.

    Refused: ``out`` inside ``source`` (or equal to it), ``source`` inside ``out``,
    and an ``out`` that exists and is not an empty directory.
    """
    out = Path(out)
    resolved = out.resolve()
    if source is not None:
        src = Path(source).resolve()
        if resolved == src or resolved.is_relative_to(src):
            raise OutputDirError(f"{out}: the output must not be inside the source dataset {source}")
        if src.is_relative_to(resolved):
            raise OutputDirError(f"{out}: the output must not contain the source dataset {source}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputDirError(f"{out}: already exists and is not an empty directory")
    out.mkdir(parents=True, exist_ok=True)
    return out


def copy_file(src: Path, dst: Path, link: bool = False) -> None:
    """Copy ``src`` to ``dst``; with ``link`` hard-link instead where the file system allows.

    A hard link shares the bytes with the source: only safe because dataset images
    are never edited in place.
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            dst.hardlink_to(src)
            return
        except OSError:
            pass  # another device or a file system without links: fall back to a copy
    shutil.copyfile(src, dst)

