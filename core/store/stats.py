"""Statistics for supervisors: per inspector and period, and per model version.

Every rate comes with the count it rests on (a 100 % hit rate on 2 TIP bags
says little). Definitions:

* TIP hit rate: share of TIP bags the inspector called suspect.
* False-alarm rate: share of *confirmed clean* bags (non-TIP, current labels
  empty) the inspector called suspect; bags without labels are not counted.
* Agreement with the model: share of screened bags where the inspector's
  verdict equals the model's (alarm = any prediction >= the threshold).
* Model precision/recall: predictions matched to current labels (IoU >= 0.5,
  same class) on the labelled bags the model screened.
"""
from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from core.store.base import RepoBase
from core.store.errors import InvalidInput
from core.store.hard_samples import compare, latest_revisions_query, predictions_by_bag
from core.store.schema import (AnnotationBox, AnnotationRevision, Bag, Decision, ModelVersion, Prediction, User,
                               as_utc)
from core.store.values import Box


@dataclass(frozen=True)
class Rate:
    hits: int
    count: int

    @property
    def value(self) -> float | None:
        return self.hits / self.count if self.count else None


@dataclass(frozen=True)
class InspectorStats:
    user_id: int
    name: str
    period_start: dt.datetime
    period_end: dt.datetime
    bags: int
    median_seconds_per_decision: float | None
    mean_seconds_per_decision: float | None
    tip_hit_rate: Rate
    false_alarm_rate: Rate
    model_agreement: Rate


@dataclass(frozen=True)
class ModelStats:
    model_version_id: int
    bags: int
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float | None:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else None

    @property
    def recall(self) -> float | None:
        present = self.true_positives + self.false_negatives
        return self.true_positives / present if present else None


def _alarmed_bags(session: Session, bag_ids: list[int], threshold: float) -> set[int]:
    alarmed: set[int] = set()
    for start in range(0, len(bag_ids), 500):
        chunk = bag_ids[start:start + 500]
        alarmed.update(session.scalars(
            select(Prediction.bag_id).join(Bag, Bag.id == Prediction.bag_id)
            .where(Prediction.bag_id.in_(chunk), Prediction.model_version_id == Bag.screening_model_id,
                   Prediction.score >= threshold).distinct()))
    return alarmed


def _label_counts(session: Session, bag_ids: list[int]) -> dict[int, int]:
    """Number of boxes in each bag's current labels (absent: never labelled)."""
    counts: dict[int, int] = {}
    for start in range(0, len(bag_ids), 500):
        chunk = bag_ids[start:start + 500]
        newest = (select(AnnotationRevision.bag_id, func.max(AnnotationRevision.version).label("version"))
                  .where(AnnotationRevision.bag_id.in_(chunk)).group_by(AnnotationRevision.bag_id).subquery())
        rows = session.execute(
            select(AnnotationRevision.bag_id, func.count(AnnotationBox.id))
            .join(newest, and_(newest.c.bag_id == AnnotationRevision.bag_id,
                               newest.c.version == AnnotationRevision.version))
            .outerjoin(AnnotationBox, AnnotationBox.revision_id == AnnotationRevision.id)
            .group_by(AnnotationRevision.bag_id))
        counts.update({bag_id: n for bag_id, n in rows})
    return counts


class StatsRepo(RepoBase):
    def inspectors(self, who: object, start: dt.datetime, end: dt.datetime, *, user_id: int | None = None,
                   period: dt.timedelta | None = None, alarm_threshold: float = 0.5) -> list[InspectorStats]:
        """Per user (and per ``period``-long slice of [start, end) if given) with decisions in it.

        Naive times are taken as UTC. Results are ordered by period, then user.
        """
        start, end = as_utc(start), as_utc(end)
        if period is not None and period <= dt.timedelta(0):
            raise InvalidInput(f"the statistics period must be positive, got {period}")

        def work(session: Session) -> list[InspectorStats]:
            self.actor(session, who, "view_stats")
            query = (select(Decision.user_id, User.name, Decision.verdict, Decision.opened_at, Decision.decided_at,
                            Decision.bag_id, Bag.source, Bag.screening_model_id)
                     .join(User, User.id == Decision.user_id).join(Bag, Bag.id == Decision.bag_id)
                     .where(Decision.decided_at >= start, Decision.decided_at < end).order_by(Decision.id))
            if user_id is not None:
                query = query.where(Decision.user_id == user_id)
            rows = session.execute(query).all()
            bag_ids = sorted({r.bag_id for r in rows})
            alarmed = _alarmed_bags(session, bag_ids, alarm_threshold)
            labels = _label_counts(session, bag_ids)
            groups: dict[tuple[int, int], list] = defaultdict(list)
            for r in rows:
                slot = int((as_utc(r.decided_at) - start) / period) if period is not None else 0
                groups[(slot, r.user_id)].append(r)
            result = []
            for (slot, uid), items in sorted(groups.items()):
                slot_start = start + slot * period if period is not None else start
                slot_end = min(end, slot_start + period) if period is not None else end
                result.append(self._summarise(uid, items, alarmed, labels, slot_start, slot_end))
            return result
        return self.db.run(work, write=False)

    @staticmethod
    def _summarise(user_id: int, rows: list, alarmed: set[int], labels: dict[int, int],
                   period_start: dt.datetime, period_end: dt.datetime) -> InspectorStats:
        seconds = [(r.decided_at - r.opened_at).total_seconds() for r in rows]
        tip = [r for r in rows if r.source == "tip"]
        clean = [r for r in rows if r.source != "tip" and labels.get(r.bag_id) == 0]
        screened = [r for r in rows if r.screening_model_id is not None]
        return InspectorStats(
            user_id=user_id, name=rows[0].name, period_start=period_start, period_end=period_end,
            bags=len({r.bag_id for r in rows}),
            median_seconds_per_decision=statistics.median(seconds) if seconds else None,
            mean_seconds_per_decision=statistics.fmean(seconds) if seconds else None,
            tip_hit_rate=Rate(sum(r.verdict == "suspect" for r in tip), len(tip)),
            false_alarm_rate=Rate(sum(r.verdict == "suspect" for r in clean), len(clean)),
            model_agreement=Rate(sum((r.verdict == "suspect") == (r.bag_id in alarmed) for r in screened),
                                 len(screened)))

    def model(self, who: object, model_version_id: int, *, score_threshold: float = 0.5) -> ModelStats:
        def work(session: Session) -> ModelStats:
            self.actor(session, who, "view_stats")
            self.get_or_404(session, ModelVersion, model_version_id, "model version")
            pairs = session.execute(latest_revisions_query(model_version_id)).all()
            predictions = predictions_by_bag(session, [bag.id for bag, _ in pairs])
            tp = fp = fn = 0
            for bag, revision in pairs:
                labels = [Box(b.class_name, b.x1, b.y1, b.x2, b.y2) for b in revision.boxes]
                result = compare(labels, predictions[bag.id], score_threshold=score_threshold)
                tp += result.true_positives
                for d in result.disagreements:
                    fp += d.prediction is not None
                    fn += d.label is not None
            return ModelStats(model_version_id, len(pairs), tp, fp, fn)
        return self.db.run(work, write=False)
