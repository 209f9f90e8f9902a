"""``python main.py bench retrain``: the whole correction loop on a demo lane, timed and measured.

The scenario (also used by the end-to-end tests, and reusable by the GUI's):

1. synthetic data in small, easy scenes (320x256, little clutter): a base
   training set that holds straight knives only, a fixed benchmark and a demo
   lane that both hold straight and multi-tool knives;
2. a deliberately weak model: a tiny fast detector briefly trained on the base
   set, so it has never seen a multi-tool knife (a new threat on the lane);
3. the lane (``ReplaySource`` over the lane set) is screened with it through
   the store, as an inspector; scripted corrections (the known truth: missed
   items drawn, false alarms deleted, wrong classes fixed) are saved by an
   annotator with the store's version check;
4. the retraining job runs (``core.training.retrain``) and the gate judges;
5. the same bags are screened again with the promoted model: misses counted.

Reported: time to retrain from the corrections (export + training + gate),
the mAP change on the held-out corrections and on the benchmark, and the
misses on the lane before and after.
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from core.classes import CLASSES
from core.store.values import Box, ScoredBox

log = logging.getLogger(__name__)

# Small, easy scenes: a tiny model learns them in a few hundred CPU steps.
SCENE = dict(width=320, height=256, clutter_count=(1, 4), cutter_long_side=(170.0, 210.0, 260.0),
             two_cutter_rate=0.0)
KNOWN_CLASSES = (0.0, 1.0, 0.0, 0.0, 0.0)      # the base data: straight knives only
LANE_CLASSES = (0.0, 1.0, 0.0, 0.0, 1.0)       # lane and benchmark: straight and multi-tool knives
TINY_MODEL = {"input_size": [128, 160], "widths": [8, 16, 16, 32, 32], "neck_channels": 32, "head_channels": 32}
PASSWORD = "retrain-bench-password"
# The alarm threshold of this scenario's site. A tiny detector trained for a few hundred steps
# scores its true detections around 0.3-0.5; at the workstation's default 0.5 nearly everything
# would count as missed before and after, and the measurement would say nothing.
ALARM_THRESHOLD = 0.3


def scenario_settings(iters: int = 300):
    """The job's settings for this scenario: a fine-tuning rate that moves a tiny model in a few hundred steps."""
    from core.training.retrain import RetrainSettings  # noqa: PLC0415

    return RetrainSettings(iters=iters, lr=2e-3, holdout_share=0.25, score_threshold=ALARM_THRESHOLD, eval_threads=1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--retrain-corrections", type=int, default=200, metavar="N",
                        help="retrain: corrections to retrain from (default 200; 1.5 N lane bags are screened)")
    parser.add_argument("--retrain-iters", type=int, default=300, metavar="N",
                        help="retrain: fine-tuning steps of the job (default 300)")
    parser.add_argument("--retrain-base-iters", type=int, default=250, metavar="N",
                        help="retrain: training steps of the weak starting model (default 250)")
    parser.add_argument("--retrain-benchmark", type=int, default=60, metavar="N",
                        help="retrain: benchmark images (default 60)")


@dataclass(frozen=True)
class ScenarioData:
    base: Path
    benchmark: Path
    lane: Path


@dataclass
class Site:
    """The people and the lane of a small site, in one store."""
    store: object
    supervisor: object
    inspector: object
    annotator: object
    lane_id: int


@dataclass
class ScreenedBag:
    bag_id: int
    image: object                                 # HxWx3 uint8 RGB
    truth: tuple[Box, ...]
    predictions: tuple[ScoredBox, ...] = field(default_factory=tuple)


def make_data(root: Path, *, base_images: int = 120, benchmark_images: int = 40, lane_bags: int = 60,
              seed: int = 0) -> ScenarioData:
    """Base (straight knives only), benchmark and lane (both kinds) sets in the OPIXray layout."""
    from core.synth.generator import generate_dataset  # noqa: PLC0415 - heavy
    from core.synth.scene import SceneConfig  # noqa: PLC0415

    known = SceneConfig(**SCENE, class_weights=KNOWN_CLASSES)
    mixed = SceneConfig(**SCENE, class_weights=LANE_CLASSES)
    common = dict(per_split_mix=False, progress=False)
    generate_dataset(root / "base", base_images, 0, seed=seed, config=known, **common)
    generate_dataset(root / "benchmark", 0, benchmark_images, seed=seed + 1, config=mixed, **common)
    generate_dataset(root / "lane", 0, lane_bags, seed=seed + 2, config=mixed, **common)
    return ScenarioData(root / "base", root / "benchmark", root / "lane")


