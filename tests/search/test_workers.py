"""Several worker processes on one SQLite file, Ctrl-C and resume, failing trials: real
`medslim` subprocesses, real signals, real storage files."""

from __future__ import annotations

import signal
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from medslim.search.cli import main

pytestmark = pytest.mark.e2e


def _study(storage: str) -> optuna.Study:
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def _states(storage: str) -> list[TrialState]:
    return [t.state for t in _study(storage).trials]


def test_two_workers_share_one_sqlite_file_without_lock_errors(medslim, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'w.db'}"
    done = medslim.run(
        "run", "--storage", storage, "--trials", "12", "--workers", "2", *medslim.TINY
    )
    assert done.returncode == 0, done.stderr
    assert "locked" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    trials = _study(storage).trials
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 12
    assert TrialState.FAIL not in [t.state for t in trials]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len({t.user_attrs["worker"] for t in complete}) == 2, "both workers ran trials"
    with sqlite3.connect(tmp_path / "w.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_exits_130_then_the_same_command_finishes_the_count(
    medslim, tmp_path: Path, workers: str
) -> None:
    storage = f"sqlite:///{tmp_path / 'c.db'}"
    command = ("run", "--storage", storage, "--trials", "12", "--workers", workers, *medslim.TINY)
    # ten trials left when two have finished: the interrupt lands seconds before the end
    command += (*medslim.SLOW, "--baselines", "4")
    process = medslim.start(*command)
    deadline = time.monotonic() + 240
    while _finished(tmp_path / "c.db") < 2:
        assert process.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, "no two trials finished in time"
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"one line, nothing from the workers: {err}"
    assert lines[0].startswith("interrupted:") and "run the same command again" in lines[0]
    states = _states(storage)
    assert TrialState.RUNNING not in states, "the running trial was recorded as failed"
    assert 2 <= states.count(TrialState.COMPLETE) < 12
    again = medslim.run(*command)
    assert again.returncode == 0, again.stderr
    trials = _study(storage).trials
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 12
    baselines = [t for t in trials if t.user_attrs.get("baseline") == "uniform"]
    done = {t.user_attrs["baseline_ratio"] for t in baselines if t.state == TrialState.COMPLETE}
    assert done == {0.225, 0.45, 0.675, 0.9}, "interrupted baselines were queued again"


def _finished(path: Path) -> int:
    """Read-only, so that watching never races the run to create the file or its tables."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            query = "SELECT count(*) FROM trials WHERE state = 'COMPLETE'"
            return db.execute(query).fetchone()[0]
    except sqlite3.OperationalError:  # no file or no tables yet
        return 0


def test_a_diverging_trial_fails_with_its_reason_and_the_study_goes_on(
    medslim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medslim.search.pruning_trials as study_module
    from medslim.errors import TrainingDiverged

    def diverging_on_odd_seeds(name: str):  # baselines and screened trials alike
        original = getattr(study_module, name)

        def evaluate(*args, seed: int, **kwargs):
            if seed % 2:
                raise TrainingDiverged("training loss became nan")
            return original(*args, seed=seed, **kwargs)

        return evaluate

    for name in ("evaluate_pruning", "evaluate_candidates"):
        monkeypatch.setattr(study_module, name, diverging_on_odd_seeds(name))
    storage = f"sqlite:///{tmp_path / 'd.db'}"
    assert main(["run", "--storage", storage, "--trials", "4", "--seed", "0", *medslim.TINY]) == 0
    trials = _study(storage).trials
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 4
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert [t.number % 2 for t in failed] == [1] * len(failed) and len(failed) >= 3
    assert {t.user_attrs["fail_reason"] for t in failed} == {
        "TrainingDiverged: training loss became nan"
    }


def test_a_huge_learning_rate_fails_every_trial_with_the_reason(
    medslim, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"sqlite:///{tmp_path / 'h.db'}"
    # An untrained teacher (0 epochs) so that only the fine-tuning meets the huge rate.
    run = ["run", "--storage", storage, "--trials", "2", *medslim.TINY]
    assert main([*run, "--lr", "1e12", "--teacher-epochs", "0"]) == 1
    assert "TrainingDiverged" in capsys.readouterr().err
    trials = _study(storage).trials
    assert trials and all(t.state == TrialState.FAIL for t in trials)
    assert all(t.user_attrs["fail_reason"].startswith("TrainingDiverged") for t in trials)


def test_a_teacher_whose_training_diverges_is_a_usage_error_without_traceback(
    medslim, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"sqlite:///{tmp_path / 't.db'}"
    run = ["run", "--storage", storage, "--trials", "2", *medslim.TINY]
    assert main([*run, "--lr", "1e12", "--teacher-epochs", "3"]) == 2
    err = capsys.readouterr().err
    assert "teacher's own training diverged" in err and "Traceback" not in err
    assert optuna.get_all_study_names(storage) == [], "no half-made study is left behind"
