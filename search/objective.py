"""The objective every trial runs: draw the trial's method (`methods`), let it sample and
build its model, score it on the validation split (and, where the study deploys, export,
convert and measure it: `deployment`), store its result and its model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from medslim.objectives.crossval import cv_folds
from medslim.search.deployment import Deployment
from medslim.search.methods import TrialShared, draw_method, methods_of, study_methods
from medslim.search.pruning_trials import SCREENING_KEY
from medslim.search.records import record_result
from medslim.search.screening import Screen
from medslim.search.session import Session, budget_for
from medslim.search.student_trials import kd_finetune_loss
from medslim.search.trial_models import save_screening, save_trial_model, save_trial_onnx


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
    deployment = Deployment(session) if config.deploys else None

    def objective(trial: optuna.Trial) -> tuple[float, ...]:
        method = draw_method(trial, names)
        precision = deployment.precision(trial) if deployment is not None else None
        screen = None
        if config.screen is not None and method.screens:
            screen = Screen(trial, session.data, config.screen)
        prepared = runners[method.name].prepare(trial, screen)  # may prune the trial here
        choices = prepared.choices
        deployed = None
        try:
            model, scores = prepared.evaluate(seed=config.seed + trial.number)
            if deployment is not None and precision is not None:
                deployed = deployment.measure(trial, model, precision)
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
        if deployed is not None:  # scored and measured as the file it deploys as
            result.update(fp32_scores(result, deployed.record), **deployed.record)
        screening = result.pop(SCREENING_KEY, None)
        record_result(trial, result)
        save_trial_model(trial, model, prepared.base, session.artifacts)
        if deployed is not None and deployment is not None:
            save_trial_onnx(trial, deployed.data, session.artifacts)
            for name, value in deployment.constraints(deployed.record).items():
                trial.set_constraint(name, value)
        if screening is not None:
            save_screening(trial, screening, session.artifacts)
        if max_flops is not None:
            trial.set_constraint("max_flops", scores.flops - max_flops)
        if config.min_auc is not None:
            trial.set_constraint("min_auc", config.min_auc - float(result["val_auc"]))
        return tuple(float(result[name]) for name in config.objectives)

    return objective


def fp32_scores(result: dict[str, Any], deployed: dict[str, Any]) -> dict[str, Any]:
    """The PyTorch model's val scores, kept beside a converted file's own."""
    if "val_auc" not in deployed:
        return {}
    return {"fp32_val_auc": result["val_auc"], "fp32_val_acc": result["val_acc"]}
