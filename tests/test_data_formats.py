"""VOC, COCO and YOLO export/import: exact round trips and clear refusals."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest
from test_data_opixray import TEST, TRAIN, build_tiny_dataset, jpg_bytes

from core.classes import CLASSES
from core.data.formats import (
    EXPORTERS,
    FORMATS,
    IMPORTERS,
    FormatError,
    export_coco,
    export_voc,
    export_yolo,
    import_voc,
    import_yolo,
    parse_yolo_line,
    yolo_line,
)
from core.data.opixray import (
    Box,
    OutputDirError,
    load_split,
    make_layout,
    read_id_list,
    read_occlusion_levels,
    write_lists,
    write_sample,
)


def _snapshot(root):
    """Everything a round trip must keep: per split the ids in order with boxes, and the OL map."""
    splits = {split: [(s.image_id, s.image_path.name, s.boxes) for s in load_split(root, split)]
              for split in ("train", "test")}
    return splits, read_occlusion_levels(root)


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_keeps_ids_splits_boxes_and_levels(tmp_path, fmt):
    source = build_tiny_dataset(tmp_path / "src")
    counts = EXPORTERS[fmt](source, tmp_path / "exported")
    assert counts == {"train": len(TRAIN), "test": len(TEST)}
    IMPORTERS[fmt](tmp_path / "exported", tmp_path / "back")
    assert _snapshot(tmp_path / "back") == _snapshot(source)
    # Images travel byte for byte.
    for image_id in TRAIN:
        assert (tmp_path / f"back/train/train_image/{image_id}.jpg").read_bytes() == \
            (source / f"train/train_image/{image_id}.jpg").read_bytes()


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_on_odd_sizes_and_edge_boxes(tmp_path, fmt):
    """Odd image sizes make YOLO's normalised values non-terminating fractions; rounding back must be exact."""
    source = tmp_path / "src"
    make_layout(source)
    sizes = {"a": (1225, 954), "b": (997, 613), "c": (37, 29), "d": (4099, 3)}
    boxes = {"a": [Box("Scissor", 0, 0, 1224, 953), Box("Folding_Knife", 611, 477, 612, 478)],
             "b": [Box("Utility_Knife", 1, 2, 996, 612), Box("Straight_Knife", 333, 111, 667, 499)],
             "c": [Box("Multi-tool_Knife", 3, 5, 36, 28)],
             "d": [Box("Scissor", 4097, 0, 4098, 2)]}
    for image_id, (w, h) in sizes.items():
        write_sample(source, "test", image_id, jpg_bytes(w, h), boxes[image_id])
    # A real TIFF under the upper-case extension the reference code also accepts.
    tiff = cv2.imencode(".tiff", np.full((31, 41, 3), 200, np.uint8))[1].tobytes()
    write_sample(source, "test", "e", tiff, [Box("Scissor", 0, 1, 40, 30)], ext=".TIFF")
    sizes["e"] = (41, 31)
    write_lists(source, "test", list(sizes), {"a": 1, "b": 3, "c": 3, "d": 2, "e": 1})
    write_lists(source, "train", [])
    EXPORTERS[fmt](source, tmp_path / "exported")
    IMPORTERS[fmt](tmp_path / "exported", tmp_path / "back")
    assert _snapshot(tmp_path / "back") == _snapshot(source)
    assert (tmp_path / "back/test/test_image/e.TIFF").read_bytes() == tiff


def test_yolo_line_round_trips_every_box_of_an_odd_image():
    width, height = 1223, 951
    for x1 in range(0, width, 97):
        for x2 in range(x1 + 1, width, 89):
            box = Box("Scissor", x1, x1 % height, x2, min(height - 1, x1 % height + 1 + x2 % 50))
            assert parse_yolo_line(yolo_line(box, width, height), width, height, "t") == box


def test_voc_xml_content(tmp_path):
    source = build_tiny_dataset(tmp_path / "src")
    export_voc(source, tmp_path / "voc")
    root = ET.parse(tmp_path / "voc/Annotations/000002.xml").getroot()
    assert root.findtext("folder") == "JPEGImages"
    assert root.findtext("filename") == "000002.jpg"
    assert (root.findtext("size/width"), root.findtext("size/height")) == ("64", "48")
    objects = root.findall("object")
    assert [o.findtext("name") for o in objects] == ["Scissor", "Utility_Knife"]
    assert {o.findtext("difficult") for o in objects} == {"0"}
    assert [objects[0].findtext(f"bndbox/{t}") for t in ("xmin", "ymin", "xmax", "ymax")] == ["10", "10", "40", "40"]
    assert read_id_list(tmp_path / "voc/ImageSets/Main/test_ol3.txt") == ["009003"]


