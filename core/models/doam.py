"""De-occlusion Attention Module (DOAM), section IV-A of the DOAM-O paper, for any input size.

    edge E      = |Sobel(intensity)|                 intensity: red channel (code) or luma
    EG          = N_EG conv blocks on E              -> 1 channel
    MA          = N_MA conv blocks on [image, Ê]     Ê: E min-max normalised per image
    RIA_k       = conv([MA, region_mean_k(MA)])      one per region size k
    selected    = BN(conv(RIA) * sigmoid(conv_mask(RIA)))   gated convolution over [RIA_k...]
    A           = sigmoid(conv([EG, selected]))      B x 1 x h x w
    output      = A ⊙ [x, Ê]          or, with the code's learnable gate, γ·(A ⊙ X) + (1-γ)·X

``x`` is the tensor at the plug point: the image itself (position "input", the reference code)
or the features after the first stride-2 stage (position "stem", the paper's text). In the latter
case the image is area-averaged to x's resolution and drives E, EG and MA; the attention then
refines the features (see CONTRACT.md).

The paper and its reference code differ in several details; every difference is an option and
CODE_FORM / PAPER_FORM collect them. LITE_FORM is a reduced module for the CPU-fast detector,
where the full module would cost more than the detector itself.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

ABLATIONS: tuple[str, ...] = ("edge_only", "eg", "eg_ma_nogate", "full")
DOMAINS: tuple[str, ...] = ("intensity", "depth")

CODE_FORM: dict = {"blocks": "plain", "fusion_kernel": 3, "gamma_gate": True, "edge_source": "red",
                   "edge_padding": "zeros", "region_sizes": (5, 10, 15), "eg_channels": (8, 16, 16, 8),
                   "ma_channels": (8, 16, 32, 16, 8), "ria_kernel": 3, "gate_kernel": 3, "map_stride": 1}
PAPER_FORM: dict = {**CODE_FORM, "blocks": "bn_relu", "fusion_kernel": 1, "gamma_gate": False}
# The CPU-fast detector's form (fast.py): narrow stacks, 1x1 fusion convs and the map computed at
# half the plug point's resolution, so that DOAM costs ~3 % of a 1.5 GFLOP detector. Region sizes
# are the code's 5/10/15 px at 300 px scaled to a 512 px wide input (x1.7), the same physical size.
LITE_FORM: dict = {"blocks": "bn_relu", "fusion_kernel": 1, "gamma_gate": True, "edge_source": "red",
                   "edge_padding": "replicate", "region_sizes": (8, 16, 24), "eg_channels": (8,),
                   "ma_channels": (8, 8), "ria_kernel": 1, "gate_kernel": 1, "map_stride": 2}

# ITU-R BT.601 luma weights for the "luma" edge source.
_LUMA = (0.299, 0.587, 0.114)


SOBEL_KERNELS = (
    ((-1.0, -2.0, -1.0), (0.0, 0.0, 0.0), (1.0, 2.0, 1.0)),    # horizontal edges (vertical gradient)
    ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0)),    # vertical edges (horizontal gradient)
)


def sobel_magnitude(intensity: torch.Tensor, padding: str = "replicate") -> torch.Tensor:
    """``sqrt(gx² + gy²)`` of a B x 1 x H x W tensor with the paper's fixed kernels (SOBEL_KERNELS).

    ``padding="zeros"`` is the reference code's: on a white-background X-ray image it makes the
    image frame the strongest edge of all, which then dominates the min-max normalised edge
    image. ``"replicate"`` (default) gives the frame no edge.

    Each kernel is separable (a difference one way, a [1, 2, 1] smoothing the other), so it is
    computed with shifted slices, not conv2d: on one CPU thread oneDNN takes ~4 ms for this
    one-channel convolution on a batch of 8 x 130 x 130, the slices a fraction of that. The
    result equals ``F.conv2d`` with SOBEL_KERNELS (tests/test_doam.py checks it).
    """
    if padding == "zeros":
        p = F.pad(intensity, (1, 1, 1, 1))
    else:
        p = F.pad(intensity, (1, 1, 1, 1), mode="replicate")
    rows = p[..., :-2, :] + 2 * p[..., 1:-1, :] + p[..., 2:, :]          # [1, 2, 1] down the columns
    cols = p[..., :, :-2] + 2 * p[..., :, 1:-1] + p[..., :, 2:]          # [1, 2, 1] along the rows
    vertical_gradient = cols[..., 2:, :] - cols[..., :-2, :]
    horizontal_gradient = rows[..., :, 2:] - rows[..., :, :-2]
    # The small epsilon keeps the gradient of sqrt finite on flat areas (d sqrt(u)/du at u=0 is inf).
    return torch.sqrt(vertical_gradient.pow(2) + horizontal_gradient.pow(2) + 1e-12)


def optical_depth(scaled: torch.Tensor, scale: float) -> torch.Tensor:
    """``-ln`` of the transmission of pixel values in 0..scale, mapped back onto 0..scale.

    Transmission is read as ``(I + 1) / (scale + 1)`` (the +1 keeps a black pixel finite: an 8-bit
    detector cannot tell transmissions below 1/256 apart anyway), so white is 0 and black is
    ``scale``. Beer-Lambert: depths of overlapping objects add, so an object's edges in depth do
    not depend on what lies over or under it.
    """
    return torch.log((scale + 1.0) / (scaled.clamp_min(0.0) + 1.0)) * (scale / math.log(scale + 1.0))


def minmax_per_image(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Scale each image of the batch to [0, 1].

    The reference code normalises with the batch's min and max; per image keeps a prediction
    independent of what else is in the batch.
    """
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x - lo) / (hi - lo + eps)


