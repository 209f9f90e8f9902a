"""The screening runtime: the same verified model, its network run by ONNX Runtime on a CPU.

``bench inference --inference-onnx`` measures ONNX Runtime at 1.3-1.4x PyTorch's speed for
the fast detector on this 2-core CPU, so the lane (and ``detect``) run it that way when
they can. Evaluation and training stay on PyTorch: the reference protocol is defined there.

``load_screening_detector`` always starts from the verified ``.pt`` file (weights_only,
sha256). The ONNX graph is exported from it once and cached under the data directory by
the model file's sha256. A cached graph is trusted only after it reproduces the PyTorch
network on a fixed input at load time, so a stale, truncated or edited cache file is
re-exported, never run. Any failure (no onnxruntime, an arch whose network does not
export, a CUDA device) falls back to PyTorch and says why in ``runtime_note``.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from core.inference.detector import DEFAULT_SCORE_THRESHOLD, Detector

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "onnxruntime", "pytorch")
RUNTIME_ENV = "XRAY_RUNTIME"     # the default runtime when the caller does not choose (the test suite: pytorch)


def default_cache_dir() -> Path:
    from core.config import resolve_data_dir  # noqa: PLC0415

    return resolve_data_dir(None) / "cache" / "onnx"


def load_screening_detector(path: str | Path, device: str = "auto", expected_sha256: str | None = None, *,
                            runtime: str | None = None, cache_dir: str | Path | None = None,
                            score_threshold: float = DEFAULT_SCORE_THRESHOLD,
                            num_threads: int | None = None) -> Detector:
    """A Detector for screening: ONNX Runtime on a CPU when ``runtime`` allows it, else PyTorch.

    ``runtime="onnxruntime"`` raises when that path is impossible; ``"auto"`` falls back.
    ``runtime=None`` takes $XRAY_RUNTIME, else "auto". The returned detector has ``runtime``
    ("onnxruntime" | "pytorch") and ``runtime_note``.
    """
    runtime = runtime or os.environ.get(RUNTIME_ENV) or "auto"
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; expected one of {', '.join(RUNTIMES)}")
    detector = Detector.load(path, device=device, expected_sha256=expected_sha256,
                             score_threshold=score_threshold, num_threads=num_threads)
    detector.runtime, detector.runtime_note = "pytorch", "PyTorch (asked for)" if runtime == "pytorch" else ""
    if runtime == "pytorch":
        return detector
    try:
        onnx = _onnx_twin(detector, Path(cache_dir) if cache_dir else default_cache_dir())
    except Exception as exc:  # noqa: BLE001 - any failure of the faster path keeps the verified PyTorch one
        if runtime == "onnxruntime":
            raise
        detector.runtime_note = f"PyTorch (ONNX Runtime not used: {exc})"
        log.info("screening %s with PyTorch: %s", detector.model_id, exc)
        return detector
    return onnx


def _onnx_twin(detector: Detector, cache_dir: Path) -> Detector:
    if detector.device.type != "cpu":
        raise RuntimeError(f"the model runs on {detector.device.type}; ONNX Runtime is the CPU path")
    import onnxruntime  # noqa: F401, PLC0415 - ImportError: no ONNX Runtime installed

    from core.inference.export import ExportError, OnnxDetector, check_parity, export_onnx  # noqa: PLC0415
    from core.inference.export import PARITY_TOLERANCE  # noqa: PLC0415

    sha = detector.info.sha256 if detector.info is not None else None
    if not sha:
        raise RuntimeError("only verified model files are cached for ONNX Runtime")
    onnx_path = cache_dir / f"{sha}.onnx"
    if onnx_path.is_file():
        try:
            diff = check_parity(onnx_path, detector.model)
            if diff > PARITY_TOLERANCE:
                raise ExportError(f"differs from the model by {diff:.2e}")
        except Exception as exc:  # noqa: BLE001 - an unusable cache entry is rebuilt, never run
            log.warning("cached ONNX graph %s is not usable (%s); exporting again", onnx_path, exc)
            onnx_path.unlink(missing_ok=True)
    if not onnx_path.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        export_onnx(detector.model, onnx_path, model_id=detector.model_id)   # checks parity before writing
    twin = OnnxDetector.load(onnx_path, score_threshold=detector.score_threshold, num_threads=detector.num_threads)
    twin.info = detector.info
    twin.runtime, twin.runtime_note = "onnxruntime", f"ONNX Runtime (graph cached in {onnx_path})"
    return twin


def warm_cache(path: str | Path, expected_sha256: str | None = None, cache_dir: str | Path | None = None) -> Any:
    """Export a model file's graph into the cache ahead of time (e.g. when a candidate is installed),
    so that a lane swapping to it does not pause for the export. Returns the detector or None."""
    try:
        return load_screening_detector(path, "cpu", expected_sha256, runtime="onnxruntime", cache_dir=cache_dir)
    except Exception as exc:  # noqa: BLE001 - the cache is an optimisation: the lane falls back to PyTorch
        log.info("no ONNX graph cached for %s: %s", os.fspath(path), exc)
        return None
