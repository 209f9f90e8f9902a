"""The model file: round trip, and every way a file can be bad gives ModelFileError (never code execution)."""
from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from core.classes import CLASSES
from core.inference import (
    Detector,
    ModelFileError,
    load_model_file,
    read_model_file,
    save_model,
)
from core.inference.modelfile import FORMAT, sidecar_path
from core.models.build import build_detector


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_detector("fast", "doam").eval()


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "fast-doam.pt"
    sha = save_model(path, model, metrics={"mAP": np.float32(0.25), "per_class": [0.1, 0.2]},
                     strategy="hard-sample", extra={"note": "test"})
    return path, sha


def _copy_without_sidecar(src: Path, dst: Path, data: bytes | None = None) -> Path:
    dst.write_bytes(src.read_bytes() if data is None else data)
    return dst


def _payload(path: Path) -> dict:
    return torch.load(path, weights_only=True, map_location="cpu")


def test_file_is_plain_data_with_the_documented_keys(saved):
    path, sha = saved
    payload = _payload(path)   # weights_only=True must accept it as written
    assert payload["format"] == FORMAT
    assert set(payload) >= {"format", "config", "state_dict", "metrics", "created", "software"}
    config = payload["config"]
    assert config["arch"] == "fast" and config["attention"] == "doam"
    assert config["classes"] == list(CLASSES)
    assert len(config["input_size"]) == 2 and config["strategy"] == "hard-sample"
    assert isinstance(payload["metrics"]["mAP"], float)   # numpy scalar converted
    assert sidecar_path(path).read_text().split()[0] == sha
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]   # atomic write left nothing


def test_round_trip_gives_identical_predictions(model, saved):
    path, sha = saved
    _, info = load_model_file(path, expected_sha256=sha)
    assert info.sha256 == sha and info.model_id == f"fast-doam-{sha[:12]}"
    assert info.metrics["per_class"] == [0.1, 0.2] and info.extra == {"note": "test"}
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    before = Detector.from_model(model, device="cpu", score_threshold=0.05).predict(image)
    after = Detector.load(path, device="cpu", expected_sha256=sha, score_threshold=0.05).predict(image)
    assert after.model_id == info.model_id
    np.testing.assert_array_equal(before.boxes, after.boxes)
    np.testing.assert_array_equal(before.scores, after.scores)
    np.testing.assert_array_equal(before.labels, after.labels)
    np.testing.assert_array_equal(before.attention, after.attention)


def test_tampered_byte_is_a_sha_mismatch(saved, tmp_path):
    path, sha = saved
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = _copy_without_sidecar(path, tmp_path / "tampered.pt", bytes(data))
    with pytest.raises(ModelFileError, match="sha256 mismatch"):
        load_model_file(bad, expected_sha256=sha)
    # Without an expected value, the sidecar catches it.
    sidecar_path(bad).write_text(f"{sha}  tampered.pt\n")
    with pytest.raises(ModelFileError, match="sha256 mismatch"):
        load_model_file(bad)


def test_expected_sha_mismatch_on_an_intact_file(saved):
    path, _ = saved
    with pytest.raises(ModelFileError, match="sha256 mismatch"):
        read_model_file(path, expected_sha256="0" * 64)


@pytest.mark.parametrize("kind", ["truncated", "garbage", "empty", "missing", "directory", "zip", "onnx-like"])
def test_unreadable_files(saved, tmp_path, kind):
    path, _ = saved
    target = tmp_path / f"{kind}.pt"
    if kind == "truncated":
        target.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "garbage":
        target.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    elif kind == "empty":
        target.write_bytes(b"")
    elif kind == "directory":
        target.mkdir()
    elif kind == "zip":   # a zip archive, as torch files are, but not one
        with zipfile.ZipFile(target, "w") as archive:
            archive.writestr("readme.txt", "hello")
    elif kind == "onnx-like":
        target.write_bytes(b"\x08\x07\x12\x07pytorch" + bytes(200))
    with pytest.raises(ModelFileError, match=str(target.name)):
        load_model_file(target)


