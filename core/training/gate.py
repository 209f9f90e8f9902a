"""The evaluation gate: does a retrained candidate replace the active model?

Both models are scored on the same two sets, through the same ``Detector``
path the workstation uses:

- the fixed **benchmark** (an OPIXray-layout test split): VOC mAP, per-class AP
  and per-occlusion-level mAP, the paper's protocol;
- the **held-out corrections** (the export's test split, never trained on):
  mAP, plus what an inspector would see at the alarm threshold (missed items,
  false alarms), counted with the store's own rule (``hard_samples.compare``).

:func:`judge` is a pure function of those numbers: **promote** only if the
candidate is not worse on the benchmark beyond the tolerances (overall, each
class, each OL) AND better on the held-out corrections (higher mAP, and no more
items missed at the alarm threshold); **reject** otherwise,
with one reason per failed check, numbers included; **undecided** when there
are no held-out corrections to judge by (a supervisor decides by hand).

A fixed tolerance cannot say whether a 2-point fall is the model or the few hundred
benchmark images that happened to be drawn. :func:`paired_changes` puts a paired
image-bootstrap interval on each change (candidate - active, both scored on the same
redrawn images; core.evaluation.bootstrap): it rides with the verdict, in its reasons, in
notes where a passing change is within noise or a tolerated fall is beyond it, and in the
audit log. The rule itself stays the tolerances: the interval informs the supervisor, it
does not move the line an auto-promotion crosses.
:func:`apply_gate` carries the verdict out through the store, so that the
decision, its numbers and the promotion or rejection are in the audit log.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.classes import CLASSES
from core.data.opixray import load_split
from core.evaluation.bootstrap import ResamplableResult, compare_arms
from core.evaluation.runner import TEST_SCORE_THRESHOLD, evaluate_predictions, predict_samples, summarise
from core.store import audit
from core.store.hard_samples import compare
from core.store.permissions import load_actor, require
from core.store.values import Box, ModelVersionInfo, ScoredBox

log = logging.getLogger(__name__)

PROMOTE, REJECT, UNDECIDED = "promote", "reject", "undecided"


@dataclass(frozen=True)
class GateSettings:
    benchmark_tolerance: float = 0.02     # the benchmark mAP may fall at most this much
    detail_tolerance: float = 0.05        # ... and each class AP / each OL mAP at most this much
    min_heldout_gain: float = 0.0         # held-out mAP must rise by MORE than this
    alarm_threshold: float = 0.5          # score at which the workstation alarms (misses, false alarms)
    # A class or OL with fewer benchmark items than this is reported but not judged: on a handful
    # of items one detection moves the AP by more than any tolerance.
    min_detail_items: int = 10
    benchmark_max_images: int | None = None
    # Bootstrap rounds of the paired intervals (paired_changes). Measured: 2.7 s for 1000 rounds on
    # two real models' detections of 500 held-out images (25 000 and 33 000 detections), one core
    # of this machine, idle; the job's seconds["intervals"] (and bench retrain) report each job's.
    interval_rounds: int = 1000
    interval_confidence: float = 0.95

    def __post_init__(self) -> None:
        for name in ("benchmark_tolerance", "detail_tolerance", "min_heldout_gain"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.min_detail_items < 0:
            raise ValueError(f"min_detail_items must not be negative, got {self.min_detail_items}")
        if not 0.0 < self.alarm_threshold <= 1.0:
            raise ValueError(f"alarm_threshold must be in (0, 1], got {self.alarm_threshold}")
        if self.interval_rounds < 100:
            raise ValueError(f"interval_rounds must be at least 100, got {self.interval_rounds}")
        if not 0.5 <= self.interval_confidence < 1.0:
            raise ValueError(f"interval_confidence must be in [0.5, 1), got {self.interval_confidence}")


@dataclass
class GateDecision:
    verdict: str                                   # promote | reject | undecided
    reasons: list[str]
    candidate: dict[str, Any]                      # {"benchmark": scores, "heldout": scores or None}
    active: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    # paired_changes' intervals ({} when not measured) and what they add to the verdict's reasons
    changes: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def promote(self) -> bool:
        return self.verdict == PROMOTE

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reasons": list(self.reasons), "candidate": self.candidate,
                "active": self.active, "settings": self.settings, "changes": self.changes, "notes": list(self.notes)}

    def headline(self) -> str:
        """One line with the key numbers, for the audit log and the job's log."""
        def num(scores: dict | None, key: str) -> str:
            value = scores.get(key) if scores else None
            return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

        cb, ab = self.candidate.get("benchmark"), self.active.get("benchmark")
        ch, ah = self.candidate.get("heldout"), self.active.get("heldout")
        return (f"{self.verdict}: benchmark mAP {num(ab, 'map')} -> {num(cb, 'map')}"
                f"{interval_text(self.changes, 'benchmark', 'map', ' ({})')}, held-out mAP "
                f"{num(ah, 'map')} -> {num(ch, 'map')}, held-out misses {num(ah, 'missed')} -> {num(ch, 'missed')}"
                + (f" ({'; '.join(self.reasons)})" if self.reasons else ""))


