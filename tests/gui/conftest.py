"""GUI test fixtures: offscreen Qt, small images, a tiny untrained detector, an in-memory session."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest

from app.session import InMemorySession
from core.imaging.decode import write_image
from core.lane.bag import Bag
from core.store import auth
from gui_helpers import make_rgb
from store_world import World, cheap_hashing, make_world


@pytest.fixture
def rgb() -> np.ndarray:
    return make_rgb()


@pytest.fixture
def session() -> InMemorySession:
    return InMemorySession()


@pytest.fixture
def recorded_bag(session: InMemorySession, rgb: np.ndarray) -> Bag:
    bag = Bag("bag-1", "import", image=rgb)
    session.record_bag(bag)
    return bag


@pytest.fixture
def bag_folder(tmp_path: Path) -> Path:
    """20 small JPEG bags plus nothing else (tests add bad files themselves)."""
    folder = tmp_path / "bags"
    folder.mkdir()
    for i in range(20):
        write_image(folder / f"bag{i:03d}.jpg", make_rgb(i))
    return folder


@pytest.fixture(scope="module")
def cheap_passwords():
    """Fast password hashing for a module's store tests (argon2's real cost is for production)."""
    previous = cheap_hashing()
    yield
    auth.set_hasher(previous)


@pytest.fixture
def world(request, tmp_path: Path):
    """A temporary SQLite store with a user of every role, a registered model and screened bags
    (store_world.make_world). A module sets ``WORLD_SCREENED_BAGS`` for another number than 4."""
    w: World = make_world(tmp_path / "data", screened_bags=getattr(request.module, "WORLD_SCREENED_BAGS", 4))
    yield w
    w.store.close()
