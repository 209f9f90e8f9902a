"""The model file: one ``.pt`` that nothing can make execute code.

Layout (``FORMAT``)::

    {"format": "xray-doam-model/1",
     "config": {"arch", "attention", "classes", "input_size", "normalisation",
                "strategy", "options"},
     "state_dict": {name: tensor},
     "metrics": {...}, "extra": {...},
     "created": ISO-8601 UTC, "software": {"xray-workstation", "torch", "torchvision"}}

Only tensors, strings, numbers, booleans, None, lists and dicts appear, so the
file loads with ``torch.load(weights_only=True)``: the restricted unpickler
refuses any other Python object instead of running its constructor. The sha256
of the bytes is the model's identity (the registry stores it; a ``<file>.sha256``
sidecar written next to the file is checked too), and the model is rebuilt from
``config`` with ``core.models.build.build_detector`` and must accept the state
dict with ``strict=True``. Every way this can go wrong is a ``ModelFileError``
whose message names the file and the reason.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import io
import logging
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core import __version__
from core.classes import CLASSES
from core.evaluation.operating_point import saved_threshold

log = logging.getLogger(__name__)

FORMAT = "xray-doam-model/1"
SIDECAR_SUFFIX = ".sha256"
REQUIRED_CONFIG_KEYS = ("arch", "attention", "classes", "input_size", "options")
# What the network expects at its input; mean/std normalisation happens inside forward
# (core/models/CONTRACT.md), so every caller feeds the same thing.
INPUT_CONVENTION = "RGB float in [0, 1], NCHW, resized to input_size without keeping aspect ratio"


class ModelFileError(ValueError):
    """A model file that cannot be used: missing, corrupt, tampered, unsafe or foreign."""


@dataclass(frozen=True)
class ModelInfo:
    """What a model file says about itself, once verified."""

    path: Path
    sha256: str
    model_id: str
    arch: str
    attention: str
    classes: tuple[str, ...]
    input_size: tuple[int, int]
    config: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    software: dict[str, Any] = field(default_factory=dict)

    @property
    def operating_threshold(self) -> float | None:
        """The score the model should alarm from (core.evaluation.operating_point), if it was measured."""
        return saved_threshold(self.metrics)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def make_model_id(arch: str, attention: str, sha256: str) -> str:
    """Short, human-readable and unique enough: ``fast-doam-1a2b3c4d5e6f``."""
    return f"{arch}-{attention}-{sha256[:12]}"


# ----------------------------------------------------------------------------- saving

def save_model(path: str | Path, model: nn.Module, *, metrics: dict | None = None,
               strategy: str | dict | None = None, extra: dict | None = None,
               write_sidecar: bool = True) -> str:
    """Write ``model`` as a model file at ``path`` atomically; return its sha256.

    The model must follow core/models/CONTRACT.md (``config``, ``input_size``).
    ``metrics``, ``strategy`` and ``extra`` must hold plain values only (numpy
    scalars are converted); anything else raises ``ModelFileError`` before a byte
    is written. A ``<path>.sha256`` sidecar (sha256sum format) is written after
    the model file unless ``write_sidecar`` is false.
    """
    path = Path(path)
    config = _config_of(model, strategy)
    payload = {
        "format": FORMAT,
        "config": config,
        "state_dict": {name: t.detach().to("cpu").clone() for name, t in model.state_dict().items()},
        "metrics": _plain(metrics or {}, "metrics"),
        "extra": _plain(extra or {}, "extra"),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "software": _plain({"xray-workstation": __version__, "torch": torch.__version__,
                            "torchvision": _torchvision_version()}, "software"),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    digest = sha256_bytes(data)
    _atomic_write(path, data)
    if write_sidecar:
        _atomic_write(sidecar_path(path), f"{digest}  {path.name}\n".encode())
    log.info("saved model %s (%d bytes) to %s", make_model_id(config["arch"], config["attention"], digest),
             len(data), path)
    return digest


def sidecar_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _config_of(model: nn.Module, strategy: Any) -> dict[str, Any]:
    build_config = getattr(model, "config", None)
    if not isinstance(build_config, dict) or "arch" not in build_config or "attention" not in build_config:
        raise ModelFileError(
            f"{type(model).__name__} has no detector config (model.config with arch and attention): "
            "only detectors built by core.models.build.build_detector can be saved")
    num_classes = int(build_config.get("num_classes", len(CLASSES)))
    if num_classes != len(CLASSES):
        raise ModelFileError(f"model predicts {num_classes} classes; this workstation has {len(CLASSES)}")
    options = {k: v for k, v in build_config.items() if k not in ("arch", "attention", "num_classes")}
    height, width = (int(v) for v in model.input_size)
    return {
        "arch": str(build_config["arch"]),
        "attention": str(build_config["attention"]),
        "classes": list(CLASSES),
        "input_size": [height, width],
        "normalisation": INPUT_CONVENTION,
        "strategy": _plain(strategy, "strategy"),
        "options": _plain(options, "model.config"),
    }


def _plain(value: Any, where: str) -> Any:
    """Return ``value`` as plain JSON-like data, or raise if it holds anything else."""
    # Subclasses (torch's TorchVersion is a str) would pickle as their class: keep the base type.
    if value is None or isinstance(value, bool):
        return value if value is None else bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for key, v in value.items():
            if not isinstance(key, str):
                raise ModelFileError(f"{where}: key {key!r} is not a string")
            out[key] = _plain(v, f"{where}.{key}")
        return out
    raise ModelFileError(f"{where}: {type(value).__name__} is not a plain value (str, number, list, dict)")


def _atomic_write(path: Path, data: bytes) -> None:
    """Write via a temp file in the same directory and ``os.replace``: readers see the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _torchvision_version() -> str:
    try:
        import torchvision  # noqa: PLC0415 - only for the record
    except ImportError:
        return "none"
    return torchvision.__version__