def test_coco_json_content(tmp_path):
    source = build_tiny_dataset(tmp_path / "src")
    export_coco(source, tmp_path / "coco")
    doc = json.loads((tmp_path / "coco/annotations/instances_test.json").read_text())
    assert [(c["id"], c["name"]) for c in doc["categories"]] == [(i + 1, n) for i, n in enumerate(CLASSES)]
    assert [im["occlusion_level"] for im in doc["images"]] == [1, 2, 3]
    first = doc["annotations"][0]
    assert first["bbox"] == [1, 1, 61, 45] and first["area"] == 61 * 45
    assert first["iscrowd"] == 0 and first["category_id"] == CLASSES.index("Straight_Knife") + 1
    train = json.loads((tmp_path / "coco/annotations/instances_train.json").read_text())
    assert "occlusion_level" not in train["images"][0]
    # pycocotools reads it (the format other tools expect).
    from pycocotools.coco import COCO
    coco = COCO(str(tmp_path / "coco/annotations/instances_test.json"))
    assert len(coco.getAnnIds()) == 4


def test_yolo_files(tmp_path):
    source = build_tiny_dataset(tmp_path / "src")
    export_yolo(source, tmp_path / "yolo")
    label = (tmp_path / "yolo/labels/train/000001.txt").read_text().split()
    assert label[0] == "0"
    assert [float(v) for v in label[1:]] == pytest.approx([16 / 64, 11.5 / 48, 28 / 64, 17 / 48])
    assert read_id_list(tmp_path / "yolo/classes.txt") == list(CLASSES)
    assert "nc: 5" in (tmp_path / "yolo/data.yaml").read_text()
    assert read_id_list(tmp_path / "yolo/test_ol2.txt") == ["images/test/009002.jpg"]
    assert read_id_list(tmp_path / "yolo/train.txt")[0] == "images/train/000001.jpg"


def test_export_refuses_unsafe_output_and_invalid_source(tmp_path):
    source = build_tiny_dataset(tmp_path / "src")
    with pytest.raises(OutputDirError):
        export_coco(source, source / "inside")
    (source / "test/test_annotation/009002.txt").write_text("009002.jpg Spoon 1 2 3 4\n")
    with pytest.raises(FormatError, match="unknown class 'Spoon'.*dataset check"):
        export_voc(source, tmp_path / "voc")


def test_voc_import_refuses_entities(tmp_path):
    source = build_tiny_dataset(tmp_path / "src")
    export_voc(source, tmp_path / "voc")
    bomb = ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxx"><!ENTITY y "&x;&x;&x;&x;">]>'
            '<annotation><filename>000001.jpg</filename></annotation>')
    (tmp_path / "voc/Annotations/000001.xml").write_text(bomb)
    with pytest.raises(FormatError, match="000001.xml: XML with a DTD"):
        import_voc(tmp_path / "voc", tmp_path / "back")


def test_import_refuses_paths_leaving_the_dataset_and_bad_labels(tmp_path):
    source = build_tiny_dataset(tmp_path / "src")
    export_yolo(source, tmp_path / "yolo")
    (tmp_path / "yolo/train.txt").write_text("../src/train/train_image/000001.jpg\n")
    with pytest.raises(FormatError, match="relative path inside the dataset"):
        import_yolo(tmp_path / "yolo", tmp_path / "back")
    export_yolo(source, tmp_path / "yolo2")
    (tmp_path / "yolo2/labels/test/009001.txt").write_text("7 0.5 0.5 0.1 0.1\n")
    with pytest.raises(FormatError, match=r"009001.txt:1: class index 7"):
        import_yolo(tmp_path / "yolo2", tmp_path / "back2")


def test_import_of_png_images_stores_lossless_tiff(tmp_path):
    """A PNG (not readable by the reference loader) becomes a TIFF with the same pixels."""
    from core.imaging.decode import read_image

    source = build_tiny_dataset(tmp_path / "src")
    export_coco(source, tmp_path / "coco")
    png = tmp_path / "coco/images/train/000001.png"
    pixels = read_image(tmp_path / "coco/images/train/000001.jpg")
    cv2.imwrite(str(png), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
    (tmp_path / "coco/images/train/000001.jpg").unlink()
    doc_path = tmp_path / "coco/annotations/instances_train.json"
    doc = json.loads(doc_path.read_text())
    doc["images"][0]["file_name"] = "000001.png"
    doc_path.write_text(json.dumps(doc))
    IMPORTERS["coco"](tmp_path / "coco", tmp_path / "back")
    tiff = tmp_path / "back/train/train_image/000001.tiff"
    assert np.array_equal(read_image(tiff), pixels)
    assert load_split(tmp_path / "back", "train")[0].boxes == TRAIN["000001"]
