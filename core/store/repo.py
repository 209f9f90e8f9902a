"""The store's front door: ``Store.open(url)`` gives every repository on one database.

``core`` rules live in the repositories; the GUI and the jobs call them with
the acting user and get plain dataclasses back::

    store = Store.open(resolve_db_url(), data_dir=resolve_data_dir())
    me = store.users.login("ana", password)
    bag = store.bags.record_bag(me, lane_id=1, image=jpg_bytes, width=w, height=h)
    store.bags.record_decision(me, bag.id, "clear", opened_at=shown_at)
"""
from __future__ import annotations

import logging
import random
from pathlib import Path

from sqlalchemy.orm import Session

from core.config import DB_FILE_NAME, ensure_data_dir, sqlite_url
from core.store import audit, migrate
from core.store.engine import Database, create_store_engine
from core.store.hard_samples import HardSamplesRepo
from core.store.images import ImageStore
from core.store.queue import ScreeningQueue
from core.store.repo_bags import BagsRepo
from core.store.repo_labels import LabelsRepo
from core.store.repo_models import JobsRepo, ModelsRepo
from core.store.repo_review import ReviewsRepo
from core.store.repo_users import UsersRepo
from core.store.stats import StatsRepo

log = logging.getLogger(__name__)


class Store:
    def __init__(self, db: Database, images: ImageStore | None = None, rng: random.Random | None = None) -> None:
        self.db = db
        self.images = images
        self.users = UsersRepo(db)
        self.bags = BagsRepo(db, images, rng)
        self.labels = LabelsRepo(db)
        self.reviews = ReviewsRepo(db)
        self.models = ModelsRepo(db)
        self.jobs = JobsRepo(db)
        self.queue = ScreeningQueue(db)
        self.stats = StatsRepo(db)
        self.hard_samples = HardSamplesRepo(db)

    @classmethod
    def open(cls, url: str | None = None, *, data_dir: Path | None = None, auto_upgrade: bool | None = None,
             rng: random.Random | None = None, retry_delays_s: tuple[float, ...] | None = None) -> "Store":
        """Connect, check the schema (migrating an embedded SQLite store on first start).

        ``auto_upgrade`` defaults to True for SQLite (a single workstation owns
        it) and False for PostgreSQL (a shared server is migrated on purpose,
        with ``db upgrade``).
        """
        if url is None:
            if data_dir is None:
                raise ValueError("Store.open needs a database URL or a data directory")
            url = sqlite_url(data_dir / DB_FILE_NAME)
        if data_dir is not None:
            ensure_data_dir(data_dir)
        engine = create_store_engine(url)
        db = Database(engine, **({"retry_delays_s": retry_delays_s} if retry_delays_s is not None else {}))
        try:
            migrate.ensure_schema(engine, auto_upgrade=db.is_sqlite if auto_upgrade is None else auto_upgrade)
        except Exception:
            engine.dispose()
            raise
        images = ImageStore(data_dir / "images") if data_dir is not None else None
        return cls(db, images, rng)

    def verify_audit(self) -> audit.AuditReport:
        def work(session: Session) -> audit.AuditReport:
            return audit.verify(session)
        return self.db.run(work, write=False)

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()
