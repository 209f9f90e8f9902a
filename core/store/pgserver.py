"""A throw-away PostgreSQL server on a temporary directory, for tests and benchmarks.

``initdb`` refuses to run as root; when we are root the cluster directory is
given to the ``postgres`` user and every PostgreSQL command runs through
``su postgres``. The server listens on loopback only, on a free port, with
its socket in the same private directory.
"""
from __future__ import annotations

import logging
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server binaries are not installed (or could not start)."""


def find_pg_bin() -> Path | None:
    """The directory holding initdb/pg_ctl: $XRAY_PG_BIN, else PATH, else Debian's versioned layout."""
    override = os.environ.get("XRAY_PG_BIN", "").strip()
    if override:
        return Path(override) if (Path(override) / "initdb").is_file() else None
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    return candidates[0].parent if candidates else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TempPostgres:
    """``with TempPostgres() as pg: pg.url`` — a fresh cluster, stopped and deleted on exit."""

    def __init__(self, base_dir: Path | None = None, *, durable: bool = True) -> None:
        bin_dir = find_pg_bin()
        if bin_dir is None:
            raise PostgresUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found; "
                                      "install Debian's `postgresql` package (tests/ensure_postgres.sh)")
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="xray-pg-", dir=base_dir))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        self.started = False
        # Tests trade durability for speed (fsync off); benchmarks keep the production setting.
        self.durable = durable

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        argv = [str(self.bin_dir / args[0]), *args[1:]]
        if self.as_root:
            argv = ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(argv)]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise PostgresUnavailable(f"{args[0]} failed ({result.returncode}): "
                                      f"{(result.stderr or result.stdout).strip()[-800:]}")
        return result

    def start(self) -> "TempPostgres":
        if self.as_root:
            shutil.chown(self.root, user="postgres")
        self.root.chmod(0o700)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self._start_server()
        return self

    def _start_server(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=60 "
                   + ("-c fsync=on" if self.durable else "-c fsync=off -c synchronous_commit=off "
                                                          "-c full_page_writes=off"))
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"),
                  "-w", "-t", "60", "start")
        self.started = True
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise PostgresUnavailable(f"PostgreSQL did not accept connections on port {self.port}")

    def stop(self) -> None:
        if self.started:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)
            self.started = False

    def restart(self) -> None:
        self.stop()
        self._start_server()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "TempPostgres":
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.cleanup()
