"""ONNX export of a detector's network, and ``OnnxDetector`` running it with ONNX Runtime.

Only the network goes into the ONNX graph: the image tensor in, the raw head
outputs (and the attention map) out (``split_network``). Decoding and NMS stay in
PyTorch/torchvision, in the very function the model's own eval ``forward`` uses,
so the ONNX path and the PyTorch path share every step after the network and
agree on the boxes.

The ONNX file carries the model's config, id and sha256 in its metadata, so an
``OnnxDetector`` can rebuild the (weightless) decoding part on its own.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core.inference.detector import (
    DEFAULT_SCORE_THRESHOLD,
    Detector,
    Prediction,
    cpu_threads,
    default_cpu_threads,
)
from core.inference.modelfile import FORMAT, ModelInfo, file_sha256, load_model_file

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18
PARITY_TOLERANCE = 1e-4
ONNX_META_KEY = "xray_model"


class ExportError(RuntimeError):
    """The model cannot be exported, or the exported graph disagrees with PyTorch."""


@dataclass(frozen=True)
class ExportReport:
    path: Path
    model_id: str
    opset: int
    output_names: tuple[str, ...]
    max_abs_diff: float | None  # ONNX Runtime vs PyTorch on a random input, when checked
    seconds: float


@dataclass(frozen=True)
class NetworkSplit:
    """A detector cut in two: ``forward_raw(images) -> tuple`` (exported) and ``decode(raw, size)`` (not).

    ``forward_raw`` may put None in its tuple (no attention map): those positions are not
    exported and are put back as None before decoding.
    """

    forward_raw: Callable[[torch.Tensor], tuple]
    decode: Callable[[tuple, tuple[int, int]], list[dict[str, torch.Tensor]]]
    names: tuple[str, ...]


def split_network(model: nn.Module) -> NetworkSplit:
    """How to run ``model``'s network and its decoding separately.

    The contract (core/models/CONTRACT.md): ``model.forward_raw(images) -> tuple`` of tensors (None
    where absent), ``model.decode_raw(raw, image_size)`` -> the eval output, optional
    ``model.raw_output_names`` to name the ONNX outputs.
    """
    if callable(getattr(model, "forward_raw", None)) and callable(getattr(model, "decode_raw", None)):
        names = tuple(getattr(model, "raw_output_names", ()))
        return NetworkSplit(model.forward_raw, model.decode_raw, names)
    config = getattr(model, "config", {})
    raise ExportError(
        f"the {config.get('arch', type(model).__name__)} detector does not split its network from its "
        "decoding (it needs forward_raw(images) and decode_raw(raw, image_size)); it cannot be exported to ONNX")


class RawOutputs(nn.Module):
    """The exported graph: images -> the raw tensors of the network (None entries left out)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.split = split_network(model)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(t for t in as_tuple(self.split.forward_raw(images)) if t is not None)


def as_tuple(raw: Any) -> tuple:
    return (raw,) if isinstance(raw, torch.Tensor) else tuple(raw)


def present_names(split: NetworkSplit, raw: tuple) -> list[str]:
    """Output names for the non-None entries of ``raw``."""
    names = list(split.names) + [f"raw_{i}" for i in range(len(split.names), len(raw))]
    return [name for name, tensor in zip(names, raw) if tensor is not None]


def rebuild_raw(template: tuple, tensors: list[torch.Tensor]) -> tuple:
    """Put exported outputs back in forward_raw's tuple, None where the template has None."""
    values = iter(tensors)
    return tuple(None if t is None else next(values) for t in template)


