"""Per-item occlusion tables: written by the generator for both splits, replayed for old datasets."""
import json
import shutil
from pathlib import Path

import pytest

from core.cli import main
from core.data.opixray import load_split
from core.synth.generator import generate_dataset
from core.synth.occlusion import level_from_opacity
from core.synth.occlusion_table import COLUMNS, OcclusionTableError, read_table, replay_occlusion, table_path
from core.synth.scene import SceneConfig

SMALL = SceneConfig(width=320, height=250)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("occ") / "d"
    generate_dataset(root, 3, 6, seed=21, workers=1, config=SMALL, progress=False)
    return root


def test_every_item_of_both_splits_has_a_row_that_agrees_with_the_labels_and_ol_lists(dataset):
    for split in ("train", "test"):
        table = read_table(dataset, split)
        samples = load_split(dataset, split)
        assert sorted(table) == sorted(s.image_id for s in samples)
        for sample in samples:
            items = table[sample.image_id]
            assert [item.box for item in items] == list(sample.boxes)
            for item in items:
                assert item.level == level_from_opacity(item.opacity)
                assert 0.0 <= item.covered <= 1.0
            if split == "test":      # an image's OL is its worst item's
                assert sample.occlusion_level == max(item.level for item in items)


def test_replay_rebuilds_the_same_tables_and_refuses_a_wrong_seed(dataset, tmp_path):
    originals = {split: table_path(dataset, split).read_bytes() for split in ("train", "test")}
    for split in originals:
        table_path(dataset, split).unlink()
    replay_occlusion(dataset, 21, (320, 250), progress=False)
    assert {split: table_path(dataset, split).read_bytes() for split in originals} == originals

    with pytest.raises(OcclusionTableError, match="wrong seed or size"):
        replay_occlusion(dataset, 22, (320, 250), progress=False)
    with pytest.raises(OcclusionTableError, match="wrong seed or size"):
        replay_occlusion(dataset, 21, (1225, 954), progress=False)
    assert {split: table_path(dataset, split).read_bytes() for split in originals} == originals   # nothing written


def test_replay_counts_items_per_split(dataset):
    counts = replay_occlusion(dataset, 21, (320, 250), progress=False)
    assert counts == {split: sum(len(s.boxes) for s in load_split(dataset, split)) for split in ("train", "test")}


def test_cli_replays_and_reports_a_wrong_seed_without_a_traceback(dataset, capsys):
    assert main(["synth-occlusion", "--data", str(dataset), "--seed", "21", "--size", "320x250", "--no-progress"]) == 0
    assert "test_occlusion.csv" in capsys.readouterr().out
    assert main(["synth-occlusion", "--data", str(dataset), "--seed", "5", "--size", "320x250", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "wrong seed or size" in err and "Traceback" not in err


def _with_field(text: str, row: int, field: int, value: str) -> str:
    lines = text.splitlines()
    fields = lines[row].split(",")
    fields[field] = value
    lines[row] = ",".join(fields)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("mutate, message", [
    (lambda text: text.replace(",".join(COLUMNS), "image_id,label"), "expected the header"),
    (lambda text: _with_field(text, 1, 3, "x"), "line 2"),
    (lambda text: _with_field(text, 1, 8, "nan"), "line 2"),
    (lambda text: text + "000099,0,Spoon,1,1,5,5,1,0.1,0.1\n", "Spoon"),
    (lambda text: text + "000099,0,Scissor,1,1,5,5,4,0.1,0.1\n", "level must be 1-3"),
    (lambda text: text + "000099,0,Scissor,1,1,5,5,1,1.7,0.1\n", "within \\[0, 1\\]"),
    (lambda text: text + "000099,0,Scissor\n", "expected 10 fields"),
])
def test_a_broken_table_names_its_line(tmp_path, dataset, mutate, message):
    root = tmp_path / "copy"
    (root / "test").mkdir(parents=True)
    text = table_path(dataset, "test").read_text()
    table_path(root, "test").write_text(mutate(text))
    with pytest.raises(OcclusionTableError, match=message):
        read_table(root, "test")


def test_blank_lines_are_skipped_and_binary_garbage_is_a_clear_error(tmp_path, dataset):
    root = tmp_path / "copy"
    (root / "test").mkdir(parents=True)
    text = table_path(dataset, "test").read_text()
    table_path(root, "test").write_text(text + "\n\n")
    assert read_table(root, "test") == read_table(dataset, "test")
    table_path(root, "test").write_bytes(text.encode() + b"\x00\xff\xfe,1,2\n")
    with pytest.raises(OcclusionTableError, match="not a readable CSV table"):
        read_table(root, "test")


def test_a_missing_table_says_how_to_make_one(tmp_path):
    with pytest.raises(OcclusionTableError, match="synth-occlusion"):
        read_table(tmp_path, "test")


def test_dataset_stats_counts_items_by_opacity_when_a_table_exists(dataset, tmp_path, capsys):
    assert main(["dataset", "stats", str(dataset), "--json"]) == 0
    table = json.loads(capsys.readouterr().out)["items_by_opacity"]
    for split in ("train", "test"):
        assert sum(table[split]) == sum(len(v) for v in read_table(dataset, split).values())
    assert len(table["test"]) == len(table["edges"]) - 1
    assert main(["dataset", "stats", str(dataset)]) == 0
    assert "Items by occluder opacity" in capsys.readouterr().out

    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    table_path(copy, "train").write_text("garbage\n")
    table_path(copy, "test").unlink()
    assert main(["dataset", "stats", str(copy), "--json"]) == 0       # the paper's tables still come
    captured = capsys.readouterr()
    assert "no items by occlusion for train" in captured.err and "items_by_opacity" not in json.loads(captured.out)


def test_a_scene_that_cannot_be_replayed_is_a_clear_error_and_writes_nothing(dataset, monkeypatch):
    import core.synth.scene as scene

    before = {split: table_path(dataset, split).read_bytes() for split in ("train", "test")}

    def broken(*args, **kwargs):
        raise RuntimeError("cutter 'Scissor' has no visible material")

    monkeypatch.setattr(scene, "compose_scene", broken)
    with pytest.raises(OcclusionTableError, match="replaying it with seed 21 .*nothing was written"):
        replay_occlusion(dataset, 21, (320, 250), progress=False)
    assert {split: table_path(dataset, split).read_bytes() for split in before} == before
