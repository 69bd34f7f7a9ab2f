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
from optuna.trial import TrialState

from medslim.errors import MedslimError, UsageError
from medslim.search import signals
from medslim.search.artifacts import say_if_local_only
from medslim.search.config import STORAGE_ENV, StudyConfig
from medslim.search.cpu_share import fair_threads, share_cores
from medslim.search.loop import finished_count, quiet_optuna, run_trials
from medslim.search.progress import TrialProgress
from medslim.search.session import Session, prepare
from medslim.search.stored import open_study
from medslim.search.study_format import TARGET_ATTR, stored_config, stored_dataset, target_trials

logger = logging.getLogger(__name__)

POLL_S = 1.0
STOP_WAIT_S = 60.0  # how long an interrupted worker may take to record its trial


def publish_target(study: optuna.Study, trials: int) -> None:
    """Store the run's target, so a worker that joins from elsewhere knows when to stop."""
    study.set_user_attr(TARGET_ATTR, trials)


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


# `python -c` puts the working directory first on the import path (as ""): it is dropped
# before medslim is imported, so a `search/` or `medslim/` folder there never runs.
_BOOTSTRAP = (
    "import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "
    "from medslim.search.cli.app import main; sys.exit(main())"
)


def worker_command(session: Session, index: int, threads: int) -> list[str]:
    """The command line of managed worker `index`: the installed package's CLI, started
    with a safe import path, with `threads` CPU threads. The storage URL is not on it (see
    `worker_environment`)."""
    config = session.config
    return [
        *(sys.executable, "-c", _BOOTSTRAP, "worker", "--parent", str(os.getpid())),
        *("--study", session.study.study_name, "--trials", str(config.trials)),
        *("--device", config.device, "--heartbeat", str(config.heartbeat)),
        *("--threads", str(threads)),
        *("--seed", str(session.sampler_seed + 1 + index), "--no-progress"),
        *(("--data-dir", config.data_dir) if config.data_dir else ()),
    ]


def worker_environment(storage: str) -> dict[str, str]:
    """The workers' environment: the storage URL travels here, so no password shows in
    `ps` (only the same user can read a process's environment)."""
    return {**os.environ, STORAGE_ENV: storage}


def run_workers(session: Session, *, progress: bool | None = None) -> None:
    """Start `config.workers` worker processes and wait until they met the target; each runs
    `medslim worker`, i.e. the one study loop (`loop.run_trials`), with its share of the
    cores (those of other medslim processes already running here counted).

    The workers run in their own session, so a terminal's Ctrl-C reaches only this process,
    which stops them with SIGTERM (each records its running trial as FAIL and queues it
    again) and raises KeyboardInterrupt for the caller to report in one line. If this process
    dies, even by SIGKILL, its workers get SIGTERM too. Progress shows every finished trial
    and the trials still running, where and for how long (`progress.TrialProgress`).
    Workers that stop short of the target raise a `MedslimError` naming their exit codes.
    """
    config = session.config
    study = session.study
    target = config.trials
    if config.storage.startswith("sqlite"):
        share_sqlite(config.storage)
    threads = fair_threads(config.workers)
    shown = TrialProgress(study, finished_count(study), target, progress)
    seen = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
    children: list[subprocess.Popen[bytes]] = []
    try:
        for index in range(config.workers):
            children.append(
                subprocess.Popen(
                    worker_command(session, index, threads),
                    env=worker_environment(config.storage),
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        while any(child.poll() is None for child in children):
            _show_new_trials(study, shown, seen)
            time.sleep(POLL_S)
    except BaseException:  # Ctrl-C, SIGTERM, or the parent failing: no worker is left behind
        _stop(children)
        raise
    finally:
        shown.close()
    _show_new_trials(study, shown, seen)
    done = finished_count(study)
    if done < target:
        codes = ", ".join(str(child.returncode) for child in children)
        if any(child.returncode == 2 for child in children):  # said in the workers' own line
            raise UsageError(f"the workers stopped on the error above (exit codes {codes})")
        raise MedslimError(
            f"only {done} of {target} trials finished; the workers exited with codes "
            f"{codes}; run the same command again to continue"
        )


def _show_new_trials(study: optuna.Study, shown: TrialProgress, seen: set[int]) -> None:
    """Report the trials the workers ended since the last look, then the running ones."""
    trials = study.get_trials(deepcopy=False)
    finished = sum(t.state == TrialState.COMPLETE for t in trials)
    for trial in trials:
        if trial.state.is_finished() and trial.number not in seen:
            seen.add(trial.number)
            shown.trial(trial, finished)
    shown.waiting(finished)


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each worker and wait for it to record its trial; kill one that takes longer
    than `STOP_WAIT_S`. Further stop signals to this process wait too."""
    ignored = signals.STOP_SIGNALS if signals.in_main_thread() else ()
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in ignored}
    try:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        for child in children:
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def join_study(
    study: optuna.Study,
    *,
    storage: str,
    trials: int | None,
    seed: int | None,
    progress: bool | None = None,
    **run_settings: Any,
) -> Session:
    """A session that optimises exactly what the study stores: its config and its teacher
    (`prepare` checks the teacher against the study's fingerprint, or fetches it)."""
    stored = stored_config(study)
    if stored is None:
        raise UsageError(f"study {study.study_name!r} has no medslim config; was it made by run?")
    target = trials if trials is not None else target_trials(study)
    if target is None:
        raise UsageError(f"study {study.study_name!r} stores no target; pass --trials")
    if run_settings.get("data_dir") is None:  # the study's own data dir, unless given
        run_settings["data_dir"] = stored_dataset(study).get("data_dir")
    config = StudyConfig.from_stored(
        stored, storage=storage, study=study.study_name, trials=target, **run_settings
    )
    fresh = random.SystemRandom().randrange(2**31)
    return prepare(config, sampler_seed=fresh if seed is None else seed, progress=progress)


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
    managed: bool = False,
    **run_settings: Any,
) -> WorkerRun:
    """Join a stored study (from this machine or another) and run its trials, through the
    one study loop, until it holds its target: `trials`, else the last run's. It optimises
    the study's stored config; `run_settings` are this machine's own (device, data_dir,
    heartbeat). `seed` seeds the sampler (random by default, so workers differ). `managed`:
    started by `run --workers`, which has said what needs saying."""
    with quiet_optuna():
        ref = open_study(storage, study)
        session = join_study(
            ref.study, storage=storage, trials=trials, seed=seed, progress=progress, **run_settings
        )
        share_cores(threads)  # after the teacher: one retrained here must match the study's
        if not managed:
            say_if_local_only(session.artifacts)
        name = session.study.study_name
        logger.info("worker joined %s: %d trials finished", name, finished_count(session.study))
        ran = run_trials(session, progress=progress)
    return WorkerRun(ran, finished_count(session.study), name)
