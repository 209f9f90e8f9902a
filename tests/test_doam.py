"""DOAM: shapes for any size, RIA against a naive reference, attention range, gradients, options."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from core.models.doam import (ABLATIONS, CODE_FORM, DOAM, LITE_FORM, PAPER_FORM, SOBEL_KERNELS, minmax_per_image,
                              optical_depth, region_mean, sobel_magnitude)

torch.set_num_threads(1)


def naive_region_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """Loop reference: tile from the top-left in k x k regions, average the in-image pixels of each."""
    out = torch.empty_like(x)
    h, w = x.shape[-2:]
    for top in range(0, h, k):
        for left in range(0, w, k):
            region = x[..., top:top + k, left:left + k]
            out[..., top:top + k, left:left + k] = region.mean(dim=(-2, -1), keepdim=True)
    return out


@pytest.mark.parametrize("size", [(7, 11), (13, 9), (5, 5), (1, 17)])
@pytest.mark.parametrize("k", [1, 2, 3, 5, 8, 20])
def test_region_mean_equals_naive_loop(size: tuple[int, int], k: int) -> None:
    torch.manual_seed(k)
    x = torch.randn(2, 3, *size)
    torch.testing.assert_close(region_mean(x, k), naive_region_mean(x, k))


def test_region_mean_partial_region_is_mean_of_in_image_pixels() -> None:
    x = torch.arange(7, dtype=torch.float32).view(1, 1, 1, 7)      # 0..6, regions [0..4] and [5, 6]
    out = region_mean(x, 5)
    assert out[0, 0, 0, :5].tolist() == [2.0] * 5
    assert out[0, 0, 0, 5:].tolist() == [5.5, 5.5]


def test_sobel_on_a_vertical_step() -> None:
    image = torch.zeros(1, 1, 5, 6)
    image[..., 3:] = 1.0
    edge = sobel_magnitude(image)
    # The horizontal Sobel sees 1+2+1 = 4 across the step and nothing elsewhere.
    expected_row = torch.tensor([0.0, 0.0, 4.0, 4.0, 0.0, 0.0])
    assert torch.allclose(edge[0, 0], expected_row.expand(5, 6), atol=1e-5)
    # The code's zero padding adds an edge at the frame where the image is bright.
    zero_padded = sobel_magnitude(image, "zeros")
    assert zero_padded[0, 0, 2, 5].item() == pytest.approx(4.0, abs=1e-5)
    assert zero_padded[0, 0, 2, 0].item() == pytest.approx(0.0, abs=1e-5)


def test_optical_depth_maps_white_to_zero_and_black_to_the_scale() -> None:
    values = torch.tensor([255.0, 127.0, 0.0, -0.5])       # a resampled image may dip below 0
    depth = optical_depth(values, 255.0)
    assert depth[0].item() == pytest.approx(0.0, abs=1e-4)
    assert depth[2].item() == pytest.approx(255.0, abs=1e-3)
    assert depth[3].item() == pytest.approx(255.0, abs=1e-3)
    assert 0.0 < depth[1].item() < 255.0


def test_an_occluder_dims_a_blades_edge_in_intensity_but_not_in_depth() -> None:
    """Beer-Lambert: an occluder multiplies the blade's transmission, so it scales the intensity edge
    by its own transmission; in depth the blade's edge is the same under it (up to the +1 of 8 bits)."""
    blade = torch.ones(1, 1, 8, 8)
    blade[..., 4:] = 0.5                                    # the blade halves the transmission
    occluder = 0.1                                          # a dense object over all of it
    bare, covered = blade * 255.0, blade * occluder * 255.0
    edge = lambda image: sobel_magnitude(image)[0, 0, 4, 4].item()          # noqa: E731
    assert edge(covered) == pytest.approx(occluder * edge(bare), rel=1e-4)
    assert edge(optical_depth(covered, 255.0)) == pytest.approx(edge(optical_depth(bare, 255.0)), rel=0.1)


def test_depth_domain_changes_the_map_not_the_shapes() -> None:
    torch.manual_seed(0)
    image = torch.rand(2, 3, 32, 48)
    features = torch.randn(2, 15, 16, 24)
    outputs = {}
    for domain in ("intensity", "depth"):
        torch.manual_seed(1)
        doam = DOAM(15, **{**LITE_FORM, "domain": domain}).eval()
        with torch.no_grad():
            outputs[domain] = doam(features, image=image)
    (x_int, a_int), (x_depth, a_depth) = outputs["intensity"], outputs["depth"]
    assert x_int.shape == x_depth.shape and a_int.shape == a_depth.shape
    assert float(a_depth.min()) >= 0.0 and float(a_depth.max()) <= 1.0
    assert not torch.allclose(a_int, a_depth)