def train_weak_model(base: Path, out: Path, *, iters: int = 150, seed: int = 0) -> dict:
    """A tiny detector briefly trained on the base set; returns the trainer's result (model, sha256)."""
    from core.training.config import TrainConfig  # noqa: PLC0415
    from core.training.trainer import train  # noqa: PLC0415

    return train(TrainConfig(data=str(base), out=str(out), attention="doam", strategy="hard", iters=iters,
                             batch_size=8, lr=4e-3, warmup_iters=10, workers=0, seed=seed,
                             checkpoint_every_s=1e9, model_options=dict(TINY_MODEL)))


def open_site(store, model_path: Path, model_sha256: str, *, actor_name: str = "bench") -> tuple[Site, int]:
    """Lane, inspector, annotator and supervisor; the weak model registered and active."""
    from core.store.permissions import SystemActor  # noqa: PLC0415

    system = SystemActor(actor_name)
    lane = store.users.add_lane(system, "demo-lane")
    site = Site(store=store,
                supervisor=store.users.add(system, "sup", "supervisor", PASSWORD),
                inspector=store.users.add(system, "ins", "inspector", PASSWORD, lane_id=lane.id),
                annotator=store.users.add(system, "ann", "annotator", PASSWORD),
                lane_id=lane.id)
    model = store.models.register(site.supervisor, name="weak starting model", arch="fast", attention="doam",
                                  path=model_path, sha256=model_sha256)
    store.models.promote(site.supervisor, model.id)
    return site, model.id


def predictions_of(prediction, threshold: float = 0.0) -> tuple[ScoredBox, ...]:
    """A Detector's Prediction as store values (empty boxes, which the store refuses, dropped)."""
    return tuple(ScoredBox(Box(name, *map(float, box)), float(score))
                 for name, box, score in zip(prediction.class_names, prediction.boxes, prediction.scores)
                 if score >= threshold and box[2] > box[0] and box[3] > box[1])


def screen_lane(site: Site, detector, model_version_id: int, lane: Path, *, record_threshold: float = 0.05
                ) -> list[ScreenedBag]:
    """Screen every lane bag as the inspector: bag, predictions (with the model version), decision."""
    from core.lane.sources import ReplaySource  # noqa: PLC0415
    from core.store.schema import utcnow  # noqa: PLC0415

    store = site.store
    screened = []
    for bag in ReplaySource.from_dataset(lane, "test", rate_per_s=1e6):
        opened = utcnow()
        height, width = bag.image.shape[:2]
        row = store.bags.record_bag(site.inspector, lane_id=site.lane_id, width=width, height=height,
                                    image=bag.encoded)
        shown = predictions_of(detector.predict(bag.image), record_threshold)
        store.bags.record_predictions(site.inspector, row.id, model_version_id, shown)
        verdict = "suspect" if any(p.score >= ALARM_THRESHOLD for p in shown) else "clear"
        store.bags.record_decision(site.inspector, row.id, verdict, opened_at=opened,
                                   alarm_threshold=ALARM_THRESHOLD)
        truth = tuple(Box(t.label, *map(float, t.box)) for t in bag.truth)
        screened.append(ScreenedBag(row.id, bag.image, truth, shown))
    return screened


def correct_bags(site: Site, screened: list[ScreenedBag], *, relabel: Callable[[Box], Box] | None = None,
                 alarm_threshold: float = ALARM_THRESHOLD, limit: int | None = None) -> int:
    """Save the truth as the annotator's correction wherever the screening disagreed with it.

    ``relabel`` changes each true box before saving (wrong labels, for the rejection test);
    at most ``limit`` corrections are saved. Returns the number saved.
    """
    from core.store.hard_samples import compare  # noqa: PLC0415 - SQLAlchemy only when the suite runs

    saved = 0
    for bag in screened:
        if limit is not None and saved >= limit:
            break
        labels = tuple(relabel(b) for b in bag.truth) if relabel else bag.truth
        kinds = {d.kind for d in compare(labels, bag.predictions, score_threshold=alarm_threshold).disagreements}
        if not kinds:
            continue
        origin = "added" if kinds == {"missed"} else "deleted" if kinds == {"false_alarm"} else "mixed"
        current = site.store.labels.current(bag.bag_id)
        site.store.labels.save(site.annotator, bag.bag_id, labels, origin=origin, base_version=current.version)
        saved += 1
    return saved


