"""The retraining job as a child process: its command line, and a QProcess that watches it.

The job runs in its own process (``python main.py retrain ...``) so that a crash,
a hung training step or an out-of-memory kill never touches the workstation.
:func:`retrain_command` builds the argument list (pure, unit-tested);
:class:`ProcessRunner` starts any command with QProcess, hands its output to
the GUI line by line (stdout and stderr both), reads progress lines if the
child prints any, and cancels it politely (SIGTERM: the job marks itself
cancelled) before killing it after a grace period. :func:`prepare_job` creates
the queued job row the child runs (``--job-id``) so the GUI can read its
progress from the store; :func:`settle_job` makes sure a child that died
never leaves its row queued or running (which would block every later job).
"""
from __future__ import annotations

import logging
import re
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from core.cli.retrain import EXIT_BAD_INPUT, EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, EXIT_REFUSED
from core.config import DB_URL_ENV
from core.store.errors import InvalidState
from core.store.repo import Store
from core.store.values import TrainingJobInfo, UserInfo

log = logging.getLogger(__name__)

ACTIVE_STATES = ("queued", "running")          # as core.training.retrain.ACTIVE_STATES
MAIN_PY = Path(__file__).resolve().parents[1] / "main.py"
TAIL_LINES = 200                 # lines kept for the outcome message (the log pane keeps more)
DEFAULT_GRACE_MS = 10_000        # SIGTERM -> kill: the job needs a moment to mark itself cancelled

# "progress 0.42", "progress: 42 %", "PROGRESS=0.42 training" ... and "step 12/200".
_PROGRESS = re.compile(r"\bprogress\s*[:=]?\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<percent>%)?", re.I)
_STEP = re.compile(r"\bstep\s+(?P<done>\d+)\s*/\s*(?P<total>\d+)\b", re.I)
# The CLI's last stderr line: "retrain: promoted: benchmark mAP ...", "retrain: refused: ...", "retrain: error: ..."
_OUTCOME = re.compile(r"^retrain:\s+(?P<status>[a-z_]+)\b:?\s*(?P<message>.*)$")
EXIT_TEXT = {EXIT_OK: "done", EXIT_FAILED: "failed", EXIT_BAD_INPUT: "error", EXIT_REFUSED: "refused",
             EXIT_CANCELLED: "cancelled"}


@dataclass(frozen=True)
class RetrainCommand:
    program: str
    arguments: list[str]
    env: dict[str, str] = field(default_factory=dict)   # added to the child's environment


def retrain_command(*, db_url: str, user: str, benchmark: Path | str, data_dir: Path | str | None = None,
                    base_data: Path | str | None = None, iters: int | None = None, job_id: int | None = None,
                    auto_promote: bool = True, device: str | None = None, python: str | None = None,
                    main_py: Path | str = MAIN_PY) -> RetrainCommand:
    """``python main.py retrain --db URL ...`` for the store this workstation uses.

    A URL with a password goes through the environment (``XRAY_DB_URL``), not
    the argument list: other users of the machine can read a process's arguments.
    """
    from sqlalchemy.engine import make_url  # noqa: PLC0415 - keep this module's import light

    args = [str(main_py), "retrain"]
    env: dict[str, str] = {}
    if make_url(db_url).password:
        env[DB_URL_ENV] = db_url
    else:
        args += ["--db", db_url]
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    args += ["--benchmark", str(benchmark), "--user", user]
    if base_data is not None and str(base_data):
        args += ["--base-data", str(base_data)]
    if iters is not None:
        if iters < 1:
            raise ValueError(f"iterations must be at least 1, got {iters}")
        args += ["--iters", str(int(iters))]
    if job_id is not None:
        args += ["--job-id", str(int(job_id))]
    if not auto_promote:
        args.append("--no-promote")
    if device is not None:
        args += ["--device", device]
    return RetrainCommand(python or sys.executable, args, env)


def parse_progress(line: str) -> float | None:
    """A fraction in [0, 1] from a progress line the child printed, or None."""
    match = _PROGRESS.search(line)
    if match:
        value = float(match["value"])
        if match["percent"] or value > 1.0:
            value /= 100.0
        return min(1.0, max(0.0, value))
    match = _STEP.search(line)
    if match and int(match["total"]) > 0:
        return min(1.0, int(match["done"]) / int(match["total"]))
    return None


def parse_outcome(line: str) -> tuple[str, str] | None:
    """(status, message) from the CLI's closing ``retrain: STATUS: message`` line, or None."""
    match = _OUTCOME.match(line.strip())
    return (match["status"], match["message"].strip()) if match else None


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int | None           # None: it never started, or it crashed (killed by a signal)
    status: str                     # the CLI's own word (promoted, rejected, refused, error...), else from the exit
    message: str
    cancelled: bool                 # the user asked to cancel
    tail: tuple[str, ...]           # the last lines of output

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_OK and not self.cancelled

    def last_lines(self, count: int = 12) -> str:
        return "\n".join(self.tail[-count:])


