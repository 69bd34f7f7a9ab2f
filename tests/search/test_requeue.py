"""A stopped trial is never left behind: its copy is queued before it is marked FAIL (so the
stopping rule, counting the study in between, sees one or the other), and a retry keeps a
uniform baseline uniform however early it was stopped. Real SQLite files, a real signal."""

from __future__ import annotations

import signal
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from medslim.search.storage import GRACE_HEARTBEATS, open_storage
from medslim.spaces.sparsity import SparsitySpace, sample_plan, uniform_params

# Written by SQLite itself at the moment a trial becomes FAIL: how many trials wait then.
WATCH = """
CREATE TABLE IF NOT EXISTS failed_with_waiting (number INTEGER, waiting INTEGER);
CREATE TRIGGER IF NOT EXISTS watch_fail AFTER UPDATE OF state ON trials
WHEN NEW.state = 'FAIL' BEGIN
  INSERT INTO failed_with_waiting SELECT NEW.number, count(*) FROM trials
  WHERE state = 'WAITING' AND study_id = NEW.study_id;
END;
"""


def _running_with_worker(path: Path) -> bool:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT 1 FROM trials t JOIN trial_user_attributes a ON a.trial_id = t.trial_id "
            "WHERE t.state = 'RUNNING' AND a.key = 'worker'"
        ).fetchall()
    return bool(rows)


@pytest.mark.e2e
def test_a_stopped_trial_is_queued_again_before_it_is_marked_failed(
    medslim, tmp_path: Path
) -> None:
    path = tmp_path / "q.db"
    storage = f"sqlite:///{path}"
    open_storage(storage)  # Optuna's tables, then the trigger, before the run starts
    with closing(sqlite3.connect(path)) as db:
        db.executescript(WATCH)
    command = ("run", "--storage", storage, "--study", "q", "--trials", "3", *medslim.TINY)
    command += ("--baselines", "1", *medslim.SLOW)  # the one baseline runs first
    run = medslim.start(*command)
    deadline = time.monotonic() + 180
    while not _running_with_worker(path):
        assert run.poll() is None, run.communicate()[1]
        assert time.monotonic() < deadline, "no trial was caught running"
        time.sleep(0.1)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 143, err
    with closing(sqlite3.connect(path)) as db:
        (stopped, waiting), *_ = db.execute("SELECT * FROM failed_with_waiting").fetchall()
    assert waiting >= 1, "when the stopped trial became FAIL, its copy was already queued"
    again = medslim.run(*command)
    assert again.returncode == 0, again.stderr
    trials = optuna.load_study(study_name="q", storage=storage).trials
    (copy,) = [t for t in trials if t.user_attrs.get("retry_of") == stopped]
    assert copy.state == TrialState.COMPLETE
    assert copy.params == {**trials[stopped].system_attrs["fixed_params"], **copy.params}


def test_a_baseline_stopped_before_it_sampled_everything_is_retried_uniform(
    tmp_path: Path,
) -> None:
    space = SparsitySpace()
    units = ["body.0", "body.4"]
    storage = open_storage(f"sqlite:///{tmp_path / 'r.db'}", heartbeat=1)
    study = optuna.create_study(
        storage=storage, study_name="r", directions=["maximize", "maximize", "minimize"]
    )
    study.enqueue_trial(uniform_params(space, units, 0.45), user_attrs={"baseline": "uniform"})
    trial = study.ask()
    trial.suggest_float("sparsity.global", 0.0, space.max_ratio)  # stopped after one param
    study_id = storage.get_study_id_from_name("r")
    storage.record_heartbeat(storage.get_trial_id_from_study_id_trial_number(study_id, 0))
    time.sleep(GRACE_HEARTBEATS + 1.5)
    optuna.storages.fail_stale_trials(study)
    retry = study.ask()
    plan = sample_plan(retry, space, units)
    assert retry.user_attrs["baseline"] == "uniform"
    assert plan.global_ratio == 0.45 and set(plan.ratios.values()) == {0.45}
    assert study.trials[trial.number].params.keys() < retry.params.keys()