def swap_labels(box: Box) -> Box:
    """Wrong labels: straight knives called multi-tool knives and the other way round."""
    other = {"Straight_Knife": "Multi-tool_Knife", "Multi-tool_Knife": "Straight_Knife"}
    return replace(box, class_name=other.get(box.class_name, box.class_name))


def lane_misses(detector, screened: list[ScreenedBag], *, alarm_threshold: float = ALARM_THRESHOLD) -> dict[str, int]:
    """What ``detector`` shows an inspector on the screened bags' images, against the known truth:
    items found (right class and place), missed (nothing there at all), false alarms, etc."""
    from core.store.hard_samples import compare  # noqa: PLC0415

    counts = {"items": 0, "found": 0, "missed": 0, "false_alarm": 0, "wrong_class": 0, "poor_box": 0}
    for bag in screened:
        shown = predictions_of(detector.predict(bag.image))
        counts["items"] += len(bag.truth)
        comparison = compare(bag.truth, shown, score_threshold=alarm_threshold)
        counts["found"] += comparison.true_positives     # right class, IoU >= 0.5
        for d in comparison.disagreements:
            counts[d.kind] += 1
    return counts


def run(args: argparse.Namespace) -> dict:
    import torch  # noqa: PLC0415

    from core.inference.detector import Detector  # noqa: PLC0415
    from core.store.repo import Store  # noqa: PLC0415
    from core.training.retrain import run_retrain  # noqa: PLC0415

    quick = getattr(args, "quick", False)
    wanted = 30 if quick else args.retrain_corrections
    bags = int(wanted * 1.5)   # about 3 in 4 screened bags disagree with the weak model
    iters = 60 if quick else args.retrain_iters
    torch.set_num_threads(1)  # a shared machine: one core for the job, like a workstation leaves the GUI one
    with tempfile.TemporaryDirectory(prefix="bench-retrain-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        data = make_data(root, base_images=120, benchmark_images=20 if quick else args.retrain_benchmark,
                         lane_bags=bags)
        weak = train_weak_model(data.base, root / "weak", iters=100 if quick else args.retrain_base_iters)
        setup_s = time.perf_counter() - t0
        with Store.open(None, data_dir=root / "site") as store:
            site, model_id = open_site(store, Path(weak["model"]), weak["sha256"])
            detector = Detector.load(weak["model"], expected_sha256=weak["sha256"], num_threads=1)
            screened = screen_lane(site, detector, model_id, data.lane)
            before = lane_misses(detector, screened)
            corrections = correct_bags(site, screened, limit=wanted)
            t0 = time.perf_counter()
            outcome = run_retrain(store, site.supervisor, data_dir=root / "site", benchmark=data.benchmark,
                                  base_data=data.base, settings=scenario_settings(iters))
            job_s = time.perf_counter() - t0
            result = {"lane_bags": bags, "corrections": corrections, "iters": iters, "setup_seconds": round(setup_s, 1),
                      "retrain_seconds": round(job_s, 1), "job_seconds": outcome.seconds, "outcome": outcome.status,
                      "message": outcome.message, "export": outcome.export, "lane_before": before}
            decision = outcome.decision
            if decision is not None:
                for part in ("benchmark", "heldout"):
                    cand, act = decision.candidate.get(part), decision.active.get(part)
                    if cand and act:
                        result[f"{part}_map_active"] = act["map"]
                        result[f"{part}_map_candidate"] = cand["map"]
                        result[f"{part}_map_change"] = round(cand["map"] - act["map"], 4)
                        result[f"{part}_ap_candidate"] = cand["ap"]
            if outcome.candidate is not None:
                candidate = Detector.load(outcome.candidate.path, expected_sha256=outcome.candidate.sha256,
                                          num_threads=1)
                result["lane_after"] = lane_misses(candidate, screened)
    result["classes"] = [CLASSES[i] for i, w in enumerate(LANE_CLASSES) if w]
    return result
