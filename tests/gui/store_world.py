"""A small store for the GUI tests: users of every role, a lane, a model and a few screened bags.

Imported by name (pytest puts tests/gui on sys.path). SQLite in a temporary
folder, argon2 at test cost, images of 240x320 so every test stays fast.
"""
from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher

from core.imaging.decode import encode_jpg
from core.store import auth
from core.store.permissions import SystemActor
from core.store.repo import Store
from core.store.values import BagInfo, Box, ScoredBox, UserInfo
from gui_helpers import make_rgb

PASSWORD = "correct horse battery"
MODEL_NAME = "tiny-untrained"     # what gui_helpers.tiny_detector() calls itself
SYSTEM = SystemActor("tests")


def cheap_hashing() -> PasswordHasher:
    return auth.set_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@dataclass
class World:
    store: Store
    data_dir: Path
    lane_id: int
    model_id: int
    admin: UserInfo
    inspector: UserInfo
    supervisor: UserInfo
    supervisor2: UserInfo
    annotator: UserInfo
    bags: list[BagInfo]


def make_world(data_dir: Path, *, screened_bags: int = 4) -> World:
    """Users, a lane, a registered model; bags screened by the inspector (the first one called suspect)."""
    store = Store.open(None, data_dir=data_dir, rng=random.Random(1))
    lane = store.users.add_lane(SYSTEM, "lane-1")
    admin = store.users.add(SYSTEM, "admin", "admin", PASSWORD)
    inspector = store.users.add(SYSTEM, "ines", "inspector", PASSWORD, lane_id=lane.id)
    supervisor = store.users.add(SYSTEM, "sam", "supervisor", PASSWORD)
    supervisor2 = store.users.add(SYSTEM, "sue", "supervisor", PASSWORD)
    annotator = store.users.add(SYSTEM, "ann", "annotator", PASSWORD)
    model = store.models.register(SYSTEM, name=MODEL_NAME, arch="fast", attention="doam",
                                  path=data_dir / "models" / "tiny.pt", sha256="ab" * 32)
    store.reviews.set_qc_share(SYSTEM, 0.0)
    bags = []
    start = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.timezone.utc)
    for index in range(screened_bags):
        image = make_rgb(index)
        height, width = image.shape[:2]
        tip = [Box("Scissor", 100, 60, 160, 120)] if index == 2 else None
        bag = store.bags.record_bag(inspector, lane_id=lane.id, width=width, height=height, image=encode_jpg(image),
                                    source="tip" if tip else "lane", tip_truth=tip)
        store.bags.record_predictions(inspector, bag.id, model.id, [
            ScoredBox(Box("Straight_Knife", 40, 40, 120, 150), 0.2 if index == 1 else 0.9),
            ScoredBox(Box("Scissor", 180, 60, 260, 160), 0.35)])
        if index != 3:
            store.labels.save(inspector, bag.id, [Box("Straight_Knife", 42, 44, 118, 150)] if index == 0 else [],
                              origin="accepted_prediction" if index == 0 else "deleted", base_version=0)
        opened = start + dt.timedelta(minutes=index)
        verdict = "suspect" if index == 0 else "clear"
        store.bags.record_decision(inspector, bag.id, verdict, opened_at=opened,
                                   decided_at=opened + dt.timedelta(seconds=3 + index))
        bags.append(bag)
    return World(store, data_dir, lane.id, model.id, admin, inspector, supervisor, supervisor2, annotator, bags)