# ----------------------------------------------------------------------------- loading

def read_model_file(path: str | Path, expected_sha256: str | None = None) -> tuple[ModelInfo, dict[str, torch.Tensor]]:
    """Verify and parse a model file without building the network.

    Returns its ``ModelInfo`` and state dict. Use ``load_model_file`` for a
    ready model; this is for registries that only need the metadata.
    """
    path = Path(path)
    data = _read_bytes(path)
    digest = sha256_bytes(data)
    _check_digest(path, digest, expected_sha256)
    payload = _safe_torch_load(path, data)
    info, state_dict = _validate(path, payload, digest)
    return info, state_dict


def load_model_file(path: str | Path, expected_sha256: str | None = None) -> tuple[nn.Module, ModelInfo]:
    """Load a model file into a detector in eval mode on the CPU.

    ``expected_sha256`` (from the registry) is checked first; a ``<file>.sha256``
    sidecar, when present, must agree too. Raises ``ModelFileError``.
    """
    info, state_dict = read_model_file(path, expected_sha256)
    model = _rebuild(info)
    _load_state_dict(info, model, state_dict)
    model.eval()
    log.info("loaded model %s from %s", info.model_id, info.path)
    return model, info


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise ModelFileError(f"{path}: no such model file")
    if not path.is_file():
        raise ModelFileError(f"{path}: not a regular file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot be read ({exc.strerror})") from exc
    if not data:
        raise ModelFileError(f"{path}: the model file is empty (0 bytes)")
    return data


def _check_digest(path: Path, digest: str, expected: str | None) -> None:
    if expected is not None:
        expected_norm = expected.strip().lower()
        if digest != expected_norm:
            raise ModelFileError(
                f"{path}: sha256 mismatch: the file is {digest[:16]}..., expected {expected_norm[:16]}... "
                "(the file was modified, truncated or replaced)")
    sidecar = sidecar_path(path)
    if sidecar.exists():
        try:
            recorded = sidecar.read_text(encoding="ascii").split()[0].lower()
        except (OSError, UnicodeDecodeError, IndexError) as exc:
            raise ModelFileError(f"{sidecar}: unreadable checksum file ({exc})") from exc
        if recorded != digest:
            raise ModelFileError(
                f"{path}: sha256 mismatch with {sidecar.name}: the file is {digest[:16]}..., "
                f"the sidecar says {recorded[:16]}... (the file was modified, truncated or replaced)")


def _safe_torch_load(path: Path, data: bytes) -> Any:
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only's restricted unpickler names the refused global ("Unsupported global: ...").
        reason = _first_line_with(str(exc), ("Unsupported global", "Unsupported operand", "Unsupported class"))
        reason = reason.split(" was not an allowed global")[0].replace("WeightsUnpickler error: ", "")
        raise ModelFileError(
            f"{path}: refused to load: the file contains Python objects other than tensors and plain "
            f"values, which could run code ({reason})") from exc
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError, EOFError, ValueError... on bad bytes
        raise ModelFileError(
            f"{path}: not a readable model file (truncated or not a torch file: {type(exc).__name__}: "
            f"{_first_line_with(str(exc), ())})") from exc


