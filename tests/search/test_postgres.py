"""Worker processes on a real PostgreSQL server started by the test: exact trial counts, and a
worker killed mid-trial whose trial is failed by its stopped heartbeat and run again."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from medslim.search.records import trial_record

psycopg2 = pytest.importorskip("psycopg2", reason="psycopg2 is needed to reach PostgreSQL")


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgres() -> Iterator[int]:
    """A throwaway server on 127.0.0.1; as root it runs as the `postgres` user in a dir it owns."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs Debian's postgresql)")
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="medslim-pg-"))
    if os.geteuid() == 0:  # initdb refuses root
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    data = root / "data"
    quiet = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    subprocess.run(
        [*as_user, bin_dir / "initdb", "-D", data, "-U", "medslim", "--auth=trust", "--no-sync"],
        **quiet,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    start = [*as_user, bin_dir / "pg_ctl", "-D", data, "-l", root / "log", "-o", options]
    subprocess.run([*start, "-w", "start"], **quiet)
    try:
        yield port
    finally:
        subprocess.run([*start, "-m", "immediate", "stop"], **quiet)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def database(postgres: int, request: pytest.FixtureRequest) -> str:
    """A fresh database per test on the shared server, as an Optuna storage URL."""
    name = request.node.name.lower()[:60]
    admin = psycopg2.connect(host="127.0.0.1", port=postgres, user="medslim", dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return f"postgresql+psycopg2://medslim@127.0.0.1:{postgres}/{name}"


def _study_exists(storage: str, study: str) -> bool:
    """Asked with plain SQL: opening an Optuna storage here could race the run to make tables."""
    try:
        with closing(psycopg2.connect(storage.replace("+psycopg2", ""))) as db:
            with db.cursor() as cursor:
                cursor.execute("SELECT 1 FROM studies WHERE study_name = %s", (study,))
                return cursor.fetchone() is not None
    except psycopg2.Error:  # no tables yet
        return False


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


def test_a_worker_killed_mid_trial_is_retried_and_the_count_is_met(medslim, database: str) -> None:
    target = 16
    run = medslim.start(
        *("run", "--storage", database, "--study", "k", "--trials", str(target)),
        *("--workers", "3", "--heartbeat", "1", *medslim.TINY),
        *("--epochs", "40"),  # trials long enough (about a second) to be caught running
    )
    victim = _freeze_a_worker_mid_trial(database, "k", run)
    os.kill(victim.pid, signal.SIGKILL)
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    trials = optuna.load_study(study_name="k", storage=database).trials
    assert len(_complete(trials)) == target
    killed = trials[victim.number]
    assert killed.state == TrialState.FAIL, "the stopped heartbeat failed the killed trial"
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


class _Victim:
    def __init__(self, pid: int, number: int) -> None:
        self.pid = pid
        self.number = number


def _freeze_a_worker_mid_trial(storage: str, study: str, run: subprocess.Popen[str]) -> _Victim:
    """SIGSTOP a worker while the storage shows its trial RUNNING past its first choices."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.3)
        if not _study_exists(storage, study):
            continue
        for trial in optuna.load_study(study_name=study, storage=storage).trials:
            if trial.state != TrialState.RUNNING or "worker" not in trial.user_attrs:
                continue
            pid = int(trial.user_attrs["worker"].rsplit(":", 1)[1])
            os.kill(pid, signal.SIGSTOP)
            now = optuna.load_study(study_name=study, storage=storage).trials[trial.number]
            if now.state == TrialState.RUNNING:
                return _Victim(pid, trial.number)
            os.kill(pid, signal.SIGCONT)  # it finished meanwhile; look again
    pytest.fail(f"no worker was caught mid-trial (run exit code {run.poll()})")
