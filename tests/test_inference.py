"""Detector / Prediction: odd inputs, box scaling, attention map, batch, files, and the detect CLI."""
from __future__ import annotations

import json
import os
import time

import cv2
import numpy as np
import pytest
import torch

from core.classes import CLASSES
from core.cli import main as cli_main
from core.imaging.decode import ImageDecodeError, encode_jpg
from core.inference import Detector, Prediction, save_model
from core.inference.detector import resolve_device, scale_boxes
from core.models.build import build_detector

# A small input keeps the suite fast on 2 cores; the code paths are those of the default size.
INPUT = (128, 160)


def _model(attention: str):
    torch.manual_seed(0)
    return build_detector("fast", attention, input_size=INPUT).eval()


@pytest.fixture(scope="module")
def detector():
    # A low threshold so the untrained net returns boxes to check.
    return Detector.from_model(_model("doam"), device="cpu", score_threshold=0.0)


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return cv2.GaussianBlur(rng.integers(0, 256, (300, 420, 3), dtype=np.uint8), (5, 5), 1)


def _same(a: Prediction, b: Prediction, atol: float = 0.0) -> None:
    """Same detections; with a tolerance, as sets (near-tied untrained scores may swap ranks)."""
    assert len(a) == len(b)
    ia, ib = (np.arange(len(a)), np.arange(len(b))) if atol == 0 else (_canonical(a), _canonical(b))
    np.testing.assert_allclose(a.boxes[ia], b.boxes[ib], atol=max(atol, 1e-6))
    np.testing.assert_allclose(a.scores[ia], b.scores[ib], atol=atol)
    np.testing.assert_array_equal(a.labels[ia], b.labels[ib])


def _canonical(prediction: Prediction) -> np.ndarray:
    boxes = np.round(prediction.boxes, 1)
    return np.lexsort((boxes[:, 3], boxes[:, 2], boxes[:, 1], boxes[:, 0], prediction.labels))


def test_prediction_types_and_ranges(detector, image):
    pred = detector.predict(image)
    assert len(pred) > 0
    assert pred.boxes.dtype == np.float32 and pred.boxes.shape == (len(pred), 4)
    assert pred.labels.dtype == np.int64 and pred.scores.dtype == np.float32
    assert ((pred.labels >= 0) & (pred.labels < len(CLASSES))).all()
    assert pred.class_names == [CLASSES[i] for i in pred.labels]
    assert (pred.boxes[:, 0::2] >= 0).all() and (pred.boxes[:, 0::2] <= image.shape[1]).all()
    assert (pred.boxes[:, 1::2] >= 0).all() and (pred.boxes[:, 1::2] <= image.shape[0]).all()
    assert pred.attention is not None and pred.attention.shape == image.shape[:2]
    assert pred.attention.dtype == np.float32
    assert 0.0 <= pred.attention.min() and pred.attention.max() <= 1.0
    assert set(pred.timings) == {"decode", "preprocess", "model", "postprocess", "total"}
    assert pred.model_id == "fast-doam-unsaved" and pred.image_size == (300, 420)
    json.dumps(pred.to_dict())   # plain data only


