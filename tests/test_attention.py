"""Attention baselines and build_attention: one plug interface, both plug positions."""
from __future__ import annotations

import pytest
import torch

from core.models.attention import (ATTENTIONS, DualAttention, NonLocalBlock, SqueezeExcitation, _pool_to_at_most,
                                   build_attention)
from core.models.build import build_detector

torch.set_num_threads(1)


@pytest.mark.parametrize("kind", ATTENTIONS)
@pytest.mark.parametrize("channels, size", [(3, (37, 29)), (16, (20, 24))])
def test_every_kind_follows_the_interface(kind: str, channels: int, size: tuple[int, int]) -> None:
    block = build_attention(kind, channels).eval()
    x = torch.rand(2, channels, *size)
    image = torch.rand(2, 3, size[0] * 2, size[1] * 2) if channels != 3 else None
    with torch.no_grad():
        y, attention_map = block(x, image=image)
    assert y.shape == (2, block.out_channels, *size)
    assert block.out_channels == channels + (1 if kind == "doam" else 0)
    if block.produces_map:
        assert attention_map.shape == (2, 1, *size)
        assert 0.0 <= float(attention_map.min()) <= float(attention_map.max()) <= 1.0
    else:
        assert attention_map is None


@pytest.mark.parametrize("block", [NonLocalBlock(8), DualAttention(8)], ids=["nonlocal", "da"])
def test_residual_blocks_start_as_identity(block: torch.nn.Module) -> None:
    x = torch.randn(1, 8, 15, 17)
    with torch.no_grad():
        y, _ = block.eval()(x)
    torch.testing.assert_close(y, x)


@pytest.mark.parametrize("kind", ["se", "nonlocal", "da"])
def test_baselines_change_features_once_trained_and_pass_gradients(kind: str) -> None:
    torch.manual_seed(0)
    block = build_attention(kind, 8)
    for parameter in block.parameters():          # move off the identity initialisation
        torch.nn.init.normal_(parameter, std=0.5)
    x = torch.randn(2, 8, 12, 14, requires_grad=True)
    y, _ = block(x)
    assert not torch.allclose(y, x)
    y.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_se_reweights_channels_only() -> None:
    block = SqueezeExcitation(8).eval()
    x = torch.rand(1, 8, 6, 6)
    with torch.no_grad():
        y, _ = block(x)
    ratio = y / x
    # One weight per channel, between 0 and 1.
    assert torch.allclose(ratio, ratio[:, :, :1, :1].expand_as(ratio), atol=1e-5)
    assert float(ratio.min()) > 0 and float(ratio.max()) < 1


@pytest.mark.parametrize("size, max_keys", [((300, 300), 256), ((301, 257), 256), ((10, 10), 256), ((97, 131), 64)])
def test_keys_are_pooled_to_at_most_max_keys(size: tuple[int, int], max_keys: int) -> None:
    pooled = _pool_to_at_most(torch.rand(1, 2, *size), max_keys)
    h, w = pooled.shape[-2:]
    assert h * w <= max_keys
    assert h * w >= max_keys // 4 or (h, w) == size     # no needless over-pooling


def test_nonlocal_fits_a_300px_input() -> None:
    block = NonLocalBlock(3).eval()
    with torch.no_grad():
        y, _ = block(torch.rand(1, 3, 300, 300))
    assert y.shape == (1, 3, 300, 300)


def test_unknown_kind_and_options_raise() -> None:
    with pytest.raises(ValueError, match="unknown attention"):
        build_attention("cbam", 8)
    with pytest.raises(TypeError):
        build_attention("se", 8, colour="red")
    with pytest.raises(ValueError):
        build_attention("se", 0)


@pytest.mark.parametrize("kind", ATTENTIONS)
@pytest.mark.parametrize("position", ["input", "stem"])
def test_each_kind_plugs_into_the_fast_detector_at_both_positions(kind: str, position: str) -> None:
    model = build_detector("fast", kind, position=position, input_size=(64, 96)).eval()
    with torch.no_grad():
        (result,) = model(torch.rand(1, 3, 64, 96))
    assert set(result) >= {"boxes", "labels", "scores"}
    assert ("attention" in result) == (kind == "doam")
    if kind == "doam":
        assert result["attention"].shape == (64, 96)
    model.train()
    losses = model(torch.rand(2, 3, 64, 96), [{"boxes": torch.tensor([[10.0, 10.0, 40.0, 30.0]]),
                                                "labels": torch.tensor([2])}] * 2)
    sum(losses.values()).sum().backward()
    grads = [p.grad for p in model.attention.parameters()]
    assert all(g is not None for g in grads)
