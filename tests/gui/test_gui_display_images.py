"""Bags and heat maps reach the canvas as display-ready QImages built off the GUI thread; gc is frozen."""
from __future__ import annotations

import gc
import threading
from pathlib import Path

import numpy as np
from PySide6.QtGui import QImage

from app.qimages import display_qimage
from app.workers import PREPARED_IMAGES, DetectorWorker, LaneWorker
from core.lane.sources import ReplaySource

from gui_helpers import tiny_detector


def test_display_qimage_owns_its_pixels_in_the_pixmap_native_format() -> None:
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[2, 3] = (10, 20, 30)
    image = display_qimage(rgb)
    rgb[:] = 255                                             # the array changing must not change the image
    assert image.format() == QImage.Format_RGB32 and (image.width(), image.height()) == (8, 6)
    assert image.pixelColor(3, 2).getRgb()[:3] == (10, 20, 30)
    heat = np.zeros((4, 5, 4), np.uint8)
    heat[..., 0], heat[..., 3] = 255, 128
    overlay = display_qimage(heat)
    assert overlay.format() == QImage.Format_ARGB32_Premultiplied
    assert overlay.pixelColor(0, 0).alpha() == 128 and overlay.pixelColor(0, 0).red() >= 250


def test_lane_prepares_a_bounded_number_of_bag_images(qtbot, bag_folder: Path) -> None:
    worker = LaneWorker(ReplaySource.from_folder(bag_folder, rate_per_s=500.0), max_pending=20)
    arrived = []
    worker.bag_arrived.connect(arrived.append)
    with qtbot.waitSignal(worker.lane_ended, timeout=10000):
        worker.start()
    worker.stop()
    first = arrived[0]
    image = worker.take_image(first.bag_id)
    assert isinstance(image, QImage) and (image.height(), image.width()) == first.image.shape[:2]
    assert worker.take_image(first.bag_id) is None           # taken once
    prepared = [b for b in arrived[1:] if worker.take_image(b.bag_id) is not None]
    assert len(prepared) == PREPARED_IMAGES - 1               # later bags are converted when shown


def test_detector_sends_the_heat_map_as_a_qimage_built_in_its_thread(qtbot) -> None:
    worker = DetectorWorker(lambda: tiny_detector())
    results, threads = [], []
    worker.result_ready.connect(results.append)
    import app.workers as workers_module      # record which thread builds the heat map image
    real = workers_module.display_qimage
    workers_module.display_qimage = lambda a: (threads.append(threading.get_ident()), real(a))[1]
    try:
        with qtbot.waitSignal(worker.model_loaded, timeout=30000):
            worker.start()
        worker.submit("bag-1", np.zeros((240, 320, 3), np.uint8))
        qtbot.waitUntil(lambda: bool(results), timeout=30000)
    finally:
        workers_module.display_qimage = real
        worker.stop()
    result = results[0]
    assert result.heat_rgba is not None and result.heat_image is not None
    assert (result.heat_image.height(), result.heat_image.width()) == result.heat_rgba.shape[:2]
    assert threads and threading.get_ident() not in threads


def test_starting_the_lane_freezes_the_long_lived_heap(qtbot, session, rgb) -> None:
    from app.gc_pauses import freeze_long_lived
    gc.unfreeze()
    try:
        freeze_long_lived()
        assert gc.get_freeze_count() > 1000                     # imports are out of full collections
    finally:
        gc.unfreeze()