def test_boxes_are_in_original_pixels(detector, image):
    # A 2x nearest-neighbour upscale shrinks back (INTER_AREA) to exactly the same model input,
    # so the detections must be the same boxes at twice the coordinates.
    small = detector.predict(image)
    big_image = cv2.resize(image, (image.shape[1] * 2, image.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
    big = detector.predict(big_image)
    assert big.attention.shape == big_image.shape[:2]
    np.testing.assert_allclose(big.boxes, small.boxes * 2, rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(big.labels, small.labels)


def test_scale_boxes_math():
    boxes = np.array([[10, 20, 80, 100], [-5, -5, 200, 200]], np.float32)
    out = scale_boxes(boxes, input_size=(100, 200), image_size=(300, 100))   # x / 2, y * 3
    np.testing.assert_allclose(out[0], [5, 60, 40, 300])
    np.testing.assert_allclose(out[1], [0, 0, 100, 300])   # clipped to the image


def test_no_attention_model_gives_none(image):
    pred = Detector.from_model(_model("none"), device="cpu").predict(image)
    assert pred.attention is None


@pytest.mark.parametrize("variant", ["float", "uint16", "gray", "gray1", "rgba_opaque"])
def test_odd_inputs_follow_the_documented_conversion(detector, image, variant):
    reference = detector.predict(image if variant not in ("gray", "gray1") else np.repeat(image[:, :, :1], 3, axis=2))
    converted = {
        "float": image.astype(np.float64) / 255.0,
        "uint16": image.astype(np.uint16) * 257,
        "gray": image[:, :, 0].copy(),
        "gray1": image[:, :, :1].copy(),
        "rgba_opaque": np.dstack([image, np.full(image.shape[:2], 255, np.uint8)]),
    }[variant]
    _same(reference, detector.predict(converted))


def test_tiny_image(detector):
    pred = detector.predict(np.full((1, 1, 3), 128, np.uint8))
    assert pred.attention.shape == (1, 1)
    assert (pred.boxes >= 0).all() and (pred.boxes <= 1).all()


@pytest.mark.parametrize("bad", [
    np.zeros((0, 0, 3), np.uint8), np.zeros((10, 0, 3), np.uint8), np.zeros((5, 5, 2), np.uint8),
    np.zeros((2, 5, 5, 3), np.uint8), np.zeros((5, 5, 3), np.int32), np.full((5, 5, 3), np.nan),
    "image.jpg", None, [[1, 2, 3]],
], ids=["empty", "zero-width", "2-channels", "4-d", "int32", "nan", "str", "none", "list"])
def test_bad_inputs_raise_a_clear_value_error(detector, bad):
    with pytest.raises(ValueError) as info:
        detector.predict(bad)
    assert isinstance(info.value, ImageDecodeError) and "image" in str(info.value)


def test_huge_image_is_refused_at_once(detector):
    huge = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (12_000, 10_000, 3))   # 120 MP, no memory
    start = time.perf_counter()
    with pytest.raises(ImageDecodeError, match="MP limit"):
        detector.predict(huge)
    assert time.perf_counter() - start < 1.0


def test_batch_matches_single(detector, image):
    other = np.ascontiguousarray(image[::-1])
    batch = detector.predict_batch([image, other])
    assert len(batch) == 2
    _same(batch[0], detector.predict(image), atol=1e-3)
    _same(batch[1], detector.predict(other), atol=1e-3)
    assert detector.predict_batch([]) == []
    with pytest.raises(ImageDecodeError, match="list of images"):
        detector.predict_batch(image)


def test_predict_file_times_decoding_and_rejects_bad_files(detector, image, tmp_path):
    good = tmp_path / "bag.jpg"
    good.write_bytes(encode_jpg(image))
    pred = detector.predict_file(good)
    assert pred.timings["decode"] > 0 and pred.image_size == image.shape[:2]
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(ImageDecodeError, match="truncated"):
        detector.predict_file(truncated)
    with pytest.raises(ImageDecodeError, match="no such file"):
        detector.predict_file(tmp_path / "missing.jpg")


def test_predict_file_decodes_a_large_jpg_reduced_and_reports_original_pixels(detector, tmp_path):
    """A scan twice the model input is decoded at half size; boxes and heat map stay in its own pixels."""
    rng = np.random.default_rng(3)
    big = cv2.resize(cv2.GaussianBlur(rng.integers(0, 256, (150, 200, 3), dtype=np.uint8), (5, 5), 1), (700, 540))
    path = tmp_path / "big.jpg"
    path.write_bytes(encode_jpg(big))
    from_file = detector.predict_file(path)
    assert from_file.image_size == (540, 700) and from_file.attention.shape == (540, 700)
    from_array = detector.predict(big)
    assert len(from_file) > 0
    assert np.abs(from_file.attention - from_array.attention).mean() < 0.02
    assert from_file.boxes[:, 2].max() <= 700 and from_file.boxes[:, 3].max() <= 540


def test_score_threshold_filters_and_validates(image):
    det = Detector.from_model(_model("doam"), device="cpu", score_threshold=0.0)
    everything = det.predict(image)
    ordered = np.sort(everything.scores)
    middle = len(ordered) // 2
    cut = float(ordered[middle - 1] + ordered[middle]) / 2   # between two scores: no tie at the cut
    det.score_threshold = cut
    kept = det.predict(image)
    assert 0 < len(kept) < len(everything) and (kept.scores >= cut).all()
    assert len(everything.above(cut)) == len(kept)
    with pytest.raises(ValueError, match="not in"):
        det.score_threshold = 1.5


def test_device_rules():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device|unsupported device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_cpu_threads_are_scoped_to_the_detector_calls(image):
    model = _model("none")
    seen = []
    model.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    detector = Detector.from_model(model, device="cpu")
    assert detector.num_threads == max(1, min(4, (os.cpu_count() or 1) - 1))
    detector.predict(image)
    Detector.from_model(model, device="cpu", num_threads=3).predict(image)
    assert seen == [detector.num_threads, 3]
    assert torch.get_num_threads() == before   # a training loop around it keeps its setting


def test_cli_detect_writes_overlays_and_reports_bad_files(image, tmp_path, capsys):
    model_path = tmp_path / "model.pt"
    save_model(model_path, _model("doam"))
    good = tmp_path / "bag.jpg"
    good.write_bytes(encode_jpg(image))
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"this is not an image")
    out = tmp_path / "overlays"
    code = cli_main(["detect", str(good), str(bad), "--model", str(model_path), "--out", str(out),
                     "--score-threshold", "0.05", "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 1
    assert "broken.jpg" in captured.err and "Traceback" not in captured.err
    assert "bag.jpg" in captured.out
    overlay = cv2.imread(str(out / "bag.jpg"))
    assert overlay is not None and overlay.shape[:2] == image.shape[:2]

    code = cli_main(["detect", str(good), "--model", str(model_path), "--json", "--device", "cpu"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["images"][0]["image"] == str(good)
    assert data["images"][0]["model_id"].startswith("fast-doam-")

    code = cli_main(["detect", str(good), "--model", str(tmp_path / "nope.pt")])
    captured = capsys.readouterr()
    assert code == 2 and "no such model file" in captured.err and "Traceback" not in captured.err
    if not torch.cuda.is_available():
        assert cli_main(["detect", str(good), "--model", str(model_path), "--device", "cuda"]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err
