"""Lane sources: watched folder (partial files, bad files), replay pacing, TIP truth."""
import threading
import time

import cv2
import numpy as np
import pytest

from core.imaging.decode import encode_jpg
from core.lane.bag import Bag
from core.lane.sources import ReplaySource, WatchedFolderSource
from core.lane.tip import TipPolicy, TipSource
from tests.tiny_dataset import make_tiny_dataset


def bag_image(w=320, h=240):
    img = np.full((h, w, 3), 255, np.uint8)
    cv2.rectangle(img, (40, 40), (w - 40, h - 40), (235, 190, 140), -1)  # a pale orange bag
    return img


def collect(source, n, timeout=10.0):
    out = []

    def run():
        for bag in source:
            out.append(bag)
            if len(out) >= n:
                break

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    source.stop()
    t.join(2)
    return out


def test_watched_folder_waits_for_partial_files_and_reports_bad_ones(tmp_path):
    source = WatchedFolderSource(tmp_path, poll_s=0.05, settle_s=0.3)
    data = encode_jpg(bag_image())
    partial = tmp_path / "0001.jpg"
    partial.write_bytes(data[: len(data) // 2])            # the scanner is still writing
    results = []
    t = threading.Thread(target=lambda: results.extend(collect(source, 3, timeout=8)), daemon=True)
    t.start()
    time.sleep(0.15)
    partial.write_bytes(data)                               # ... and finishes
    (tmp_path / "0002.jpg").write_bytes(b"")                # a 0-byte file
    (tmp_path / "0003.jpg").write_bytes(b"not an image at all")
    (tmp_path / "notes.txt").write_text("ignored")
    t.join(10)
    by_id = {b.bag_id: b for b in results}
    assert set(by_id) == {"0001", "0002", "0003"}
    assert by_id["0001"].ok and by_id["0001"].image.shape == (240, 320, 3)
    assert "empty" in by_id["0002"].error
    assert "not a readable image" in by_id["0003"].error


def test_watched_folder_never_takes_a_file_twice(tmp_path):
    (tmp_path / "old.jpg").write_bytes(encode_jpg(bag_image()))
    source = WatchedFolderSource(tmp_path, poll_s=0.05, settle_s=0.05)  # existing files are skipped
    assert collect(source, 1, timeout=0.6) == []


def test_replay_paces_itself_and_carries_truth(tmp_path):
    root = make_tiny_dataset(tmp_path / "d", n_train=1, n_test=4)
    source = ReplaySource.from_dataset(root, "test", rate_per_s=20.0)
    start = time.monotonic()
    bags = collect(source, 4)
    elapsed = time.monotonic() - start
    assert len(bags) == 4 and all(b.ok and len(b.truth) == 1 for b in bags)
    assert elapsed >= 3 / 20.0 * 0.9   # three waits between four bags


def test_tip_projects_a_hidden_threat_with_its_exact_box():
    policy = TipPolicy(share=1.0, seed=3)
    clean = bag_image(640, 480)
    bag = policy.apply(Bag("b1", "lane", image=clean.copy(), encoded=encode_jpg(clean)))
    assert bag.is_tip and len(bag.tip) == 1
    x1, y1, x2, y2 = bag.tip[0].box
    assert 0 <= x1 < x2 < 640 and 0 <= y1 < y2 < 480
    changed = np.argwhere((bag.image != clean).any(axis=2))
    assert changed[:, 1].min() >= x1 and changed[:, 1].max() <= x2
    assert changed[:, 0].min() >= y1 and changed[:, 0].max() <= y2
    assert bag.truth == []                      # TIP truth is kept apart from lane truth


def test_tip_share_zero_and_bad_bags_pass_through():
    policy = TipPolicy(share=0.0)
    img = bag_image()
    assert not policy.apply(Bag("a", "lane", image=img)).is_tip
    broken = Bag("b", "lane", error="corrupt")
    assert TipPolicy(share=1.0).apply(broken) is broken
    with pytest.raises(ValueError):
        TipPolicy(share=1.5)


def test_tip_source_wraps_a_replay(tmp_path):
    root = make_tiny_dataset(tmp_path / "d", n_train=1, n_test=3, width=320, height=240)
    bags = collect(TipSource(ReplaySource.from_dataset(root, rate_per_s=50.0), TipPolicy(share=1.0, seed=1)), 3)
    assert len(bags) == 3 and all(b.is_tip for b in bags)


def test_demo_lane_makes_clean_and_threat_bags_with_truth():
    from core.lane.sources import DemoLaneSource

    clean = DemoLaneSource(threat_rate=0.0, size=(320, 250), seed=5).make_bag(0)
    threat = DemoLaneSource(threat_rate=1.0, size=(320, 250), seed=5).make_bag(0)
    assert clean.ok and clean.truth == [] and clean.image.shape == (250, 320, 3)
    assert threat.ok and len(threat.truth) >= 1
    again = DemoLaneSource(threat_rate=1.0, size=(320, 250), seed=5).make_bag(0)
    assert again.encoded == threat.encoded      # deterministic for a seed
