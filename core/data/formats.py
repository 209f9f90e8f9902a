"""Export an OPIXray-layout dataset to Pascal VOC, COCO or YOLO, and import it back.

Round trips are exact: the same ids, splits, occlusion-level lists and integer
boxes come back. Coordinates are written as OPIXray stores them (no +1/-1 shift):

- VOC ``xmin ymin xmax ymax`` are the OPIXray corners unchanged;
- COCO ``bbox`` is ``[x1, y1, x2 - x1, y2 - y1]``, ``area`` is ``w * h``;
- YOLO ``cls cx cy w h`` is ``((x1+x2)/2W, (y1+y2)/2H, (x2-x1)/W, (y2-y1)/H)``,
  written with 8 decimals so that rounding back to integers is exact for any
  image smaller than ~10^7 pixels a side.

Export layouts::

    voc:  JPEGImages/<file>  Annotations/<id>.xml  ImageSets/Main/{train,test,test_ol1,test_ol2,test_ol3}.txt
    coco: images/<split>/<file>  annotations/instances_<split>.json  (test images carry "occlusion_level")
    yolo: images/<split>/<file>  labels/<split>/<id>.txt  {train,test,test_ol1,test_ol2,test_ol3}.txt
          classes.txt  data.yaml

Imported images keep their bytes when the reference loader can read their
extension (.jpg, .TIFF, .tiff; a .jpeg/.JPG is renamed to .jpg); other formats
are decoded and stored losslessly as .tiff. XML with a DTD or entity declaration
is refused (protection against entity-expansion attacks without defusedxml).
"""
from __future__ import annotations

import json
import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from core.classes import CLASS_TO_INDEX, CLASSES
from core.data.opixray import (
    IMAGE_EXTENSIONS,
    OL_LIST_NAMES,
    SPLITS,
    AnnotationError,
    Box,
    Sample,
    copy_file,
    load_split,
    make_layout,
    prepare_output_dir,
    read_id_list,
    split_dirs,
    write_annotation,
    write_id_list,
    write_lists,
)
from core.imaging.decode import ImageDecodeError, probe_size, read_image, write_image

log = logging.getLogger(__name__)

FORMATS = ("voc", "coco", "yolo")
YOLO_DECIMALS = 8


class FormatError(ValueError):
    """A dataset that cannot be exported or imported; the message names the file and the fault."""


# --------------------------------------------------------------------------- shared

def _load_source(root: Path) -> dict[str, list[Sample]]:
    """Strictly load the splits present (a missing split is skipped); ids must not be in both splits."""
    splits: dict[str, list[Sample]] = {}
    for split in SPLITS:
        if not split_dirs(root, split)[2].is_file():
            log.warning("%s: no %s list, split skipped", root, split)
            continue
        try:
            splits[split] = load_split(root, split)
        except AnnotationError as exc:
            raise FormatError(f"{exc} (run 'dataset check' for a full report, '--fix' for a repaired copy)") from exc
    if not splits:
        raise FormatError(f"{root}: no train or test list found; is this an OPIXray-layout dataset?")
    overlap = {s.image_id for s in splits.get("train", [])} & {s.image_id for s in splits.get("test", [])}
    if overlap:
        raise FormatError(f"{root}: {len(overlap)} id(s) are in both train and test, e.g. {sorted(overlap)[0]!r}")
    return splits


def _level_ids(samples: list[Sample], level: int) -> list[str]:
    return [s.image_id for s in samples if s.occlusion_level == level]


def _has_levels(splits: dict[str, list[Sample]]) -> bool:
    return any(s.occlusion_level is not None for s in splits.get("test", []))


def _size(path: Path) -> tuple[int, int]:
    try:
        return probe_size(path)
    except ImageDecodeError as exc:
        raise FormatError(str(exc)) from exc