class _RunsCodeOnLoad:
    """Unpickling this object would call open(marker, "w"), creating the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("container", ["torch-zip", "raw-pickle", "inside-valid-file"])
def test_malicious_pickle_is_refused_and_never_runs(model, saved, tmp_path, container):
    marker = tmp_path / "pwned"
    target = tmp_path / "evil.pt"
    evil = _RunsCodeOnLoad(marker)
    if container == "torch-zip":
        torch.save({"format": FORMAT, "config": evil}, target)
    elif container == "raw-pickle":
        target.write_bytes(pickle.dumps(evil, protocol=2))   # protocol 2: torch.load reaches the GLOBAL
    else:
        payload = _payload(saved[0])
        payload["extra"] = evil
        torch.save(payload, target)
    assert not marker.exists()
    with pytest.raises(ModelFileError, match="refused|not a readable"):
        load_model_file(target)
    assert not marker.exists(), "loading the file executed code"


def test_foreign_checkpoints(model, tmp_path):
    bare = tmp_path / "bare.pt"
    torch.save(model.state_dict(), bare)
    with pytest.raises(ModelFileError, match="bare state_dict"):
        load_model_file(bare)
    other = tmp_path / "other.pt"
    torch.save({"epoch": 3, "model": model.state_dict(), "optimizer": {}}, other)
    with pytest.raises(ModelFileError, match="no 'format' key"):
        load_model_file(other)
    listing = tmp_path / "list.pt"
    torch.save([1, 2, 3], listing)
    with pytest.raises(ModelFileError, match="foreign file"):
        load_model_file(listing)
    newer = tmp_path / "newer.pt"
    torch.save({"format": "xray-doam-model/99"}, newer)
    with pytest.raises(ModelFileError, match="unsupported format"):
        load_model_file(newer)


def _resaved(saved, tmp_path: Path, edit) -> Path:
    payload = _payload(saved[0])
    edit(payload)
    target = tmp_path / "edited.pt"
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    target.write_bytes(buffer.getvalue())
    return target


def test_wrong_classes(saved, tmp_path):
    target = _resaved(saved, tmp_path, lambda p: p["config"].update(classes=["Gun", "Knife"]))
    with pytest.raises(ModelFileError, match="classes"):
        load_model_file(target)


def test_shape_mismatch_and_missing_weights(saved, tmp_path):
    def grow_first(payload):
        name = next(k for k, v in payload["state_dict"].items() if v.ndim == 4)
        tensor = payload["state_dict"][name]
        payload["state_dict"][name] = torch.zeros(tensor.shape[0] + 1, *tensor.shape[1:])

    with pytest.raises(ModelFileError, match="another shape"):
        load_model_file(_resaved(saved, tmp_path, grow_first))

    def drop_one(payload):
        payload["state_dict"].pop(next(iter(payload["state_dict"])))

    with pytest.raises(ModelFileError, match="missing"):
        load_model_file(_resaved(saved, tmp_path, drop_one))


def test_unknown_arch_and_bad_config(saved, tmp_path):
    with pytest.raises(ModelFileError, match="cannot rebuild"):
        load_model_file(_resaved(saved, tmp_path, lambda p: p["config"].update(arch="resnet-9000")))
    with pytest.raises(ModelFileError, match="input_size"):
        load_model_file(_resaved(saved, tmp_path, lambda p: p["config"].update(input_size="big")))
    with pytest.raises(ModelFileError, match="NaN"):
        load_model_file(_resaved(saved, tmp_path, lambda p: next(
            v for v in p["state_dict"].values() if v.is_floating_point()).fill_(float("nan"))))


def test_save_refuses_non_plain_values_and_writes_nothing(model, tmp_path):
    target = tmp_path / "m.pt"
    with pytest.raises(ModelFileError, match="metrics.curve"):
        save_model(target, model, metrics={"curve": object()})
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ModelFileError, match="detector config"):
        save_model(target, torch.nn.Linear(2, 2))


def test_the_malicious_payload_is_live(tmp_path):
    # Guards the test above: unpickled without restrictions, the object really does run code.
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_RunsCodeOnLoad(marker))).close()
    assert marker.exists()
