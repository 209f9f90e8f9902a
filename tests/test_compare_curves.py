"""`python main.py curves`: several runs' learning curves as a table and a plot; bad runs get clear errors."""
from __future__ import annotations

import json

import pytest

from core.cli import main as cli_main
from core.training.compare_curves import compare, read_curve, value_at_minute


def _run(tmp_path, name, points):
    run = tmp_path / name
    run.mkdir()
    (run / "evals.jsonl").write_text("".join(
        json.dumps({"step": step, "train_seconds": minute * 60, "map": value, "map_ol1": value, "map_ol2": None,
                    "map_ol3": value / 2}) + "\n" for minute, step, value in points))
    return run


def test_table_reads_every_run_at_the_first_runs_minutes(tmp_path):
    a = _run(tmp_path, "a", [(5, 100, 0.1), (10, 200, 0.3)])
    b = _run(tmp_path, "b", [(5.1, 120, 0.2), (20, 480, 0.6)])
    text = compare([str(a), str(b)], None, ["DOAM", "none"])
    assert "| minutes | DOAM | none |" in text
    assert "| 5 | 0.100 (100) | 0.200 (120) |" in text
    assert "| 10 | 0.300 (200) | — |" in text            # b has no point near 10 minutes
    assert value_at_minute(read_curve(b), 20, "map_ol3") == pytest.approx(0.3)
    assert value_at_minute(read_curve(b), 20, "map_ol2") is None


def test_cli_writes_the_plot_with_levels_and_reports_bad_runs(tmp_path, capsys):
    a = _run(tmp_path, "a", [(5, 100, 0.1), (10, 200, 0.3)])
    out = tmp_path / "plots" / "curves.png"
    assert cli_main(["curves", str(a), "--out", str(out), "--levels"]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    capsys.readouterr()
    assert cli_main(["curves", str(a), str(tmp_path / "missing")]) == 2
    assert "no evals.jsonl" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "evals.jsonl").write_text('{"step": 1, "train_seconds": 60, "map": 0.1}\n{not json\n')
    assert cli_main(["curves", str(broken)]) == 2
    assert "evals.jsonl:2" in capsys.readouterr().err
    (broken / "evals.jsonl").write_text('{"step": 1, "map": 0.1}\n')        # no train_seconds
    assert cli_main(["curves", str(broken)]) == 2
    assert "lacks a numeric step or train_seconds" in capsys.readouterr().err
    assert cli_main(["curves", str(a), str(a)]) == 2           # same name twice
    assert "distinct names" in capsys.readouterr().err
    assert cli_main(["curves", str(a), "--names", "x", "y"]) == 2
