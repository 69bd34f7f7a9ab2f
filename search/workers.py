"""Several processes on one study. `medslim run --workers N` prepares the study (teacher,
baselines) once, then starts N `medslim worker` processes against the same storage and shows
their progress; `medslim worker` joins a study from any machine. Workers run trials until the
study holds exactly the target number of finished trials: never fewer, never more."""

from __future__ import annotations

import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from typing import Any, NamedTuple

import optuna

from medslim.errors import MedslimError, UsageError
from medslim.search.config import StudyConfig
from medslim.search.loop import finished_count, progress_bar, quiet_optuna, run_trials
from medslim.search.records import TARGET_ATTR
from medslim.search.samplers import make_sampler
from medslim.search.session import Session, prepare
from medslim.search.stored import open_study

logger = logging.getLogger(__name__)

POLL_S = 1.0
STOP_WAIT_S = 60.0  # how long an interrupted worker may take to record its trial
TEACHER_TOLERANCE = 1e-4  # a worker's teacher must score like the study's


def publish_target(study: optuna.Study, trials: int) -> None:
    """Store the run's target, so a worker that joins from elsewhere knows when to stop."""
    study.set_user_attr(TARGET_ATTR, trials)


def cpu_cores() -> int:
    return (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )


def share_sqlite(url: str) -> None:
    """Switch a SQLite file to WAL journaling (readers never block the one writer, and the
    busy timeout covers writers), or refuse where the file system cannot do that."""
    path = url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(path, timeout=60)) as db:
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise UsageError(
            f"SQLite file {path} cannot use WAL journaling here (got {mode!r}), which several "
            "workers need; use PostgreSQL or a journal file (e.g. --storage medslim.log)"
        )


def run_workers(session: Session, *, progress: bool | None = None) -> None:
    """Start `config.workers` worker processes and wait until they met the target; each runs
    `medslim worker`, i.e. the one study loop (`loop.run_trials`).

    Ctrl-C is forwarded to the workers, who record their running trial before they exit; the
    KeyboardInterrupt is then raised again for the caller to report. Workers that stop short
    of the target raise a `MedslimError` naming their exit codes.
    """
    config = session.config
    study = session.study
    target = config.trials
    if config.storage.startswith("sqlite"):
        share_sqlite(config.storage)
    command = [
        *(sys.executable, "-m", "medslim.search.cli", "worker", "--managed"),
        *("--storage", config.storage, "--study", study.study_name),
        *("--trials", str(target), "--device", config.device),
        *("--heartbeat", str(config.heartbeat)),
        *("--threads", str(max(1, cpu_cores() // config.workers))),
        *(("--data-dir", config.data_dir) if config.data_dir else ()),
    ]
    bar = progress_bar(finished_count(study), target, progress)
    children = [
        subprocess.Popen([*command, "--seed", str(config.seed + 1 + i)])
        for i in range(config.workers)
    ]
    try:
        while any(child.poll() is None for child in children):
            bar.update(finished_count(study) - bar.n)
            time.sleep(POLL_S)
    except BaseException:  # Ctrl-C, or the parent failing: no worker is left behind
        _stop(children)
        raise
    finally:
        bar.update(finished_count(study) - bar.n)
        bar.close()
    done = finished_count(study)
    if done < target:
        codes = ", ".join(str(child.returncode) for child in children)
        raise MedslimError(
            f"only {done} of {target} trials finished; the workers exited with codes "
            f"{codes}; run the same command again to continue"
        )


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C waits too
    try:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        deadline = time.monotonic() + STOP_WAIT_S
        for child in children:
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    finally:
        signal.signal(signal.SIGINT, previous)


def join_study(
    study: optuna.Study,
    *,
    storage: str,
    trials: int | None,
    seed: int | None,
    **run_settings: Any,
) -> Session:
    """A session that optimises exactly what the study stores: its config and its teacher."""
    stored = study.user_attrs.get("config")
    if stored is None:
        raise UsageError(f"study {study.study_name!r} has no medslim config; was it made by run?")
    target = trials if trials is not None else study.user_attrs.get(TARGET_ATTR)
    if target is None:
        raise UsageError(f"study {study.study_name!r} stores no target; pass --trials")
    if run_settings.get("data_dir") is None:  # the study's own data dir, unless given
        run_settings["data_dir"] = study.user_attrs.get("dataset", {}).get("data_dir")
    config = StudyConfig.from_stored(
        stored, storage=storage, study=study.study_name, trials=target, **run_settings
    )
    session = prepare(config)
    mine = session.teacher_scores
    theirs = study.user_attrs.get("teacher", {})
    for key in ("val_auc", "val_acc"):
        if abs(getattr(mine, key) - theirs.get(key, float("nan"))) <= TEACHER_TOLERANCE:
            continue
        raise UsageError(
            f"this machine's teacher differs from the study's ({key} {getattr(mine, key):.4f} "
            f"vs {theirs.get(key)}); copy the teacher file from the first machine's "
            ".medslim/teachers/ cache, or run with the same --teacher file"
        )
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    session.study.sampler = make_sampler(config.sampler, len(config.objectives), seed)
    return session


class WorkerRun(NamedTuple):
    ran: int
    finished: int
    study: str


def run_worker(
    storage: str,
    study: str | None = None,
    *,
    trials: int | None = None,
    seed: int | None = None,
    threads: int | None = None,
    progress: bool | None = None,
    **run_settings: Any,
) -> WorkerRun:
    """Join a stored study (from this machine or another) and run its trials, through the
    one study loop, until it holds its target: `trials`, else the last run's. It optimises
    the study's stored config; `run_settings` are this machine's own (device, data_dir,
    heartbeat). `seed` seeds the sampler (random by default, so workers differ)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    with quiet_optuna():
        ref = open_study(storage, study)
        session = join_study(ref.study, storage=storage, trials=trials, seed=seed, **run_settings)
        name = session.study.study_name
        logger.info("worker joined %s: %d trials finished", name, finished_count(session.study))
        ran = run_trials(session, progress=progress)
    return WorkerRun(ran, finished_count(session.study), name)
