"""Dataset validation: every fault kind reported with file and line, --fix writes a clean copy, the CLI."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_data_opixray import build_tiny_dataset, jpg_bytes

from core.cli import main as cli_main
from core.data.opixray import load_split, read_id_list, read_occlusion_levels
from core.data.stats import compute_stats
from core.data.validate import ERROR, WARNING, fix_dataset, scan_dataset, validate_dataset

ROOT = Path(__file__).resolve().parents[1]


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(text)


def build_faulty_dataset(root: Path) -> Path:
    """The tiny dataset with one of every fault the validator knows."""
    build_tiny_dataset(root)
    train_img, train_ann = root / "train/train_image", root / "train/train_annotation"
    test_img, test_ann = root / "test/test_image", root / "test/test_annotation"
    # train list lines 1-3 are 000001..000003; added below: 4..13
    _append(root / "train/train_knife.txt",
            "000404\n000005\n000006\n000007\n000008\n000009\n000010\n000001\n009001\n000011\n")
    (train_img / "000005.jpg").write_bytes(jpg_bytes())  # 000005: image but no annotation
    good = jpg_bytes()
    (train_img / "000006.jpg").write_bytes(bytes(range(256)) * 4)  # not an image
    big = jpg_bytes(400, 300)
    (train_img / "000007.jpg").write_bytes(big[: len(big) * 4 // 5])  # truncated inside the image data
    (train_img / "000008.jpg").write_bytes(b"")  # 0 bytes
    (train_img / "000009.jpg").write_text("this is a text file\n")
    (train_img / "000010.png").write_bytes(good)  # extension the reference code does not read
    for image_id in ("000006", "000007", "000008", "000009", "000010"):
        (train_ann / f"{image_id}.txt").write_text(f"{image_id}.jpg Scissor 1 1 10 10\n")
    (train_img / "009001.jpg").write_bytes(good)  # also a test id
    (train_ann / "009001.txt").write_text("009001.jpg Scissor 1 1 10 10\n")
    (train_img / "000011.jpg").write_bytes(good)
    (train_ann / "000011.txt").write_bytes(b"\xff\xfe\x00\x01 binary")  # not text
    (train_img / "999999.jpg").write_bytes(good)  # in no list
    _append(train_ann / "000001.txt",  # lines 2..5
            "000001.jpg Spoon 1 2 3 4\n000001.jpg Scissor 1 2 3\n000001.jpg Scissor 1 2 x 4\n"
            "000001.jpg Scissor 1.5 2 3 4\n")
    _append(train_ann / "000002.txt", "000002.jpg Scissor 30 10 20 40\n")  # line 3: inverted
    (train_ann / "000003.txt").write_text(
        "000003.jpg Scissor 50 40 70 47\n"  # outside the 64x48 image
        "000003.jpg Scissor 10 10 64 30\n"  # one past the last column
        "000003.jpg Scissor 70 50 90 60\n")  # entirely outside: dropped by --fix
    (test_ann / "009002.txt").write_text("wrong.jpg Scissor 20 5 33 41\n")  # NAME mismatch
    (test_img / "009004.TIFF").write_bytes(good)  # a valid .TIFF (content is a JPG, cv2 reads by content)
    (test_ann / "009004.txt").write_text("009004.TIFF Folding_Knife 1 1 5 5\n")
    _append(root / "test/test_knife.txt", "009004\n")  # line 4, in no OL list
    _append(root / "test/test_knife-1.txt", "777777\n")  # line 2, not in test
    _append(root / "test/test_knife-2.txt", "009001\n009002\n")  # lines 2, 3: in OL1 already, duplicate
    return root


def _codes(problems, path_end: str) -> set[tuple[int | None, str]]:
    return {(p.line, p.code) for p in problems if p.path.as_posix().endswith(path_end)}


def test_clean_dataset_has_no_problems(tmp_path):
    assert validate_dataset(build_tiny_dataset(tmp_path / "ds")) == []


def test_every_fault_is_reported_with_file_and_line(tmp_path):
    root = build_faulty_dataset(tmp_path / "ds")
    scan = scan_dataset(root)
    problems = scan.problems
    train_list = _codes(problems, "train/train_knife.txt")
    assert {(4, "missing-image"), (4, "missing-annotation"), (5, "missing-annotation"),
            (10, "missing-image"), (11, "duplicate-id")} <= train_list
    assert any(".png, which the reference code does not read" in p.message for p in problems if p.line == 10)
    assert (4, "train-test-overlap") not in train_list
    assert (1, "train-test-overlap") in _codes(problems, "test/test_knife.txt")
    unreadable = {p.path.name: p.message for p in problems if p.code == "unreadable-image"}
    assert set(unreadable) == {"000006.jpg", "000007.jpg", "000008.jpg", "000009.jpg"}
    assert unreadable["000007.jpg"].startswith("the JPG is truncated") and "0 bytes" in unreadable["000008.jpg"]
    assert str(root) not in unreadable["000007.jpg"]  # the path is in the problem's location, not repeated
    assert "not a readable image" in unreadable["000009.jpg"]
    assert _codes(problems, "000001.txt") == {(2, "unknown-class"), (3, "field-count"), (4, "non-numeric"),
                                              (5, "non-integer")}
    assert _codes(problems, "000002.txt") == {(3, "inverted-box")}
    assert _codes(problems, "000003.txt") == {(1, "box-outside"), (2, "box-edge"), (3, "box-outside")}
    assert _codes(problems, "000011.txt") == {(None, "not-text")}
    assert _codes(problems, "999999.jpg") == {(None, "unlisted-image")}
    assert _codes(problems, "009002.txt") == {(1, "name-mismatch")}
    assert _codes(problems, "test_knife-1.txt") == {(2, "ol-not-in-test")}
    assert _codes(problems, "test_knife-2.txt") == {(2, "ol-in-two-lists"), (3, "duplicate-id")}
    assert (4, "no-ol") in _codes(problems, "test/test_knife.txt")
    severities = {p.code: p.severity for p in problems}
    assert severities["unlisted-image"] == severities["name-mismatch"] == severities["no-ol"] == WARNING
    assert severities["box-outside"] == severities["ol-in-two-lists"] == ERROR
    # Every listed image that exists was decoded (10 train, 4 test).
    assert scan.decode.images == 14


def test_missing_split_and_list(tmp_path):
    root = build_tiny_dataset(tmp_path / "ds")
    shutil.rmtree(root / "train")
    (root / "test/test_knife.txt").unlink()
    problems = validate_dataset(root)
    assert {p.code for p in problems if p.severity == ERROR} == {"missing-split", "missing-list", "ol-not-in-test"}
    assert validate_dataset(tmp_path / "nowhere")[0].code == "missing-root"


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_fix_writes_a_clean_copy_and_never_touches_the_source(tmp_path):
    root = build_faulty_dataset(tmp_path / "ds")
    before = _hashes(root)
    changes = fix_dataset(root, tmp_path / "fixed")
    assert _hashes(root) == before
    out = tmp_path / "fixed"
    assert [p for p in validate_dataset(out) if p.severity == ERROR] == []
    train = {s.image_id: s.boxes for s in load_split(out, "train")}
    assert sorted(train) == ["000001", "000002", "000003"]  # bad, missing and overlapping ids dropped
    assert [b.as_list() for b in train["000001"]] == [[2, 3, 30, 20], [2, 2, 3, 4]]  # 1.5 rounds to 2
    assert [b.as_list() for b in train["000003"]] == [[50, 40, 63, 47], [10, 10, 63, 30]]  # clipped; third dropped
    assert len(train["000002"]) == 2  # the inverted box is gone
    assert read_occlusion_levels(out) == {"009001": 1, "009002": 2, "009003": 3}
    assert read_id_list(out / "test/test_knife.txt") == ["009001", "009002", "009003", "009004"]
    assert (out / "test/test_annotation/009002.txt").read_text().startswith("009002.jpg ")
    assert not (out / "train/train_image/999999.jpg").exists()
    text = "\n".join(changes)
    for fragment in ("train/009001: dropped from train", "train/000007: dropped, unreadable image",
                     "clipped box [50, 40, 70, 47]", "dropped box [70, 50, 90, 60]",
                     "test_knife-1.txt: removed '777777'", "already in OL1", "removed 1 duplicate line",
                     "train/000011: dropped, annotation unreadable"):
        assert fragment in text


def test_fix_refuses_output_inside_source_or_non_empty(tmp_path):
    root = build_faulty_dataset(tmp_path / "ds")
    before = _hashes(root)
    with pytest.raises(ValueError, match="inside the source"):
        fix_dataset(root, root / "test" / "fixed")
    (tmp_path / "full").mkdir()
    (tmp_path / "full/x").write_text("x")
    with pytest.raises(ValueError, match="not an empty directory"):
        fix_dataset(root, tmp_path / "full")
    assert _hashes(root) == before


def test_cli_check_reports_and_exits_non_zero(tmp_path, capsys):
    root = build_faulty_dataset(tmp_path / "ds")
    assert cli_main(["dataset", "check", str(root)]) == 1
    out = capsys.readouterr().out
    assert f"{root / 'train/train_annotation/000001.txt'}:2: error: unknown class 'Spoon'" in out
    assert f"{root / 'train/train_image/000008.jpg'}: error: " in out and "0 bytes" in out
    assert "FAILED:" in out and "images/s" in out
    clean = build_tiny_dataset(tmp_path / "clean")
    assert cli_main(["dataset", "check", str(clean), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["problems"] == [] and report["summary"]["decoded_images"] == 6


def test_cli_check_fix_exits_zero_for_a_clean_copy(tmp_path, capsys):
    root = build_faulty_dataset(tmp_path / "ds")
    assert cli_main(["dataset", "check", str(root), "--fix", str(tmp_path / "fixed"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["errors"] > 10 and report["fix"]["summary"]["errors"] == 0
    assert cli_main(["dataset", "check", str(root), "--fix", str(root / "x")]) == 2
    assert "inside the source" in capsys.readouterr().err


def test_cli_as_a_process_never_prints_a_traceback(tmp_path):
    root = build_faulty_dataset(tmp_path / "ds")
    result = subprocess.run([sys.executable, str(ROOT / "main.py"), "dataset", "check", str(root)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert f"{root / 'train/train_knife.txt'}:11: error: id '000001' is listed again" in result.stdout


@pytest.mark.parametrize("args, fragment", [
    (["check", "{tmp}/missing"], "not a directory"),
    (["stats", "{tmp}/missing"], "not a directory"),
    (["export", "{tmp}/ds", "--format", "coco", "--out", "{tmp}/c"], "dataset check"),
    (["import", "{tmp}/nothing", "--format", "voc", "--out", "{tmp}/v"], "no train.txt or test.txt"),
])
def test_cli_failures_are_one_line_messages(tmp_path, capsys, args, fragment):
    build_faulty_dataset(tmp_path / "ds")
    (tmp_path / "nothing").mkdir()
    assert cli_main(["dataset", *(a.format(tmp=tmp_path) for a in args)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and "Traceback" not in err


def test_cli_stats_export_import(tmp_path, capsys):
    root = build_tiny_dataset(tmp_path / "ds")
    assert cli_main(["dataset", "stats", str(root), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["table_ii"]["train"]["Scissor"] == 1 and data["table_ii"]["total"]["images"] == 6
    assert data["table_iii"]["OL3"]["Multi-tool_Knife"] == 1 and data["table_iii"]["total"]["images"] == 3
    assert cli_main(["dataset", "stats", str(root)]) == 0
    assert "Table III" in capsys.readouterr().out
    assert cli_main(["dataset", "export", str(root), "--format", "yolo", "--out", str(tmp_path / "y")]) == 0
    assert cli_main(["dataset", "import", str(tmp_path / "y"), "--format", "yolo", "--out", str(tmp_path / "b")]) == 0
    assert compute_stats(tmp_path / "b").to_dict() == compute_stats(root).to_dict()


def test_stats_counts_items_and_images(tmp_path):
    stats = compute_stats(build_faulty_dataset(tmp_path / "ds"))
    # Overlapping id 009001 is counted once, in test; unusable lines are skipped.
    assert stats.table_ii["test"]["images"] == 4 and stats.table_ii["train"]["images"] == 11
    assert stats.table_iii["OL1"]["images"] == 1 and stats.test_images_without_level == 1
