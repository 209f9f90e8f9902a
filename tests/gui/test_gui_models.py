"""The Models view: the registry table, promote / reject / roll back through core, the retraining child process."""
from __future__ import annotations

import sys
import textwrap
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from app.model_details import key_metrics
from app.models_view import ACTIVE_BRUSH, COLUMNS, ModelsView
from app.retrain_process import ProcessResult, ProcessRunner, parse_outcome, parse_progress, retrain_command
from store_world import SYSTEM, World

GATE = {"verdict": "promote", "reasons": [],
        "candidate": {"benchmark": {"map": 0.61}, "heldout": {"map": 0.5}},
        "active": {"benchmark": {"map": 0.6}, "heldout": {"map": 0.4}}}


pytestmark = pytest.mark.usefixtures("cheap_passwords")   # tests/gui/conftest.py


@pytest.fixture
def registry(world: World) -> dict[str, int]:
    """v1 (the world's model) active; v2, retrained from it, a candidate with the gate's numbers."""
    world.store.models.promote(SYSTEM, world.model_id)
    v2 = world.store.models.register(SYSTEM, name="retrain job 1", arch="fast", attention="doam",
                                     path=world.data_dir / "models" / "v2.pt", sha256="cd" * 32,
                                     parent_id=world.model_id, metrics={"gate": GATE, "lineage": {"train_bags": []}})
    return {"v1": world.model_id, "v2": v2.id}


@pytest.fixture
def make_view(qtbot, tmp_path: Path):
    views: list[ModelsView] = []

    def make(world: World, user, *, grace_ms: int = 3000) -> ModelsView:
        settings = QSettings(str(tmp_path / f"settings{len(views)}.ini"), QSettings.IniFormat)
        view = ModelsView(world.store, user, settings=settings, grace_ms=grace_ms)
        view.confirm = lambda *_args: True
        qtbot.addWidget(view)
        view.resize(1200, 800)
        view.show()
        with qtbot.waitSignal(view.refreshed, timeout=10000):
            view.refresh()
        views.append(view)
        return view

    yield make
    for view in views:
        view.shutdown()


def cell(view: ModelsView, row: int, header: str) -> str:
    return view.table.item(row, COLUMNS.index(header)).text()


def row_of(view: ModelsView, version_id: int) -> int:
    return [v.id for v in view.versions].index(version_id)


def act(qtbot, view: ModelsView, button: str) -> None:
    """Click an action and wait until the view has refreshed after it."""
    with qtbot.waitSignal(view.refreshed, timeout=10000):
        view.buttons[button].click()


# ------------------------------------------------------------------ the registry
def test_the_table_lists_versions_refreshed_off_the_gui_thread(qtbot, make_view, world: World, registry,
                                                               monkeypatch) -> None:
    threads = []
    real = world.store.models.list
    monkeypatch.setattr(world.store.models, "list",
                        lambda *a, **k: threads.append(threading.current_thread()) or real(*a, **k))
    view = make_view(world, world.supervisor)
    assert threads and all(t is not threading.main_thread() for t in threads)
    assert view.table.rowCount() == 2
    v1, v2 = row_of(view, registry["v1"]), row_of(view, registry["v2"])
    assert (cell(view, v1, "Status"), cell(view, v2, "Status")) == ("active", "candidate")
    assert cell(view, v2, "Parent") == str(registry["v1"]) and cell(view, v2, "Model") == "fast/doam"
    assert (cell(view, v2, "Benchmark mAP"), cell(view, v2, "Held-out mAP"), cell(view, v2, "Gate")) == (
        "0.610", "0.500", "promote")
    assert cell(view, v2, "SHA-256") == "cd" * 6
    active_item = view.table.item(v1, 1)
    assert active_item.font().bold() and active_item.background().color() == ACTIVE_BRUSH.color()
    assert not view.table.item(v2, 1).font().bold()

    view.select_version(registry["v2"])
    text = view.details.toPlainText()
    assert "Gate verdict: promote" in text and "benchmark mAP: active 0.600 -> candidate 0.610" in text
    assert f"Lineage: #{registry['v2']} retrain job 1 (candidate) <- #{registry['v1']} tiny-untrained (active)" in text
    assert '"parent_id": 1' in text and '"train_bags": []' in text
    assert view.buttons["promote"].isEnabled() and not view.buttons["rollback_to"].isEnabled()