@pytest.mark.parametrize("padding", ["zeros", "replicate"])
def test_sobel_by_slices_equals_the_fixed_kernel_convolution(padding: str) -> None:
    intensity = torch.rand(3, 1, 37, 52) * 255
    kernels = torch.tensor(SOBEL_KERNELS).unsqueeze(1)
    padded = F.pad(intensity, (1, 1, 1, 1)) if padding == "zeros" else F.pad(intensity, (1, 1, 1, 1), mode="replicate")
    reference = torch.sqrt(F.conv2d(padded, kernels).pow(2).sum(dim=1, keepdim=True) + 1e-12)
    torch.testing.assert_close(sobel_magnitude(intensity, padding), reference, rtol=1e-5, atol=1e-3)


def test_minmax_is_per_image() -> None:
    x = torch.stack([torch.linspace(0, 1, 16), torch.linspace(10, 50, 16)]).view(2, 1, 4, 4)
    out = minmax_per_image(x)
    assert torch.allclose(out.amin(dim=(1, 2, 3)), torch.zeros(2), atol=1e-6)
    assert torch.allclose(out.amax(dim=(1, 2, 3)), torch.ones(2), atol=1e-5)


@pytest.mark.parametrize("form", [CODE_FORM, PAPER_FORM, LITE_FORM], ids=["code", "paper", "lite"])
@pytest.mark.parametrize("size", [(301, 257), (97, 131)])
def test_doam_at_input_keeps_size_and_adds_edge_channel(form: dict, size: tuple[int, int]) -> None:
    doam = DOAM(3, **form).eval()
    image = torch.rand(2, 3, *size)
    with torch.no_grad():
        y, attention = doam(image)
    assert y.shape == (2, 4, *size)
    assert attention.shape == (2, 1, *size)
    assert float(attention.min()) >= 0.0 and float(attention.max()) <= 1.0
    assert doam.out_channels == 4


@pytest.mark.parametrize("image_size, feature_size", [((97, 131), (49, 66)), ((128, 96), (64, 48)),
                                                      ((301, 257), (76, 65))])
def test_doam_at_stem_refines_features_from_the_image(image_size, feature_size) -> None:
    doam = DOAM(16, **LITE_FORM).eval()
    features = torch.randn(1, 16, *feature_size)
    with torch.no_grad():
        y, attention = doam(features, image=torch.rand(1, 3, *image_size))
    assert y.shape == (1, 17, *feature_size)
    assert attention.shape == (1, 1, *feature_size)
    assert 0.0 <= float(attention.min()) <= float(attention.max()) <= 1.0


def test_region_sizes_convert_to_the_plug_point_stride() -> None:
    doam = DOAM(3, region_sizes=(5, 10, 15))
    assert doam.region_sizes_at(1.0) == [5, 10, 15]
    assert doam.region_sizes_at(2.0) == [3, 5, 8]
    assert doam.region_sizes_at(32.0) == [1, 1, 1]


def test_paper_form_output_is_attention_times_image_and_edge() -> None:
    doam = DOAM(3, **PAPER_FORM).eval()
    image = torch.rand(1, 3, 40, 30)
    with torch.no_grad():
        y, attention = doam(image)
    edge = minmax_per_image(sobel_magnitude(image[:, 0:1] * 255, PAPER_FORM["edge_padding"]))
    torch.testing.assert_close(y, attention * torch.cat([image, edge], dim=1))


def test_gamma_gate_starts_as_identity() -> None:
    doam = DOAM(3, **CODE_FORM).eval()
    image = torch.rand(1, 3, 33, 35)
    with torch.no_grad():
        y, _ = doam(image)
    edge = minmax_per_image(sobel_magnitude(image[:, 0:1] * 255, "zeros"))
    torch.testing.assert_close(y, torch.cat([image, edge], dim=1))


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    doam = DOAM(3, **{**PAPER_FORM, "eg_channels": (4,), "ma_channels": (8, 4)})
    y, attention = doam(torch.rand(2, 3, 37, 41))
    (y.square().mean() + attention.mean()).backward()
    for name, parameter in doam.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_gamma_gets_a_gradient_at_zero() -> None:
    doam = DOAM(3, **LITE_FORM)
    y, _ = doam(torch.rand(1, 3, 24, 24))
    y.square().mean().backward()
    assert doam.gamma.grad is not None and doam.gamma.grad.abs().item() > 0


