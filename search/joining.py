"""Opening a study that other processes may be making, or running, at the same moment.

Two first runs of one study race to make it: exactly one makes it (describes it, keeps its
teacher, enqueues its seeds), the other waits until that is done and joins. A run that joins
a study whose trials other processes are running samples with a fresh seed, so that the two
do not propose the same trials.
"""

from __future__ import annotations

import logging
import random
import time
from typing import NamedTuple

import optuna
from optuna.samplers import BaseSampler
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from medslim.errors import StorageError
from medslim.search.config import ResolvedConfig

logger = logging.getLogger(__name__)

SETUP_WAIT_S = 300.0
"""How long a run that lost the race waits for the other to set the study up (its teacher
may be uploading)."""
POLL_S = 0.5
CONFIG_ATTR = "config"


class Opened(NamedTuple):
    study: optuna.Study
    made: bool  # this process made it: describe it and enqueue its seeds
    raced: bool  # another process made it a moment ago


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
    """The study `config.study`: `found` (made again if a stopped first run left it without
    a config), or made now; if another process makes it first, joined once it is set up."""
    if found is not None:
        found.sampler = sampler
        return Opened(found, CONFIG_ATTR not in found.user_attrs, False)
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
    _wait_until_set_up(study)
    return Opened(study, False, True)


def _wait_until_set_up(study: optuna.Study) -> None:
    deadline = time.monotonic() + SETUP_WAIT_S
    while CONFIG_ATTR not in study.user_attrs:
        if time.monotonic() > deadline:
            raise StorageError(
                f"study {study.study_name!r} was made by another run that has not set it up "
                f"in {SETUP_WAIT_S:.0f} s; run again once it has, or use another --study"
            )
        time.sleep(POLL_S)


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
