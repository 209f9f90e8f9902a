"""Write a whole synthetic dataset in the OPIXray layout.

Every image is drawn from its own seed, derived from (seed, split, index) with numpy's
``SeedSequence``; workers return encoded JPGs in order (``Pool.imap``) and only the
parent writes files. The output is therefore byte-identical for a given seed whatever
the number of workers. Image ids are 6-digit numbers like OPIXray's: train images
first (000001...), then test images.
"""
from __future__ import annotations

import logging
import multiprocessing
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from tqdm import tqdm

from core.data.opixray import Box, make_layout, prepare_output_dir, write_lists, write_sample
from core.imaging.decode import encode_jpg

from .occlusion import Occlusion
from .occlusion_table import ItemOcclusion, items_of, write_table
from .scene import OPIXRAY_TEST_COUNTS, OPIXRAY_TRAIN_COUNTS, Catalogue, SceneConfig, compose_scene

log = logging.getLogger(__name__)

SPLIT_KEYS = {"train": 0, "test": 1}
JPG_QUALITY = 95


@dataclass(frozen=True)
class GeneratedImage:
    split: str
    image_id: str
    jpg: bytes
    boxes: list[Box]
    level: int
    occlusions: list[Occlusion]     # per item, in the order of boxes


@dataclass(frozen=True)
class DatasetSummary:
    root: Path
    train: int
    test: int
    levels: dict[int, int]          # test images per OL
    classes: dict[str, int]         # items per class, both splits
    multi_item_images: int


def image_seed(seed: int, split: str, index: int) -> np.random.SeedSequence:
    """The seed of one image: independent of worker count and of the other images."""
    return np.random.SeedSequence(int(seed), spawn_key=(SPLIT_KEYS[split], int(index)))


def split_config(config: SceneConfig, split: str, per_split_mix: bool) -> SceneConfig:
    """OPIXray's own class mix of each split (Table II), unless the caller set one."""
    if not per_split_mix:
        return config
    return replace(config, class_weights=OPIXRAY_TRAIN_COUNTS if split == "train" else OPIXRAY_TEST_COUNTS)


class GenerationError(RuntimeError):
    """One image could not be generated; the message says which, to replay it alone."""


_worker_catalogue: Catalogue | None = None


def _init_worker(catalogue: Catalogue | None) -> None:
    """Set up a pool worker process (never called in the caller's own process)."""
    global _worker_catalogue
    _worker_catalogue = catalogue
    cv2.setNumThreads(1)  # one process per core; OpenCV threads would only fight them


def make_image(task: tuple[int, str, int, str, SceneConfig], catalogue: Catalogue | None = None) -> GeneratedImage:
    """Compose, render and encode one image (in a worker, or in this process)."""
    seed, split, index, image_id, config = task
    rng = np.random.default_rng(image_seed(seed, split, index))
    try:
        scene = compose_scene(rng, config, catalogue or _worker_catalogue)
    except Exception as exc:  # name the image so the failure can be replayed alone
        raise GenerationError(f"image {image_id} ({split} #{index} of seed {seed}) failed: "
                              f"{type(exc).__name__}: {exc}") from exc
    boxes = [Box(label, *box) for label, box in zip(scene.labels, scene.boxes)]
    return GeneratedImage(split, image_id, encode_jpg(scene.image, JPG_QUALITY), boxes, scene.image_level,
                          scene.occlusions)


def _tasks(seed: int, n_train: int, n_test: int, config: SceneConfig, per_split_mix: bool
           ) -> Iterator[tuple[int, str, int, str, SceneConfig]]:
    number = 1
    for split, n in (("train", n_train), ("test", n_test)):
        cfg = split_config(config, split, per_split_mix)
        for index in range(n):
            yield seed, split, index, f"{number:06d}", cfg
            number += 1


def iter_images(seed: int, n_train: int, n_test: int, config: SceneConfig = SceneConfig(), workers: int = 1,
                catalogue: Catalogue | None = None, per_split_mix: bool = True) -> Iterator[GeneratedImage]:
    """Generated images in id order, from ``workers`` processes (1: in this process)."""
    if n_train < 0 or n_test < 0:
        raise ValueError(f"image counts must not be negative, got train={n_train} test={n_test}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    tasks = _tasks(seed, n_train, n_test, config, per_split_mix)
    total = n_train + n_test
    if workers == 1 or total <= 1:
        for task in tasks:
            yield make_image(task, catalogue)
        return
    # forkserver: workers fork from a fresh single-threaded server, never from this process,
    # whose OpenMP/OpenCV thread pools (torch is often loaded) would deadlock a forked child.
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else None
    ctx = multiprocessing.get_context(method)
    chunk = max(1, min(8, total // (workers * 8)))
    with ctx.Pool(workers, initializer=_init_worker, initargs=(catalogue,)) as pool:
        yield from pool.imap(make_image, tasks, chunksize=chunk)


def generate_dataset(out: Path, n_train: int, n_test: int, seed: int = 0, workers: int = 1,
                     config: SceneConfig = SceneConfig(), catalogue: Catalogue | None = None,
                     per_split_mix: bool = True, progress: bool = True) -> DatasetSummary:
    """Write ``n_train`` + ``n_test`` images with annotations, list files, OL lists and per-item
    occlusion tables (core.synth.occlusion_table) under ``out`` (which must not exist or be an
    empty directory: nothing is overwritten).

    ``per_split_mix`` uses OPIXray's class mix of each split; False uses ``config.class_weights``."""
    if n_train < 0 or n_test < 0 or workers < 1:
        raise ValueError(f"need image counts >= 0 and workers >= 1, got train={n_train} test={n_test} "
                         f"workers={workers}")
    root = prepare_output_dir(Path(out))
    make_layout(root)
    ids: dict[str, list[str]] = {"train": [], "test": []}
    levels: dict[str, int] = {}
    items: dict[str, list[ItemOcclusion]] = {"train": [], "test": []}
    classes: dict[str, int] = {}
    multi = 0
    total = n_train + n_test
    bar = tqdm(total=total, desc="synth", unit="img", file=sys.stderr, disable=not progress or total == 0)
    try:
        for item in iter_images(seed, n_train, n_test, config, workers, catalogue, per_split_mix):
            write_sample(root, item.split, item.image_id, item.jpg, item.boxes)
            ids[item.split].append(item.image_id)
            items[item.split] += items_of(item.image_id, item.boxes, item.occlusions)
            if item.split == "test":
                levels[item.image_id] = item.level
            for b in item.boxes:
                classes[b.label] = classes.get(b.label, 0) + 1
            multi += len(item.boxes) > 1
            bar.update(1)
    finally:
        bar.close()
    write_lists(root, "train", ids["train"])
    write_lists(root, "test", ids["test"], levels)
    for split, split_items in items.items():   # per-item occlusion, which OPIXray's lists do not carry
        write_table(root, split, split_items)
    per_level = {k: sum(1 for v in levels.values() if v == k) for k in (1, 2, 3)}
    log.info("wrote %d train and %d test images to %s (OL1/2/3: %s)", n_train, n_test, root, per_level)
    return DatasetSummary(root, n_train, n_test, per_level, classes, multi)