def test_edge_source_red_ignores_green_only_edges_luma_sees_them() -> None:
    image = torch.full((1, 3, 20, 20), 0.5)
    image[:, 1, :, 10:] = 1.0                       # a step in green only
    with torch.no_grad():
        red, _ = DOAM(3, **{**PAPER_FORM, "edge_source": "red", "edge_padding": "replicate"}).eval()(image)
        luma, _ = DOAM(3, **{**PAPER_FORM, "edge_source": "luma", "edge_padding": "replicate"}).eval()(image)
    red_edge = DOAM(3, edge_source="red")
    assert red_edge.edge_source == "red"
    # The edge channel is the last: flat for red, the step for luma (attention > 0 everywhere).
    assert float(red[0, 3].abs().max()) == pytest.approx(0.0, abs=1e-5)
    assert float(luma[0, 3, 10, 9:11].min()) > 0.0


@pytest.mark.parametrize("ablation", ABLATIONS)
def test_ablation_stages(ablation: str) -> None:
    doam = DOAM(3, **{**PAPER_FORM, "ablation": ablation}).eval()
    with torch.no_grad():
        y, attention = doam(torch.rand(1, 3, 31, 29))
    assert y.shape == (1, 4, 31, 29)
    if ablation == "edge_only":
        assert attention is None and not doam.produces_map and not list(doam.parameters())
    else:
        assert attention.shape == (1, 1, 31, 29)
    assert (doam.material is not None) == (ablation in ("eg_ma_nogate", "full"))
    if doam.select is not None:
        assert (doam.select.mask is not None) == (ablation == "full")


def test_prediction_does_not_depend_on_the_rest_of_the_batch() -> None:
    doam = DOAM(3, **CODE_FORM).eval()
    doam.gamma.data.fill_(0.7)
    a, b = torch.rand(1, 3, 30, 30), torch.rand(1, 3, 30, 30) * 0.1
    with torch.no_grad():
        alone, _ = doam(a)
        batched, _ = doam(torch.cat([a, b]))
    torch.testing.assert_close(alone[0], batched[0])


@pytest.mark.parametrize("bad", [{"blocks": "mlp"}, {"fusion_kernel": 5}, {"edge_source": "blue"}, {"edge_padding": "reflect"},
                                 {"ablation": "ma"}, {"domain": "log"}, {"region_sizes": (0, 5)}, {"ma_channels": ()}])
def test_bad_options_are_rejected(bad: dict) -> None:
    with pytest.raises(ValueError):
        DOAM(3, **bad)


def test_needs_rgb_at_input() -> None:
    with pytest.raises(ValueError, match="3-channel"):
        DOAM(16)(torch.rand(1, 16, 8, 8))


def test_cost_of_forms_in_parameters() -> None:
    code = sum(p.numel() for p in DOAM(3, **CODE_FORM).parameters())
    lite = sum(p.numel() for p in DOAM(3, **LITE_FORM).parameters())
    # The code's module: ~23.7k weights (EG 4.7k, MA 11.8k, RIA 3.5k, gate 3.5k); lite is 10x smaller.
    assert 23_000 < code < 24_500
    assert lite * 10 < code
    assert math.isfinite(lite)


@pytest.mark.parametrize("size", [(97, 131), (64, 48)])
def test_coarse_map_stride_keeps_x_size_and_range(size: tuple[int, int]) -> None:
    doam = DOAM(3, **{**LITE_FORM, "map_stride": 2}).eval()
    image = torch.rand(1, 3, *size)
    with torch.no_grad():
        y, attention = doam(image)
    assert y.shape == (1, 4, *size) and attention.shape == (1, 1, *size)
    assert 0.0 <= float(attention.min()) <= float(attention.max()) <= 1.0
    # The edge channel is the full-resolution one whatever the map's grid (γ = 0: y is [x, edge]).
    edge = minmax_per_image(sobel_magnitude(image[:, 0:1] * 255, "replicate"))
    torch.testing.assert_close(y[:, 3:], edge)


def test_coarse_map_is_a_smooth_version_of_the_full_one() -> None:
    torch.manual_seed(0)
    full = DOAM(3, **{**PAPER_FORM, "edge_padding": "replicate"}).eval()
    coarse = DOAM(3, **{**PAPER_FORM, "edge_padding": "replicate", "map_stride": 2}).eval()
    coarse.load_state_dict(full.state_dict())
    image = torch.ones(1, 3, 64, 64)
    image[:, :, 20:44, 28:36] = 0.1                 # one dark bar
    with torch.no_grad():
        _, a_full = full(image)
        _, a_coarse = coarse(image)
    assert torch.corrcoef(torch.stack([a_full.flatten(), a_coarse.flatten()]))[0, 1] > 0.5