def score_detector(detector, root: str | Path, split: str = "test", *, alarm_threshold: float = 0.5,
                   max_images: int | None = None) -> tuple[dict[str, Any], ResamplableResult] | None:
    """mAP (overall, per class, per OL) and the inspector's view (misses, false alarms) on a split,
    with each image's matched detections (for paired intervals); None when the split has no images.

    ``detector`` must predict down to the protocol's 0.01 threshold (``Detector``'s default), or
    the AP is understated.
    """
    samples = load_split(Path(root), split)[:max_images]
    if not samples:
        return None
    predicted = predict_samples(detector, samples)
    result, outcomes, _ = evaluate_predictions(predicted)
    scores = summarise(result)
    counts = {"missed": 0, "false_alarm": 0, "wrong_class": 0, "poor_box": 0}
    items = 0
    per_class = {name: 0 for name in scores["ap"]}
    per_level: dict[str, int] = {}
    names = list(per_class)          # the evaluation's short names, in class order
    for sample, found in zip(samples, predicted.detections):
        labels = [Box(b.label, b.x1, b.y1, b.x2, b.y2) for b in sample.boxes]
        for b in sample.boxes:
            per_class[names[b.class_index]] += 1
        if sample.occlusion_level is not None:
            key = f"ol{sample.occlusion_level}"
            per_level[key] = per_level.get(key, 0) + len(sample.boxes)
        shown = [ScoredBox(Box(CLASSES[int(label)], *map(float, box)), float(score))
                 for box, label, score in zip(found["boxes"], found["labels"], found["scores"])
                 if box[2] > box[0] and box[3] > box[1]]
        items += len(labels)
        for disagreement in compare(labels, shown, score_threshold=alarm_threshold).disagreements:
            counts[disagreement.kind] += 1
    scores.update(counts, items=items, has_labels=items > 0, items_per_class=per_class, items_per_ol=per_level)
    return scores, ResamplableResult(outcomes, predicted.levels)


@dataclass
class ScoredModel:
    """What :func:`score_model_file` measured of one model.

    ``scores`` is JSON (the rule's input and the audit log's record: model_id, benchmark,
    heldout); ``outcomes`` holds, per set, each image's matched detections, from which
    :func:`paired_changes` draws its intervals (None for a set not scored).
    """
    scores: dict[str, Any]
    outcomes: dict[str, ResamplableResult | None]


def score_model_file(path: str | Path, sha256: str, benchmark: str | Path, heldout: str | Path | None, *,
                     settings: GateSettings = GateSettings(), device: str = "auto",
                     num_threads: int | None = None) -> ScoredModel:
    """Load a model file (its sha256 checked: a tampered file is never run) and score it on both sets."""
    from core.inference.detector import Detector  # noqa: PLC0415 - torch only when scoring

    detector = Detector.load(path, device=device, expected_sha256=sha256, score_threshold=TEST_SCORE_THRESHOLD,
                             num_threads=num_threads)
    bench = score_detector(detector, benchmark, "test", alarm_threshold=settings.alarm_threshold,
                           max_images=settings.benchmark_max_images)
    if bench is None:
        raise ValueError(f"{benchmark}: the benchmark's test split has no images")
    held = score_detector(detector, heldout, "test", alarm_threshold=settings.alarm_threshold) \
        if heldout is not None else None
    return ScoredModel({"model_id": detector.model_id, "benchmark": bench[0], "heldout": held and held[0]},
                       {"benchmark": bench[1], "heldout": held and held[1]})