def test_key_metrics_reads_the_gate_or_plain_numbers() -> None:
    assert key_metrics({"gate": GATE}) == {"benchmark_map": 0.61, "heldout_map": 0.5, "verdict": "promote"}
    assert key_metrics({"benchmark_map": 0.7}) == {"benchmark_map": 0.7, "heldout_map": None, "verdict": None}
    assert key_metrics(None)["benchmark_map"] is None


def test_promote_and_roll_back_change_the_active_version_in_the_store(qtbot, make_view, world: World,
                                                                      registry) -> None:
    view = make_view(world, world.supervisor)
    asked = []
    view.confirm = lambda _parent, title, text: asked.append(title) or False    # the supervisor says no
    view.select_version(registry["v2"])
    view.buttons["promote"].click()
    assert asked == ["Promote model"] and world.store.models.active().id == registry["v1"]

    view.confirm = lambda *_args: True
    act(qtbot, view, "promote")
    assert world.store.models.active().id == registry["v2"]
    assert view.table.item(row_of(view, registry["v2"]), 0).font().bold()
    assert "is now active" in view.status.text()

    act(qtbot, view, "rollback")            # core's rollback: back to the one active before
    assert world.store.models.active().id == registry["v1"]
    view.select_version(registry["v2"])      # now retired: roll back (forward) to exactly this version
    assert view.buttons["rollback_to"].isEnabled() and not view.buttons["reject"].isEnabled()
    act(qtbot, view, "rollback_to")
    assert world.store.models.active().id == registry["v2"]
    assert cell(view, row_of(view, registry["v1"]), "Status") == "retired"


def test_reject_a_candidate(qtbot, make_view, world: World, registry) -> None:
    view = make_view(world, world.supervisor)
    view.select_version(registry["v2"])
    act(qtbot, view, "reject")
    assert world.store.models.get(registry["v2"]).status == "rejected"
    assert cell(view, row_of(view, registry["v2"]), "Status") == "rejected"
    assert not view.buttons["promote"].isEnabled()


def test_an_inspector_is_refused_by_core_and_told_so(qtbot, make_view, world: World, registry,
                                                     tmp_path: Path) -> None:
    view = make_view(world, world.inspector)
    view.select_version(registry["v2"])
    with qtbot.waitSignal(view.action_failed, timeout=10000) as failed:
        view.buttons["promote"].click()
    assert failed.args[0] == "promote" and "may not manage models" in failed.args[1]
    assert world.store.models.active().id == registry["v1"]
    assert view.message_box is not None and view.message_box.isVisible()
    assert "may not manage models" in view.message_box.text() and "Traceback" not in view.message_box.text()
    assert view.error.isVisible() and "may not manage models" in view.error.text()

    view.benchmark_edit.setText(str(tmp_path))
    view.retrain_now()                       # the job row is refused too: no process is started
    qtbot.waitUntil(lambda: view.job_phase == "idle" and "may not" in view.last_error, timeout=10000)
    assert not view.runner.running() and world.store.jobs.list() == []


# ------------------------------------------------------------------ the child process
def python_child(code: str) -> tuple[str, list[str]]:
    return sys.executable, ["-c", textwrap.dedent(code)]


