"""Attention blocks with one plug interface: ``block(x, image=None) -> (y, map_or_None)``.

The paper compares DOAM (core/models/doam.py) with three general attention mechanisms plugged at
the same place: Squeeze-and-Excitation (Hu et al.), Non-local with the embedded Gaussian
affinity (Wang et al.) and Dual Attention, position + channel (Fu et al., DANet). See CONTRACT.md
for the interface and for where the blocks plug in (``position="input"|"stem"``).

Non-local and DANet's position branch compare every query position with every key position:
at 300x300 (the SSD input) that is a 90,000 x 90,000 matrix. Keys and values are therefore
average-pooled to at most ``max_keys`` positions (default 256, a 16x16 grid: 92 MB of affinities
per 300x300 image; Wang et al. already sub-sample them by max pooling); the queries keep full
resolution so the output has x's size.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.models.names import ATTENTIONS  # noqa: F401 - re-exported


class IdentityAttention(nn.Module):
    """``attention="none"``: passes x through, so every detector has the same code path."""

    produces_map = False

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.out_channels = in_channels

    def forward(self, x: torch.Tensor, image: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        return x, None


class SqueezeExcitation(nn.Module):
    """Channel re-weighting from globally pooled statistics (Hu et al., 2018)."""

    produces_map = False

    def __init__(self, in_channels: int, reduction: int = 16, min_hidden: int = 4) -> None:
        super().__init__()
        self.out_channels = in_channels
        hidden = max(in_channels // reduction, min_hidden)
        self.fc1 = nn.Conv2d(in_channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, in_channels, 1)

    def forward(self, x: torch.Tensor, image: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        weights = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True)))))
        return x * weights, None


def _pool_to_at_most(x: torch.Tensor, max_positions: int) -> torch.Tensor:
    """Average-pool x (kernel = stride, partial border windows included) so that h*w <= max_positions.

    A plain avg_pool2d with a computed kernel (rather than adaptive pooling) exports to ONNX for
    any input size.
    """
    h, w = x.shape[-2:]
    if h * w <= max_positions:
        return x
    k = math.ceil(math.sqrt(h * w / max_positions))
    while math.ceil(h / k) * math.ceil(w / k) > max_positions:
        k += 1
    return F.avg_pool2d(x, kernel_size=k, stride=k, ceil_mode=True)


class NonLocalBlock(nn.Module):
    """Embedded-Gaussian non-local block: ``y = x + W(softmax(θ(x)ᵀ φ(x)) g(x))``.

    W ends in a BatchNorm initialised to zero, as in Wang et al., so the block starts as the
    identity and cannot hurt a detector early in training.
    """

    produces_map = False

    def __init__(self, in_channels: int, inter_channels: int | None = None, max_keys: int = 256) -> None:
        super().__init__()
        self.out_channels = in_channels
        inter = inter_channels or max(in_channels // 2, 1)
        self.max_keys = max_keys
        self.theta = nn.Conv2d(in_channels, inter, 1)
        self.phi = nn.Conv2d(in_channels, inter, 1)
        self.g = nn.Conv2d(in_channels, inter, 1)
        self.out = nn.Sequential(nn.Conv2d(inter, in_channels, 1), nn.BatchNorm2d(in_channels))
        nn.init.zeros_(self.out[1].weight)
        nn.init.zeros_(self.out[1].bias)

    def forward(self, x: torch.Tensor, image: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        b, _, h, w = x.shape
        query = self.theta(x).flatten(2).transpose(1, 2)                 # B x N x C'
        pooled = _pool_to_at_most(x, self.max_keys)
        key = self.phi(pooled).flatten(2)                                # B x C' x M
        value = self.g(pooled).flatten(2).transpose(1, 2)                # B x M x C'
        affinity = torch.softmax(query @ key, dim=-1)                    # B x N x M
        context = (affinity @ value).transpose(1, 2).reshape(b, -1, h, w)
        return x + self.out(context), None


class PositionAttention(nn.Module):
    """DANet's position attention: every position aggregates all (pooled) positions by similarity."""

    def __init__(self, in_channels: int, max_keys: int) -> None:
        super().__init__()
        qk = max(in_channels // 8, 1)
        self.max_keys = max_keys
        self.query = nn.Conv2d(in_channels, qk, 1)
        self.key = nn.Conv2d(in_channels, qk, 1)
        self.value = nn.Conv2d(in_channels, in_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        query = self.query(x).flatten(2).transpose(1, 2)                 # B x N x C'
        pooled = _pool_to_at_most(x, self.max_keys)
        key = self.key(pooled).flatten(2)                                # B x C' x M
        value = self.value(pooled).flatten(2)                            # B x C x M
        affinity = torch.softmax(query @ key, dim=-1)                    # B x N x M
        return (value @ affinity.transpose(1, 2)).reshape(b, c, h, w)


class ChannelAttention(nn.Module):
    """DANet's channel attention: each channel aggregates all channels by (inverted) similarity."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        flat = x.flatten(2)                                              # B x C x N
        energy = flat @ flat.transpose(1, 2)                             # B x C x C
        # DANet subtracts from the row maximum before the softmax: it stabilises the softmax and
        # makes less similar channels weigh more, which is what the authors found to work.
        energy = energy.amax(dim=-1, keepdim=True) - energy
        affinity = torch.softmax(energy, dim=-1)
        return (affinity @ flat).reshape(b, c, h, w)


class DualAttention(nn.Module):
    """DANet: ``y = x + γ_p · PAM(x) + γ_c · CAM(x)``, both γ initialised to 0 as in Fu et al.

    DANet wraps each branch in 3x3 conv-BN-ReLU layers inside its segmentation head; as a plug-in
    block that keeps the channel count we keep the two attention operations and their learnable
    residual scales, which is how the attention comparison in the paper uses it.
    """

    produces_map = False

    def __init__(self, in_channels: int, max_keys: int = 256) -> None:
        super().__init__()
        self.out_channels = in_channels
        self.position = PositionAttention(in_channels, max_keys)
        self.channel = ChannelAttention()
        self.gamma_position = nn.Parameter(torch.zeros(1))
        self.gamma_channel = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, image: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        y = x + self.gamma_position * self.position(x) + self.gamma_channel * self.channel(x)
        return y, None


def build_attention(kind: str, in_channels: int, **options) -> nn.Module:
    """Build the attention block ``kind`` (one of ATTENTIONS) for ``in_channels`` inputs.

    ``options`` go to the block's constructor (DOAM: see doam.DOAM; SE: ``reduction``;
    Non-local: ``inter_channels``, ``max_keys``; DA: ``max_keys``). Unknown options raise.
    """
    if in_channels < 1:
        raise ValueError(f"attention block needs in_channels >= 1, got {in_channels}")
    if kind == "none":
        block: nn.Module = IdentityAttention(in_channels, **options)
    elif kind == "doam":
        from core.models.doam import DOAM  # noqa: PLC0415 - doam imports nothing from here; keeps the graph simple

        block = DOAM(in_channels, **options)
    elif kind == "se":
        block = SqueezeExcitation(in_channels, **options)
    elif kind == "nonlocal":
        block = NonLocalBlock(in_channels, **options)
    elif kind == "da":
        block = DualAttention(in_channels, **options)
    else:
        raise ValueError(f"unknown attention {kind!r}; expected one of {', '.join(ATTENTIONS)}")
    return block
