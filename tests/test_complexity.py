"""Complexity (Table VIII): parameters, size, FLOPs, and the fast default's DOAM budget."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from core.cli import main as cli_main
from core.evaluation.complexity import count_gflops, count_parameters, measure, relative_increase, state_dict_megabytes
from core.models import build as build_module
from core.models.build import ArchitectureUnavailable, available_archs, build_detector, builder_for

torch.set_num_threads(1)


class OneConv(nn.Module):
    input_size = (10, 20)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_counts_of_a_single_conv() -> None:
    model = OneConv()
    assert count_parameters(model) == 3 * 8 * 9 + 8
    assert state_dict_megabytes(model) == pytest.approx((3 * 8 * 9 + 8) * 4 / 2**20)
    # 2 FLOPs per multiply-add, one per weight per output pixel (the bias is not counted).
    assert count_gflops(model, (10, 20)) == pytest.approx(2 * 3 * 8 * 9 * 10 * 20 / 1e9)
    result = measure(model)
    assert result.input_size == (10, 20) and result.params == 224
    assert model.training                      # measuring restores the mode


def test_relative_increase() -> None:
    assert relative_increase(107.14, 100.0) == pytest.approx(7.14)
    assert relative_increase(1.0, 0.0) is None


def test_fast_default_meets_the_doam_budget() -> None:
    """Issue 3: DOAM adds <= 10 % of the detector's FLOPs and <= 1 % of its parameters."""
    base = measure(build_detector("fast", "none"))
    with_doam = measure(build_detector("fast", "doam"))
    assert 0.5 < base.gflops < 2.5, base          # a CPU-sized detector, not a toy or a VGG
    assert 0 < relative_increase(with_doam.gflops, base.gflops) <= 10.0
    assert 0 < relative_increase(with_doam.params, base.params) <= 1.0
    # At the input the same module costs far more: the reason the default plugs it after the stem.
    at_input = measure(build_detector("fast", "doam", position="input"))
    assert at_input.gflops > with_doam.gflops


def test_builder_reports_unavailable_archs(monkeypatch) -> None:
    with pytest.raises(ValueError, match="unknown architecture"):
        builder_for("retinanet")
    monkeypatch.setattr(build_module, "ARCHS", (*build_module.ARCHS, "ghost"))
    with pytest.raises(ArchitectureUnavailable, match="no module core.models.ghost"):
        builder_for("ghost")
    status = available_archs()
    assert status["fast"] is None and "ghost" in status and status["ghost"]
    with pytest.raises(ValueError, match="unknown attention"):
        build_detector("fast", "cbam")


def test_model_info_cli_json(capsys) -> None:
    assert cli_main(["model", "info", "--arch", "fast", "--attention", "doam", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["attention"] for row in rows] == ["none", "doam"]
    doam = rows[1]
    assert doam["params"] > rows[0]["params"] and 0 < doam["gflops_increase_pct"] <= 10


def test_model_info_table_lists_unavailable_archs_without_crashing(monkeypatch, capsys) -> None:
    monkeypatch.setattr(build_module, "ARCHS", ("fast", "ghost"))
    assert cli_main(["model", "info", "--table"]) == 0
    out = capsys.readouterr().out
    assert "ghost" in out and "unavailable" in out
    assert out.count("fast ") == 5               # one row per attention kind
