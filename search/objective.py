"""The objective every trial runs: prune the teacher or distill a student (as the study's
method says), score it on the validation split, store its result and its model."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import optuna
from torch import nn

from medslim.objectives.crossval import cross_validate, cv_folds
from medslim.objectives.data import Dataset
from medslim.objectives.evaluate import Budget, Scores, evaluate_pruning
from medslim.search.methods import StudentTrials, kd_finetune_loss, sample_method
from medslim.search.records import record_result
from medslim.search.screening import Screen
from medslim.search.session import Session, budget_for
from medslim.search.trial_models import save_trial_model
from medslim.spaces.sparsity import PruningPlan, sample_plan


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

    def objective(trial: optuna.Trial) -> tuple[float, ...]:
        method = sample_method(trial, config.method)
        # `base`: the blueprint a saved model is rebuilt from (the student's, or the teacher's).
        choices: dict[str, Any] = {}
        screen = None
        if method == "distill":
            base, settings = students.sample(trial)  # pruned here, untrained, if unusable
            evaluate = partial(students.evaluate, base, settings)
        else:
            plan = sample_plan(trial, space, session.unit_names)
            choices["plan"] = plan.describe()
            base = session.teacher_blueprint
            if config.screen is not None:
                screen = Screen(trial, session.data, config.screen)
            evaluate = partial(
                evaluate_pruning,
                session.teacher,
                plan,
                session.data,
                budget,
                loss=kd,
                screen=screen,
            )
            if folds:
                evaluate = partial(_cross_validated, trial, session.teacher, plan, budget, folds)
        try:
            model, scores = evaluate(seed=config.seed + trial.number)
        except optuna.TrialPruned:
            raise
        except Exception as error:  # recorded on the trial as FAIL; the study goes on
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
        record_result(trial, result)
        save_trial_model(trial, model, base, session.artifacts)
        if max_flops is not None:
            trial.set_constraint("max_flops", scores.flops - max_flops)
        if config.min_auc is not None:
            trial.set_constraint("min_auc", config.min_auc - scores.val_auc)
        return tuple(float(result[name]) for name in config.objectives)

    return objective


def _cross_validated(
    trial: optuna.Trial,
    teacher: nn.Module,
    plan: PruningPlan,
    budget: Budget,
    folds: list[Dataset],
    *,
    seed: int,
) -> tuple[nn.Module, Scores]:
    """`--cv K`: the trial's val scores are K-fold means over train+val; each fold's AUC is
    kept on the trial."""

    def one_fold(fold: Dataset, fold_seed: int) -> tuple[nn.Module, Scores]:
        return evaluate_pruning(teacher, plan, fold, budget, seed=fold_seed)

    model, scores, fold_aucs = cross_validate(one_fold, folds, seed)
    trial.set_user_attr("cv_fold_auc", fold_aucs)
    return model, scores