class ProcessRunner(QObject):
    """One child process at a time; every signal arrives on the GUI thread (QProcess is event-driven)."""

    output = Signal(str, str)         # channel ("stdout" | "stderr"), one line without its newline
    progress = Signal(float)          # a fraction the child printed
    started = Signal()
    finished = Signal(object)         # ProcessResult

    def __init__(self, parent: QObject | None = None, *, grace_ms: int = DEFAULT_GRACE_MS) -> None:
        super().__init__(parent)
        self.grace_ms = grace_ms
        # One QProcess for the runner's lifetime, reused for every run: none is ever deleted while its
        # signals may still be on their way (that crashed the interpreter).
        self._process = QProcess(self)
        self._process.readyReadStandardOutput.connect(lambda: self._read("stdout"))
        self._process.readyReadStandardError.connect(lambda: self._read("stderr"))
        self._process.errorOccurred.connect(self._on_error)
        self._process.finished.connect(self._on_finished)
        self._process.started.connect(self.started)
        self._active = False                 # between start() and the finished signal
        self._partial = {"stdout": b"", "stderr": b""}
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._outcome: tuple[str, str] | None = None
        self._cancelled = self._killed = False
        self._reported = False
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self.kill)

    def running(self) -> bool:
        return self._active

    def start(self, program: str, arguments: list[str], *, env: dict[str, str] | None = None,
              workdir: Path | str | None = None) -> None:
        if self._active:
            raise RuntimeError("a process is already running: never two jobs at once")
        process = self._process
        environment = QProcessEnvironment.systemEnvironment()
        environment.insert("PYTHONUNBUFFERED", "1")    # lines as they come, not when a buffer fills
        for key, value in (env or {}).items():
            environment.insert(key, value)
        process.setProcessEnvironment(environment)
        # The workstation's own directory: relative paths (a sqlite:///rel.db, a dataset) mean the same there.
        process.setWorkingDirectory(str(workdir or Path.cwd()))
        self._active = True
        self._partial = {"stdout": b"", "stderr": b""}
        self._tail.clear()
        self._outcome, self._cancelled, self._killed, self._reported = None, False, False, False
        log.info("starting %s %s", program, " ".join(arguments))
        process.start(program, arguments)

    def cancel(self) -> None:
        """SIGTERM now (the job cancels itself cleanly), kill if it is still there after the grace period."""
        if not self.running() or self._process.state() == QProcess.NotRunning:
            return
        self._cancelled = True
        self._process.terminate()
        self._kill_timer.start(self.grace_ms)

    def wait(self, timeout_ms: int = 10_000) -> bool:
        """Block until the child ended (shutdown only); the finished signal still comes."""
        return not self._active or self._process.waitForFinished(timeout_ms)

    def kill(self) -> None:
        if self.running() and self._process.state() != QProcess.NotRunning:
            log.warning("the child did not stop within %d ms of SIGTERM: killing it", self.grace_ms)
            self._killed = True
            self._process.kill()

    def _read(self, channel: str) -> None:
        process = self._process
        data = bytes(process.readAllStandardOutput() if channel == "stdout" else process.readAllStandardError())
        lines = (self._partial[channel] + data).split(b"\n")
        self._partial[channel] = lines.pop()        # an unfinished line waits for the rest
        for raw in lines:
            self._line(channel, raw)

    def _line(self, channel: str, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        self._tail.append(text)
        outcome = parse_outcome(text)
        if outcome is not None:
            self._outcome = outcome
        self.output.emit(channel, text)
        fraction = parse_progress(text)
        if fraction is not None:
            self.progress.emit(fraction)

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.FailedToStart:        # no finished signal follows this one
            message = self._process.errorString()
            self._report(None, "failed", f"the job could not be started: {message}")

    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        for channel in ("stdout", "stderr"):
            self._read(channel)
            if self._partial[channel]:
                self._line(channel, self._partial[channel])
                self._partial[channel] = b""
        crashed = exit_status == QProcess.CrashExit
        code = None if crashed else exit_code
        if self._outcome is not None and not self._cancelled:
            status, message = self._outcome
        elif self._cancelled:
            status, message = "cancelled", "cancelled" + (" (killed after the grace period)" if self._killed else "")
        elif crashed:
            status, message = "failed", "the job's process crashed or was killed"
        else:
            status = EXIT_TEXT.get(exit_code, "failed")
            message = f"the job's process exited with code {exit_code}"
        self._report(code, status, message)

    def _report(self, code: int | None, status: str, message: str) -> None:
        if self._reported or not self._active:
            return
        self._reported, self._active = True, False
        self._kill_timer.stop()
        result = ProcessResult(code, status, message, self._cancelled, tuple(self._tail))
        self.finished.emit(result)


# --------------------------------------------------------------------------- the job row
def prepare_job(store: Store, user: UserInfo, data_dir: Path | None, settings: dict[str, Any]) -> TrainingJobInfo:
    """Create the queued job row the child will run (worker thread). Refuses what the job would refuse."""
    from core.training.retrain import JobRefused, reap_dead_jobs  # noqa: PLC0415 - only when a job starts

    if data_dir is not None:
        reap_dead_jobs(store, user, data_dir)      # a crashed job must not block the next one forever
    busy = store.jobs.list(ACTIVE_STATES)
    if busy:
        raise JobRefused(f"training job {busy[0].id} is already {busy[0].state}: never two jobs at once")
    active = store.models.active()
    if active is None:
        raise InvalidState("no model is active: promote a model first (the job fine-tunes the active one)")
    samples = store.hard_samples.find(user, score_threshold=0.5)     # role-checked in core
    if not samples:
        raise InvalidState("no hard samples in the store: nothing to retrain on")
    return store.jobs.create(user, settings={**settings, "started_from": "workstation"},
                             base_model_id=active.id, hard_sample_count=len(samples))


def settle_job(store: Store, user: UserInfo, job_id: int, result: ProcessResult) -> TrainingJobInfo:
    """After the child ended: a job it left queued or running is cancelled or failed, never left hanging."""
    job = store.jobs.get(job_id)
    try:
        if job.state == "queued" or (job.state == "running" and result.cancelled):
            return store.jobs.cancel(user, job_id)
        if job.state == "running":
            return store.jobs.fail(user, job_id, f"the job's process ended ({result.status}: {result.message}) "
                                                 f"without finishing the job; last output:\n{result.last_lines()}")
    except InvalidState:            # it finished at this very moment
        return store.jobs.get(job_id)
    return job
