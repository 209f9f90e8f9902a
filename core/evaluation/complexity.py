"""Model complexity as the paper's Table VIII: parameters, model size (MB) and GFLOPs.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts as 2
FLOPs) for one image at the model's ``input_size``, in eval mode, up to and including
post-processing (which costs no counted FLOPs). The size is that of the float32 state dict
(parameters and buffers), i.e. roughly the weights file.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Complexity:
    params: int
    size_mb: float
    gflops: float
    input_size: tuple[int, int]

    def as_dict(self) -> dict:
        return asdict(self)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def state_dict_megabytes(model: nn.Module) -> float:
    """Bytes of every tensor in the state dict, in MiB."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 2**20


@torch.no_grad()
def count_gflops(model: nn.Module, input_size: tuple[int, int], batch_size: int = 1) -> float:
    """GFLOPs of one eval-mode forward on a (batch_size x 3 x H x W) input of constant grey."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        images = torch.full((batch_size, 3, *input_size), 0.5, device=device)
        counter = FlopCounterMode(display=False)
        with counter:
            model(images)
        return counter.get_total_flops() / 1e9 / batch_size
    finally:
        model.train(was_training)


def measure(model: nn.Module, input_size: tuple[int, int] | None = None) -> Complexity:
    """Complexity of ``model`` at ``input_size`` (default: ``model.input_size``)."""
    size = tuple(input_size or model.input_size)
    return Complexity(params=count_parameters(model), size_mb=state_dict_megabytes(model),
                      gflops=count_gflops(model, size), input_size=size)


def relative_increase(value: float, baseline: float) -> float | None:
    """Percentage increase of value over baseline (None when the baseline is 0)."""
    return None if not baseline else 100.0 * (value - baseline) / baseline


def complexity_row(arch: str, attention: str, baseline: Complexity | None = None, **options) -> dict:
    """One row of Table VIII for ``build_detector(arch, attention, **options)``; with the same arch
    without attention as ``baseline``, adds the +% columns."""
    from core.models.build import build_detector  # noqa: PLC0415 - keeps evaluation importable without models

    model = build_detector(arch, attention, **options)
    result = measure(model)
    row = {"arch": arch, "attention": attention, **result.as_dict()}
    if baseline is not None:
        row["params_increase_pct"] = relative_increase(result.params, baseline.params)
        row["size_increase_pct"] = relative_increase(result.size_mb, baseline.size_mb)
        row["gflops_increase_pct"] = relative_increase(result.gflops, baseline.gflops)
    return row
