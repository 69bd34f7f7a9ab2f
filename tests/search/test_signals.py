"""Every signal, every storage, nothing lost: SIGTERM stops a run as Ctrl-C does, a killed
`--workers` parent takes its workers with it, interrupted trials are queued again, and a
journal file's trials left RUNNING by a killed run are released on resume. Real processes,
real signals, real storage files."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

pytestmark = pytest.mark.e2e

BASELINES = ("--baselines", "3")
UNIFORM = [0.3, 0.6, 0.9]  # the global ratios of those three uniform baselines


def _query(path: Path, sql: str) -> list[tuple]:
    """Read-only, so that watching never races the run to create the file or its tables."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return db.execute(sql).fetchall()
    except sqlite3.OperationalError:  # no file or no tables yet
        return []


def _count(path: Path, state: str) -> int:
    rows = _query(path, f"SELECT count(*) FROM trials WHERE state = '{state}'")
    return rows[0][0] if rows else 0


def _wait_for(
    condition: Callable[[], bool], process: subprocess.Popen[str], timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "the run ended before it could be stopped"
        assert time.monotonic() < deadline, "timed out waiting for the run"
        time.sleep(0.2)


def _trials(storage: str) -> list[optuna.trial.FrozenTrial]:
    if "://" not in storage:  # a journal file
        return optuna.load_study(study_name="s", storage=_journal(storage)).trials
    return optuna.load_study(study_name="s", storage=storage).trials


def _journal(path: str) -> JournalStorage:
    return JournalStorage(JournalFileBackend(path))


def _baselines_done(trials: list[optuna.trial.FrozenTrial]) -> list[float]:
    return sorted(
        t.user_attrs["baseline_ratio"]
        for t in trials
        if t.state == TrialState.COMPLETE and t.user_attrs.get("baseline") == "uniform"
    )


def test_sigterm_stops_like_ctrl_c_and_its_trial_runs_on_resume(medslim, tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    storage = f"sqlite:///{path}"
    command = ("run", "--storage", storage, "--study", "s", "--trials", "4", *medslim.TINY)
    command += (*BASELINES, *medslim.SLOW)
    run = medslim.start(*command)
    _wait_for(lambda: _count(path, "COMPLETE") >= 1 and _count(path, "RUNNING") == 1, run)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 143, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted:"), err
    trials = _trials(storage)
    assert TrialState.RUNNING not in [t.state for t in trials]
    (stopped,) = [t for t in trials if t.state == TrialState.FAIL]
    queued = [t for t in trials if t.state == TrialState.WAITING]
    chosen = {**stopped.system_attrs.get("fixed_params", {}), **stopped.params}
    queued_params = [t.system_attrs["fixed_params"] for t in queued]
    assert chosen in queued_params, "the stopped trial was queued again"
    again = medslim.run(*command)
    assert again.returncode == 0, again.stderr
    trials = _trials(storage)
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 4
    assert _baselines_done(trials) == UNIFORM, "every baseline ran"


def test_killing_the_workers_parent_stops_its_workers(medslim, tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    storage = f"sqlite:///{path}"
    command = ("run", "--storage", storage, "--study", "s", "--trials", "8", "--workers", "2")
    command += (*medslim.TINY, *BASELINES, *medslim.SLOW)
    run = medslim.start(*command)
    # mid-search: a trial finished and another running (on an idle machine the two workers'
    # trials are not always caught running at the same poll)
    _wait_for(lambda: _count(path, "COMPLETE") >= 1 and _count(path, "RUNNING") >= 1, run)
    workers = [
        int(str(row[0]).strip('"').rsplit(":", 1)[1])
        for row in _query(path, "SELECT value_json FROM trial_user_attributes WHERE key='worker'")
    ]
    run.kill()  # SIGKILL: the parent records nothing, its workers must notice on their own
    run.communicate(timeout=30)
    deadline = time.monotonic() + 60
    while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_running(pid) for pid in workers), "a worker outlived its parent"
    trials = _trials(storage)
    assert TrialState.RUNNING not in [t.state for t in trials], "each worker failed its trial"
    again = medslim.run(*command)
    assert again.returncode == 0, again.stderr
    trials = _trials(storage)
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 8
    assert _baselines_done(trials) == UNIFORM


def _running(pid: int) -> bool:
    """Alive and not a zombie (a worker's parent is gone, so no one reaps it at once)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_a_killed_journal_run_is_released_and_finished_on_resume(medslim, tmp_path: Path) -> None:
    storage = str(tmp_path / "j.log")
    command = ("run", "--storage", storage, "--study", "s", "--trials", "4", *medslim.TINY)
    command += (*BASELINES, *medslim.SLOW)
    run = medslim.start(*command)

    def one_done_one_running() -> bool:
        if not Path(storage).is_file() or "s" not in optuna.get_all_study_names(_journal(storage)):
            return False
        states = [t.state for t in _trials(storage)]
        return TrialState.COMPLETE in states and TrialState.RUNNING in states

    _wait_for(one_done_one_running, run)
    run.kill()
    run.communicate(timeout=30)
    (left,) = [t for t in _trials(storage) if t.state == TrialState.RUNNING]
    again = medslim.run(*command)
    assert again.returncode == 0, again.stderr
    assert f"trial {left.number} was left RUNNING by process" in again.stderr
    trials = _trials(storage)
    assert trials[left.number].state == TrialState.FAIL
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 4
    assert TrialState.RUNNING not in [t.state for t in trials]
    assert _baselines_done(trials) == UNIFORM


def test_a_journal_trial_running_elsewhere_is_counted_and_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A journal has no heartbeats: a RUNNING trial of another machine cannot be released,
    so the run stops short, names it, and says how to replace it."""
    from medslim.search.cli import main

    storage = str(tmp_path / "j.log")
    run = ["run", "--storage", storage, "--study", "s", "--no-progress"]
    run += ["--teacher-epochs", "5", "--epochs", "1", "--baselines", "2"]
    assert main([*run, "--trials", "2"]) == 0
    study = optuna.load_study(study_name="s", storage=_journal(storage))
    elsewhere = study.ask()
    elsewhere.set_user_attr("worker", "other-machine:4242")
    capsys.readouterr()
    assert main([*run, "--trials", "3"]) == 1
    err = capsys.readouterr().err
    assert "2 of 3 trials finished; 1 RUNNING in other-machine:4242 cannot be" in err, err
    assert "with --trials 4 to replace them" in err
    assert _trials(storage)[elsewhere.number].state == TrialState.RUNNING, "not released"
