"""Several processes on one study. `medslim run --workers N` prepares the study (teacher,
baselines) once, then starts N `medslim worker` processes against the same storage and shows
their progress; `medslim worker` joins a study from any machine. Workers run trials until the
study holds exactly the target number of finished trials: never fewer, never more."""

from __future__ import annotations

import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.config import StudyConfig
from search.samplers import make_sampler
from search.study import Session, finished_count, make_objective, prepare
from spaces.errors import UsageError

TARGET_ATTR = "target_trials"
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


def run_workers(session: Session, *, progress: bool) -> int:
    """Start `config.workers` worker processes and wait for them; 0 once the target is met.

    Ctrl-C is forwarded to the workers, who record their running trial before they exit; the
    KeyboardInterrupt is then raised again for the caller to report.
    """
    config = session.config
    study = session.study
    target = config.trials or 0
    if config.storage.startswith("sqlite"):
        share_sqlite(config.storage)
    command = [
        *(sys.executable, "-m", "search.cli", "worker", "--managed"),
        *("--storage", config.storage, "--study", study.study_name),
        *("--trials", str(target), "--device", config.device),
        *("--heartbeat", str(config.heartbeat)),
        *("--threads", str(max(1, cpu_cores() // config.workers))),
        *(("--data-dir", config.data_dir) if config.data_dir else ()),
    ]
    bar = _progress_bar(finished_count(study), target, progress)
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
    if done >= target:
        return 0
    codes = ", ".join(str(child.returncode) for child in children)
    print(
        f"medslim: only {done} of {target} trials finished; the workers exited with codes "
        f"{codes}; run the same command again to continue",
        file=sys.stderr,
    )
    return 1


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


class Interrupts:
    """SIGINT handling for a process that runs trials. Ctrl-C interrupts at once only where
    that is safe: inside the objective (Optuna records the trial as FAIL), while waiting, or
    while joining. Elsewhere (Optuna asking for or telling a trial, counting trials) it takes
    effect at the next safe point, so no trial is left RUNNING and no database session is cut
    in half. Later SIGINTs are ignored: Ctrl-C reaches a worker from the terminal and from
    its parent."""

    def __init__(self) -> None:
        self.requested = False
        self.interruptible = False
        self._previous: Any = None

    def __enter__(self) -> Interrupts:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            return
        self.requested = True
        if self.interruptible:
            raise KeyboardInterrupt

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    @contextmanager
    def allowed(self) -> Iterator[None]:
        self.check()
        self.interruptible = True
        try:
            yield
        finally:
            self.interruptible = False


def join_study(
    study: optuna.Study,
    *,
    storage: str,
    trials: int | None,
    seed: int | None,
    log: Callable[[str], None],
    **run_settings: Any,
) -> Session:
    """A session that optimises exactly what the study stores: its config and its teacher."""
    stored = study.user_attrs.get("config")
    if stored is None:
        raise UsageError(f"study {study.study_name!r} has no medslim config; was it made by run?")
    target = trials if trials is not None else study.user_attrs.get(TARGET_ATTR)
    if target is None:
        raise UsageError(f"study {study.study_name!r} stores no target; pass --trials")
    config = StudyConfig.from_stored(
        stored, storage=storage, study=study.study_name, trials=target, **run_settings
    )
    session = prepare(config, log=log)
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


def work(
    session: Session,
    interrupts: Interrupts,
    *,
    poll: float = POLL_S,
    on_trial: Callable[[int], None] | None = None,
) -> int:
    """Run trials until the study holds `config.trials` finished ones; returns how many ran.

    A trial starts only while finished + running trials fall short of the target. When the
    rest are running elsewhere, the worker waits: they finish, or (RDB storages) their
    heartbeats stop and they are failed and queued again, to be run here or by another.
    """
    study = session.study
    target = session.config.trials or 0
    heartbeats = "://" in session.config.storage
    gate = _Gate(make_objective(session), target, interrupts)
    attempts = 3 * max(1, target - finished_count(study))  # room for failed trials
    ran = 0
    while ran < attempts:
        interrupts.check()
        complete, running = _count(study)
        if complete >= target:
            break
        if complete + running >= target:
            if not heartbeats:  # a dead worker's trial would never be released
                break
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            with interrupts.allowed():
                time.sleep(poll)
            continue
        gate.surplus = False
        study.optimize(gate, n_trials=1, catch=(Exception,))
        if gate.surplus:  # another worker started at the same moment: back off, look again
            with interrupts.allowed():
                time.sleep(random.uniform(0, 2 * poll))
        else:
            ran += 1
            if on_trial is not None:
                on_trial(finished_count(study))
    return ran


def run_here(session: Session, *, progress: bool) -> None:
    """One worker in this process (`--workers 1`), with a progress bar: the same loop, so it
    stops at exactly the target even when workers from other machines join."""
    bar = _progress_bar(finished_count(session.study), session.config.trials or 0, progress)
    try:
        with Interrupts() as interrupts:
            work(session, interrupts, on_trial=lambda done: bar.update(done - bar.n))
    finally:
        bar.close()


class _Gate:
    """The objective, run only if this trial is not one too many: after it is RUNNING,
    finished + running trials must not exceed the target. Two trials started at once may
    both step back (then both try again), but never both run past the target."""

    def __init__(
        self, objective: Callable[[optuna.Trial], Any], target: int, interrupts: Interrupts
    ) -> None:
        self.objective = objective
        self.target = target
        self.interrupts = interrupts
        self.surplus = False

    def __call__(self, trial: optuna.Trial) -> Any:
        self.interrupts.check()  # Ctrl-C while the trial was asked for: recorded as FAIL
        live = trial.study.get_trials(
            deepcopy=False,
            states=(TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING),
        )
        # A queued retry of a dead worker's trial is owed a place: it is popped before any
        # new trial, so a new trial that would crowd it out steps back instead.
        live = [t for t in live if t.state != TrialState.WAITING or _is_retry(t)]
        if len(live) > self.target:
            self.surplus = True
            _requeue(trial.study, next(t for t in live if t.number == trial.number))
            trial.set_user_attr("surplus", True)
            raise optuna.TrialPruned("not needed: the study holds enough trials")
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        with self.interrupts.allowed():
            return self.objective(trial)


def _is_retry(trial: FrozenTrial) -> bool:
    """Queued by the heartbeat's retry callback for a failed trial."""
    return "failed_trial" in trial.system_attrs


def _requeue(study: optuna.Study, trial: FrozenTrial) -> None:
    """Put back a queued trial (a baseline, a retry) that stepped back, so it is not lost."""
    params = {**trial.system_attrs.get("fixed_params", {}), **trial.params}
    if params:
        study.enqueue_trial(params, user_attrs=trial.user_attrs)


def _count(study: optuna.Study) -> tuple[int, int]:
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    return complete, len(trials) - complete


def _progress_bar(done: int, target: int, show: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=target, initial=done, desc="finished trials", unit="trial", disable=not show)
