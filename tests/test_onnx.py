"""ONNX export: the graph matches PyTorch, OnnxDetector matches Detector, bad files are refused."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from core.cli import main as cli_main  # noqa: E402
from core.inference import Detector, save_model  # noqa: E402
from core.inference.export import (  # noqa: E402
    PARITY_TOLERANCE,
    ExportError,
    OnnxDetector,
    check_parity,
    export_onnx,
    read_onnx_metadata,
)
from core.models.build import build_detector  # noqa: E402

INPUT = (128, 160)


@pytest.fixture(scope="module", params=["doam", "none"])
def exported(request, tmp_path_factory):
    torch.manual_seed(0)
    model = build_detector("fast", request.param, input_size=INPUT).eval()
    folder = tmp_path_factory.mktemp(f"onnx-{request.param}")
    model_path = folder / "model.pt"
    sha = save_model(model_path, model)
    report = export_onnx(model_path, folder / "model.onnx")
    return model, model_path, sha, report


def test_raw_outputs_match_pytorch(exported):
    model, _, sha, report = exported
    assert report.max_abs_diff is not None and report.max_abs_diff <= PARITY_TOLERANCE
    # A different batch size and fresh random input: the batch axis must not be frozen by tracing.
    example = torch.rand(3, 3, *INPUT, generator=torch.Generator().manual_seed(7))
    assert check_parity(report.path, model, example) <= PARITY_TOLERANCE
    meta = read_onnx_metadata(report.path)
    assert meta["sha256"] == sha and meta["model_id"] == report.model_id
    assert ("attention" in report.output_names) == (model.config["attention"] == "doam")


def test_export_leaves_the_callers_model_alone(exported, tmp_path):
    model = exported[0].train()
    try:
        export_onnx(model, tmp_path / "m.onnx", check=False)
        assert model.training   # exported from a copy: a training loop can export mid-run
    finally:
        model.eval()


def test_onnx_detector_matches_pytorch_detector(exported):
    _, model_path, _, report = exported
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (200, 330, 3), dtype=np.uint8) for _ in range(2)]
    torch_det = Detector.load(model_path, device="cpu", score_threshold=0.05)
    onnx_det = OnnxDetector.load(report.path, score_threshold=0.05)
    assert onnx_det.model_id == torch_det.model_id
    for a, b in zip(torch_det.predict_batch(images), onnx_det.predict_batch(images)):
        assert len(a) == len(b) > 0
        # Untrained scores tie often: compare the detections as sets (canonical order), not by rank.
        ia, ib = _canonical(a), _canonical(b)
        np.testing.assert_array_equal(a.labels[ia], b.labels[ib])
        np.testing.assert_allclose(a.boxes[ia], b.boxes[ib], atol=1e-2)
        np.testing.assert_allclose(a.scores[ia], b.scores[ib], atol=1e-4)
        if a.attention is None:
            assert b.attention is None
        else:
            np.testing.assert_allclose(a.attention, b.attention, atol=1e-4)


def _canonical(prediction) -> np.ndarray:
    boxes = np.round(prediction.boxes, 1)
    return np.lexsort((boxes[:, 3], boxes[:, 2], boxes[:, 1], boxes[:, 0], prediction.labels))


def test_bad_onnx_files(tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01not onnx" * 50)
    with pytest.raises(ExportError, match="garbage.onnx"):
        OnnxDetector.load(garbage)
    with pytest.raises(ExportError, match="sha256 mismatch"):
        OnnxDetector.load(garbage, expected_sha256="0" * 64)


def test_export_onnx_cli(exported, tmp_path, capsys):
    _, model_path, _, _ = exported
    out = tmp_path / "cli.onnx"
    assert cli_main(["export-onnx", "--model", str(model_path), "--out", str(out)]) == 0
    assert out.exists() and "max |diff|" in capsys.readouterr().out
    assert cli_main(["export-onnx", "--model", str(tmp_path / "missing.pt"), "--out", str(out)]) == 2
    assert "no such model file" in capsys.readouterr().err
    # detect runs an .onnx file through ONNX Runtime with the same output.
    image = tmp_path / "bag.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 256, (120, 200, 3), dtype=np.uint8))
    assert cli_main(["detect", str(image), "--model", str(out), "--json", "--score-threshold", "0.05"]) == 0
    onnx_json = json.loads(capsys.readouterr().out)
    assert cli_main(["detect", str(image), "--model", str(model_path), "--json", "--score-threshold", "0.05",
                     "--device", "cpu"]) == 0
    torch_json = json.loads(capsys.readouterr().out)
    assert onnx_json["model_id"] == torch_json["model_id"]
    assert len(onnx_json["images"][0]["detections"]) == len(torch_json["images"][0]["detections"]) > 0
