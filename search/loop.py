"""The one study loop: `medslim run`, `medslim worker`, `medslim.run(...)` and the
benchmarks all optimise through `run_trials`.

It runs trials until the study holds exactly the target number of finished ones, never
more, whoever else works on the same study: a trial starts only while finished + running
trials fall short of the target; when the rest are running elsewhere the loop waits, and on
an RDB storage a trial whose heartbeats stopped (its worker died) is failed and queued
again, to be run here or by another worker. A journal file has no heartbeats, so a RUNNING
trial of a process on this machine that no longer runs is failed and queued again instead.
Ctrl-C and SIGTERM interrupt only where that is safe (`Interrupts`): the running trial is
recorded as FAIL and queued again, so no trial is left RUNNING and none is lost.
"""

from __future__ import annotations

import logging
import random
import signal
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from medslim.errors import DiskFull
from medslim.files import is_disk_full
from medslim.search import signals
from medslim.search.cpu_share import running_trials_here
from medslim.search.methods import methods_of
from medslim.search.objective import make_objective
from medslim.search.orphans import (
    REQUEUED_ATTR,
    release_dead_trials,
    requeue,
    say_elsewhere,
    worker_name,
)
from medslim.search.progress import TrialProgress, lines_above_bar
from medslim.search.session import Session
from medslim.search.storage import full_disk_error, storage_file

logger = logging.getLogger(__name__)

POLL_S = 1.0
FAILURES_PER_TRIAL = 3
"""Attempts allowed per missing trial before the loop gives up: room for failed trials."""
PRUNED_PER_TRIAL = 10
"""The same where trials may stop early on purpose (screening, rejected students)."""


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna logs every trial (and its dozens of ratios) at INFO; medslim reports progress
    itself, so Optuna says only warnings while a study is prepared and run."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def finished_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


class Interrupts:
    """SIGINT and SIGTERM handling for a process that runs trials. Either interrupts at once
    only where that is safe: inside the objective (Optuna records the trial as FAIL), while
    waiting, or while joining. Elsewhere (Optuna asking for or telling a trial, counting
    trials) it takes effect at the next safe point, so no trial is left RUNNING and no
    database session is cut in half. Later signals are ignored. Outside the main thread,
    where Python installs no handlers, nothing changes."""

    def __init__(self) -> None:
        self.requested = False
        self.interruptible = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Interrupts:
        if signals.in_main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in signals.STOP_SIGNALS}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            return
        signals.note(signum)
        self.requested = True
        if self.interruptible:
            raise KeyboardInterrupt

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    @contextmanager
    def silencing_optuna(self) -> Iterator[None]:
        """Optuna's own "Trial N failed" lines (its parameters, then a traceback) are dropped:
        medslim says each failed trial in one line with its reason (`progress`). Once a stop
        is requested, every Optuna line is: the command says what happened in one line."""
        handlers = logging.getLogger("optuna").handlers

        def shown(record: logging.LogRecord) -> bool:
            if self.requested:
                return False
            text = record.getMessage()
            return not (text.startswith("Trial ") and " failed" in text)

        for handler in handlers:
            handler.addFilter(shown)
        try:
            yield
        finally:
            for handler in handlers:
                handler.removeFilter(shown)

    @contextmanager
    def allowed(self) -> Iterator[None]:
        self.check()
        self.interruptible = True
        try:
            yield
        finally:
            self.interruptible = False


def run_trials(
    session: Session,
    *,
    progress: bool | None = None,
    poll: float = POLL_S,
    on_trial: Callable[[FrozenTrial], None] | None = None,
) -> int:
    """Run trials until the study holds `config.trials` finished ones; returns how many ran.

    `progress`: a progress bar on stderr (None: only when stderr is a terminal; elsewhere a
    log line per finished trial). `on_trial` sees every trial this loop ran, once it is
    finished, failed or pruned. The first write that finds no space (the artifact store,
    the storage file) stops the study with `DiskFull`: every later trial would fail alike.
    """
    with Interrupts() as interrupts, interrupts.silencing_optuna(), running_trials_here():
        return _run(session, interrupts, progress=progress, poll=poll, on_trial=on_trial)


