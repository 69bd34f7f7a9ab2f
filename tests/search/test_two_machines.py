"""Two machines on one study, for real: a PostgreSQL server and an S3 endpoint on 127.0.0.1,
and two "machines" with their own caches and working directories. Machine A runs `medslim
run --workers 2`; machine B joins with two `medslim worker`s from an empty cache and an
empty working directory (the storage URL in its environment). One worker of each machine is
killed mid-trial. The study must end with exactly the target finished, every model readable
from either machine, and `pareto` and `export` working on both."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Callable
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from medslim.search.config import STORAGE_ENV

pytestmark = pytest.mark.e2e

TARGET = 10
TEACHER_LINE = re.compile(r"teacher (\w+) in ([\d.]+) s")


def test_two_machines_share_one_study_through_postgresql_and_s3(
    machine: Callable[..., Any],
    freeze_mid_trial: Callable[..., Any],
    wait_for_study: Callable[..., None],
    database: str,
    s3_bucket: str,
    s3_endpoint: dict[str, str],
) -> None:
    a = machine("a", s3_endpoint)
    b = machine("b", {**s3_endpoint, STORAGE_ENV: database})
    run = a.start(
        *("run", "--storage", database, "--study", "s", "--trials", str(TARGET)),
        *("--workers", "2", "--heartbeat", "2", "--artifacts", f"s3://{s3_bucket}/lungs"),
        *(*a.TINY, "--epochs", "1000"),  # trials of seconds: B starts before A is done
    )
    wait_for_study(database, "s", run)
    assert not list(b.cwd.iterdir()), "machine B starts from an empty folder"
    joined = [b.start("worker", "--study", "s", "--heartbeat", "2") for _ in range(2)]
    b_pids = {worker.pid for worker in joined}
    # B's trials first: its workers start late (they fetch the teacher), A's never pause.
    killed = [freeze_mid_trial(database, "s", run, among=lambda pid: pid in b_pids)]
    killed.append(freeze_mid_trial(database, "s", run, among=lambda pid: pid not in b_pids))
    for victim in killed:
        os.kill(victim.pid, signal.SIGKILL)
    _, a_err = run.communicate(timeout=600)
    assert run.returncode == 0, a_err
    b_errs = [worker.communicate(timeout=120)[1] for worker in joined]
    survivor = next(w for w in joined if w.pid != killed[0].pid)
    assert survivor.returncode == 0, b_errs

    trials = optuna.load_study(study_name="s", storage=database).trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == TARGET
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    retries = [t for t in trials if "failed_trial" in t.system_attrs]
    for victim in killed:
        assert trials[victim.number].state == TrialState.FAIL
        (retry,) = [t for t in retries if t.system_attrs["failed_trial"] == victim.number]
        assert retry.state == TrialState.COMPLETE
    by_b = [t.number for t in complete if _pid(t) in b_pids]
    by_a = [t.number for t in complete if _pid(t) not in b_pids]
    assert by_a and by_b, "both machines finished trials"

    # B never trains the teacher: its first worker fetches it, the second finds it cached.
    teacher_lines = [TEACHER_LINE.search(err) for err in b_errs]
    sources = sorted(line[1] for line in teacher_lines if line)
    assert sources in (["fetched", "fetched"], ["fetched", "loaded"]), b_errs
    assert not (b.cwd / "cache" / "medslim" / "artifacts").exists(), "B's models went to S3"
    for reader, trial in ((a, by_b[0]), (b, by_a[0])):  # each reads the other's model
        out = reader.cwd / f"trial-{trial}.pt"
        exported = reader.run(
            *("export", "--storage", database, "--trial", str(trial), "--out", str(out))
        )
        assert exported.returncode == 0 and out.is_file(), exported.stderr
        front = reader.run("pareto", "--storage", database, "--json", "--resamples", "50")
        assert front.returncode == 0, front.stderr
        members = {m["trial"] for m in json.loads(front.stdout)["front"]}
        assert members and members <= {t.number for t in complete}

    fetch = min(float(line[2]) for line in teacher_lines if line and line[1] == "fetched")
    print(
        f"\ntwo machines, target {TARGET}: machine A finished {len(by_a)} trials, machine B "
        f"{len(by_b)}; {len(retries)} retries of killed workers' trials; machine B obtained "
        f"the teacher from S3 in {fetch:.2f} s (fetched, checked against the study's "
        "fingerprint, scored)"
    )


def _pid(trial: optuna.trial.FrozenTrial) -> int:
    return int(str(trial.user_attrs["worker"]).rsplit(":", 1)[1])
