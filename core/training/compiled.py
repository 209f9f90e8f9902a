"""``--compile``: the detector's dense network compiled by TorchInductor for the training steps.

On this 2-core CPU the eager training step of the fast detector spends much of its time in
small element-wise passes (batch norm, ReLU, DOAM's gates, sigmoid, region means) between
the convolutions; Inductor fuses them into generated C++ loops, forward and backward.
Measured on one core (reports/training_recipes.md): 12.8 % less time per step in the real
trainer on the default recipe, 15-17 % for an isolated step, with and without DOAM alike.

Only ``forward_raw`` (images -> raw maps) is compiled, and only inside a training step
(``compiled_forward``): the losses, the target encoding, evaluation, the curve and the saved
model all run the eager module, so a compiled run writes the same model file format and its
evaluation needs no compiler. The first step pays the compilation (~40 s here, counted in
the training clock); a new batch shape (the last short batch of an epoch) compiles once more.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


def check_compiler(device: torch.device) -> None:
    """Raise a clear error where Inductor cannot build its CPU kernels (no C++ compiler)."""
    if device.type != "cpu":
        return
    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        raise RuntimeError(f"--compile needs a C++ compiler on the PATH for CPU training ({compiler} not found; "
                           "install g++ or set CXX), or train without --compile")


def compile_raw_forward(model: nn.Module) -> Callable[..., Any]:
    """The model's ``forward_raw`` compiled (lazily: the first call compiles)."""
    if not hasattr(model, "forward_raw"):
        raise ValueError(f"--compile supports detectors with a forward_raw (the fast detector); "
                         f"{type(model).__name__} has none")
    return torch.compile(model.forward_raw, dynamic=False)


@contextmanager
def compiled_forward(model: nn.Module, compiled: Callable[..., Any] | None) -> Iterator[None]:
    """Within the block, ``model.forward_raw`` is ``compiled`` (nothing changes when it is None)."""
    if compiled is None:
        yield
        return
    model.forward_raw = compiled      # an instance attribute shadows the method
    try:
        yield
    finally:
        del model.forward_raw         # the class's eager method again
