"""Workers: latest-wins detector queue, model load failure, lane errors, ordered session calls."""
from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import numpy as np
import pytest

from app.session import InMemorySession
from app.workers import DetectorWorker, EnhanceWorker, LaneWorker, SessionWorker, colourise_attention
from core.imaging.enhance import compose
from core.inference import Prediction
from core.lane.bag import Bag
from core.lane.sources import ReplaySource

from gui_helpers import make_rgb, tiny_detector


class SlowDetector:
    """Stands in for a model slower than the lane."""
    model_id = "slow-test"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.seen: list[int] = []

    def predict(self, image: np.ndarray) -> Prediction:
        time.sleep(self.seconds)
        self.seen.append(int(image[0, 0, 0]))
        h, w = image.shape[:2]
        return Prediction(np.array([[1, 1, 10, 10]], np.float32), np.array([0]), np.array([0.5], np.float32),
                          np.full((h, w), 0.5, np.float32), self.model_id, (h, w), {"total": self.seconds * 1e3})


@pytest.fixture
def stop_later():
    workers = []
    yield workers.append
    for worker in workers:
        worker.stop()


def test_flooding_keeps_the_queue_bounded_and_predicts_the_newest(qtbot, stop_later) -> None:
    detector = SlowDetector(0.15)
    worker = DetectorWorker(lambda: detector, capacity=2)
    stop_later(worker)
    results, dropped = [], []
    worker.result_ready.connect(results.append)
    worker.dropped.connect(dropped.append)
    with qtbot.waitSignal(worker.model_loaded, timeout=5000):
        worker.start()
    for i in range(20):
        worker.submit(f"bag-{i}", np.full((24, 32, 3), i, np.uint8))
        assert worker.queue_length() <= 2
    qtbot.waitUntil(lambda: any(r.bag_id == "bag-19" for r in results), timeout=5000)
    assert worker.max_queue_length <= 2
    assert len(dropped) >= 20 - 2 - 1          # at most one in flight plus the queue survive
    assert detector.seen[-1] == 19 or 19 in detector.seen
    assert len(results) < 20
    newest = next(r for r in results if r.bag_id == "bag-19")
    assert newest.heat_rgba.shape == (24, 32, 4) and newest.boxes.shape == (1, 4)
    assert newest.latency_ms >= 150


def test_a_model_that_fails_to_load_is_reported_and_bags_are_answered(qtbot, stop_later) -> None:
    def broken_loader():
        raise FileNotFoundError("resources/models/default.pt does not exist")

    worker = DetectorWorker(broken_loader)
    stop_later(worker)
    with qtbot.waitSignal(worker.model_failed, timeout=5000) as failed:
        worker.start()
    assert "no model loaded" in failed.args[0] and "default.pt" in failed.args[0]
    with qtbot.waitSignal(worker.prediction_failed, timeout=5000) as answered:
        worker.submit("bag-0", make_rgb())
    assert answered.args[0] == "bag-0"
    # A working model can still be swapped in later, in the same thread.
    with qtbot.waitSignal(worker.model_loaded, timeout=5000):
        worker.swap_model(lambda: SlowDetector(0.0))


def test_tiny_real_detector_gives_boxes_in_image_pixels_and_a_heat_map(qtbot, stop_later) -> None:
    worker = DetectorWorker(tiny_detector)
    stop_later(worker)
    with qtbot.waitSignal(worker.model_loaded, timeout=30000):
        worker.start()
    with qtbot.waitSignal(worker.result_ready, timeout=10000) as got:
        worker.submit("bag-0", make_rgb())
    result = got.args[0]
    assert result.model_id == "tiny-untrained"
    assert result.heat_rgba is not None and result.heat_rgba.shape == (240, 320, 4)
    if len(result.boxes):
        assert result.boxes[:, [0, 2]].max() <= 320 and result.boxes[:, [1, 3]].max() <= 240


