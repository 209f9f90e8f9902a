"""Inference: model files, the ``Detector`` (PyTorch) and its ONNX Runtime twin.

``Detector.load(path)`` is the one way the GUI, the CLI and the retraining job run a
model; ``save_model`` / ``load_model_file`` are the one way model files are written
and read (verified, never executing code).
"""
from core.imaging.decode import ImageDecodeError
from core.inference.detector import DEFAULT_SCORE_THRESHOLD, Detector, Prediction
from core.inference.modelfile import (
    FORMAT,
    ModelFileError,
    ModelInfo,
    load_model_file,
    read_model_file,
    save_model,
)

__all__ = [
    "DEFAULT_SCORE_THRESHOLD",
    "FORMAT",
    "Detector",
    "ImageDecodeError",
    "ModelFileError",
    "ModelInfo",
    "Prediction",
    "load_model_file",
    "read_model_file",
    "save_model",
]
