"""Worker processes on a real PostgreSQL server started by the test: exact trial counts, and a
worker killed mid-trial whose trial is failed by its stopped heartbeat and run again."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from medslim.search.records import trial_record

pytestmark = pytest.mark.e2e

pytest.importorskip("psycopg2", reason="psycopg2 is needed to reach PostgreSQL")


def _complete(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    return [t for t in trials if t.state == TrialState.COMPLETE]


def test_four_workers_end_with_exactly_the_requested_trials(medslim, database: str) -> None:
    done = medslim.run(
        *("run", "--storage", database, "--study", "s", "--trials", "40", "--workers", "4"),
        *medslim.TINY,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    trials = optuna.load_study(study_name="s", storage=database).trials
    complete = _complete(trials)
    assert len(complete) == 40
    assert len({t.number for t in trials}) == len(trials)
    assert all({"val_auc", "val_acc", "flops"} <= set(trial_record(t)) for t in complete)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert len({t.user_attrs["worker"] for t in complete}) >= 2, "workers ran side by side"
    baselines = [t for t in complete if t.user_attrs.get("baseline") == "uniform"]
    assert len(baselines) == 2


def test_a_worker_killed_mid_trial_is_retried_and_the_count_is_met(
    medslim, database: str, freeze_mid_trial
) -> None:
    target = 16
    run = medslim.start(
        *("run", "--storage", database, "--study", "k", "--trials", str(target)),
        *("--workers", "3", "--heartbeat", "1", *medslim.TINY),
        *medslim.SLOW,
    )
    victim = freeze_mid_trial(database, "k", run)
    os.kill(victim.pid, signal.SIGKILL)
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    trials = optuna.load_study(study_name="k", storage=database).trials
    assert len(_complete(trials)) == target
    killed = trials[victim.number]
    assert killed.state == TrialState.FAIL, "the stopped heartbeat failed the killed trial"
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert retry.state == TrialState.COMPLETE
    # killed early, it had suggested only some parameters: the retry keeps those and the
    # ones it was queued with (a uniform baseline stays uniform), and samples the rest
    queued = killed.system_attrs.get("fixed_params", {})
    assert {**queued, **killed.params}.items() <= retry.params.items()
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def test_a_plain_postgresql_url_works_with_the_postgres_extra(
    database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """SQLAlchemy 2.1 reads postgresql:// as psycopg (3), which the extra installs. Without
    --artifacts the models stay on this machine, and the run says so once."""
    pytest.importorskip("psycopg", reason="pip install 'medslim[postgres]'")
    from medslim.search.cli import main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    plain = database.replace("postgresql+psycopg2://", "postgresql://")
    run = ["run", "--storage", plain, "--study", "p", "--trials", "3", "--baselines", "1"]
    assert main([*run, "--teacher-epochs", "5", "--epochs", "1", "--no-progress"]) == 0
    assert capsys.readouterr().err.count("models stay on this machine") == 1
    assert main(["pareto", "--storage", plain, "--no-test"]) == 0
    assert len(_complete(optuna.load_study(study_name="p", storage=database).trials)) == 3
