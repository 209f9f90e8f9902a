"""Label revisions: append-only, with an optimistic version check.

Saving a correction says which version the editor started from. If someone
else saved a newer version in the meantime, nothing is written and the
caller gets a :class:`ConflictError` carrying the newer labels, so the edit
can be redone on top of them; no edit is ever silently lost. The bag row is
locked for the check (PostgreSQL) or the whole database is (SQLite's
BEGIN IMMEDIATE), and the unique (bag, version) constraint backs it up.
"""
from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.store.base import RepoBase, revision_info
from core.store.errors import ConflictError, InvalidInput
from core.store.schema import REVISION_ORIGINS, AnnotationBox, AnnotationRevision, Bag
from core.store.values import Box, LabelRevision

MAX_BOXES = 500


def latest_revision(session: Session, bag_id: int) -> AnnotationRevision | None:
    return session.execute(select(AnnotationRevision).where(AnnotationRevision.bag_id == bag_id)
                           .order_by(AnnotationRevision.version.desc()).limit(1)).scalar_one_or_none()


def empty_revision(bag_id: int) -> LabelRevision:
    return LabelRevision(bag_id=bag_id, version=0, author_id=None, origin=None, created_at=None, boxes=())


class LabelsRepo(RepoBase):
    def current(self, bag_id: int) -> LabelRevision:
        """The bag's current labels (version 0 and no boxes when never labelled)."""
        def work(session: Session) -> LabelRevision:
            self.get_or_404(session, Bag, bag_id, "bag")
            row = latest_revision(session, bag_id)
            return revision_info(row) if row else empty_revision(bag_id)
        return self.db.run(work, write=False)

    def history(self, bag_id: int) -> list[LabelRevision]:
        def work(session: Session) -> list[LabelRevision]:
            rows = session.scalars(select(AnnotationRevision).where(AnnotationRevision.bag_id == bag_id)
                                   .order_by(AnnotationRevision.version))
            return [revision_info(r) for r in rows]
        return self.db.run(work, write=False)

    def save(self, who: object, bag_id: int, boxes: Sequence[Box], *, origin: str,
             base_version: int) -> LabelRevision:
        """Append a new full label set on top of ``base_version``; ConflictError if it is stale."""
        if origin not in REVISION_ORIGINS:
            raise InvalidInput(f"unknown label origin {origin!r}; expected one of {', '.join(REVISION_ORIGINS)}")
        if len(boxes) > MAX_BOXES:
            raise InvalidInput(f"{len(boxes)} boxes in one bag is more than the {MAX_BOXES} allowed")
        boxes = tuple(boxes)
        for box in boxes:
            if not isinstance(box, Box):
                raise InvalidInput(f"expected Box values, got {type(box).__name__}")

        def work(session: Session) -> LabelRevision | ConflictError:
            bag = self.get_or_404(session, Bag, bag_id, "bag", lock=True)
            actor = self.actor(session, who, "edit_labels", bag_lane_id=bag.lane_id, bag_id=bag.id)
            for box in boxes:
                if box.x1 < 0 or box.y1 < 0 or box.x2 > bag.width or box.y2 > bag.height:
                    raise InvalidInput(f"box {box.as_dict()} lies outside the {bag.width}x{bag.height} image")
            latest = session.scalar(select(func.max(AnnotationRevision.version))
                                    .where(AnnotationRevision.bag_id == bag_id)) or 0
            if latest != base_version:
                return self._conflict(session, bag_id, base_version)
            if actor.id is None:
                raise InvalidInput("labels need a real author: log in as an annotator or inspector")
            revision = AnnotationRevision(bag_id=bag_id, version=latest + 1, author_id=actor.id, origin=origin)
            revision.boxes = [AnnotationBox(position=i, class_name=b.class_name, x1=b.x1, y1=b.y1, x2=b.x2, y2=b.y2)
                              for i, b in enumerate(boxes)]
            session.add(revision)
            session.flush()
            self.audit(session, actor, "labels.save", "bag", bag_id, version=revision.version, origin=origin,
                       boxes=[b.as_dict() for b in boxes])
            return revision_info(revision)

        try:
            result = self.db.run(work)
        except IntegrityError:
            # Lost the race on the unique (bag, version): someone committed the same version first.
            result = self.db.run(lambda s: self._conflict(s, bag_id, base_version), write=False)
        if isinstance(result, ConflictError):
            raise result
        return result

    @staticmethod
    def _conflict(session: Session, bag_id: int, base_version: int) -> ConflictError:
        row = latest_revision(session, bag_id)
        current = revision_info(row) if row else empty_revision(bag_id)
        return ConflictError(
            f"bag {bag_id} labels changed while you edited them (you started from version {base_version}, "
            f"now version {current.version}); your edit was not saved: redo it on the newer labels",
            bag_id=bag_id, current_version=current.version, current_boxes=current.boxes)