def _first_line_with(text: str, needles: tuple[str, ...]) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if any(n in line for n in needles):
            return line[:200]
    return (lines[0] if lines else "no detail")[:200]


def _validate(path: Path, payload: Any, digest: str) -> tuple[ModelInfo, dict[str, torch.Tensor]]:
    if not isinstance(payload, dict):
        raise ModelFileError(f"{path}: foreign file: holds a {type(payload).__name__}, not a model file dict")
    if "format" not in payload:
        if payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
            raise ModelFileError(f"{path}: foreign file: a bare state_dict without config "
                                 f"(expected a {FORMAT} model file; re-save it with save_model)")
        keys = ", ".join(sorted(map(str, payload))[:8])
        raise ModelFileError(f"{path}: foreign file: no 'format' key (has {keys}); expected {FORMAT}")
    if payload["format"] != FORMAT:
        raise ModelFileError(f"{path}: unsupported format {payload['format']!r}; this version reads {FORMAT}")
    config = payload.get("config")
    if not isinstance(config, dict):
        raise ModelFileError(f"{path}: 'config' is missing or not a dict")
    missing = [k for k in REQUIRED_CONFIG_KEYS if k not in config]
    if missing:
        raise ModelFileError(f"{path}: config lacks {', '.join(missing)}")
    classes = config["classes"]
    if list(classes) != list(CLASSES):
        raise ModelFileError(f"{path}: the model's classes {list(classes)} differ from this workstation's "
                             f"{list(CLASSES)}")
    size = config["input_size"]
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, int) and 0 < v <= 8192 for v in size)):
        raise ModelFileError(f"{path}: config.input_size {size!r} is not [height, width]")
    if not isinstance(config["options"], dict):
        raise ModelFileError(f"{path}: config.options is not a dict")
    state_dict = payload.get("state_dict")
    if not isinstance(state_dict, dict) or not state_dict:
        raise ModelFileError(f"{path}: 'state_dict' is missing or empty")
    bad = [k for k, v in state_dict.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ModelFileError(f"{path}: state_dict entries that are not tensors: {bad[:5]}")
    non_finite = [k for k, v in state_dict.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if non_finite:
        raise ModelFileError(f"{path}: the weights contain NaN or infinity ({', '.join(non_finite[:5])})")
    for key in ("metrics", "extra", "software"):
        if payload.get(key) is not None and not isinstance(payload[key], dict):
            raise ModelFileError(f"{path}: '{key}' is not a dict")
    arch, attention = str(config["arch"]), str(config["attention"])
    info = ModelInfo(
        path=path, sha256=digest, model_id=make_model_id(arch, attention, digest),
        arch=arch, attention=attention, classes=tuple(classes), input_size=(size[0], size[1]),
        config=dict(config), metrics=dict(payload.get("metrics") or {}), extra=dict(payload.get("extra") or {}),
        created=str(payload.get("created", "")), software=dict(payload.get("software") or {}),
    )
    return info, state_dict


def _rebuild(info: ModelInfo) -> nn.Module:
    from core.models.build import build_detector  # noqa: PLC0415 - models import lazily (heavy)

    options = dict(info.config["options"])
    try:
        model = build_detector(info.arch, info.attention, num_classes=len(info.classes), **options)
    except Exception as exc:  # noqa: BLE001 - unknown arch/attention/option in a file is a file problem
        raise ModelFileError(f"{info.path}: cannot rebuild the detector {info.arch}/{info.attention} "
                             f"with options {options}: {exc}") from exc
    built_size = tuple(int(v) for v in model.input_size)
    if built_size != info.input_size:
        raise ModelFileError(f"{info.path}: rebuilt detector wants input {built_size}, "
                             f"the file says {info.input_size}")
    return model


def _load_state_dict(info: ModelInfo, model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [f"{k} {tuple(state_dict[k].shape)} vs {tuple(expected[k].shape)}"
                  for k in expected if k in state_dict and state_dict[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:3])})")
        if mismatched:
            parts.append(f"{len(mismatched)} of another shape ({'; '.join(mismatched[:3])})")
        raise ModelFileError(f"{info.path}: the weights do not fit the {info.arch}/{info.attention} detector: "
                             + ", ".join(parts))
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:  # dtype problems and the like that the checks above do not catch
        raise ModelFileError(f"{info.path}: the weights do not fit the detector: {exc}") from exc

