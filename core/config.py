"""Where the workstation keeps its data, and which database it talks to.

One place resolves both, so that the GUI, the CLI and background jobs agree:

* data directory: ``--data-dir`` if given, else ``$XRAY_DATA_DIR``, else
  ``$XDG_DATA_HOME/xray-workstation`` (``~/.local/share/xray-workstation``);
* database URL: ``--db`` if given, else ``$XRAY_DB_URL``, else the embedded
  SQLite file ``<data dir>/workstation.db``.

The data directory holds ``workstation.db``, ``images/`` (content-addressed),
``models/``, ``jobs/`` (logs) and ``reports/`` (see DESIGN.md).
"""
from __future__ import annotations

import os
from pathlib import Path

APP_DIR_NAME = "xray-workstation"
DATA_DIR_ENV = "XRAY_DATA_DIR"
DB_URL_ENV = "XRAY_DB_URL"
DB_FILE_NAME = "workstation.db"
SUBDIRECTORIES = ("images", "models", "jobs", "reports")
# The model the workstation opens with (resources/models/default.md is its card).
BUNDLED_MODEL_PATH = Path(__file__).resolve().parents[1] / "resources" / "models" / "default.pt"


def default_data_dir() -> Path:
    """The per-user data folder, following the XDG base directory convention."""
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / APP_DIR_NAME


def resolve_data_dir(cli_value: str | os.PathLike | None = None) -> Path:
    """The data directory chosen by command line, environment or default (not created)."""
    if cli_value:
        return Path(cli_value).expanduser().resolve()
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser().resolve()
    return default_data_dir()


def ensure_data_dir(data_dir: Path) -> Path:
    """Create the data directory and its standard sub-folders; return it."""
    try:
        for name in SUBDIRECTORIES:
            (data_dir / name).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create the data directory {data_dir}: {exc.strerror or exc}") from exc
    return data_dir


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{Path(path).expanduser().resolve()}"


def resolve_db_url(cli_value: str | None = None, data_dir: Path | None = None) -> str:
    """The database URL chosen by command line, environment or default.

    A bare file path is accepted as a SQLite database for convenience.
    """
    value = (cli_value or "").strip() or os.environ.get(DB_URL_ENV, "").strip()
    if value:
        return value if "://" in value else sqlite_url(Path(value))
    return sqlite_url((data_dir or resolve_data_dir()) / DB_FILE_NAME)


def redact_url(url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415 - keep config import light

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is shown as given, minus nothing secret to hide
        return url.split("@")[-1]