def paired_changes(candidate: ScoredModel, active: ScoredModel,
                   settings: GateSettings = GateSettings()) -> dict[str, Any]:
    """Per set and metric, candidate - active with its interval over redrawn images.

    Each round redraws the set's images (within each occlusion level) with replacement and
    scores both models on the same draw, so what the two share (the images' difficulty)
    cancels: the interval is how far the change could move with other images of the same kind,
    the models held fixed. JSON: {set: {metric: {"change", "interval", "share_above_zero"}} or None}.
    """
    out: dict[str, Any] = {}
    for side in ("benchmark", "heldout"):
        ours, theirs = candidate.outcomes.get(side), active.outcomes.get(side)
        if ours is None or theirs is None:
            out[side] = None
            continue
        report = compare_arms({"candidate": [ours], "active": [theirs]}, rounds=settings.interval_rounds,
                              seed=0, confidence=settings.interval_confidence)
        out[side] = {metric: {"change": d["point"], "interval": d["interval_images"],
                              "share_above_zero": d["share_above_zero"]}
                     for metric, d in report["difference"].items()}
        out[side]["images"] = report["num_images"]
    out["confidence"] = settings.interval_confidence
    return out


def interval_text(changes: dict[str, Any] | None, side: str, metric: str, template: str = "{}") -> str:
    """'change -0.020, 95 % interval [-0.035, -0.006] over N redrawn images' in ``template``;
    '' when not measured."""
    measured = ((changes or {}).get(side) or {}).get(metric)
    if not measured or measured.get("change") is None or None in measured.get("interval", [None]):
        return ""
    low, high = measured["interval"]
    level = f"{changes.get('confidence', 0.95):.0%}"
    return template.format(f"change {measured['change']:+.3f}, {level} interval [{low:+.3f}, {high:+.3f}] "
                           f"over {changes[side].get('images', '?')} redrawn images")


def _drop(active: float | None, candidate: float | None) -> float:
    """How much the candidate lost (negative: gained); 0 when either side has nothing to compare."""
    if active is None or candidate is None or math.isnan(active) or math.isnan(candidate):
        return 0.0
    return active - candidate