def region_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """Region Information Aggregation's pooling and expansion (paper Eq. 5) for any size.

    The map is tiled into k x k regions from the top-left corner; each pixel gets the mean of its
    region. Regions cut by the right or bottom border are averaged over the pixels that lie
    inside the image (avg_pool2d with ceil_mode and no padding divides by the in-image count).
    Each cell is expanded to k x k by broadcasting and the overhang cropped: exact for any size
    (a resize would scale by ceil(h/k)/h, not k) and twice as fast here as gathering by index.
    """
    if k <= 1:
        return x
    h, w = x.shape[-2:]
    pooled = F.avg_pool2d(x, kernel_size=k, stride=k, ceil_mode=True)
    b, c, ph, pw = pooled.shape
    expanded = pooled[:, :, :, None, :, None].expand(b, c, ph, k, pw, k).reshape(b, c, ph * k, pw * k)
    return expanded[:, :, :h, :w]


def _conv_stack(channels: Sequence[int], blocks: str) -> nn.Sequential:
    """3x3 conv blocks between consecutive widths: plain convs (code) or conv+BN+ReLU (paper)."""
    layers: list[nn.Module] = []
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        if blocks == "plain":
            layers.append(nn.Conv2d(c_in, c_out, 3, padding=1))
        else:
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class GatedConv2d(nn.Module):
    """Gated convolution (Yu et al., free-form inpainting): ``BN(conv(x) * sigmoid(conv_mask(x)))``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, gated: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.mask = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2) if gated else None
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.mask is not None:
            y = y * torch.sigmoid(self.mask(x))
        return self.norm(y)


class DOAM(nn.Module):
    """De-occlusion attention; ``forward(x, image=None) -> (A ⊙ [x, Ê], A)``; see the module docstring.

    Options (defaults: the reference code's form):
      blocks: "plain" (code: convs only) or "bn_relu" (paper: conv+BN+ReLU) for EG and MA.
      fusion_kernel: kernel of the attention-generation conv, 1 (paper) or 3 (code).
      gamma_gate: the code's ``γ·(A⊙X) + (1-γ)·X`` with γ learnable from 0; False gives A⊙X.
      edge_source: "red" (code: channel 2 of BGR) or "luma".
      edge_padding: "zeros" (code) or "replicate" (no artificial edge at the image frame).
      region_sizes: RIA region sizes in pixels at the model input; at a plug point of stride s
        each becomes max(1, round(k / s)) pixels of x.
      ablation: "edge_only" (Table IX "Concate": [x, Ê], no attention), "eg" (attention from EG
        only), "eg_ma_nogate" (MA/RIA selected by a plain conv), "full".
      eg_channels / ma_channels: hidden widths of the EG and MA stacks (MA's last is its output).
      ria_kernel / gate_kernel: kernels of the RIA fusion convs and of the gated selection (code: 3).
      input_scale: the image is multiplied by it before the Sobel and MA (the code works on 0-255).
      domain: what the Sobel and MA see: "intensity" (the paper: pixel values) or "depth" (our
        addition: the optical depth -ln(I), see ``optical_depth``). Objects in an X-ray image compose
        by multiplying transmissions, so an occluder scales a blade's intensity edge by its own
        transmission (a dense one by ~10x, after which the per-image min-max leaves it near zero);
        in depth the edge is the blade's own attenuation step whatever lies over it.
      map_stride: compute EG/MA/RIA and the map on a grid this many times coarser than x (area
        mean of the image), then upsample the map bilinearly to x's size; 1 = the paper. The edge
        channel appended to x stays at x's resolution. On this CPU the tiny-channel layers are
        memory-bound, so 2 cuts the module's time ~2.5x for a map that is smooth anyway.
    """

    produces_map = True

    def __init__(self, in_channels: int = 3, *, blocks: str = "plain", fusion_kernel: int = 3,
                 gamma_gate: bool = True, edge_source: str = "red", edge_padding: str = "zeros",
                 region_sizes: Sequence[int] = (5, 10, 15), ablation: str = "full",
                 eg_channels: Sequence[int] = (8, 16, 16, 8), ma_channels: Sequence[int] = (8, 16, 32, 16, 8),
                 ria_kernel: int = 3, gate_kernel: int = 3, input_scale: float = 255.0, map_stride: int = 1,
                 domain: str = "intensity") -> None:
        super().__init__()
        if blocks not in ("plain", "bn_relu"):
            raise ValueError(f"DOAM blocks must be 'plain' or 'bn_relu', got {blocks!r}")
        if fusion_kernel not in (1, 3) or ria_kernel not in (1, 3) or gate_kernel not in (1, 3):
            raise ValueError(f"DOAM kernels must be 1 or 3, got fusion={fusion_kernel} ria={ria_kernel} gate={gate_kernel}")
        if edge_source not in ("red", "luma"):
            raise ValueError(f"DOAM edge_source must be 'red' or 'luma', got {edge_source!r}")
        if edge_padding not in ("zeros", "replicate"):
            raise ValueError(f"DOAM edge_padding must be 'zeros' or 'replicate', got {edge_padding!r}")
        if ablation not in ABLATIONS:
            raise ValueError(f"DOAM ablation must be one of {', '.join(ABLATIONS)}, got {ablation!r}")
        if domain not in DOMAINS:
            raise ValueError(f"DOAM domain must be one of {', '.join(DOMAINS)}, got {domain!r}")
        region_sizes = tuple(int(k) for k in region_sizes)
        if not region_sizes or min(region_sizes) < 1:
            raise ValueError(f"DOAM region_sizes must be positive integers, got {region_sizes}")
        if int(map_stride) < 1:
            raise ValueError(f"DOAM map_stride must be a positive integer, got {map_stride}")
        if not ma_channels:
            raise ValueError("DOAM ma_channels must name at least the MA output width")
        self.in_channels = in_channels
        self.out_channels = in_channels + 1
        self.edge_source = edge_source
        self.edge_padding = edge_padding
        self.region_sizes = region_sizes
        self.ablation = ablation
        self.input_scale = float(input_scale)
        self.map_stride = int(map_stride)
        self.domain = domain
        self.produces_map = ablation != "edge_only"

        width = int(ma_channels[-1])
        self.edge_guidance = _conv_stack((1, *eg_channels, 1), blocks) if self.produces_map else None
        use_ma = ablation in ("eg_ma_nogate", "full")
        self.material = _conv_stack((4, *ma_channels), blocks) if use_ma else None
        self.region_fusion = nn.ModuleList(
            nn.Conv2d(2 * width, width, ria_kernel, padding=ria_kernel // 2) for _ in region_sizes
        ) if use_ma else None
        self.select = GatedConv2d(width * len(region_sizes), width, gate_kernel, gated=ablation == "full") if use_ma else None
        fused = 1 + (width if use_ma else 0)
        self.generate = nn.Conv2d(fused, 1, fusion_kernel, padding=fusion_kernel // 2) if self.produces_map else None
        self.gamma = nn.Parameter(torch.zeros(1)) if gamma_gate and self.produces_map else None

    def _guide(self, x: torch.Tensor, image: torch.Tensor | None) -> tuple[torch.Tensor, float]:
        """The RGB image at x's resolution, and x's stride relative to the image."""
        if image is None:
            if x.shape[1] != 3:
                raise ValueError(f"DOAM at the input needs a 3-channel RGB image, got {x.shape[1]} channels; "
                                 "pass image= when plugging it after the stem")
            return x, 1.0
        if image.shape[1] != 3:
            raise ValueError(f"DOAM's image must be RGB (3 channels), got {image.shape[1]}")
        (H, W), (h, w) = image.shape[-2:], x.shape[-2:]
        if (H, W) == (h, w):
            return image, 1.0
        if (H, W) == (2 * h, 2 * w):
            # Bilinear at exactly half size samples between 4 pixels: the 2x2 mean, 2x faster than avg_pool2d.
            guide = F.interpolate(image, size=(h, w), mode="bilinear", align_corners=False)
        elif H % h == 0 and W % w == 0 and H // h == W // w:
            guide = F.avg_pool2d(image, kernel_size=H // h)   # exact area average, exports to ONNX
        else:
            guide = F.interpolate(image, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        return guide, W / w

    def _in_domain(self, scaled: torch.Tensor) -> torch.Tensor:
        """``scaled`` (0..input_scale) in the module's domain: itself, or its optical_depth."""
        return scaled if self.domain == "intensity" else optical_depth(scaled, self.input_scale)

    def _intensity(self, guide: torch.Tensor) -> torch.Tensor:
        if self.edge_source == "red":
            return guide[:, 0:1]
        r, g, b = guide[:, 0:1], guide[:, 1:2], guide[:, 2:3]
        return _LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b

    def region_sizes_at(self, stride: float) -> list[int]:
        """Region sizes in pixels of a map with the given stride (round half up, at least 1)."""
        return [max(1, int(k / stride + 0.5)) for k in self.region_sizes]

    def _attention_map(self, scaled: torch.Tensor, edge: torch.Tensor, edge_normalised: torch.Tensor,
                       stride: float) -> torch.Tensor:
        """EG, MA + RIA + gated selection, attention generation: the B x 1 map in [0, 1]."""
        evidence = [self.edge_guidance(edge)]
        if self.material is not None:
            material = self.material(torch.cat([scaled, edge_normalised * self.input_scale], dim=1))
            regional = [fuse(torch.cat([material, region_mean(material, k)], dim=1))
                        for fuse, k in zip(self.region_fusion, self.region_sizes_at(stride))]
            evidence.append(self.select(torch.cat(regional, dim=1)))
        return torch.sigmoid(self.generate(torch.cat(evidence, dim=1)))

    def forward(self, x: torch.Tensor, image: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        guide, stride = self._guide(x, image)
        linear = guide * self.input_scale
        scaled = self._in_domain(linear)
        edge = sobel_magnitude(self._intensity(scaled), self.edge_padding)
        edge_normalised = minmax_per_image(edge)
        x_edge = torch.cat([x, edge_normalised], dim=1)
        if self.edge_guidance is None:            # ablation "edge_only": concatenation, no attention
            return x_edge, None

        if self.map_stride == 1:
            attention = self._attention_map(scaled, edge, edge_normalised, stride)
        else:
            # EG, MA and RIA on a coarser grid (area mean), the map brought back to x's size.
            # Averaged as transmission (what a coarser detector would see), then taken to the domain.
            coarse = self._in_domain(F.avg_pool2d(linear, self.map_stride, ceil_mode=True))
            coarse_edge = sobel_magnitude(self._intensity(coarse), self.edge_padding)
            attention = self._attention_map(coarse, coarse_edge, minmax_per_image(coarse_edge),
                                            stride * self.map_stride)
            attention = F.interpolate(attention, size=x.shape[-2:], mode="bilinear", align_corners=False)

        if self.gamma is None:
            return attention * x_edge, attention
        # γ·(A⊙X) + (1-γ)·X == X ⊙ (1 + γ(A-1)): one pass over the wide X instead of three.
        return x_edge * (1 + self.gamma * (attention - 1)), attention