def test_the_child_output_goes_to_the_log_with_its_progress_and_outcome(qtbot, make_view, world: World) -> None:
    view = make_view(world, world.supervisor)
    seen: list[float] = []
    view.runner.progress.connect(seen.append)
    program, args = python_child("""
        import sys
        print("progress 0.25 exporting", flush=True)
        print("step 3/4", flush=True)
        print("a warning on stderr", file=sys.stderr, flush=True)
        print("retrain: failed: RuntimeError: boom", file=sys.stderr, end="")
        sys.exit(1)
    """)
    with qtbot.waitSignal(view.job_finished, timeout=15000) as finished:
        view.start_process(program, args)
        assert not view.retrain_button.isEnabled() and view.cancel_button.isEnabled()   # never two at once
        assert view.progress.maximum() == 0                                            # indeterminate at first
    result: ProcessResult = finished.args[0]
    assert (result.exit_code, result.status, result.message) == (1, "failed", "RuntimeError: boom")
    assert seen == [0.25, 0.75]
    log_text = view.log_pane.toPlainText()
    for line in ("progress 0.25 exporting", "step 3/4", "a warning on stderr", "retrain: failed: RuntimeError: boom"):
        assert line in log_text
    assert view.progress.maximum() == 1000 and view.progress.value() == 750
    assert view.job_phase == "idle" and view.retrain_button.isEnabled() and not view.cancel_button.isEnabled()
    assert "RuntimeError: boom" in view.last_error and "a warning on stderr" in view.message_box.text()


def test_a_successful_child_fills_the_bar_and_reports_its_outcome(qtbot, make_view, world: World) -> None:
    view = make_view(world, world.supervisor)
    program, args = python_child("""
        import sys
        print("progress 50 %", flush=True)
        print("retrain: promoted: benchmark mAP 0.600 -> 0.610", file=sys.stderr)
    """)
    with qtbot.waitSignal(view.job_finished, timeout=15000):
        view.start_process(program, args)
    assert view.progress.value() == 1000 and "promoted: benchmark mAP 0.600 -> 0.610" in view.last_outcome
    assert not view.error.isVisible() and view.message_box.icon() == view.message_box.Icon.Information


def test_cancel_terminates_a_sleeping_child(qtbot, make_view, world: World) -> None:
    view = make_view(world, world.supervisor)
    program, args = python_child("""
        import time
        print("sleeping", flush=True)
        time.sleep(60)
    """)
    view.start_process(program, args)
    qtbot.waitUntil(lambda: "sleeping" in view.log_pane.toPlainText(), timeout=10000)
    with qtbot.waitSignal(view.job_finished, timeout=10000) as finished:
        view.cancel_button.click()
    result: ProcessResult = finished.args[0]
    assert result.cancelled and result.status == "cancelled" and not view.runner.running()
    assert view.retrain_button.isEnabled() and "cancelled" in view.last_outcome


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM semantics")
def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(qtbot) -> None:
    runner = ProcessRunner(grace_ms=300)
    program, args = python_child("""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("stubborn", flush=True)
        time.sleep(60)
    """)
    lines: list[str] = []
    runner.output.connect(lambda _channel, line: lines.append(line))
    runner.start(program, args)
    qtbot.waitUntil(lambda: lines == ["stubborn"], timeout=10000)
    with qtbot.waitSignal(runner.finished, timeout=10000) as finished:
        runner.cancel()
    assert finished.args[0].cancelled and finished.args[0].exit_code is None
    assert "killed after the grace period" in finished.args[0].message


def test_a_program_that_cannot_start_is_reported(qtbot) -> None:
    runner = ProcessRunner()
    with qtbot.waitSignal(runner.finished, timeout=10000) as finished:
        runner.start("/nonexistent/python-for-tests", [])
    assert finished.args[0].status == "failed" and "could not be started" in finished.args[0].message


# ------------------------------------------------------------------ the real command
def test_the_retrain_command_line() -> None:
    command = retrain_command(db_url="sqlite:////data/workstation.db", user="sam", benchmark=Path("/bench"),
                              data_dir=Path("/data"), base_data="/base", iters=50, job_id=7, python="py",
                              main_py="/app/main.py")
    assert command.program == "py" and command.env == {}
    assert command.arguments == ["/app/main.py", "retrain", "--db", "sqlite:////data/workstation.db",
                                 "--data-dir", "/data", "--benchmark", "/bench", "--user", "sam",
                                 "--base-data", "/base", "--iters", "50", "--job-id", "7"]
    secret = retrain_command(db_url="postgresql+psycopg://sam:s3cret@db:5432/xray", user="sam", benchmark="/b",
                             auto_promote=False)
    assert "s3cret" not in " ".join(secret.arguments) and "--db" not in secret.arguments
    assert secret.env == {"XRAY_DB_URL": "postgresql+psycopg://sam:s3cret@db:5432/xray"}
    assert secret.arguments[-1] == "--no-promote" and secret.program == sys.executable
    with pytest.raises(ValueError, match="at least 1"):
        retrain_command(db_url="sqlite:///x.db", user="sam", benchmark="/b", iters=0)


