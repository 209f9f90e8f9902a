"""The paper-experiment harness at its tiny scale: plumbing, report, resume."""
import json

import pytest

from core.training import experiments
from core.training.experiments import RUNS, run_paper_experiments

SMALL = {"input_size": [96, 128], "widths": [8, 8, 16, 16, 16], "neck_channels": 16, "head_channels": 16}


def test_every_table_row_names_a_run():
    for table in (experiments.TABLE_IV, experiments.TABLE_VII, experiments.TABLE_IX):
        assert all(key in RUNS for _, key, _ in table)


@pytest.mark.slow
def test_tiny_experiment_writes_the_tables_and_resumes(tmp_path, monkeypatch):
    calls = []
    original = experiments.train if hasattr(experiments, "train") else None
    from core.training import trainer

    real_train = trainer.train

    def counting_train(config):
        calls.append(config.out)
        return real_train(config)

    monkeypatch.setattr(trainer, "train", counting_train)
    only = ["base", "doam_t", "doam_o", "abl_edge"]
    path = run_paper_experiments(tmp_path, "tiny", "fast", workers=0, only=only,
                                 model_options=SMALL)
    text = path.read_text()
    for heading in ("Table IV", "Table V", "Table VII", "Table IX", "Table VIII"):
        assert heading in text
    assert "+DOAM-O" in text and "74.57" in text
    # Every table's figure is written and linked from the report (relative, so the pair can be copied).
    for name in ("table_iv", "table_v", "table_vii", "table_ix"):
        figure = tmp_path / "paper_plots" / f"{name}.png"
        assert figure.read_bytes().startswith(b"\x89PNG"), name
        assert f"](paper_plots/{name}.png)" in text
    assert len(calls) == len(only)
    saved = json.loads((tmp_path / "runs" / "doam_o-s0" / "eval.json").read_text())
    assert "overall" in saved and "train_minutes" in saved
    # A second call reuses every finished run.
    run_paper_experiments(tmp_path, "tiny", "fast", workers=0, only=only, model_options=SMALL)
    assert len(calls) == len(only)
    assert original is None
