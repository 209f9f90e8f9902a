"""A model's test-split detections kept on disk, so comparing recipes does not predict twice.

``python main.py compare`` scores many models (seeds of several recipes) on a large split; a
prediction pass is minutes per model on this CPU, the comparison seconds. The cache is keyed by
the model file's sha256 and by the split's images (ids, sizes and modification times), so a
retrained model or a regenerated split is predicted again, never mixed up with old detections.
The device and runtime (CPU or CUDA, PyTorch or ONNX Runtime) are not in the key: they change
scores in the last digits only, far below anything a comparison of recipes can resolve.
"""
from __future__ import annotations

import hashlib
import logging
import zipfile
from pathlib import Path

import numpy as np

from core.data.opixray import load_split
from core.evaluation.runner import TEST_SCORE_THRESHOLD, SplitPredictions, ground_truth_of, predict_samples
from core.inference.modelfile import file_sha256

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


def split_fingerprint(samples) -> str:
    """sha256 of the split's image ids, file sizes and modification times, in order."""
    digest = hashlib.sha256(f"format {CACHE_FORMAT} threshold {TEST_SCORE_THRESHOLD}\n".encode())
    for sample in samples:
        stat = Path(sample.image_path).stat()
        digest.update(f"{sample.image_id}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def predictions_for(model_path: str | Path, root: str | Path, split: str = "test", *,
                    cache_dir: str | Path | None = None, device: str = "auto") -> SplitPredictions:
    """The model's detections on every image of the split, from the cache when it has them."""
    from core.inference.detector import Detector  # noqa: PLC0415 - torch only when predicting

    samples = load_split(Path(root), split)
    if not samples:
        raise ValueError(f"{root}: the {split} split has no images")
    digest = file_sha256(model_path)
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"{digest[:20]}-{split_fingerprint(samples)[:20]}.npz"
        cached = _read(path, samples)
        if cached is not None:
            log.info("%s: detections read from %s", model_path, path)
            return cached
    detector = Detector.load(model_path, device=device, expected_sha256=digest,
                             score_threshold=TEST_SCORE_THRESHOLD)
    predictions = predict_samples(detector, samples)   # the split is loaded once, above
    if path is not None:
        _write(path, predictions)
    return predictions


def _write(path: Path, predictions: SplitPredictions) -> None:
    dets = predictions.detections
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.npz")
    np.savez_compressed(
        partial, image_ids=np.array(predictions.image_ids),
        counts=np.array([len(d["scores"]) for d in dets], dtype=np.int64),
        boxes=np.concatenate([np.asarray(d["boxes"], np.float64).reshape(-1, 4) for d in dets]),
        labels=np.concatenate([np.asarray(d["labels"], np.int64).reshape(-1) for d in dets]),
        scores=np.concatenate([np.asarray(d["scores"], np.float64).reshape(-1) for d in dets]))
    partial.replace(path)   # a run killed mid-write leaves no half file under the real name


def _read(path: Path, samples) -> SplitPredictions | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            ids, counts = [str(i) for i in data["image_ids"]], data["counts"]
            boxes, labels, scores = data["boxes"], data["labels"], data["scores"]
    # A run killed mid-write leaves no file (see _write), but a copied or truncated archive can
    # still arrive: np.load raises BadZipFile or EOFError for those, not only OSError.
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("%s: unreadable cache (%s); predicting again", path, exc)
        return None
    if ids != [s.image_id for s in samples] or int(counts.sum()) != len(scores):
        log.warning("%s: cache does not match the split; predicting again", path)
        return None
    ends = np.cumsum(counts)
    starts = ends - counts
    detections = [{"boxes": boxes[a:b], "labels": labels[a:b], "scores": scores[a:b]}
                  for a, b in zip(starts, ends)]
    return SplitPredictions(ids, [ground_truth_of(s) for s in samples], detections,
                            [s.occlusion_level for s in samples])
