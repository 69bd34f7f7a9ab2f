"""Which methods a study runs, and which one each trial runs.

A study's `method` setting is one registered method (`prune`), several separated by commas
(`prune,lowrank`), `all` (every registered method on one front) or `both` (prune and
distill, as studies have named them since students existed). With several, a trial's first
choice is the parameter `method`, and the rest of its space is conditional on it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from medslim.search.methods.base import METHOD_PARAM, METHODS, Method

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)

ALL = "all"
GROUPS = {"both": ("prune", "distill")}
"""Names of sets of methods (kept for the studies that use them)."""
KEPT_PARAM = "method.kept"
"""Trial parameter once a method dropped out and several remain."""
CHANCES = 6
"""Finished trials (seeds included) of a method that drops out after which some must have
reached the front for the study to go on paying for it."""


def study_methods(setting: str) -> tuple[str, ...]:
    """The methods a study of `method=setting` runs, in the order its trials choose from
    (raises a `UsageError` with the closest name for an unknown one)."""
    if setting in GROUPS:
        return GROUPS[setting]
    if setting == ALL:
        return tuple(METHODS.names())
    names = tuple(dict.fromkeys(n.strip() for n in setting.split(",") if n.strip()))
    for name in names:
        METHODS.get(name)
    return names


def method_choices() -> list[str]:
    """What `method` may be besides a comma-separated list: each method, `all`, `both`."""
    return [*METHODS.names(), ALL, *GROUPS]


def methods_of(setting: str) -> list[Method]:
    return [METHODS.get(name) for name in study_methods(setting)]


def draw_method(trial: optuna.Trial, names: tuple[str, ...]) -> Method:
    """The study's method, or the trial's first choice when the study runs several. A method
    that drops out (`Method.drops_out`) and has lost is no longer offered to unseeded trials
    (students trained from scratch on a few hundred images can cost half a study's budget
    and never compete: none reached the front on BreastMNIST in three runs)."""
    if len(names) == 1:
        return METHODS.get(names[0])
    seeded = trial.user_attrs.get("baseline") is not None  # its method is fixed already
    if not seeded:
        lost = {n for n in names if METHODS.get(n).drops_out and method_lost(trial.study, n)}
        if lost:
            rest = tuple(n for n in names if n not in lost)
            if len(rest) == 1:
                return METHODS.get(rest[0])
            return METHODS.get(str(trial.suggest_categorical(KEPT_PARAM, rest)))
    return METHODS.get(str(trial.suggest_categorical(METHOD_PARAM, names)))


def method_lost(study: optuna.Study, name: str) -> bool:
    """Whether `CHANCES` trials of method `name` finished and none is on the study's front;
    the first time, the study keeps the finished count in the method's `stopped_attr`."""
    import optuna

    from medslim.search.records import trial_record

    finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    mine = [t for t in finished if trial_record(t).get("method") == name]
    if len(mine) < CHANCES:
        return False
    front = {t.number for t in study.best_trials}
    if any(t.number in front for t in mine):
        return False
    method = METHODS.get(name)
    if not study.user_attrs.get(method.stopped_attr):
        logger.info(
            "no %s reached the front in %d trials: the rest of the budget goes to the other "
            "methods",
            method.title,
            len(mine),
        )
        study.set_user_attr(method.stopped_attr, len(finished))
    return True
