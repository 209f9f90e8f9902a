"""What the annotator perspective reads and writes, without Qt: bag entries, filters, import, export.

* Browsing: the store's bags with their current labels and the model's boxes.
  (The store has no bag-listing call yet, so ``list_entries`` runs one read-only
  query through ``store.db`` after the store's own permission check.)
* An OPIXray-format dataset is *imported* into the store (``source="import"``,
  labels with origin ``imported``) and then browsed like any bag; its occlusion
  levels are kept with the entries of this session (the store has no OL column).
* "Reviewed" means the bag's current labels were last saved by an annotator;
  marking a bag reviewed without changing it saves its labels again (origin
  ``mixed``: the whole set confirmed).
* Export writes the shown entries as an OPIXray layout, then converts it with
  ``core.data.formats`` for VOC, COCO or YOLO.
"""
from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import select

from core.data import formats, opixray
from core.store.base import RepoBase, bag_info
from core.store.errors import InvalidInput
from core.store.hard_samples import compare
from core.store.repo import Store
from core.store.schema import Bag, User
from core.store.values import BagInfo, Box, LabelRevision, ScoredBox, UserInfo

log = logging.getLogger(__name__)

EXPORT_FORMATS = ("opixray", "voc", "coco", "yolo")
REVIEWED_ORIGIN = "mixed"
MAX_LISTED = 2000


@dataclass(frozen=True)
class BagEntry:
    bag: BagInfo
    labels: LabelRevision
    predictions: tuple[ScoredBox, ...]
    reviewed: bool
    disagrees: bool                      # the current labels disagree with the screening model
    occlusion_level: int | None = None
    name: str = ""                       # image id for an imported bag, else empty

    @property
    def title(self) -> str:
        return self.name or f"bag {self.bag.id}"


@dataclass(frozen=True)
class Filters:
    class_name: str | None = None
    occlusion_level: int | None = None
    disagreement_only: bool = False
    unreviewed_only: bool = False

    def accepts(self, entry: BagEntry, score_threshold: float = 0.5) -> bool:
        """A class matches the bag's labels or the model's confident boxes (an unlabelled bag has only those)."""
        if self.class_name is not None and all(b.class_name != self.class_name for b in entry.labels.boxes) \
                and all(p.box.class_name != self.class_name or p.score < score_threshold for p in entry.predictions):
            return False
        if self.occlusion_level is not None and entry.occlusion_level != self.occlusion_level:
            return False
        if self.disagreement_only and not entry.disagrees:
            return False
        return not (self.unreviewed_only and entry.reviewed)


def _entry(store: Store, bag: BagInfo, annotators: set[int], levels: dict[str, tuple[str, int | None]],
           score_threshold: float) -> BagEntry:
    labels = store.labels.current(bag.id)
    predictions = tuple(store.bags.predictions(bag.id))
    # Only labelled bags can disagree: an unlabelled one has no truth to compare with yet.
    disagrees = labels.version > 0 and bool(compare(labels.boxes, predictions,
                                                    score_threshold=score_threshold).disagreements)
    name, level = levels.get(bag.uid, ("", None))
    return BagEntry(bag, labels, predictions, labels.author_id in annotators, disagrees, level, name)


def list_entries(store: Store, user: UserInfo, *, levels: dict[str, tuple[str, int | None]] | None = None,
                 score_threshold: float = 0.5, limit: int = MAX_LISTED) -> list[BagEntry]:
    """The store's newest bags as entries (PermissionDenied for a caller who may not read)."""
    def work(session) -> tuple[list[BagInfo], set[int]]:  # noqa: ANN001 - a SQLAlchemy Session
        RepoBase.actor(session, user, "read")
        bags = [bag_info(b) for b in session.scalars(select(Bag).order_by(Bag.id.desc()).limit(limit))]
        annotators = set(session.scalars(select(User.id).where(User.role == "annotator")))
        return bags, annotators
    bags, annotators = store.db.run(work, write=False)
    return [_entry(store, bag, annotators, levels or {}, score_threshold) for bag in reversed(bags)]