def _run(
    session: Session,
    interrupts: Interrupts,
    *,
    progress: bool | None,
    poll: float,
    on_trial: Callable[[FrozenTrial], None] | None,
) -> int:
    study = session.study
    config = session.config
    target = config.trials
    heartbeats = "://" in config.storage
    if not heartbeats:
        release_dead_trials(study, session.storage)
    gate = _Gate(make_objective(session), target, interrupts)
    complete, _ = _count(study)
    stops_early = config.screen is not None or any(m.rejects for m in methods_of(config.method))
    attempts = (PRUNED_PER_TRIAL if stops_early else FAILURES_PER_TRIAL) * max(
        1, target - complete
    )
    shown = TrialProgress(study, complete, target, progress)
    ran = 0
    try:
        with lines_above_bar(shown.visible):
            while ran < attempts:
                interrupts.check()
                if not gate.room:  # else the last trial's gate saw room for this one already
                    complete, running = _count(study)
                    if complete >= target:
                        break
                    if complete + running >= target:
                        if heartbeats:
                            with warnings.catch_warnings():
                                warnings.simplefilter(
                                    "ignore", optuna.exceptions.ExperimentalWarning
                                )
                                optuna.storages.fail_stale_trials(study)
                        else:
                            owners = release_dead_trials(study, session.storage)
                            if owners.released:
                                continue
                            if not owners.alive:
                                say_elsewhere(owners.elsewhere, complete, target)
                                break
                        shown.waiting(complete)
                        with interrupts.allowed():
                            time.sleep(poll)
                        continue
                study.optimize(gate, n_trials=1, catch=(Exception,), callbacks=[gate.finished])
                if gate.fatal is not None:
                    raise gate.fatal.with_trials_left(target - finished_count(study))
                if gate.surplus:  # another worker started at the same moment: back off
                    with interrupts.allowed():
                        time.sleep(random.uniform(0, 2 * poll))
                    continue
                ran += 1
                trial = gate.trial
                if trial is None:  # Optuna calls its callbacks for every trial it ran
                    raise RuntimeError("study.optimize returned without running a trial")
                shown.trial(trial)
                if on_trial is not None:
                    on_trial(trial)
    except DiskFull:
        raise
    except Exception as error:  # the storage's disk: its trial is given back if it can be
        if not is_disk_full(error):
            raise
        gate.give_back(study, session.storage, error)
        raise storage_full(session, error) from error
    finally:
        shown.close()
    return ran