def _import_image(src: Path, split: str, image_id: str, out: Path, link: bool) -> Path:
    """Place an image into the OPIXray layout under a name the reference loader reads."""
    image_dir = split_dirs(out, split)[0]
    if not src.is_file():
        raise FormatError(f"{src}: image file not found")
    if src.suffix in IMAGE_EXTENSIONS:
        dst = image_dir / f"{image_id}{src.suffix}"
    elif src.suffix.lower() in (".jpg", ".jpeg"):
        dst = image_dir / f"{image_id}.jpg"
    else:
        try:
            write_image(image_dir / f"{image_id}.tiff", read_image(src))
        except ImageDecodeError as exc:
            raise FormatError(str(exc)) from exc
        log.info("%s: stored as lossless TIFF (the reference loader reads only %s)", src, ", ".join(IMAGE_EXTENSIONS))
        return image_dir / f"{image_id}.tiff"
    copy_file(src, dst, link)
    return dst


def _write_imported(out: Path, split: str, image_id: str, image_src: Path, boxes: list[Box], link: bool) -> None:
    if image_id in ("", ".", "..") or Path(image_id).name != image_id or len(image_id.split()) != 1:
        raise FormatError(f"{image_src}: {image_id!r} cannot be an OPIXray image id (path separators or spaces)")
    image_path = _import_image(image_src, split, image_id, out, link)
    write_annotation(split_dirs(out, split)[1] / f"{image_id}.txt", image_path.name, boxes)


def _write_imported_lists(out: Path, ids: dict[str, list[str]], levels: dict[str, int] | None) -> None:
    for split, split_ids in ids.items():
        write_lists(out, split, split_ids, levels if split == "test" else None)


def _relative_ref(ref: str, where: str) -> Path:
    """A file reference from an imported index, refused if it could point outside the dataset."""
    path = Path(ref)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise FormatError(f"{where}: file reference {ref!r} must be a relative path inside the dataset")
    return path


