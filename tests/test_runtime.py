"""The screening runtime: ONNX Runtime twin of a verified model file, cached, checked, with fallbacks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from core.inference import Detector, ModelFileError, save_model  # noqa: E402
from core.inference.runtime import load_screening_detector  # noqa: E402
from core.models.build import build_detector  # noqa: E402

INPUT = (128, 160)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    model = build_detector("fast", "doam", input_size=INPUT).eval()
    path = tmp_path_factory.mktemp("runtime") / "model.pt"
    return path, save_model(path, model)


def image() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (200, 260, 3), dtype=np.uint8)


def test_onnx_twin_is_cached_by_sha_and_matches_pytorch(model_file, tmp_path):
    path, sha = model_file
    twin = load_screening_detector(path, "cpu", sha, runtime="auto", cache_dir=tmp_path, score_threshold=0.0)
    assert twin.runtime == "onnxruntime" and (tmp_path / f"{sha}.onnx").is_file()
    reference = Detector.load(path, "cpu", sha, score_threshold=0.0)
    a, b = reference.predict(image()), twin.predict(image())
    assert a.model_id == b.model_id
    np.testing.assert_allclose(a.scores[:20], b.scores[:20], atol=1e-3)
    np.testing.assert_allclose(a.attention, b.attention, atol=1e-3)
    # The second load reuses the cached graph (no new file) and still checks it.
    before = (tmp_path / f"{sha}.onnx").stat().st_mtime_ns
    again = load_screening_detector(path, "cpu", sha, runtime="auto", cache_dir=tmp_path)
    assert again.runtime == "onnxruntime" and (tmp_path / f"{sha}.onnx").stat().st_mtime_ns == before


def test_a_tampered_cache_entry_is_exported_again_not_run(model_file, tmp_path):
    path, sha = model_file
    load_screening_detector(path, "cpu", sha, runtime="auto", cache_dir=tmp_path)
    cached = tmp_path / f"{sha}.onnx"
    cached.write_bytes(cached.read_bytes()[: cached.stat().st_size // 2])   # truncated
    twin = load_screening_detector(path, "cpu", sha, runtime="auto", cache_dir=tmp_path)
    assert twin.runtime == "onnxruntime"
    reference = Detector.load(path, "cpu", sha, score_threshold=twin.score_threshold)
    np.testing.assert_allclose(reference.predict(image()).attention, twin.predict(image()).attention, atol=1e-3)


def test_pytorch_when_asked_and_the_model_file_is_always_verified(model_file, tmp_path):
    path, sha = model_file
    plain = load_screening_detector(path, "cpu", sha, runtime="pytorch", cache_dir=tmp_path)
    assert plain.runtime == "pytorch" and not any(tmp_path.iterdir())
    with pytest.raises(ModelFileError):
        load_screening_detector(path, "cpu", "0" * 64, cache_dir=tmp_path)
    with pytest.raises(ValueError):
        load_screening_detector(path, "cpu", sha, runtime="tensorrt", cache_dir=tmp_path)


def test_auto_falls_back_to_pytorch_and_says_why(model_file, tmp_path, monkeypatch):
    path, sha = model_file
    import core.inference.export as export  # noqa: PLC0415

    def broken(*args, **kwargs):
        raise export.ExportError("this network does not export")

    monkeypatch.setattr(export, "export_onnx", broken)
    detector = load_screening_detector(path, "cpu", sha, runtime="auto", cache_dir=tmp_path)
    assert detector.runtime == "pytorch" and "does not export" in detector.runtime_note
    with pytest.raises(export.ExportError):
        load_screening_detector(path, "cpu", sha, runtime="onnxruntime", cache_dir=tmp_path)