def test_progress_and_outcome_lines_are_parsed() -> None:
    assert parse_progress("progress: 0.4 training") == 0.4 and parse_progress("PROGRESS 40 %") == 0.4
    assert parse_progress("INFO trainer: step 50/200") == 0.25 and parse_progress("nothing here") is None
    assert parse_outcome("retrain: refused: training job 3 is already running") == (
        "refused", "training job 3 is already running")
    assert parse_outcome("retrain: cancelled before the job started (signal 15)")[0] == "cancelled"
    assert parse_outcome("INFO retrain: step") is None


def test_retrain_now_runs_the_real_job_command_and_settles_its_job(qtbot, make_view, world: World, registry,
                                                                   tmp_path: Path) -> None:
    """The real ``python main.py retrain`` on this store: it refuses a benchmark without test/ (no training)."""
    view = make_view(world, world.supervisor)
    view.benchmark_edit.setText(str(tmp_path / "not-a-benchmark"))
    view.iters_spin.setValue(5)
    with qtbot.waitSignal(view.job_finished, timeout=30000) as finished:
        view.retrain_now()
    result: ProcessResult = finished.args[0]
    assert result.exit_code == 2 and result.status == "error" and "not an OPIXray-layout dataset" in result.message
    log_text = view.log_pane.toPlainText()
    assert f"--db {view.store_url()}" in log_text and "--iters 5 --job-id" in log_text and "--user sam" in log_text
    qtbot.waitUntil(lambda: view.job_phase == "idle", timeout=10000)
    jobs = world.store.jobs.list()
    assert len(jobs) == 1 and jobs[0].state == "cancelled"      # the queued row the child never took
    assert jobs[0].base_model_id == registry["v1"] and jobs[0].hard_sample_count >= 1
    assert "not an OPIXray-layout dataset" in view.last_error
    assert view.settings.value("retrain/iters") in (5, "5")


def test_retrain_now_is_refused_while_another_job_is_queued(qtbot, make_view, world: World, registry,
                                                            tmp_path: Path) -> None:
    other = world.store.jobs.create(world.supervisor2, settings={})
    view = make_view(world, world.supervisor)
    assert f"Training job {other.id} is queued" in view.job_label.text()
    view.benchmark_edit.setText(str(tmp_path))
    view.retrain_now()
    qtbot.waitUntil(lambda: "never two jobs at once" in view.last_error, timeout=10000)
    assert not view.runner.running() and [j.id for j in world.store.jobs.list()] == [other.id]


def test_the_job_rows_progress_is_polled_and_a_cancelled_child_leaves_it_cancelled(qtbot, make_view, world: World,
                                                                                 registry) -> None:
    """The real job prints no progress: it writes it to its row, which the view reads while the child runs."""
    job = world.store.jobs.create(world.supervisor, settings={}, base_model_id=registry["v1"])
    world.store.jobs.start(world.supervisor, job.id)
    world.store.jobs.report_progress(world.supervisor, job.id, 0.4)
    view = make_view(world, world.supervisor)
    view.job = job
    view.start_process(*python_child("import time; print('working', flush=True); time.sleep(60)"))
    qtbot.waitUntil(lambda: view.progress.maximum() == 1000 and view.progress.value() == 400, timeout=10000)
    assert f"Training job {job.id} running: 40 %" in view.job_label.text()
    with qtbot.waitSignal(view.job_finished, timeout=10000):
        view.cancel_job()
    assert world.store.jobs.get(job.id).state == "cancelled" and view.job is None
