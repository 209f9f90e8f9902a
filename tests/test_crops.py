"""Training crops at the inference scale (core.data.crops) and the trainer's --crop recipe."""
from pathlib import Path

import numpy as np
import pytest
import torch

from core.classes import CLASSES
from core.data.crops import CropDataset
from core.data.opixray import Box, make_layout, write_lists, write_sample
from core.imaging.decode import encode_jpg
from core.training.config import TrainConfig
from core.training.trainer import SeededDataset, train

WIDTH, HEIGHT = 400, 300          # native image size
INPUT = (192, 256)                # the model's input size: x0.64
CROP = 96
SCALE = np.array([INPUT[1] / WIDTH, INPUT[0] / HEIGHT] * 2)
# Distinct colours per class, so a box's pixels in a crop tell which box it is.
COLOURS = [(200, 0, 0), (0, 160, 0), (0, 0, 200), (160, 160, 0), (0, 160, 160)]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Images with three solid, non-overlapping coloured boxes each on a white belt."""
    root = tmp_path_factory.mktemp("crops")
    make_layout(root)
    rng = np.random.default_rng(5)
    for split, count in (("train", 6), ("test", 3)):
        ids, levels = [], {}
        for i in range(count):
            img = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
            boxes = []
            for k, (x, y) in enumerate([(20, 20), (230, 40), (120, 190)]):
                x, y = x + int(rng.integers(0, 20)), y + int(rng.integers(0, 20))
                w, h = int(rng.integers(40, 110)), int(rng.integers(25, 70))
                cls = (i + k) % len(CLASSES)
                img[y:y + h, x:x + w] = COLOURS[cls]
                boxes.append(Box(CLASSES[cls], x, y, x + w, y + h))
            image_id = f"{split[:2]}{i:04d}"
            write_sample(root, split, image_id, encode_jpg(img), boxes)
            ids.append(image_id)
            levels[image_id] = 1 + i % 3
        write_lists(root, split, ids, levels if split == "test" else None)
    return root


def _items(dataset: CropDataset, seed: int, n: int = 30):
    seeded = SeededDataset(dataset, seed)
    return [_at(seeded, i) for i in range(n)]


def _at(seeded: SeededDataset, i: int):
    seeded.epoch = i // len(seeded)       # many draws per image: walk the epochs
    return seeded[i % len(seeded)]


def test_crops_have_the_crop_size_and_boxes_cover_their_item_pixels(data):
    dataset = CropDataset(data, "train", input_size=INPUT, crop_size=CROP, negative_share=0.0)
    for image, target in _items(dataset, seed=1):
        assert image.shape == (3, CROP, CROP) and image.dtype == torch.float32
        assert 0.0 <= image.min() and image.max() <= 1.0
        boxes = target["boxes"]
        assert len(boxes) >= 1, "a positive crop must hold its chosen item"
        assert len(boxes) == len(target["labels"])
        for box, label in zip(boxes.tolist(), target["labels"].tolist()):
            x1, y1, x2, y2 = box
            assert 0 <= x1 < x2 <= CROP and 0 <= y1 < y2 <= CROP
            # Alignment: the box's interior (shrunk by 2 px for resampling) has the class colour.
            inner = image[:, int(np.ceil(y1)) + 2:int(y2) - 2, int(np.ceil(x1)) + 2:int(x2) - 2]
            if inner.numel():
                colour = torch.tensor(COLOURS[label], dtype=torch.float32) / 255
                assert torch.allclose(inner.mean(dim=(1, 2)), colour, atol=0.08), (box, label)


def test_positive_crop_holds_the_whole_chosen_item_at_the_inference_scale(data):
    dataset = CropDataset(data, "train", input_size=INPUT, crop_size=CROP, negative_share=0.0, flips=False)
    for i in range(len(dataset)):
        _, target = SeededDataset(dataset, 3)[i]
        x0, y0 = target["crop"]
        native = np.array([b.as_list() for b in dataset.samples[i].boxes], dtype=np.float64) * SCALE
        in_crop = target["boxes"].as_subclass(torch.Tensor).numpy() + [x0, y0, x0, y0]
        # At least one item is wholly inside, with exactly its resized coordinates (no flip).
        whole = [np.isclose(native, row, atol=1e-3).all(axis=1).any() for row in in_crop]
        assert any(whole), (in_crop, native)


def test_negatives_contain_no_box_and_share_is_respected(data):
    dataset = CropDataset(data, "train", input_size=INPUT, crop_size=CROP, negative_share=0.5)
    items = _items(dataset, seed=2, n=60)
    negatives = [t for _, t in items if len(t["boxes"]) == 0]
    assert 15 <= len(negatives) <= 45
    for image, target in items:
        if len(target["boxes"]) == 0:
            # No pixel of any item's colour: the window touches no box.
            saturated = (image.max(dim=0).values - image.min(dim=0).values) > 0.3
            assert not saturated.any()
            assert len(target["labels"]) == 0


def test_same_seed_same_crops_other_seed_other_crops(data):
    dataset = CropDataset(data, "train", input_size=INPUT, crop_size=CROP, negative_share=0.2)
    a, b, c = (_items(dataset, seed=s, n=12) for s in (7, 7, 8))
    assert all(torch.equal(x[0], y[0]) and x[1]["crop"] == y[1]["crop"] for x, y in zip(a, b))
    assert any(x[1]["crop"] != y[1]["crop"] for x, y in zip(a, c))


def test_bad_crop_settings_are_refused(data):
    with pytest.raises(ValueError, match="multiples of 32"):
        CropDataset(data, "train", input_size=INPUT, crop_size=100)
    with pytest.raises(ValueError, match="fit the input size"):
        CropDataset(data, "train", input_size=INPUT, crop_size=320)
    with pytest.raises(ValueError, match="negative share"):
        CropDataset(data, "train", input_size=INPUT, crop_size=CROP, negative_share=1.0)
    with pytest.raises(ValueError, match="--crop"):
        TrainConfig(data=str(data), out="x", crop=100)


def test_trainer_trains_on_crops_and_evaluates_on_whole_images(data, tmp_path):
    small = {"input_size": list(INPUT), "widths": [8, 8, 16, 16, 16], "neck_channels": 16, "head_channels": 16}
    cfg = TrainConfig(data=str(data), out=str(tmp_path), arch="fast", attention="doam", strategy="hard", iters=4,
                      batch_size=2, workers=0, warmup_iters=2, checkpoint_every_s=1e9, model_options=small,
                      crop=CROP, negative_share=0.2, pool_capacity=2, pool_period=2,
                      curve_every_min=1e-9, curve_data=str(data))
    result = train(cfg)
    assert result["step"] >= 4 and (tmp_path / "model.pt").exists()
    rows = (tmp_path / "steps.csv").read_text().splitlines()[1:]
    assert any(",replay," in r for r in rows)       # the over-sampling pool replays crops too
    assert (tmp_path / "curve.json").exists()         # evaluated on whole resized test images


def test_a_time_budget_alone_is_not_cut_short_by_one_epoch(data):
    assert TrainConfig(data=str(data), out="x").epochs == 1
    assert TrainConfig(data=str(data), out="x", time_budget_min=5).epochs > 1000
    assert TrainConfig(data=str(data), out="x", time_budget_min=5, epochs=2).epochs == 2


def test_crops_do_not_depend_on_the_number_of_data_workers(data):
    from torch.utils.data import DataLoader

    from core.data.dataset import collate_fn

    dataset = SeededDataset(CropDataset(data, "train", input_size=INPUT, crop_size=CROP, negative_share=0.3), 4)
    batches = [[0, 1, 2], [3, 4, 5]]
    runs = [list(DataLoader(dataset, batch_sampler=batches, num_workers=n, collate_fn=collate_fn)) for n in (0, 2)]
    for (images_a, targets_a), (images_b, targets_b) in zip(*runs):
        assert all(torch.equal(a, b) for a, b in zip(images_a, images_b))
        assert [t["crop"] for t in targets_a] == [t["crop"] for t in targets_b]
