"""Hard samples: bags whose current labels disagree with what the screening model predicted.

The comparison is a pure function (:func:`compare`) shared with the
statistics: predictions at or above the score threshold are matched to
labels greedily by IoU. A label with no prediction overlapping it is
``missed``; a prediction overlapping no label is a ``false_alarm``; a match
with IoU >= 0.5 but another class is ``wrong_class``; a same-class match
with 0 < IoU < 0.5 is ``poor_box``. This module is the only place that
decides what is hard (DESIGN.md); the retraining job reads it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from core.store.base import RepoBase
from core.store.schema import AnnotationRevision, Bag, Prediction
from core.store.values import Box, Disagreement, HardSample, ScoredBox

IOU_MATCH = 0.5


@dataclass(frozen=True)
class Comparison:
    true_positives: int
    disagreements: tuple[Disagreement, ...]


def compare(labels: Sequence[Box], predictions: Sequence[ScoredBox], *, score_threshold: float = 0.5,
            iou_match: float = IOU_MATCH) -> Comparison:
    kept = sorted((p for p in predictions if p.score >= score_threshold), key=lambda p: -p.score)
    unmatched_labels = list(range(len(labels)))
    result: list[Disagreement] = []
    tp = 0
    # Pass 1: same-class matches at IoU >= iou_match, highest score first (VOC-style).
    leftover: list[ScoredBox] = []
    for pred in kept:
        best, best_iou = None, 0.0
        for i in unmatched_labels:
            if labels[i].class_name == pred.box.class_name:
                iou = labels[i].iou(pred.box)
                if iou > best_iou:
                    best, best_iou = i, iou
        if best is not None and best_iou >= iou_match:
            unmatched_labels.remove(best)
            tp += 1
        else:
            leftover.append(pred)
    # Pass 2: what remains is a wrong class, a poor box, or unrelated.
    for pred in leftover:
        best, best_iou = None, 0.0
        for i in unmatched_labels:
            iou = labels[i].iou(pred.box)
            if iou > best_iou:
                best, best_iou = i, iou
        if best is None:
            result.append(Disagreement("false_alarm", None, pred, 0.0))
            continue
        label = labels[best]
        unmatched_labels.remove(best)
        if label.class_name != pred.box.class_name and best_iou >= iou_match:
            result.append(Disagreement("wrong_class", label, pred, best_iou))
        elif label.class_name == pred.box.class_name:
            result.append(Disagreement("poor_box", label, pred, best_iou))
        else:  # another class and a poor overlap: the item was missed and the alarm was false
            result.append(Disagreement("missed", label, None, 0.0))
            result.append(Disagreement("false_alarm", None, pred, best_iou))
    result.extend(Disagreement("missed", labels[i], None, 0.0) for i in unmatched_labels)
    return Comparison(true_positives=tp, disagreements=tuple(result))


def latest_revisions_query(model_version_id: int | None = None):  # noqa: ANN201 - a Select
    """(bag, latest revision) for every labelled bag that a model screened."""
    newest = (select(AnnotationRevision.bag_id, func.max(AnnotationRevision.version).label("version"))
              .group_by(AnnotationRevision.bag_id).subquery())
    query = (select(Bag, AnnotationRevision)
             .join(newest, newest.c.bag_id == Bag.id)
             .join(AnnotationRevision, and_(AnnotationRevision.bag_id == Bag.id,
                                            AnnotationRevision.version == newest.c.version))
             .where(Bag.screening_model_id.is_not(None)).order_by(Bag.id))
    if model_version_id is not None:
        query = query.where(Bag.screening_model_id == model_version_id)
    return query


def predictions_by_bag(session: Session, bag_ids: list[int]) -> dict[int, list[ScoredBox]]:
    found: dict[int, list[ScoredBox]] = {bag_id: [] for bag_id in bag_ids}
    for start in range(0, len(bag_ids), 500):
        chunk = bag_ids[start:start + 500]
        rows = session.execute(select(Prediction).join(Bag, Bag.id == Prediction.bag_id).where(
            Prediction.bag_id.in_(chunk), Prediction.model_version_id == Bag.screening_model_id)).scalars()
        for r in rows:
            found[r.bag_id].append(ScoredBox(Box(r.class_name, r.x1, r.y1, r.x2, r.y2), r.score))
    return found


class HardSamplesRepo(RepoBase):
    def find(self, who: object, *, model_version_id: int | None = None, score_threshold: float = 0.5,
             limit: int | None = None) -> list[HardSample]:
        def work(session: Session) -> list[HardSample]:
            self.actor(session, who, "read_hard_samples")
            pairs = session.execute(latest_revisions_query(model_version_id)).all()
            predictions = predictions_by_bag(session, [bag.id for bag, _ in pairs])
            found: list[HardSample] = []
            for bag, revision in pairs:
                labels = tuple(Box(b.class_name, b.x1, b.y1, b.x2, b.y2) for b in revision.boxes)
                comparison = compare(labels, predictions[bag.id], score_threshold=score_threshold)
                if comparison.disagreements:
                    found.append(HardSample(bag_id=bag.id, image_sha256=bag.image_sha256,
                                            model_version_id=bag.screening_model_id, label_version=revision.version,
                                            labels=labels, disagreements=comparison.disagreements))
                    if limit is not None and len(found) >= limit:
                        break
            return found
        return self.db.run(work, write=False)
