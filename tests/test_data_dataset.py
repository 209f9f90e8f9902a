"""The torch Dataset: targets, OL subsets, and boxes that stay on the item under transforms."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from test_data_opixray import TEST, TRAIN, build_tiny_dataset
from torch.utils.data import DataLoader
from torchvision import tv_tensors
from torchvision.transforms import v2

from core.classes import CLASS_TO_INDEX
from core.data.dataset import OPIXrayDataset, collate_fn, default_transforms
from core.data.opixray import Box, make_layout, write_annotation, write_lists
from core.imaging.decode import write_image

torch.set_num_threads(1)


def test_item_types_and_values(tmp_path):
    root = build_tiny_dataset(tmp_path / "ds")
    dataset = OPIXrayDataset(root, "train")
    assert len(dataset) == len(TRAIN)
    image, target = dataset[1]
    assert isinstance(image, tv_tensors.Image) and image.shape == (3, 48, 64) and image.dtype == torch.uint8
    assert isinstance(target["boxes"], tv_tensors.BoundingBoxes)
    assert target["boxes"].format == tv_tensors.BoundingBoxFormat.XYXY
    assert tuple(target["boxes"].canvas_size) == (48, 64)
    assert target["boxes"].tolist() == [[10, 10, 40, 40], [0, 0, 63, 47]]  # corners unchanged
    assert target["labels"].tolist() == [CLASS_TO_INDEX["Scissor"], CLASS_TO_INDEX["Utility_Knife"]]
    assert target["labels"].dtype == torch.int64
    assert target["image_id"] == "000002" and target["occlusion_level"] is None


def test_occlusion_level_subsets(tmp_path):
    root = build_tiny_dataset(tmp_path / "ds")
    assert [OPIXrayDataset(root, "test", ol=level)[0][1]["image_id"] for level in (1, 2, 3)] == list(TEST)
    assert OPIXrayDataset(root, "test", ol=3)[0][1]["occlusion_level"] == 3
    with pytest.raises(ValueError, match="only in the test split"):
        OPIXrayDataset(root, "train", ol=1)
    with pytest.raises(ValueError, match="must be one of"):
        OPIXrayDataset(root, "test", ol=4)


def _marked_dataset(tmp_path):
    """One white 80x60 lossless TIFF with a black rectangle exactly where its box says."""
    root = tmp_path / "marked"
    make_layout(root)
    pixels = np.full((60, 80, 3), 255, np.uint8)
    pixels[10:30, 5:25] = 0  # rows 10..29, columns 5..24: box (5, 10, 25, 30) with x2 kept as is
    write_image(root / "train/train_image/m.tiff", pixels)
    write_annotation(root / "train/train_annotation/m.txt", "m.tiff", [Box("Scissor", 5, 10, 25, 30)])
    write_lists(root, "train", ["m"])
    return root


def _dark_region(image: torch.Tensor) -> list[float]:
    dark = (image.float().mean(0) < 0.5 * (1.0 if image.is_floating_point() else 255)).nonzero()
    return [dark[:, 1].min().item(), dark[:, 0].min().item(), dark[:, 1].max().item() + 1, dark[:, 0].max().item() + 1]


@pytest.mark.parametrize("flip", [v2.RandomHorizontalFlip(p=1.0), v2.RandomVerticalFlip(p=1.0)])
def test_flip_keeps_box_on_the_item(tmp_path, flip):
    dataset = OPIXrayDataset(_marked_dataset(tmp_path), "train", transforms=flip)
    image, target = dataset[0]
    assert target["boxes"].tolist()[0] == pytest.approx(_dark_region(image))
    assert target["boxes"].tolist()[0] != [5, 10, 25, 30]  # it really moved


def test_default_train_transforms_keep_boxes_aligned(tmp_path):
    dataset = OPIXrayDataset(_marked_dataset(tmp_path), "train", transforms=default_transforms(True, size=120))
    torch.manual_seed(0)
    for _ in range(10):
        image, target = dataset[0]
        assert image.dtype == torch.float32 and image.shape == (3, 120, 120)
        assert 0.0 <= image.min() and image.max() <= 1.0
        if len(target["boxes"]):  # a translation may push the item out; sanitise drops it with its label
            assert target["boxes"].tolist()[0] == pytest.approx(_dark_region(image), abs=2.0)
        assert len(target["labels"]) == len(target["boxes"])


def test_eval_transforms_resize_only(tmp_path):
    root = build_tiny_dataset(tmp_path / "ds")
    image, target = OPIXrayDataset(root, "test", transforms=default_transforms(False, size=(24, 32)))[0]
    assert image.shape == (3, 24, 32)
    assert target["boxes"].tolist() == [[0.5, 0.5, 31.0, 23.0]]  # (1,1,62,46) scaled by 0.5


def test_collate_and_loader(tmp_path):
    root = build_tiny_dataset(tmp_path / "ds")
    loader = DataLoader(OPIXrayDataset(root, "train", default_transforms(False, 32)), batch_size=2,
                        collate_fn=collate_fn)
    images, targets = next(iter(loader))
    assert len(images) == 2 and torch.stack(images).shape == (2, 3, 32, 32)
    assert [t["image_id"] for t in targets] == ["000001", "000002"]
    assert [len(t["boxes"]) for t in targets] == [1, 2]


def test_box_of_a_known_item_unchanged(tmp_path):
    root = build_tiny_dataset(tmp_path / "ds")
    target = OPIXrayDataset(root, "test")[2][1]
    assert target["boxes"].tolist() == [b.as_list() for b in TEST["009003"][0]]
    assert all(isinstance(b, Box) for b in TEST["009003"][0])


def test_boxes_outside_after_transform_are_dropped_with_their_labels():
    image = tv_tensors.Image(torch.zeros(3, 48, 64, dtype=torch.uint8))
    target = {"boxes": tv_tensors.BoundingBoxes([[70, 50, 90, 60], [10, 10, 70, 40]], format="XYXY",
                                                canvas_size=(48, 64)),
              "labels": torch.tensor([1, 2]), "image_id": "x", "occlusion_level": None}
    image, target = default_transforms(False)(image, target)
    assert target["boxes"].tolist() == [[10, 10, 64, 40]]  # clamped to the canvas
    assert target["labels"].tolist() == [2]
    assert target["image_id"] == "x" and target["occlusion_level"] is None
