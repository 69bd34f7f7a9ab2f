"""Opening a study that other processes may be making, or running, at the same moment.

Two first runs of one study race to make it: exactly one makes it and claims it before it
trains the teacher (describes it, keeps its teacher, enqueues its seeds), the other waits
until that is done, then loads or fetches that teacher and joins. A run that joins a study
whose trials other processes are running samples with a fresh seed, so that the two do not
propose the same trials.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import optuna
from optuna.samplers import BaseSampler
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from medslim.errors import StorageError
from medslim.search.config import ResolvedConfig
from medslim.search.orphans import process_alive, worker_name
from medslim.search.study_format import CLAIM_ATTR, CONFIG_ATTR

logger = logging.getLogger(__name__)

POLL_S = 0.5
CLAIM_BEAT_S = 15.0
CLAIM_STALE_S = 120.0
"""A claim not refreshed for this long is a setup that stopped (its process died)."""


class Opened(NamedTuple):
    study: optuna.Study
    made: bool  # this process sets it up: trains the teacher, describes it, queues its seeds
    raced: bool  # another process set it up a moment ago


def find_study(storage: BaseStorage, name: str) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def open_or_make(
    storage: BaseStorage,
    config: ResolvedConfig,
    sampler: BaseSampler,
    found: optuna.Study | None,
) -> Opened:
    """The study `config.study`: `found`, or made now and claimed, before its teacher is
    trained. A run that finds another setting the study up (it made it first, or claims it
    now) waits until its config is written, so the teacher is trained once; a study left
    without a config by a setup that stopped is claimed and set up again."""
    if found is not None:
        found.sampler = sampler
        if CONFIG_ATTR in found.user_attrs:
            return Opened(found, False, False)
        if _claim_alive(found) and _wait_until_set_up(found):
            return Opened(found, False, True)
        return Opened(found, True, False)
    try:
        study = optuna.create_study(
            study_name=config.study,
            storage=storage,
            sampler=sampler,
            directions=config.directions,
        )
        return Opened(study, True, False)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=config.study, storage=storage, sampler=sampler)
    if _wait_until_set_up(study):
        return Opened(study, False, True)
    return Opened(study, True, False)


@contextmanager
def setting_up(opened: Opened, storage: BaseStorage) -> Iterator[None]:
    """While this run sets up the study it made (trains the teacher, queues the seeds), it
    keeps its claim fresh, so that racing runs wait instead of training the teacher again.
    If the setup fails (bad input, Ctrl-C), the study it made is deleted again: a refused
    run leaves no half-made study behind."""
    if not opened.made:
        yield
        return
    study = opened.study
    stop = threading.Event()
    _claim(study)
    beat = threading.Thread(target=_keep_claim, args=(study, stop), daemon=True)
    beat.start()
    try:
        yield
    except BaseException:
        stop.set()
        beat.join()
        _delete_unfinished(study, storage)
        raise
    stop.set()
    beat.join()


def _claim(study: optuna.Study) -> None:
    study.set_user_attr(CLAIM_ATTR, {"worker": worker_name(), "at": time.time()})


def _keep_claim(study: optuna.Study, stop: threading.Event) -> None:
    while not stop.wait(CLAIM_BEAT_S):
        try:
            _claim(study)
        except Exception:  # the storage hiccuped: the next beat tries again
            logger.debug("could not refresh the claim on study %s", study.study_name)


def _claim_alive(study: optuna.Study) -> bool:
    """Another process is setting the study up now: its claim is fresh, and its process
    runs (where this machine can tell)."""
    claim = study.user_attrs.get(CLAIM_ATTR)
    if not isinstance(claim, dict):
        return False
    if time.time() - float(claim.get("at", 0)) > CLAIM_STALE_S:
        return False
    return process_alive(str(claim.get("worker", ""))) is not False


def _wait_until_set_up(study: optuna.Study) -> bool:
    """Wait while another run sets the study up: True once its config is written, False
    when that run stopped without it (its claim went stale): then this run sets it up."""
    said = False
    while True:
        try:
            attrs = study.user_attrs
        except KeyError as error:  # the setup failed and deleted the study
            raise StorageError(
                f"the run that was making study {study.study_name!r} stopped before setting "
                "it up; run the same command again"
            ) from error
        if CONFIG_ATTR in attrs:
            return True
        if not said and CLAIM_ATTR in attrs:
            logger.info(
                "study %s is being set up by %s (its teacher is trained once): waiting",
                study.study_name,
                attrs[CLAIM_ATTR].get("worker", "another run"),
            )
            said = True
        if CLAIM_ATTR in attrs and not _claim_alive(study):
            logger.warning(
                "the run setting up study %s stopped: this run sets it up", study.study_name
            )
            return False
        time.sleep(POLL_S)


def _delete_unfinished(study: optuna.Study, storage: BaseStorage) -> None:
    """Delete a study this run made and could not set up (best effort: it may be gone)."""
    try:
        if CONFIG_ATTR not in study.user_attrs:
            optuna.delete_study(study_name=study.study_name, storage=storage)
    except Exception:  # the storage itself may be what failed
        logger.debug("could not delete the unfinished study %s", study.study_name)


def choose_sampler_seed(study: optuna.Study, config: ResolvedConfig, raced: bool) -> int:
    """`config.seed`, unless other processes are working on the study right now: then a
    fresh seed (said in the log), so that this run does not repeat their proposals."""
    running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
    if not raced and not running:
        return config.seed
    seed = random.SystemRandom().randrange(2**31)
    logger.info(
        "study %s is being run by other processes (%d running trials): this run samples "
        "with seed %d instead of --seed %d, so that it proposes other trials",
        study.study_name,
        running,
        seed,
        config.seed,
    )
    return seed
