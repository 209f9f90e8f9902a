"""``python main.py bench synth``: synthetic images per second at OPIXray's 1225x954.

Measures the whole per-image path the generator runs (compose the scene, render with
detector effects, encode the JPG) with 1 and with 2 worker processes, plus a split of
where one process spends its time. Files are not written: disk speed is not the subject.
"""
from __future__ import annotations

import time

import numpy as np

from core.imaging.decode import encode_jpg
from core.synth.generator import JPG_QUALITY, iter_images
from core.synth.scene import SceneConfig, compose_scene


def add_arguments(parser) -> None:
    parser.add_argument("--synth-images", type=int, default=120, metavar="N",
                        help="images per worker setting for the synth suite (default 120; --quick: 12)")
    parser.add_argument("--synth-workers", type=int, nargs="+", default=[1, 2], metavar="K",
                        help="worker counts to measure (default 1 2)")


def _stages(n: int, config: SceneConfig) -> dict:
    compose = render = encode = 0.0
    for i in range(n):
        rng = np.random.default_rng(np.random.SeedSequence(99, spawn_key=(i,)))
        t0 = time.perf_counter()
        scene = compose_scene(rng, config, render_image=False)
        t1 = time.perf_counter()
        # The scene keeps no optical depth; re-compose with rendering and subtract.
        rng = np.random.default_rng(np.random.SeedSequence(99, spawn_key=(i,)))
        image = compose_scene(rng, config).image
        t2 = time.perf_counter()
        encode_jpg(image, JPG_QUALITY)
        t3 = time.perf_counter()
        compose += t1 - t0
        render += (t2 - t1) - (t1 - t0)
        encode += t3 - t2
        del scene
    return {"compose_ms": round(1000 * compose / n, 1), "render_ms": round(1000 * max(render, 0.0) / n, 1),
            "encode_ms": round(1000 * encode / n, 1)}


def run(args) -> dict:
    n = 12 if getattr(args, "quick", False) else int(getattr(args, "synth_images", 40))
    worker_counts = list(getattr(args, "synth_workers", [1, 2]))
    config = SceneConfig()
    result: dict = {"size": f"{config.width}x{config.height}", "images": n}
    # Warm the catalogue and the noise bank once so the first setting is not charged for imports.
    for _ in iter_images(0, 1, 0, config, workers=1):
        pass
    for workers in worker_counts:
        t0, c0 = time.perf_counter(), time.process_time()
        first = None
        count = 0
        for _ in iter_images(1234, n, 0, config, workers=workers):
            count += 1
            if first is None:
                first = time.perf_counter()   # the pool is up: what follows is the steady rate
        end = time.perf_counter()
        seconds, cpu = end - t0, time.process_time() - c0
        entry = {"seconds": round(seconds, 2), "images_per_s": round(count / seconds, 2),
                 "startup_s": round(first - t0, 2),
                 "steady_images_per_s": round((count - 1) / max(end - first, 1e-9), 2) if count > 1 else None}
        if workers == 1:
            # CPU time of this process alone: on a shared machine the wall clock also counts
            # other people's work; 1000 / cpu_ms_per_image is the rate one free core reaches.
            entry["cpu_ms_per_image"] = round(1000 * cpu / max(count, 1), 1)
            entry["images_per_s_per_free_core"] = round(count / max(cpu, 1e-9), 2)
        result[f"workers_{workers}"] = entry
    result["per_image_1_process"] = _stages(max(3, n // 4), config)
    return result