def export_onnx(model_or_path: nn.Module | str | Path, out_path: str | Path, *, opset: int = DEFAULT_OPSET,
                check: bool = True, model_id: str | None = None) -> ExportReport:
    """Export a detector (or a model file) to ONNX at ``out_path``, written atomically.

    With ``check`` the graph is run with ONNX Runtime on a random input and compared with
    PyTorch; a difference above ``PARITY_TOLERANCE`` raises ``ExportError`` (nothing written).
    """
    start = time.perf_counter()
    model, info = _resolve_model(model_or_path)
    model_id = model_id or (info.model_id if info else f"{model.config['arch']}-{model.config['attention']}-unsaved")
    # A CPU copy: the caller's model (maybe training, maybe on a GPU) stays as it was.
    model = copy.deepcopy(model).to("cpu").eval()
    wrapper = RawOutputs(model).eval()
    height, width = (int(v) for v in model.input_size)
    example = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        raw = as_tuple(wrapper.split.forward_raw(example))
    names = present_names(wrapper.split, raw)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".onnx", dir=out_path.parent)
    os.close(fd)
    try:
        _torch_export(wrapper, example, tmp, names, opset)
        _write_metadata(tmp, model, info, model_id, names)
        max_diff = check_parity(tmp, model) if check else None
        if max_diff is not None and max_diff > PARITY_TOLERANCE:
            raise ExportError(f"ONNX Runtime differs from PyTorch by {max_diff:.2e} "
                              f"(tolerance {PARITY_TOLERANCE:.0e}); not written")
        os.replace(tmp, out_path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        Path(tmp + ".data").unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    log.info("exported %s to %s (opset %d, max diff %s) in %.1f s", model_id, out_path, opset, max_diff, seconds)
    return ExportReport(out_path, model_id, opset, tuple(names), max_diff, seconds)


def _resolve_model(model_or_path: nn.Module | str | Path) -> tuple[nn.Module, ModelInfo | None]:
    if isinstance(model_or_path, nn.Module):
        return model_or_path, None
    return load_model_file(model_or_path)


def _torch_export(wrapper: nn.Module, example: torch.Tensor, path: str, names: list[str], opset: int) -> None:
    dynamic = {"images": {0: "batch"}, **{name: {0: "batch"} for name in names}}
    # Tracing warns about every Python branch on a shape; the input size is fixed per model
    # (only the batch is dynamic) and check_parity verifies a different batch size.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message="Constant folding")
        try:
            # The TorchScript-based exporter: mature for plain conv nets and fast; the dynamo
            # exporter is the fallback for graphs tracing cannot handle.
            torch.onnx.export(wrapper, (example,), path, input_names=["images"], output_names=names,
                              dynamic_axes=dynamic, opset_version=opset, dynamo=False)
            return
        except Exception as exc:  # noqa: BLE001 - try the other exporter before giving up
            log.info("TorchScript ONNX export failed (%s); trying the dynamo exporter", exc)
        try:
            torch.onnx.export(wrapper, (example,), path, input_names=["images"], output_names=names,
                              dynamic_shapes=({0: torch.export.Dim("batch", max=64)},), opset_version=opset,
                              dynamo=True, external_data=False)
        except Exception as exc:  # noqa: BLE001
            raise ExportError(f"ONNX export failed: {exc}") from exc


def _write_metadata(path: str, model: nn.Module, info: ModelInfo | None, model_id: str, names: list[str]) -> None:
    import onnx  # noqa: PLC0415 - optional dependency, only for export

    proto = onnx.load(path)
    meta = {
        "format": FORMAT,
        "model_id": model_id,
        "sha256": info.sha256 if info else None,
        "build_config": dict(model.config),
        "input_size": [int(v) for v in model.input_size],
        "outputs": names,
        "input": "images: B x 3 x H x W float32 RGB in [0, 1]",
    }
    entry = proto.metadata_props.add()
    entry.key, entry.value = ONNX_META_KEY, json.dumps(meta)
    onnx.save(proto, path)


def _ort_session(path: str | Path, num_threads: int | None = None):
    import onnxruntime as ort  # noqa: PLC0415 - optional dependency

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, int(num_threads)) if num_threads else default_cpu_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # ORT's workers spin after each run by default: on a 2-core machine they would steal the
    # cycles of the GUI thread and of the image decoder between bags.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def check_parity(onnx_path: str | Path, model: nn.Module, example: torch.Tensor | None = None) -> float:
    """Max absolute difference between ONNX Runtime and the PyTorch network on ``example``.

    The default example is a random batch of 2, a different size from the export's, so a
    batch dimension frozen by tracing shows up here.
    """
    if example is None:
        height, width = (int(v) for v in model.input_size)
        example = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(1))
    session = _ort_session(onnx_path)
    ort_out = session.run(None, {"images": example.numpy()})
    with torch.inference_mode():
        torch_out = [t for t in as_tuple(split_network(model).forward_raw(example)) if t is not None]
    if len(ort_out) != len(torch_out):
        raise ExportError(f"ONNX graph has {len(ort_out)} outputs, PyTorch {len(torch_out)}")
    diffs = []
    for i, (a, b) in enumerate(zip(ort_out, torch_out)):
        if tuple(a.shape) != tuple(b.shape):
            raise ExportError(f"output {i}: ONNX shape {a.shape} vs PyTorch {tuple(b.shape)}")
        diffs.append(float(np.max(np.abs(a.astype(np.float64) - b.double().numpy()))) if a.size else 0.0)
    return max(diffs, default=0.0)


