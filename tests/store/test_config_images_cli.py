"""Data directory / URL resolution, the content-addressed image store, the user and db commands."""
from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from core import config
from core.cli import build_parser
from core.cli import main as cli_main
from core.cli.db import read_password
from core.store.errors import StoreError
from core.store.images import ImageStore, ImageStoreError
from core.store.repo import Store


def test_data_dir_and_url_resolution(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv(config.DATA_DIR_ENV, raising=False)
    monkeypatch.delenv(config.DB_URL_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert config.resolve_data_dir() == tmp_path / "xdg" / "xray-workstation"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config.resolve_data_dir() == tmp_path / "home" / ".local" / "share" / "xray-workstation"
    monkeypatch.setenv(config.DATA_DIR_ENV, str(tmp_path / "env"))
    assert config.resolve_data_dir() == tmp_path / "env"
    assert config.resolve_data_dir(tmp_path / "cli") == tmp_path / "cli"
    assert config.resolve_db_url(None, tmp_path / "d") == f"sqlite:///{tmp_path / 'd' / 'workstation.db'}"
    monkeypatch.setenv(config.DB_URL_ENV, "postgresql+psycopg://u:secret@h:5432/x")
    assert config.resolve_db_url(None, tmp_path / "d").startswith("postgresql")
    assert config.resolve_db_url("sqlite:///explicit.db") == "sqlite:///explicit.db"
    assert config.resolve_db_url(str(tmp_path / "bare.db")) == f"sqlite:///{tmp_path / 'bare.db'}"
    assert "secret" not in config.redact_url("postgresql+psycopg://u:secret@h:5432/x")


def test_images_are_content_addressed_and_never_overwritten(tmp_path: Path) -> None:
    images = ImageStore(tmp_path / "images")
    data = b"\xff\xd8\xff" + os.urandom(1000)
    first = images.put_bytes(data)
    assert first.created and first.path.suffix == ".jpg"
    assert first.sha256 == hashlib.sha256(data).hexdigest()
    assert first.path.parent.parent.name == first.sha256[:2]
    again = images.put_bytes(data)
    assert not again.created and again.path == first.path
    assert not any(p.name.startswith(".incoming") for p in first.path.parent.iterdir())
    # Corruption on disk is detected on read, not silently served.
    first.path.chmod(0o644)
    first.path.write_bytes(b"\xff\xd8\xff tampered")
    with pytest.raises(ImageStoreError, match="corrupt"):
        images.read_bytes(first.sha256)
    with pytest.raises(ImageStoreError, match="empty"):
        images.put_bytes(b"")


def test_concurrent_puts_of_the_same_image_store_one_file(tmp_path: Path) -> None:
    images = ImageStore(tmp_path / "images")
    data = b"\x89PNG\r\n\x1a\n" + os.urandom(50_000)
    outcomes = []
    threads = [threading.Thread(target=lambda: outcomes.append(images.put_bytes(data))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({o.path for o in outcomes}) == 1
    files = [p for p in (tmp_path / "images").rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].read_bytes() == data


def test_array_is_stored_losslessly(tmp_path: Path) -> None:
    from core.imaging.decode import read_image

    rgb = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    stored = ImageStore(tmp_path).put_array(rgb)
    assert np.array_equal(read_image(stored.path), rgb)


def test_password_is_read_from_stdin_when_not_a_tty() -> None:
    assert read_password(stream=io.StringIO("pa ss word\nignored\n")) == "pa ss word"
    with pytest.raises(StoreError, match="no password"):
        read_password(stream=io.StringIO(""))


def test_password_is_never_an_argument() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["user", "add", "eve", "--role", "inspector", "--password", "x"])


def test_user_commands(db_url: str, monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("first-password\n"))
    assert cli_main(["lane", "add", "L9", "--db", db_url]) == 0
    assert cli_main(["user", "add", "eve", "--role", "inspector", "--lane", "L9", "--db", db_url]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("second-password\n"))
    assert cli_main(["user", "passwd", "eve", "--db", db_url]) == 0
    with Store.open(db_url) as store:
        assert store.users.login("eve", "second-password").lane_id == store.users.lane_by_name("L9").id
    assert cli_main(["user", "disable", "eve", "--db", db_url]) == 0
    with Store.open(db_url) as store:
        assert store.users.get("eve").active is False
    monkeypatch.setattr("sys.stdin", io.StringIO("third-password\n"))
    assert cli_main(["user", "add", "eve", "--role", "admin", "--db", db_url]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli_main(["db", "check", "--db", db_url]) == 0


def test_bad_database_file_is_one_clear_line(tmp_path: Path, capsys) -> None:
    bogus = tmp_path / "x.db"
    bogus.write_text("not sqlite")
    assert cli_main(["user", "disable", "eve", "--db", str(bogus)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "not a SQLite database" in err and "Traceback" not in err


@pytest.mark.slow
def test_bench_store_smoke(tmp_path: Path) -> None:
    from core.bench.store import _run_engine

    result = _run_engine(f"sqlite:///{tmp_path / 'b.db'}", tmp_path, writers=2, seconds=1.5)
    assert result["decisions"] > 0 and result["errors"] == 0
    assert result["lost"] == 0 and result["duplicated"] == 0 and result["audit_chain_ok"]