class _Gate:
    """The objective, run only if this trial is not one too many: after it is RUNNING,
    finished + running trials (and queued retries, which are owed a place) must not exceed
    the target. Two trials started at once may both step back (then both try again), but
    never both run past the target.

    A trial that a signal stops is queued again while it is still RUNNING, before Optuna
    marks it FAIL: whoever counts the study in between sees the trial or its queued copy,
    never neither, so no other worker's fresh trial can take its place.

    It also remembers what the loop needs next: whether this trial stepped back (`surplus`),
    whether its check left room for another trial (`room`: then the loop starts the next
    one without counting again; a trial that finds the room taken steps back), the finished
    trial itself (`finished`, Optuna's callback), and a failure that must stop the study
    (`fatal`: a full disk)."""

    def __init__(
        self, objective: Callable[[optuna.Trial], Any], target: int, interrupts: Interrupts
    ) -> None:
        self.objective = objective
        self.target = target
        self.interrupts = interrupts
        self.surplus = False
        self.room = False
        self.trial: FrozenTrial | None = None
        self.fatal: DiskFull | None = None
        self.current: int | None = None
        self.worker = worker_name()

    def __call__(self, trial: optuna.Trial) -> Any:
        self.surplus = self.room = False
        self.current = trial.number
        try:
            self.interrupts.check()  # Ctrl-C while the trial was asked for: recorded as FAIL
            if self._one_too_many(trial):
                self.surplus = True
                requeue(trial.study, _frozen(trial))
                trial.set_user_attr("surplus", True)
                raise optuna.TrialPruned("not needed: the study holds enough trials")
            trial.set_user_attr("worker", self.worker)
            with self.interrupts.allowed():
                return self.objective(trial)
        except KeyboardInterrupt:
            requeue(trial.study, _frozen(trial), owed=True)
            raise
        except DiskFull as error:
            self.fatal = error
            _note_failure(trial, error)
            raise
        except optuna.TrialPruned:
            raise
        except Exception as error:
            _note_failure(trial, error)
            raise

    def _one_too_many(self, trial: optuna.Trial) -> bool:
        live = trial.study.get_trials(
            deepcopy=False,
            states=(TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING),
        )
        # A queued retry (of a dead worker's trial, or one a signal stopped) is owed a place:
        # it is popped before any new trial, so a new trial that would crowd it out steps
        # back instead.
        live = [t for t in live if t.state != TrialState.WAITING or is_owed(t)]
        self.room = len(live) < self.target
        return len(live) > self.target

    def finished(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.trial = trial
        self.current = None

    def give_back(self, study: optuna.Study, storage: BaseStorage, error: Exception) -> None:
        """The storage failed mid-trial (its disk is full): queue the trial again and mark
        it FAIL with the reason, where the storage still takes that much; else it stays
        RUNNING until its heartbeats are missed (or, on a journal file, its process is
        found gone), and is retried then."""
        if self.current is None:
            return
        try:
            trial = study.get_trials(deepcopy=False)[self.current]
            if trial.state != TrialState.RUNNING:
                return
            requeue(study, trial, owed=True)
            study_id = storage.get_study_id_from_name(study.study_name)
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            storage.set_trial_user_attr(
                trial_id, "fail_reason", f"{type(error).__name__}: {error}"
            )
            study.tell(trial.number, state=TrialState.FAIL)
        except Exception:  # no room even for that
            pass


def _frozen(trial: optuna.Trial) -> FrozenTrial:
    """The trial as stored now (its parameters so far, the queued ones it was given)."""
    return trial.study.get_trials(deepcopy=False)[trial.number]


def _note_failure(trial: optuna.Trial, error: Exception) -> None:
    """The reason on the failed trial, unless the objective gave one (a storage with no
    space left cannot take it)."""
    try:
        if "fail_reason" not in _frozen(trial).user_attrs:
            trial.set_user_attr("fail_reason", f"{type(error).__name__}: {error}")
    except Exception as storing:
        if not is_disk_full(storing):
            raise


EMPTY_SQLITE = 112 * 1024
"""An Optuna SQLite file with its tables and no study (measured: 114,688 bytes)."""


def storage_full(session: Session, error: Exception) -> DiskFull:
    """The storage's disk is full (or a cache's: `storage.full_disk_error`); for the
    storage's own file, about what the trials still to run would add (its growth per trial
    so far)."""
    full = full_disk_error(error, session.config.storage)
    path = storage_file(session.config.storage)
    if path is None or full.path != str(path) or not path.is_file():
        return full
    try:
        trials = session.study.get_trials(deepcopy=False)
        left = session.config.trials - sum(t.state == TrialState.COMPLETE for t in trials)
    except Exception:  # the storage may not even answer now
        return full
    empty = EMPTY_SQLITE if session.config.storage.startswith("sqlite") else 0
    growth = max(0, path.stat().st_size - empty) // max(1, len(trials))
    return full.with_trials_left(left, per_trial=max(growth, 4096))


def is_owed(trial: FrozenTrial) -> bool:
    """A queued retry: of a failed trial (heartbeat retries) or of a stopped one."""
    return "failed_trial" in trial.system_attrs or REQUEUED_ATTR in trial.user_attrs


def _count(study: optuna.Study) -> tuple[int, int]:
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    return complete, len(trials) - complete
