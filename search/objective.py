"""The objective every trial runs: prune the teacher (`pruning_trials`) or distill a student
(as the study's method says), score it on the validation split, store its result and its
model."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import optuna

from medslim.objectives.crossval import cv_folds
from medslim.search.methods import StudentTrials, kd_finetune_loss, sample_method
from medslim.search.pruning_trials import SCREENING_KEY, Evaluate, PruningTrials
from medslim.search.records import record_result
from medslim.search.screening import Screen
from medslim.search.session import Session, budget_for
from medslim.search.trial_models import save_screening, save_trial_model


def make_objective(session: Session) -> Callable[[optuna.Trial], tuple[float, ...]]:
    """The study's objective: (val_auc, val_acc, flops), as many as the study optimises."""
    config = session.config
    space = session.space
    budget = budget_for(config)
    folds = cv_folds(session.data, config.cv, config.seed) if config.cv else []
    max_flops = config.max_flops
    if max_flops is not None and max_flops <= 1.0:  # a fraction of the teacher's FLOPs
        max_flops = max_flops * session.teacher_flops
    kd = kd_finetune_loss(session) if config.kd else None
    students = StudentTrials(session, budget, max_flops)
    pruning = PruningTrials(
        session.teacher,
        session.data,
        space,
        session.unit_names,
        budget,
        session.allocations,
        seed=config.seed,
        loss=kd,
        folds=folds,
    )

    def objective(trial: optuna.Trial) -> tuple[float, ...]:
        method = sample_method(trial, config.method)
        # `base`: the blueprint a saved model is rebuilt from (the student's, or the teacher's).
        choices: dict[str, Any] = {}
        screen = None
        evaluate: Evaluate
        if method == "distill":
            base, settings = students.sample(trial)  # pruned here, untrained, if unusable
            evaluate = partial(students.evaluate, base, settings)
        else:
            base = session.teacher_blueprint
            if config.screen is not None:
                screen = Screen(trial, session.data, config.screen)
            evaluate, choices = pruning.prepare(trial, screen)
        try:
            model, scores = evaluate(seed=config.seed + trial.number)
        except optuna.TrialPruned:
            raise
        except Exception as error:  # recorded on the trial as FAIL; the study goes on
            choices.pop(SCREENING_KEY, None)
            record_result(trial, {"method": method, **choices})
            trial.set_user_attr("fail_reason", f"{type(error).__name__}: {error}")
            raise
        result = {
            "method": method,
            **choices,
            **(screen.record() if screen is not None else {}),
            **scores.as_dict(),
            "flops_ratio": scores.flops / session.teacher_flops,
        }
        screening = result.pop(SCREENING_KEY, None)
        record_result(trial, result)
        save_trial_model(trial, model, base, session.artifacts)
        if screening is not None:
            save_screening(trial, screening, session.artifacts)
        if max_flops is not None:
            trial.set_constraint("max_flops", scores.flops - max_flops)
        if config.min_auc is not None:
            trial.set_constraint("min_auc", config.min_auc - scores.val_auc)
        return tuple(float(result[name]) for name in config.objectives)

    return objective