def refresh_entry(store: Store, user: UserInfo, entry: BagEntry) -> BagEntry:
    labels = store.labels.current(entry.bag.id)
    author = store.db.run(lambda s: s.get(User, labels.author_id).role if labels.author_id else None, write=False)
    disagrees = labels.version > 0 and bool(compare(labels.boxes, entry.predictions).disagreements)
    return replace(entry, labels=labels, reviewed=author == "annotator", disagrees=disagrees)


def import_dataset(store: Store, user: UserInfo, root: Path,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, tuple[str, int | None]]:
    """Record an OPIXray-layout dataset's images and labels in the store; uid -> (image id, OL).

    Re-importing the same dataset finds the bags already there (same uid) and
    leaves their labels alone.
    """
    root = Path(root)
    samples = [(split, s) for split, items in formats._load_source(root).items() for s in items]  # noqa: SLF001
    lanes = store.users.lanes()
    if not lanes:
        raise InvalidInput("the store has no lane to file imported bags under: an admin must create one")
    levels: dict[str, tuple[str, int | None]] = {}
    for index, (split, sample) in enumerate(samples):
        data = sample.image_path.read_bytes()
        width, height = opixray_size(sample.image_path)
        uid = f"opixray:{root.name}:{split}:{sample.image_id}"
        bag = store.bags.record_bag(user, lane_id=lanes[0].id, width=width, height=height, image=data,
                                    source="import", uid=uid)
        if store.labels.current(bag.id).version == 0:
            boxes = [Box(b.label, float(b.x1), float(b.y1), float(min(width, b.x2 + 1)), float(min(height, b.y2 + 1)))
                     for b in sample.boxes]
            store.labels.save(user, bag.id, boxes, origin="imported", base_version=0)
        levels[uid] = (sample.image_id, sample.occlusion_level)
        if progress is not None:
            progress(index + 1, len(samples))
    log.info("imported %d images from %s", len(samples), root)
    return levels


def opixray_size(path: Path) -> tuple[int, int]:
    from core.imaging.decode import probe_size  # noqa: PLC0415

    return probe_size(path)


def _opixray_boxes(boxes: Iterable[Box]) -> list[opixray.Box]:
    """Store boxes (exclusive right/bottom edges) as OPIXray's inclusive integer corners."""
    result = []
    for b in boxes:
        x1, y1 = int(math.floor(b.x1)), int(math.floor(b.y1))
        result.append(opixray.Box(b.class_name, x1, y1, max(x1, int(math.ceil(b.x2)) - 1),
                                  max(y1, int(math.ceil(b.y2)) - 1)))
    return result


def export_entries(store: Store, entries: Sequence[BagEntry], out: Path, fmt: str) -> dict[str, int]:
    """Write the entries' images and current labels to ``out`` in ``fmt``; counts written."""
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(f"unknown export format {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}")
    if not entries:
        raise InvalidInput("nothing to export: no bag matches the filters")
    if store.images is None:
        raise InvalidInput("this store has no image directory to export images from")
    if fmt == "opixray":
        return _write_opixray(store, entries, opixray.prepare_output_dir(Path(out)))
    with tempfile.TemporaryDirectory(prefix="xray-export-") as scratch:
        layout = Path(scratch) / "opixray"
        _write_opixray(store, entries, layout)
        exporter = {"voc": formats.export_voc, "coco": formats.export_coco, "yolo": formats.export_yolo}[fmt]
        return exporter(layout, Path(out))


def _write_opixray(store: Store, entries: Sequence[BagEntry], out: Path) -> dict[str, int]:
    opixray.make_layout(out)
    ids, levels, boxes = [], {}, 0
    for entry in entries:
        image_id = _safe_id(entry)
        data = store.images.read_bytes(entry.bag.image_sha256)
        ext = ".png" if data[:4] == b"\x89PNG" else ".jpg"
        opixray.write_sample(out, "test", image_id, data, _opixray_boxes(entry.labels.boxes), ext=ext)
        ids.append(image_id)
        boxes += len(entry.labels.boxes)
        if entry.occlusion_level is not None:
            levels[image_id] = entry.occlusion_level
    opixray.write_lists(out, "test", ids, levels or None)
    opixray.write_lists(out, "train", [])
    return {"images": len(ids), "boxes": boxes}


def _safe_id(entry: BagEntry) -> str:
    name = entry.name or f"bag{entry.bag.id:06d}"
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