def _as_int(value: object, where: str) -> int:
    """An integer coordinate from a number or numeric string; fractions are an error (boxes must round-trip)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FormatError(f"{where}: {value!r} is not a number") from None
    if not math.isfinite(number) or abs(number - round(number)) > 1e-6:
        raise FormatError(f"{where}: {value!r} is not an integer pixel coordinate")
    return int(round(number))


def _class_name(name: object, where: str) -> str:
    if name not in CLASS_TO_INDEX:
        raise FormatError(f"{where}: unknown class {name!r} (known: {', '.join(CLASSES)})")
    return str(name)


# --------------------------------------------------------------------------- Pascal VOC

def export_voc(root: Path, out: Path, link: bool = False) -> dict[str, int]:
    root, out = Path(root), prepare_output_dir(Path(out), Path(root))
    splits = _load_source(root)
    sets = out / "ImageSets" / "Main"
    sets.mkdir(parents=True)
    (out / "Annotations").mkdir()
    for split, samples in splits.items():
        for sample in samples:
            copy_file(sample.image_path, out / "JPEGImages" / sample.image_path.name, link)
            width, height = _size(sample.image_path)
            tree = ET.ElementTree(_voc_element(sample, width, height))
            ET.indent(tree)
            tree.write(out / "Annotations" / f"{sample.image_id}.xml", encoding="utf-8", xml_declaration=True)
        write_id_list(sets / f"{split}.txt", [s.image_id for s in samples])
    if _has_levels(splits):
        for level in OL_LIST_NAMES:
            write_id_list(sets / f"test_ol{level}.txt", _level_ids(splits["test"], level))
    return {split: len(samples) for split, samples in splits.items()}


def _voc_element(sample: Sample, width: int, height: int) -> ET.Element:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = sample.image_path.name
    size = ET.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    for box in sample.boxes:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = box.label
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        bndbox = ET.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box.as_list()):
            ET.SubElement(bndbox, tag).text = str(value)
    return root


def parse_xml_safely(path: Path) -> ET.Element:
    """Parse an XML file, refusing DTDs and entity declarations (billion laughs, external entities)."""
    data = Path(path).read_bytes()
    head = data.lstrip(b"\xef\xbb\xbf").upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
        raise FormatError(f"{path}: XML with a DTD or entity declaration is refused")
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise FormatError(f"{path}: not well-formed XML ({exc})") from exc


def import_voc(src: Path, out: Path, link: bool = False) -> dict[str, int]:
    src, out = Path(src), prepare_output_dir(Path(out), Path(src))
    sets = src / "ImageSets" / "Main"
    make_layout(out)
    ids: dict[str, list[str]] = {}
    for split in SPLITS:
        list_path = sets / f"{split}.txt"
        if not list_path.is_file():
            continue
        ids[split] = read_id_list(list_path)
        for image_id in ids[split]:
            xml_path = src / "Annotations" / _relative_ref(f"{image_id}.xml", str(list_path))
            if not xml_path.is_file():
                raise FormatError(f"{list_path}: no annotation {xml_path.name} for id {image_id!r}")
            filename, boxes = _read_voc(xml_path)
            _write_imported(out, split, image_id, src / "JPEGImages" / filename, boxes, link)
    if not ids:
        raise FormatError(f"{sets}: no train.txt or test.txt; is this a VOC export?")
    levels = _read_level_lists({lvl: sets / f"test_ol{lvl}.txt" for lvl in OL_LIST_NAMES}, str)
    _write_imported_lists(out, ids, levels)
    return {split: len(v) for split, v in ids.items()}


def _read_voc(path: Path) -> tuple[str, list[Box]]:
    root = parse_xml_safely(path)
    filename = root.findtext("filename")
    if not filename:
        raise FormatError(f"{path}: no <filename>")
    boxes = []
    for n, obj in enumerate(root.iter("object"), start=1):
        where = f"{path}: object {n}"
        name = _class_name((obj.findtext("name") or "").strip(), where)
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise FormatError(f"{where}: no <bndbox>")
        coords = [_as_int(bndbox.findtext(tag), f"{where} <{tag}>") for tag in ("xmin", "ymin", "xmax", "ymax")]
        boxes.append(Box(name, *coords))
    return Path(filename).name, boxes


def _read_level_lists(paths: dict[int, Path], key: Callable[[str], str]) -> dict[str, int] | None:
    """id -> level from the OL list files that exist (None if none does); ``key`` maps a line to an id."""
    if not any(p.is_file() for p in paths.values()):
        return None
    levels: dict[str, int] = {}
    for level, path in paths.items():
        if path.is_file():
            for line in read_id_list(path):
                levels.setdefault(key(line), level)
    return levels


# --------------------------------------------------------------------------- COCO

def export_coco(root: Path, out: Path, link: bool = False) -> dict[str, int]:
    root, out = Path(root), prepare_output_dir(Path(out), Path(root))
    splits = _load_source(root)
    (out / "annotations").mkdir()
    categories = [{"id": i + 1, "name": name, "supercategory": "cutter"} for i, name in enumerate(CLASSES)]
    for split, samples in splits.items():
        images, annotations = [], []
        for image_number, sample in enumerate(samples, start=1):
            copy_file(sample.image_path, out / "images" / split / sample.image_path.name, link)
            width, height = _size(sample.image_path)
            entry = {"id": image_number, "file_name": sample.image_path.name, "width": width, "height": height}
            if split == "test":
                entry["occlusion_level"] = sample.occlusion_level
            images.append(entry)
            for box in sample.boxes:
                w, h = box.x2 - box.x1, box.y2 - box.y1
                annotations.append({"id": len(annotations) + 1, "image_id": image_number,
                                    "category_id": box.class_index + 1, "bbox": [box.x1, box.y1, w, h],
                                    "area": w * h, "iscrowd": 0})
        document = {"info": {"description": f"OPIXray-layout dataset, {split} split",
                             "box_convention": "bbox = [x1, y1, x2 - x1, y2 - y1] of OPIXray integer corners"},
                    "images": images, "annotations": annotations, "categories": categories}
        (out / "annotations" / f"instances_{split}.json").write_text(json.dumps(document, indent=1), encoding="utf-8")
    return {split: len(samples) for split, samples in splits.items()}


def import_coco(src: Path, out: Path, link: bool = False) -> dict[str, int]:
    src, out = Path(src), prepare_output_dir(Path(out), Path(src))
    make_layout(out)
    ids: dict[str, list[str]] = {}
    levels: dict[str, int] = {}
    for split in SPLITS:
        path = src / "annotations" / f"instances_{split}.json"
        if path.is_file():
            ids[split] = _import_coco_split(path, src / "images" / split, split, out, link, levels)
    if not ids:
        raise FormatError(f"{src / 'annotations'}: no instances_train.json or instances_test.json")
    _write_imported_lists(out, ids, levels or None)
    return {split: len(v) for split, v in ids.items()}


def _import_coco_split(path: Path, image_dir: Path, split: str, out: Path, link: bool,
                       levels: dict[str, int]) -> list[str]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        categories = {c["id"]: _class_name(c["name"], f"{path}: category {c['id']}") for c in document["categories"]}
        images = document["images"]
        annotations = document.get("annotations", [])
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path}: not valid JSON ({exc})") from exc
    except (KeyError, TypeError) as exc:
        raise FormatError(f"{path}: missing COCO field {exc}") from exc
    boxes: dict[object, list[Box]] = {}
    for n, ann in enumerate(annotations):
        where = f"{path}: annotations[{n}]"
        try:
            x, y, w, h = (_as_int(v, f"{where} bbox") for v in ann["bbox"])
            label = categories[ann["category_id"]]
            image_ref = ann["image_id"]
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"{where}: bad or missing field ({exc})") from exc
        boxes.setdefault(image_ref, []).append(Box(label, x, y, x + w, y + h))
    ids = []
    for n, image in enumerate(images):
        try:
            file_name, image_ref = _relative_ref(image["file_name"], f"{path}: images[{n}]"), image["id"]
        except (KeyError, TypeError) as exc:
            raise FormatError(f"{path}: images[{n}] lacks {exc}") from exc
        image_id = file_name.stem
        if image.get("occlusion_level") in OL_LIST_NAMES:
            levels[image_id] = image["occlusion_level"]
        _write_imported(out, split, image_id, image_dir / file_name, boxes.get(image_ref, []), link)
        ids.append(image_id)
    return ids


# --------------------------------------------------------------------------- YOLO

def export_yolo(root: Path, out: Path, link: bool = False) -> dict[str, int]:
    root, out = Path(root), prepare_output_dir(Path(out), Path(root))
    splits = _load_source(root)
    for split, samples in splits.items():
        label_dir = out / "labels" / split
        label_dir.mkdir(parents=True)
        for sample in samples:
            copy_file(sample.image_path, out / "images" / split / sample.image_path.name, link)
            width, height = _size(sample.image_path)
            lines = [yolo_line(box, width, height) for box in sample.boxes]
            (label_dir / f"{sample.image_id}.txt").write_text("".join(f"{ln}\n" for ln in lines), encoding="utf-8")
        write_id_list(out / f"{split}.txt", [_yolo_image_ref(split, s) for s in samples])
    if _has_levels(splits):
        for level in OL_LIST_NAMES:
            write_id_list(out / f"test_ol{level}.txt",
                          [_yolo_image_ref("test", s) for s in splits["test"] if s.occlusion_level == level])
    write_id_list(out / "classes.txt", list(CLASSES))
    names = "".join(f"  {i}: {name}\n" for i, name in enumerate(CLASSES))
    (out / "data.yaml").write_text(
        "# OPIXray-layout dataset exported for YOLO; OL subsets of test in test_ol1/2/3.txt.\n"
        "# No 'path': list files and images are relative to this file's folder.\n"
        f"train: train.txt\nval: test.txt\ntest: test.txt\nnc: {len(CLASSES)}\nnames:\n{names}",
        encoding="utf-8")
    return {split: len(samples) for split, samples in splits.items()}


def _yolo_image_ref(split: str, sample: Sample) -> str:
    return f"images/{split}/{sample.image_path.name}"


def yolo_line(box: Box, width: int, height: int) -> str:
    """``cls cx cy w h`` normalised to the image size."""
    values = ((box.x1 + box.x2) / (2 * width), (box.y1 + box.y2) / (2 * height),
              (box.x2 - box.x1) / width, (box.y2 - box.y1) / height)
    return f"{box.class_index} " + " ".join(f"{v:.{YOLO_DECIMALS}f}" for v in values)


def parse_yolo_line(line: str, width: int, height: int, where: str) -> Box:
    """The integer box of a ``cls cx cy w h`` line (rounding to the nearest pixel)."""
    parts = line.split()
    if len(parts) != 5:
        raise FormatError(f"{where}: expected 'cls cx cy w h', got {len(parts)} fields")
    try:
        index = int(parts[0])
        cx, cy, w, h = (float(p) for p in parts[1:])
    except ValueError:
        raise FormatError(f"{where}: not numbers: {line.strip()!r}") from None
    if not 0 <= index < len(CLASSES):
        raise FormatError(f"{where}: class index {index} outside 0..{len(CLASSES) - 1}")
    return Box(CLASSES[index], round((cx - w / 2) * width), round((cy - h / 2) * height),
               round((cx + w / 2) * width), round((cy + h / 2) * height))


def import_yolo(src: Path, out: Path, link: bool = False) -> dict[str, int]:
    src, out = Path(src), prepare_output_dir(Path(out), Path(src))
    _check_yolo_classes(src)
    make_layout(out)
    ids: dict[str, list[str]] = {}
    for split in SPLITS:
        list_path = src / f"{split}.txt"
        if not list_path.is_file():
            continue
        ids[split] = []
        for ref in read_id_list(list_path):
            image_path = src / _relative_ref(ref, str(list_path))
            label_path = _yolo_label_path(src, ref)
            if not label_path.is_file():
                raise FormatError(f"{list_path}: no label file {label_path} for {ref!r}")
            width, height = _size(image_path)
            boxes = [parse_yolo_line(line, width, height, f"{label_path}:{n}")
                     for n, line in enumerate(label_path.read_text(encoding="utf-8").splitlines(), start=1)
                     if line.strip()]
            _write_imported(out, split, image_path.stem, image_path, boxes, link)
            ids[split].append(image_path.stem)
    if not ids:
        raise FormatError(f"{src}: no train.txt or test.txt; is this a YOLO export?")
    levels = _read_level_lists({lvl: src / f"test_ol{lvl}.txt" for lvl in OL_LIST_NAMES}, lambda r: Path(r).stem)
    _write_imported_lists(out, ids, levels)
    return {split: len(v) for split, v in ids.items()}


def _yolo_label_path(src: Path, image_ref: str) -> Path:
    """The label file of an image, by the YOLO rule: the last 'images' folder becomes 'labels'."""
    parts = list(Path(image_ref).parts)
    if "images" not in parts:
        raise FormatError(f"{src}: image path {image_ref!r} has no 'images' folder to map to 'labels'")
    index = len(parts) - 1 - parts[::-1].index("images")
    parts[index] = "labels"
    return (src.joinpath(*parts)).with_suffix(".txt")


def _check_yolo_classes(src: Path) -> None:
    path = src / "classes.txt"
    if not path.is_file():
        raise FormatError(f"{path}: missing (the class order of the label files)")
    names = read_id_list(path)
    if tuple(names) != CLASSES:
        raise FormatError(f"{path}: classes {names} differ from the OPIXray order {list(CLASSES)}")


EXPORTERS: dict[str, Callable[..., dict[str, int]]] = {"voc": export_voc, "coco": export_coco, "yolo": export_yolo}
IMPORTERS: dict[str, Callable[..., dict[str, int]]] = {"voc": import_voc, "coco": import_coco, "yolo": import_yolo}
