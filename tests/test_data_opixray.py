"""OPIXray layout I/O, and a tiny hand-built dataset the other data tests reuse.

``build_tiny_dataset`` writes a valid dataset of small JPGs with cv2 so the data
tests depend neither on the synthetic generator nor on the real OPIXray.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from core.data.opixray import (
    AnnotationError,
    Box,
    OutputDirError,
    copy_file,
    load_split,
    make_layout,
    parse_annotation_line,
    prepare_output_dir,
    read_annotation,
    read_occlusion_levels,
    write_lists,
    write_sample,
)

WIDTH, HEIGHT = 64, 48
# id -> boxes; the test ids carry their occlusion level.
TRAIN = {
    "000001": [Box("Folding_Knife", 2, 3, 30, 20)],
    "000002": [Box("Scissor", 10, 10, 40, 40), Box("Utility_Knife", 0, 0, 63, 47)],
    "000003": [Box("Multi-tool_Knife", 5, 6, 7, 9)],
}
TEST = {
    "009001": ([Box("Straight_Knife", 1, 1, 62, 46)], 1),
    "009002": ([Box("Scissor", 20, 5, 33, 41)], 2),
    "009003": ([Box("Folding_Knife", 3, 4, 50, 30), Box("Multi-tool_Knife", 40, 2, 60, 12)], 3),
}


def jpg_bytes(width: int = WIDTH, height: int = HEIGHT, seed: int = 0) -> bytes:
    """A small JPG with some structure (a gradient and a dark bar), RGB."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 230, np.uint8)
    image[: height // 2, :, 0] = np.linspace(0, 255, width, dtype=np.uint8)
    image[height // 3: height // 3 + 5, 5: width - 5] = rng.integers(0, 80, 3, dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


def build_tiny_dataset(root: Path, with_levels: bool = True) -> Path:
    """A valid OPIXray-layout dataset of 3 train and 3 test images of 64x48."""
    make_layout(root)
    for i, (image_id, boxes) in enumerate(TRAIN.items()):
        write_sample(root, "train", image_id, jpg_bytes(seed=i), boxes)
    for i, (image_id, (boxes, _)) in enumerate(TEST.items()):
        write_sample(root, "test", image_id, jpg_bytes(seed=10 + i), boxes)
    write_lists(root, "train", list(TRAIN))
    write_lists(root, "test", list(TEST), {i: lvl for i, (_, lvl) in TEST.items()} if with_levels else None)
    return root


def test_tiny_dataset_loads_back(tmp_path):
    root = build_tiny_dataset(tmp_path / "ds")
    train = load_split(root, "train")
    assert [s.image_id for s in train] == list(TRAIN)
    assert [s.boxes for s in train] == list(TRAIN.values())
    test = load_split(root, "test")
    assert [s.occlusion_level for s in test] == [1, 2, 3]
    assert read_occlusion_levels(root) == {"009001": 1, "009002": 2, "009003": 3}
    # The annotation's NAME is the image file name, as in the reference data.
    text = (root / "test/test_annotation/009001.txt").read_text()
    assert text == "009001.jpg Straight_Knife 1 1 62 46\n"


@pytest.mark.parametrize("line, fragment", [
    ("a.jpg Scissor 1 2 3", "got 5 fields"),
    ("a.jpg Spoon 1 2 3 4", "unknown class 'Spoon'"),
    ("a.jpg Scissor 1 2 x 4", "not numbers"),
])
def test_parse_annotation_line_names_the_fault(line, fragment):
    with pytest.raises(AnnotationError, match=fragment) as info:
        parse_annotation_line(line, "f.txt:7")
    assert str(info.value).startswith("f.txt:7:")


def test_read_annotation_rejects_binary(tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(AnnotationError, match="not a text file"):
        read_annotation(path)


def test_prepare_output_dir_refuses_unsafe_targets(tmp_path):
    source = build_tiny_dataset(tmp_path / "src")
    with pytest.raises(OutputDirError, match="inside the source"):
        prepare_output_dir(source / "fixed", source)
    with pytest.raises(OutputDirError, match="inside the source"):
        prepare_output_dir(source, source)
    with pytest.raises(OutputDirError, match="contain the source"):
        prepare_output_dir(tmp_path, source)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(OutputDirError, match="not an empty directory"):
        prepare_output_dir(busy, source)
    assert (busy / "keep.txt").read_text() == "mine"
    assert prepare_output_dir(tmp_path / "new", source).is_dir()


def test_copy_file_copies_or_links(tmp_path):
    src = tmp_path / "a.bin"
    src.write_bytes(b"abc")
    copy_file(src, tmp_path / "out/copy.bin")
    copy_file(src, tmp_path / "out/link.bin", link=True)
    assert (tmp_path / "out/copy.bin").read_bytes() == b"abc"
    assert (tmp_path / "out/link.bin").read_bytes() == b"abc"
    assert (tmp_path / "out/copy.bin").stat().st_ino != src.stat().st_ino