def judge(candidate: dict[str, Any], active: dict[str, Any], settings: GateSettings = GateSettings(),
          changes: dict[str, Any] | None = None) -> GateDecision:
    """The gate's rule on two models' scores (``ScoredModel.scores``), with
    :func:`paired_changes`' intervals, when measured, in its reasons and notes."""
    reasons: list[str] = []

    def fell(what: str, before: float, after: float, tolerance: float, metric: str) -> None:
        reasons.append(f"{what} fell from {before:.3f} to {after:.3f} (tolerance {tolerance:.3f})"
                       + interval_text(changes, "benchmark", metric, "; {}"))

    cb, ab = candidate["benchmark"], active["benchmark"]
    drop = _drop(ab["map"], cb["map"])
    if drop > settings.benchmark_tolerance:
        fell("benchmark mAP", ab["map"], cb["map"], settings.benchmark_tolerance, "map")
    enough = settings.min_detail_items
    for name, active_ap in ab.get("ap", {}).items():
        candidate_ap = cb.get("ap", {}).get(name)
        if ab.get("items_per_class", {}).get(name, enough) < enough:
            continue
        if _drop(active_ap, candidate_ap) > settings.detail_tolerance:
            reasons.append(f"benchmark AP of {name} fell from {active_ap:.3f} to {candidate_ap:.3f} "
                           f"(tolerance {settings.detail_tolerance:.3f})")
    for level in (1, 2, 3):
        key = f"map_ol{level}"
        if ab.get("items_per_ol", {}).get(f"ol{level}", enough) < enough:
            continue
        if _drop(ab.get(key), cb.get(key)) > settings.detail_tolerance:
            fell(f"benchmark mAP on OL{level}", ab[key], cb[key], settings.detail_tolerance, key)
    ch, ah = candidate.get("heldout"), active.get("heldout")
    verdict = PROMOTE
    if ch is None or ah is None:
        verdict = UNDECIDED
        reasons.append("no held-out corrections to judge by: a supervisor must decide")
    elif ah["has_labels"]:
        if not ch["map"] - ah["map"] > settings.min_heldout_gain:
            reasons.append(f"held-out corrections mAP did not improve: {ah['map']:.3f} -> {ch['map']:.3f} "
                           f"(needs more than +{settings.min_heldout_gain:.3f})"
                           + interval_text(changes, "heldout", "map", "; {}"))
        # "Missed" means no detection at all where an annotator marked an item, whatever its class:
        # the inspector's worst case, and a sign of bad corrections that mAP on them can hide (a
        # candidate trained on swapped class names found fewer of the held-out items, yet scored a
        # higher held-out mAP against those same wrong names).
        if ch.get("missed", 0) > ah.get("missed", 0):
            reasons.append(f"held-out corrections: the candidate misses more marked items at the alarm threshold "
                           f"({ah['missed']} -> {ch['missed']})")
    elif not ch["false_alarm"] < ah["false_alarm"]:
        # Held-out bags with no items at all: only false alarms can tell the two models apart.
        reasons.append(f"held-out corrections (no items, only deleted false alarms): false alarms "
                       f"{ah['false_alarm']} -> {ch['false_alarm']}, not fewer")
    failed = [r for r in reasons if not r.startswith("no held-out")]
    if failed:
        verdict = REJECT
    return GateDecision(verdict, reasons, candidate, active, asdict(settings), changes or {},
                        _interval_notes(changes, ch is not None and ah is not None and ah["has_labels"]))


def _interval_notes(changes: dict[str, Any] | None, heldout_judged: bool) -> list[str]:
    """What the tolerances cannot say: a held-out gain within noise, a tolerated benchmark fall beyond it."""
    notes = []
    bench = ((changes or {}).get("benchmark") or {}).get("map") or {}
    low, high = bench.get("interval") or (None, None)
    if high is not None and high < 0:
        notes.append("the benchmark mAP fell by more than redrawing its images explains"
                     + interval_text(changes, "benchmark", "map", " ({})"))
    held = ((changes or {}).get("heldout") or {}).get("map") or {}
    low, high = held.get("interval") or (None, None)
    if heldout_judged and low is not None and (held.get("change") or 0) > 0 and low <= 0:
        notes.append("the held-out gain is within what redrawing the held-out bags gives"
                     + interval_text(changes, "heldout", "map", " ({})") + ": more corrections would settle it")
    return notes


def apply_gate(store, who: object, candidate: ModelVersionInfo, decision: GateDecision, *,
               expected_active_id: int | None) -> ModelVersionInfo:
    """Record the gate's decision with its numbers in the audit log, then promote or reject.

    A candidate is promoted only if the active model is still the one it was
    trained from (``expected_active_id``): if a supervisor changed the active
    model meanwhile, the candidate stays a candidate for them to judge.
    """
    def record(session) -> None:  # noqa: ANN001
        actor = load_actor(session, who)
        require(session, actor, "manage_models")
        audit.append(session, actor=actor.name, action="model.gate", entity="model_version", entity_id=candidate.id,
                     details={"verdict": decision.verdict, "summary": decision.headline(),
                              "reasons": decision.reasons, "candidate": decision.candidate,
                              "active": decision.active})
    store.db.run(record)
    if decision.verdict == REJECT:
        return store.models.reject(who, candidate.id, reason=decision.headline())
    if decision.verdict == PROMOTE:
        active = store.models.active()
        if (active.id if active else None) != expected_active_id:
            log.warning("the active model changed during the job (now %s): candidate %d left for a supervisor",
                        active.id if active else None, candidate.id)
            return store.models.get(candidate.id)
        return store.models.promote(who, candidate.id)
    return store.models.get(candidate.id)
