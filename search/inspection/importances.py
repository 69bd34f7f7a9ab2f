"""Which choices mattered for val AUC, asked within each method.

With several methods a single importance over all trials is dominated by `method` itself
(pruned and distilled trials have disjoint parameters), which says nothing a reader can
use. So each method's trials are asked about their own parameters (pruned trials about
their target and allocation, distilled trials about their student and distillation
knobs), each with fANOVA over that method's finished trials.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import optuna
from optuna.trial import TrialState

from medslim.search.inspection.names import param_label
from medslim.search.methods import METHOD_PARAM, get_method
from medslim.search.methods.choice import KEPT_PARAM
from medslim.search.records import trial_record

MIN_TRIALS = 4
"""Fewer finished trials of a method make its importances meaningless (or fail)."""


@dataclass(frozen=True)
class MethodImportances:
    method: str
    trials: int
    importances: dict[str, float] = field(default_factory=dict)
    """Display name (`offset.<group>`, `student.stage1.width`, ...) → share of variance,
    largest first; empty when `reason` says why there are none."""
    reason: str = ""

    @property
    def title(self) -> str:
        return get_method(self.method).title


def importances_by_method(study: optuna.Study) -> list[MethodImportances]:
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    by_method: dict[str, list[optuna.trial.FrozenTrial]] = {}
    for trial in trials:
        by_method.setdefault(str(trial_record(trial)["method"]), []).append(trial)
    return [_importances(study, m, by_method[m]) for m in sorted(by_method, reverse=True)]


def _importances(
    study: optuna.Study, method: str, trials: list[optuna.trial.FrozenTrial]
) -> MethodImportances:
    if len(trials) < MIN_TRIALS:
        return MethodImportances(
            method, len(trials), reason=f"needs at least {MIN_TRIALS} finished trials"
        )
    shared = set.intersection(*(set(t.params) for t in trials)) - {METHOD_PARAM, KEPT_PARAM}
    varied = sorted(p for p in shared if len({t.params[p] for t in trials}) > 1)
    if not varied:
        return MethodImportances(method, len(trials), reason="no parameter varied")
    numbers = {t.number for t in trials}

    def val_auc(trial: optuna.trial.FrozenTrial) -> float:
        # trials of the other method lack these parameters, so Optuna leaves them out anyway
        return float(trial_record(trial)["val_auc"]) if trial.number in numbers else float("nan")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = optuna.importance.get_param_importances(
                study,
                evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
                params=varied,
                target=val_auc,
            )
    except (RuntimeError, ValueError) as error:
        return MethodImportances(method, len(trials), reason=str(error))
    return MethodImportances(method, len(trials), {param_label(k): v for k, v in values.items()})
