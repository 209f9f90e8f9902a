"""`make run` on a fresh store: the bundled model screens and becomes the registry's first active version."""
from __future__ import annotations

from pathlib import Path

import pytest

from app.main_window import lane_model, parse_options
from app.model_loading import DEFAULT_MODEL_PATH
from core.store.repo import Store


@pytest.mark.skipif(not DEFAULT_MODEL_PATH.is_file(), reason="no bundled model in this checkout")
def test_first_load_of_the_bundled_model_registers_it_as_active(tmp_path: Path) -> None:
    store = Store.open(None, data_dir=tmp_path / "data")
    try:
        choice = lane_model(store, parse_options(["--data-dir", str(tmp_path / "data")]))
        assert store.models.active() is None                 # nothing happens until the lane loads it
        detector = choice.loader()                           # the detector worker's thread, in the lane
        active = store.models.active()
        assert active is not None and active.sha256 == detector.info.sha256
        # The next start reads the store's active model (verified against its sha256), not the file.
        again = lane_model(store, parse_options(["--data-dir", str(tmp_path / "data")]))
        assert "active model" in again.description
    finally:
        store.close()
