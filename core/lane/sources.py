"""Lane sources. Each is an iterator of ``Bag``s that paces itself (blocking is fine: a worker
thread pulls from it) and never raises for a bad image: it yields a Bag with ``error`` set.

- ``WatchedFolderSource``: a scanner drops image files into a folder. A file is taken once its
  size has stopped changing for ``settle_s`` (partial writes are waited for) and never twice.
- ``ReplaySource``: a list of files or an OPIXray-layout dataset, at a chosen rate.
- ``DemoLaneSource``: the synthetic generator, so a fresh install shows a working lane.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from core.imaging.decode import IMAGE_SUFFIXES, ImageDecodeError, decode_bytes, encode_jpg
from core.lane.bag import Bag, TruthItem

log = logging.getLogger(__name__)


class LaneSource:
    """Base: an iterator of bags that can be stopped from another thread."""

    def __init__(self) -> None:
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _sleep(self, seconds: float) -> bool:
        """Wait, waking early on stop; True if the source should go on."""
        return not self._stop.wait(max(0.0, seconds))

    def __iter__(self) -> Iterator[Bag]:
        raise NotImplementedError


def bag_from_bytes(bag_id: str, data: bytes, source: str, path: Path | None = None) -> Bag:
    try:
        image = decode_bytes(data, str(path) if path else bag_id)
        return Bag(bag_id, source, image=image, encoded=data, path=path)
    except ImageDecodeError as exc:
        return Bag(bag_id, source, encoded=data or None, path=path, error=str(exc))


def bag_from_file(bag_id: str, path: Path, source: str) -> Bag:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return Bag(bag_id, source, path=path, error=f"{path}: cannot be read ({exc.strerror})")
    return bag_from_bytes(bag_id, data, source, path)


class WatchedFolderSource(LaneSource):
    def __init__(self, folder: str | Path, poll_s: float = 0.2, settle_s: float = 0.5,
                 include_existing: bool = False) -> None:
        super().__init__()
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: the watched folder does not exist")
        self.poll_s = poll_s
        self.settle_s = settle_s
        self._seen: set[str] = set()
        self._sizes: dict[str, tuple[int, float]] = {}   # name -> (size, time it was first seen at that size)
        if not include_existing:
            self._seen.update(p.name for p in self._candidates())

    def _candidates(self) -> list[Path]:
        try:
            entries = sorted(self.folder.iterdir(), key=lambda p: p.name)
        except OSError as exc:
            log.warning("cannot list %s: %s", self.folder, exc)
            return []
        # Scanners write to a temporary name and rename; hidden and partial names are skipped.
        return [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
                and p.is_file()]

    def ready_files(self) -> list[Path]:
        """Files whose size has been stable for ``settle_s`` and that were not taken yet."""
        now = time.monotonic()
        ready = []
        for path in self._candidates():
            if path.name in self._seen:
                continue
            try:
                size = path.stat().st_size
            except OSError:
                continue
            previous = self._sizes.get(path.name)
            if previous is None or previous[0] != size:
                self._sizes[path.name] = (size, now)
            elif now - previous[1] >= self.settle_s:
                ready.append(path)
        return ready

    def __iter__(self) -> Iterator[Bag]:
        while not self.stopped:
            for path in self.ready_files():
                self._seen.add(path.name)
                self._sizes.pop(path.name, None)
                yield bag_from_file(path.stem, path, "lane")
                if self.stopped:
                    return
            if not self._sleep(self.poll_s):
                return


class ReplaySource(LaneSource):
    def __init__(self, paths: list[Path], rate_per_s: float = 1.0, loop: bool = False,
                 truth: dict[Path, list[TruthItem]] | None = None) -> None:
        super().__init__()
        if rate_per_s <= 0:
            raise ValueError("the replay rate must be positive")
        self.paths = list(paths)
        self.rate = rate_per_s
        self.loop = loop
        self.truth = truth or {}

    @classmethod
    def from_dataset(cls, root: str | Path, split: str = "test", **kw) -> "ReplaySource":
        from core.data.opixray import load_split  # noqa: PLC0415

        samples = load_split(Path(root), split)
        truth = {s.image_path: [TruthItem(b.label, (b.x1, b.y1, b.x2, b.y2)) for b in s.boxes] for s in samples}
        return cls([s.image_path for s in samples], truth=truth, **kw)

    @classmethod
    def from_folder(cls, folder: str | Path, **kw) -> "ReplaySource":
        paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        return cls(paths, **kw)

    def __iter__(self) -> Iterator[Bag]:
        period = 1.0 / self.rate
        passes = itertools.count() if self.loop else range(1)
        for n in passes:
            for path in self.paths:
                start = time.monotonic()
                bag = bag_from_file(f"{path.stem}" if n == 0 else f"{path.stem}-{n}", path, "import")
                bag.truth = list(self.truth.get(path, []))
                yield bag
                if not self._sleep(period - (time.monotonic() - start)):
                    return


class DemoLaneSource(LaneSource):
    """Synthetic bags from the generator: ``threat_rate`` of them hold a real cutter (known truth)."""

    def __init__(self, rate_per_s: float = 0.5, seed: int = 0, threat_rate: float = 0.3,
                 size: tuple[int, int] = (1225, 954), limit: int | None = None) -> None:
        super().__init__()
        if rate_per_s <= 0:
            raise ValueError("the demo lane's rate must be positive")
        self.rate = rate_per_s
        self.seed = seed
        self.threat_rate = threat_rate
        self.size = size
        self.limit = limit

    def make_bag(self, index: int) -> Bag:
        from core.synth.scene import SceneConfig, compose_scene  # noqa: PLC0415 - the generator is heavy

        rng = np.random.default_rng([self.seed, index])
        config = SceneConfig(width=self.size[0], height=self.size[1],
                             cutter_rate=1.0 if rng.random() < self.threat_rate else 0.0)
        scene = compose_scene(rng, config)
        data = encode_jpg(scene.image)
        bag = bag_from_bytes(f"demo-{self.seed}-{index:06d}", data, "demo")
        bag.truth = [TruthItem(label, tuple(box)) for label, box in zip(scene.labels, scene.boxes)]
        return bag

    def __iter__(self) -> Iterator[Bag]:
        period = 1.0 / self.rate
        indices = itertools.count() if self.limit is None else range(self.limit)
        for index in indices:
            start = time.monotonic()
            yield self.make_bag(index)
            if not self._sleep(period - (time.monotonic() - start)):
                return
