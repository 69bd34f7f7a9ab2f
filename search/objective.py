"""The objective every trial runs: draw the trial's method (`methods`), let it sample and
build its model, score it on the validation split, store its result and its model."""

from __future__ import annotations

from collections.abc import Callable

import optuna

from medslim.objectives.crossval import cv_folds
from medslim.search.methods import TrialShared, draw_method, methods_of, study_methods
from medslim.search.pruning_trials import SCREENING_KEY
from medslim.search.records import record_result
from medslim.search.screening import Screen
from medslim.search.session import Session, budget_for
from medslim.search.student_trials import kd_finetune_loss
from medslim.search.trial_models import save_screening, save_trial_model


def make_objective(session: Session) -> Callable[[optuna.Trial], tuple[float, ...]]:
    """The study's objective: (val_auc, val_acc, flops), as many as the study optimises."""
    config = session.config
    max_flops = config.max_flops
    if max_flops is not None and max_flops <= 1.0:  # a fraction of the teacher's FLOPs
        max_flops = max_flops * session.teacher_flops
    shared = TrialShared(
        session,
        budget_for(config),
        max_flops,
        kd_finetune_loss(session) if config.kd else None,
        cv_folds(session.data, config.cv, config.seed) if config.cv else [],
    )
    names = study_methods(config.method)
    runners = {m.name: m.trials(shared) for m in methods_of(config.method)}

    def objective(trial: optuna.Trial) -> tuple[float, ...]:
        method = draw_method(trial, names)
        screen = None
        if config.screen is not None and method.screens:
            screen = Screen(trial, session.data, config.screen)
        prepared = runners[method.name].prepare(trial, screen)  # may prune the trial here
        choices = prepared.choices
        try:
            model, scores = prepared.evaluate(seed=config.seed + trial.number)
        except optuna.TrialPruned:
            raise
        except Exception as error:  # recorded on the trial as FAIL; the study goes on
            choices.pop(SCREENING_KEY, None)
            record_result(trial, {"method": method.name, **choices})
            trial.set_user_attr("fail_reason", f"{type(error).__name__}: {error}")
            raise
        result = {
            "method": method.name,
            **choices,
            **(screen.record() if screen is not None else {}),
            **scores.as_dict(),
            "flops_ratio": scores.flops / session.teacher_flops,
        }
        screening = result.pop(SCREENING_KEY, None)
        record_result(trial, result)
        save_trial_model(trial, model, prepared.base, session.artifacts)
        if screening is not None:
            save_screening(trial, screening, session.artifacts)
        if max_flops is not None:
            trial.set_constraint("max_flops", scores.flops - max_flops)
        if config.min_auc is not None:
            trial.set_constraint("min_auc", config.min_auc - scores.val_auc)
        return tuple(float(result[name]) for name in config.objectives)

    return objective