def same_detections(a: Prediction, b: Prediction, box_atol: float = 0.05, score_atol: float = 1e-3) -> bool:
    """Whether two predictions hold the same detections, in any order (near-tied scores may swap ranks)."""
    if len(a) != len(b):
        return False

    def order(p: Prediction) -> np.ndarray:
        boxes = np.round(p.boxes, 1)
        return np.lexsort((boxes[:, 3], boxes[:, 2], boxes[:, 1], boxes[:, 0], p.labels))

    ia, ib = order(a), order(b)
    return (bool(np.array_equal(a.labels[ia], b.labels[ib]))
            and bool(np.allclose(a.boxes[ia], b.boxes[ib], atol=box_atol))
            and bool(np.allclose(a.scores[ia], b.scores[ib], atol=score_atol)))


def read_onnx_metadata(path: str | Path) -> dict[str, Any]:
    import onnx  # noqa: PLC0415

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf errors on garbage
        raise ExportError(f"{path}: not a readable ONNX file ({exc})") from exc
    for entry in proto.metadata_props:
        if entry.key == ONNX_META_KEY:
            return json.loads(entry.value)
    raise ExportError(f"{path}: an ONNX file without the workstation's metadata (not exported by export-onnx)")


class OnnxDetector(Detector):
    """``Detector`` with the network run by ONNX Runtime on the CPU; same API, same Prediction.

    The decoding part of the model (anchors/priors, box coding, NMS) is rebuilt from the
    config in the ONNX metadata: it holds no trained weights.
    """

    def __init__(self, onnx_path: str | Path, *, score_threshold: float = DEFAULT_SCORE_THRESHOLD,
                 num_threads: int | None = None) -> None:
        from core.models.build import build_detector  # noqa: PLC0415

        meta = read_onnx_metadata(onnx_path)
        try:
            decoder = build_detector(**dict(meta["build_config"])).eval()
        except Exception as exc:  # noqa: BLE001 - a config this version cannot build is a file problem
            raise ExportError(f"{onnx_path}: cannot rebuild the detector's decoding from its metadata: {exc}") from exc
        super().__init__(decoder, model_id=meta["model_id"], device="cpu", score_threshold=score_threshold,
                         num_threads=num_threads)
        self.onnx_path = Path(onnx_path)
        self.session = _ort_session(onnx_path, self.num_threads)
        self.output_names = list(meta["outputs"])
        self.split = split_network(decoder)
        with torch.inference_mode():
            self._raw_template = as_tuple(self.split.forward_raw(torch.zeros(1, 3, *self.input_size)))

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", expected_sha256: str | None = None, *,
             score_threshold: float = DEFAULT_SCORE_THRESHOLD, num_threads: int | None = None) -> OnnxDetector:
        """Load an exported ONNX file; ``expected_sha256`` is checked against the ONNX file's bytes."""
        if device not in ("cpu", "auto"):
            raise ValueError("OnnxDetector runs on the CPU only")
        if expected_sha256 is not None:
            if not Path(path).is_file():
                raise ExportError(f"{path}: no such ONNX file")
            digest = file_sha256(path)
            if digest != expected_sha256.strip().lower():
                raise ExportError(f"{path}: sha256 mismatch: the file is {digest[:16]}..., "
                                  f"expected {expected_sha256[:16]}...")
        return cls(path, score_threshold=score_threshold, num_threads=num_threads)

    def _forward(self, batch: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        outputs = self.session.run(None, {"images": batch.numpy()})
        raw = rebuild_raw(self._raw_template, [torch.from_numpy(o) for o in outputs])
        # Decoding runs in torch: same thread scope as the PyTorch path.
        with torch.inference_mode(), cpu_threads(self.num_threads):
            return self.split.decode(raw, self.input_size)
