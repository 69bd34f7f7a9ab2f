"""Trials whose process stopped: queued again with their parameters, so that nothing a
study was told to run is lost (an interrupted trial, a baseline that stepped back), and, on
a journal file, which has no heartbeats, RUNNING trials of dead local processes released."""

from __future__ import annotations

import logging
import os
import socket
from typing import NamedTuple

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

logger = logging.getLogger(__name__)


def worker_name() -> str:
    """`host:pid`, kept on every trial a process runs, so a dead one's trials are found."""
    return f"{socket.gethostname()}:{os.getpid()}"


def requeue(study: optuna.Study, trial: FrozenTrial, *, owed: bool = False) -> None:
    """Queue a trial's parameters again (a baseline or retry that stepped back, a trial that
    was interrupted), with what marks it as a seed, so it is not lost: the parameters it was
    queued with (a uniform baseline stays uniform however early it stopped) and those it
    had suggested. `owed`: a stopped trial's copy, which the stopping rule counts (a
    retry), marked with the number of the trial it replaces."""
    params = {**trial.system_attrs.get("fixed_params", {}), **trial.params}
    if params:
        kept = {k: v for k, v in trial.user_attrs.items() if k in QUEUE_ATTRS}
        if owed:
            kept[REQUEUED_ATTR] = trial.number
        study.enqueue_trial(params, user_attrs=kept)


QUEUE_ATTRS = ("baseline", "baseline_ratio")
"""User attrs a queued trial carries (`baseline`: uniform or scaled seed; `baseline_ratio`:
a uniform baseline's ratio in a space of FLOPs targets)."""
REQUEUED_ATTR = "retry_of"
"""User attr of a stopped trial's queued copy: the number of the trial it replaces."""


class Owners(NamedTuple):
    released: int  # trials of dead local processes, now FAIL and queued again
    alive: int  # trials of live processes on this machine
    elsewhere: list[str]  # owners of the rest: other machines, or unknown


def release_dead_trials(study: optuna.Study, storage: BaseStorage) -> Owners:
    """A journal file has no heartbeats: a RUNNING trial whose worker was a process on this
    machine that no longer runs is marked FAIL and queued again."""
    study_id = storage.get_study_id_from_name(study.study_name)
    owners = Owners(0, 0, [])
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = str(trial.user_attrs.get("worker", "an unknown process"))
        alive = process_alive(worker)
        if alive is None:
            owners.elsewhere.append(worker)
        elif alive:
            owners = owners._replace(alive=owners.alive + 1)
        else:
            pid = worker.rpartition(":")[2]
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            requeue(study, trial, owed=True)  # before FAIL: a counter sees one or the other
            try:
                storage.set_trial_state_values(trial_id, TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                _withdraw_copy(study, storage, trial.number)  # another process released it
                continue
            logger.warning(
                "trial %d was left RUNNING by process %s, which no longer runs: marked FAIL "
                "and queued again",
                trial.number,
                pid,
            )
            owners = owners._replace(released=owners.released + 1)
    return owners


def _withdraw_copy(study: optuna.Study, storage: BaseStorage, number: int) -> None:
    """Fail the copy of trial `number` just queued here, another process having queued its
    own (a copy that already runs is left to finish)."""
    study_id = storage.get_study_id_from_name(study.study_name)
    copies = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if t.user_attrs.get(REQUEUED_ATTR) == number
    ]
    if not copies:
        return
    copy_id = storage.get_trial_id_from_study_id_trial_number(study_id, copies[-1].number)
    try:
        storage.set_trial_state_values(copy_id, TrialState.FAIL)
    except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
        pass  # popped and finished meanwhile


def process_alive(worker: str) -> bool | None:
    """Whether the process a `host:pid` worker name names still runs: None when it ran on
    another machine (or the name is not one)."""
    owner, _, pid = worker.rpartition(":")
    if owner != socket.gethostname() or not pid.isdigit():
        return None
    return _alive(int(pid))


def _alive(pid: int) -> bool:
    if pid == os.getpid():  # not running a trial now: an earlier process with this pid
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def say_elsewhere(owners: list[str], complete: int, target: int) -> None:
    """Why a journal-file study stops short: its last trials run where this process cannot
    tell whether they are alive (another machine), and a journal has no heartbeats."""
    logger.warning(
        "%d of %d trials finished; %d RUNNING in %s cannot be checked (a journal file has "
        "no heartbeats): run the same command again when they are done or, if those workers "
        "are gone, with --trials %d to replace them",
        complete,
        target,
        len(owners),
        ", ".join(sorted(set(owners))),
        target + len(owners),
    )