def test_lane_worker_reports_bad_images_and_goes_on(qtbot, bag_folder: Path, stop_later) -> None:
    (bag_folder / "bag005.jpg").write_bytes(b"")                              # 0-byte
    data = (bag_folder / "bag010.jpg").read_bytes()
    (bag_folder / "bag010.jpg").write_bytes(data[: len(data) // 3])          # truncated
    (bag_folder / "bag015.jpg").write_bytes(b"not an image at all")           # corrupt
    worker = LaneWorker(ReplaySource.from_folder(bag_folder, rate_per_s=500.0))
    stop_later(worker)
    arrived, failed = [], []
    worker.bag_arrived.connect(lambda bag: (arrived.append(bag.bag_id), worker.release_bag()))
    worker.bag_failed.connect(failed.append)
    with qtbot.waitSignal(worker.lane_ended, timeout=10000):
        worker.start()
    assert [b.bag_id for b in failed] == ["bag005", "bag010", "bag015"]
    assert all(b.error for b in failed)
    assert len(arrived) == 17 and arrived[-1] == "bag019"


def test_lane_worker_stops_the_belt_when_bags_are_not_decided(qtbot, bag_folder: Path, stop_later) -> None:
    worker = LaneWorker(ReplaySource.from_folder(bag_folder, rate_per_s=500.0), max_pending=3)
    stop_later(worker)
    arrived = []
    worker.bag_arrived.connect(arrived.append)
    worker.start()
    qtbot.waitUntil(lambda: len(arrived) == 3, timeout=5000)
    qtbot.wait(200)
    assert len(arrived) == 3
    worker.release_bag()
    qtbot.waitUntil(lambda: len(arrived) == 4, timeout=5000)


def test_session_worker_runs_calls_in_order_and_reports_failures(qtbot, stop_later) -> None:
    session = InMemorySession()
    worker = SessionWorker(session)
    stop_later(worker)
    worker.start()
    now = dt.datetime.now(dt.timezone.utc)
    done, failed = [], []
    worker.done.connect(lambda token, method, result: done.append((token, method)))
    worker.failed.connect(lambda token, method, message: failed.append((token, method, message)))
    t1 = worker.call("record_bag", Bag("b1", "import", image=make_rgb()))
    t2 = worker.call("decide", "b1", "suspect", now, now + dt.timedelta(seconds=3))
    t3 = worker.call("decide", "missing", "clear", now, now)
    qtbot.waitUntil(lambda: len(done) + len(failed) == 3, timeout=5000)
    assert done == [(t1, "record_bag"), (t2, "decide")]
    assert failed[0][0] == t3 and "never recorded" in failed[0][2]
    assert session.decisions[0].verdict == "suspect" and session.decisions[0].seconds == 3
    with pytest.raises(AttributeError):
        worker.call("drop_database")


def test_enhance_worker_matches_core_and_returns_read_only_arrays(qtbot) -> None:
    worker = EnhanceWorker()
    image = make_rgb()
    with qtbot.waitSignal(worker.ready, timeout=5000) as got:
        token = worker.request("bag-1", image, ["negative", "edge_enhance"])
    assert got.args[0] == token
    np.testing.assert_array_equal(got.args[1], compose(image, ["negative", "edge_enhance"]))
    assert not got.args[1].flags.writeable


def test_attention_colours_are_transparent_where_attention_is_low() -> None:
    att = np.zeros((4, 4), np.float32)
    att[0, 0] = 1.0
    rgba = colourise_attention(att)
    assert rgba.shape == (4, 4, 4) and rgba[0, 0, 3] == 255 and rgba[1, 1, 3] == 0


def test_session_worker_holds_later_calls_after_a_failure_until_resumed(qtbot, stop_later) -> None:
    session = InMemorySession()
    worker = SessionWorker(session)
    stop_later(worker)
    worker.start()
    events = []
    worker.done.connect(lambda token, method, result: events.append((token, "done")))
    worker.failed.connect(lambda token, method, message: events.append((token, message)))
    t1 = worker.call("save_labels", "unknown-bag", [], "added")          # fails: bag never recorded
    t2 = worker.call("record_bag", Bag("b1", "import", image=make_rgb()))  # held, not run
    qtbot.waitUntil(lambda: len(events) == 2, timeout=5000)
    assert events[0][0] == t1 and "never recorded" in events[0][1]
    assert events[1] == (t2, SessionWorker.HELD_MESSAGE) and session.bags == {}
    worker.resume()
    t3 = worker.call("record_bag", Bag("b1", "import", image=make_rgb()))
    qtbot.waitUntil(lambda: len(events) == 3, timeout=5000)
    assert events[2] == (t3, "done") and "b1" in session.bags
