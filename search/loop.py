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
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from medslim.search import signals
from medslim.search.methods import methods_of
from medslim.search.objective import make_objective
from medslim.search.orphans import release_dead_trials, requeue, say_elsewhere, worker_name
from medslim.search.records import trial_record
from medslim.search.screening import was_screened_out
from medslim.search.session import Session

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
        """Once a stop is requested, Optuna's own lines (the stopped trial "failed", with a
        traceback) are dropped: the command says what happened in one line."""
        handlers = logging.getLogger("optuna").handlers

        def until_stopped(record: logging.LogRecord) -> bool:
            return not self.requested

        for handler in handlers:
            handler.addFilter(until_stopped)
        try:
            yield
        finally:
            for handler in handlers:
                handler.removeFilter(until_stopped)

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

    `progress`: a progress bar on stderr (None: only when stderr is a terminal).
    `on_trial` sees every trial this loop ran, once it is finished, failed or pruned.
    """
    with Interrupts() as interrupts, interrupts.silencing_optuna():
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
    bar = progress_bar(complete, target, progress)
    screened = ran = 0
    try:
        while ran < attempts:
            interrupts.check()
            if not gate.room:  # else the last trial's gate saw room for this one already
                complete, running = _count(study)
                bar.update(complete - bar.n)
                if complete >= target:
                    break
                if complete + running >= target:
                    if heartbeats:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                            optuna.storages.fail_stale_trials(study)
                    else:
                        owners = release_dead_trials(study, session.storage)
                        if owners.released:
                            continue
                        if not owners.alive:
                            say_elsewhere(owners.elsewhere, complete, target)
                            break
                    with interrupts.allowed():
                        time.sleep(poll)
                    continue
            try:
                study.optimize(gate, n_trials=1, catch=(Exception,), callbacks=[gate.finished])
            except KeyboardInterrupt:
                gate.requeue_interrupted(study)
                raise
            if gate.surplus:  # another worker started at the same moment: back off, look again
                with interrupts.allowed():
                    time.sleep(random.uniform(0, 2 * poll))
                continue
            ran += 1
            trial = gate.trial
            if trial is None:  # Optuna calls its callbacks for every trial it ran
                raise RuntimeError("study.optimize returned without running a trial")
            screened += was_screened_out(trial)
            if trial.state == TrialState.COMPLETE:
                note = f", {screened} screened out" if screened else ""
                bar.update(1)
                bar.set_postfix_str(_postfix(trial) + note, refresh=False)
            if on_trial is not None:
                on_trial(trial)
        bar.update(finished_count(study) - bar.n)
    finally:
        bar.close()
    return ran


class _Gate:
    """The objective, run only if this trial is not one too many: after it is RUNNING,
    finished + running trials must not exceed the target. Two trials started at once may
    both step back (then both try again), but never both run past the target.

    It also remembers what the loop needs next: whether this trial stepped back (`surplus`),
    whether its check left room for another trial (`room`: then the loop starts the next
    one without counting again; a trial that finds the room taken steps back), and the
    finished trial itself (`finished`, Optuna's callback)."""

    def __init__(
        self, objective: Callable[[optuna.Trial], Any], target: int, interrupts: Interrupts
    ) -> None:
        self.objective = objective
        self.target = target
        self.interrupts = interrupts
        self.surplus = False
        self.room = False
        self.trial: FrozenTrial | None = None
        self.running: int | None = None
        self.worker = worker_name()

    def __call__(self, trial: optuna.Trial) -> Any:
        self.surplus = self.room = False
        self.running = trial.number
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
            requeue(trial.study, next(t for t in live if t.number == trial.number))
            trial.set_user_attr("surplus", True)
            raise optuna.TrialPruned("not needed: the study holds enough trials")
        self.room = len(live) < self.target
        trial.set_user_attr("worker", self.worker)
        with self.interrupts.allowed():
            return self.objective(trial)

    def finished(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.trial = trial
        self.running = None

    def requeue_interrupted(self, study: optuna.Study) -> None:
        """The trial a signal stopped is FAIL; queue its parameters again, so a resumed study
        still runs every baseline and seed (and any trial it was in the middle of)."""
        if self.running is None:
            return
        requeue(study, study.get_trials(deepcopy=False)[self.running])
        self.running = None


def _is_retry(trial: FrozenTrial) -> bool:
    """Queued by the heartbeat's retry callback for a failed trial."""
    return "failed_trial" in trial.system_attrs


def _count(study: optuna.Study) -> tuple[int, int]:
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    return complete, len(trials) - complete


def _postfix(trial: FrozenTrial) -> str:
    record = trial_record(trial)
    auc = record.get("val_auc", float("nan"))
    ratio = record.get("flops_ratio", float("nan"))
    return f"#{trial.number} AUC {auc:.3f} FLOPs×{ratio:.2f}"


def progress_bar(done: int, target: int, show: bool | None) -> Any:
    """A tqdm bar of finished trials on stderr; `show=None` shows it only on a terminal, so
    a bar never lands in a log file."""
    from tqdm.auto import tqdm

    visible = sys.stderr.isatty() if show is None else show
    return tqdm(
        total=target, initial=done, desc="finished trials", unit="trial", disable=not visible
    )
