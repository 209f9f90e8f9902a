"""Bags, the predictions the inspector saw, and the inspector's decisions.

A decision is committed before ``record_decision`` returns, and in the same
transaction the flagging rules may send the bag to the review queue.
Both inserts are idempotent on a client-chosen id (``uid``, ``request_id``):
re-running after a lost connection returns the row written the first time.
"""
from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.store.base import RepoBase, bag_info, decision_info
from core.store.errors import InvalidInput, InvalidState
from core.store.images import ImageStore
from core.store.repo_review import flag_reason, qc_share
from core.store.schema import (BAG_SOURCES, VERDICTS, Bag, Decision, Lane, ModelVersion, Prediction, Review, as_utc,
                               utcnow)
from core.store.values import BagInfo, Box, DecisionInfo, ScoredBox


class BagsRepo(RepoBase):
    def __init__(self, db, images: ImageStore | None = None, rng: random.Random | None = None) -> None:  # noqa: ANN001
        super().__init__(db)
        self.images = images
        # Random QC sampling; tests pass a seeded generator.
        self.rng = rng or random.SystemRandom()

    def record_bag(self, who: object, *, lane_id: int, width: int, height: int, image: bytes | None = None,
                   image_sha256: str | None = None, source: str = "lane",
                   tip_truth: Sequence[Box] | None = None, scanned_at: dt.datetime | None = None,
                   uid: str | None = None) -> BagInfo:
        """Record a scanned bag; its image bytes go to the content-addressed store first."""
        if source not in BAG_SOURCES:
            raise InvalidInput(f"unknown bag source {source!r}; expected one of {', '.join(BAG_SOURCES)}")
        if int(width) <= 0 or int(height) <= 0:
            raise InvalidInput(f"bad image size {width}x{height}")
        if (source == "tip") != (tip_truth is not None):
            raise InvalidInput("a TIP bag needs its projected truth (tip_truth), and only a TIP bag has one")
        action = "import_bag" if source == "import" else "record_bag"
        # Refuse a forbidden caller before anything (even an image file) is written.
        self.db.run(lambda s: self.actor(s, who, action, bag_lane_id=lane_id), write=False)
        if image is not None:
            if self.images is None:
                raise InvalidInput("this store has no image directory; pass image_sha256 of a stored image")
            # The file is written before the row: a row never points to a missing image.
            image_sha256 = self.images.put_bytes(image).sha256
        elif image_sha256 is None:
            raise InvalidInput("record_bag needs the image bytes or the sha256 of a stored image")
        elif self.images is not None and self.images.find(image_sha256) is None:
            raise InvalidInput(f"image {image_sha256} is not in the image store {self.images.root}")
        uid = uid or uuid.uuid4().hex
        truth = [box.as_dict() for box in tip_truth] if tip_truth is not None else None

        def work(session: Session) -> BagInfo:
            actor = self.actor(session, who, action, bag_lane_id=lane_id)
            existing = session.execute(select(Bag).where(Bag.uid == uid)).scalar_one_or_none()
            if existing is not None:  # the first attempt did commit
                return bag_info(existing)
            self.get_or_404(session, Lane, lane_id, "lane")
            bag = Bag(uid=uid, lane_id=lane_id, scanned_at=as_utc(scanned_at) or utcnow(), image_sha256=image_sha256,
                      width=int(width), height=int(height), source=source, tip_truth=truth)
            session.add(bag)
            session.flush()
            self.audit(session, actor, "bag.record", "bag", bag.id, uid=uid, lane_id=lane_id, source=source,
                       image_sha256=image_sha256)
            return bag_info(bag)
        return self.db.run(work)

    def record_predictions(self, who: object, bag_id: int, model_version_id: int,
                           predictions: Sequence[ScoredBox]) -> int:
        """Record what the screening model showed for this bag (possibly nothing); returns the count."""
        rows = [(p.box, float(p.score)) for p in predictions]
        for _box, score in rows:
            if not 0.0 <= score <= 1.0:
                raise InvalidInput(f"prediction score {score} is outside [0, 1]")

        def work(session: Session) -> int:
            bag = self.get_or_404(session, Bag, bag_id, "bag", lock=True)
            actor = self.actor(session, who, "record_bag", bag_lane_id=bag.lane_id, bag_id=bag.id)
            self.get_or_404(session, ModelVersion, model_version_id, "model version")
            if bag.screening_model_id == model_version_id:  # a retried call: already recorded
                return len(session.scalars(select(Prediction.id).where(Prediction.bag_id == bag_id)).all())
            if bag.screening_model_id is not None:
                raise InvalidState(f"bag {bag_id} was already screened by model version {bag.screening_model_id}")
            now = utcnow()
            session.add_all(Prediction(bag_id=bag_id, model_version_id=model_version_id, class_name=box.class_name,
                                       score=score, x1=box.x1, y1=box.y1, x2=box.x2, y2=box.y2, created_at=now)
                            for box, score in rows)
            bag.screening_model_id, bag.screened_at = model_version_id, now
            self.audit(session, actor, "bag.screen", "bag", bag_id, model_version_id=model_version_id,
                       predictions=len(rows))
            return len(rows)
        return self.db.run(work)

    def record_decision(self, who: object, bag_id: int, verdict: str, *, opened_at: dt.datetime,
                        decided_at: dt.datetime | None = None, request_id: str | None = None,
                        alarm_threshold: float = 0.5) -> DecisionInfo:
        """Commit the inspector's verdict (and any review it triggers) before returning."""
        if verdict not in VERDICTS:
            raise InvalidInput(f"unknown verdict {verdict!r}; expected one of {', '.join(VERDICTS)}")
        request_id = request_id or uuid.uuid4().hex
        # Naive times are taken as UTC, so that both engines store the same instant.
        opened_at, decided_at = as_utc(opened_at), as_utc(decided_at) or utcnow()
        if decided_at < opened_at:
            raise InvalidInput(f"decided_at {decided_at.isoformat()} is before opened_at {opened_at.isoformat()}")
        draw = self.rng.random()  # drawn once, so a retry takes the same QC choice

        def work(session: Session) -> DecisionInfo:
            existing = session.execute(select(Decision).where(Decision.request_id == request_id)).scalar_one_or_none()
            if existing is not None:
                review = session.execute(select(Review).where(Review.decision_id == existing.id)).scalar_one_or_none()
                return decision_info(existing, review)
            bag = self.get_or_404(session, Bag, bag_id, "bag")
            actor = self.actor(session, who, "decide", bag_lane_id=bag.lane_id, bag_id=bag.id)
            if actor.id is None:
                raise InvalidState("a decision needs a real inspector: the command-line operator cannot decide bags")
            decision = Decision(request_id=request_id, bag_id=bag_id, user_id=actor.id,
                                verdict=verdict, opened_at=opened_at, decided_at=decided_at)
            session.add(decision)
            session.flush()
            reason = flag_reason(session, bag, verdict, draw=draw, qc_share=qc_share(session),
                                 alarm_threshold=alarm_threshold)
            review = None
            if reason is not None:
                review = Review(bag_id=bag_id, decision_id=decision.id, reason=reason, state="open", comment="")
                session.add(review)
                session.flush()
            self.audit(session, actor, "decision.record", "decision", decision.id, bag_id=bag_id, verdict=verdict,
                       request_id=request_id, review_reason=reason)
            return decision_info(decision, review)
        return self.db.run(work)

    # -- reads -------------------------------------------------------------------------------
    def get(self, bag_id: int) -> BagInfo:
        return self.db.run(lambda s: bag_info(self.get_or_404(s, Bag, bag_id, "bag")), write=False)

    def by_uid(self, uid: str) -> BagInfo | None:
        def work(session: Session) -> BagInfo | None:
            row = session.execute(select(Bag).where(Bag.uid == uid)).scalar_one_or_none()
            return bag_info(row) if row else None
        return self.db.run(work, write=False)

    def predictions(self, bag_id: int) -> list[ScoredBox]:
        def work(session: Session) -> list[ScoredBox]:
            rows = session.scalars(select(Prediction).where(Prediction.bag_id == bag_id).order_by(Prediction.id))
            return [ScoredBox(Box(r.class_name, r.x1, r.y1, r.x2, r.y2), r.score) for r in rows]
        return self.db.run(work, write=False)

    def decisions(self, bag_id: int) -> list[DecisionInfo]:
        def work(session: Session) -> list[DecisionInfo]:
            rows = session.scalars(select(Decision).where(Decision.bag_id == bag_id).order_by(Decision.id))
            return [decision_info(r) for r in rows]
        return self.db.run(work, write=False)

    def tip_truth(self, who: object, bag_id: int) -> list[Box] | None:
        """The projected TIP threats: for supervisors only (the inspector must not see them)."""
        def work(session: Session) -> list[Box] | None:
            self.actor(session, who, "review")
            bag = self.get_or_404(session, Bag, bag_id, "bag")
            return [Box.from_dict(d) for d in bag.tip_truth] if bag.tip_truth is not None else None
        return self.db.run(work, write=False)
