"""A fresh store adopts the bundled model the lane screens with as its first active version."""
from __future__ import annotations

from pathlib import Path

import torch

from core.inference import Detector, save_model
from core.inference.registry import adopt_bundled_model
from core.models.build import build_detector
from core.store.permissions import SystemActor
from core.store.repo import Store

SMALL = dict(input_size=[64, 96], widths=[8, 8, 16, 16, 16], neck_channels=16, head_channels=16)


def model_file(path: Path, seed: int) -> Detector:
    torch.manual_seed(seed)
    save_model(path, build_detector("fast", "doam", **SMALL))
    return Detector.load(path, device="cpu")


def test_the_bundled_model_becomes_active_once_and_never_over_a_supervisors_choice(tmp_path: Path) -> None:
    store = Store.open(None, data_dir=tmp_path / "data")
    try:
        bundled = model_file(tmp_path / "default.pt", 0)
        version = adopt_bundled_model(store, bundled.info)
        assert version is not None and version.status == "active" and version.sha256 == bundled.info.sha256
        assert adopt_bundled_model(store, bundled.info) is None          # already active: nothing changes
        assert [v.id for v in store.models.list()] == [version.id]
        # A supervisor's own active model is never replaced by the bundled one.
        other = model_file(tmp_path / "other.pt", 1)
        actor = SystemActor("test")
        mine = store.models.register(actor, name="site model", arch="fast", attention="doam", path=other.info.path)
        store.models.promote(actor, mine.id)
        assert adopt_bundled_model(store, bundled.info) is None
        assert store.models.active().id == mine.id
    finally:
        store.close()
