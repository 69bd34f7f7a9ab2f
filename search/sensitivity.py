"""`medslim sensitivity` and the sensitivity prior of `run --sensitivity-drop`: one curve per
prunable group, computed once per study and kept in its user attrs."""

from __future__ import annotations

import logging
from dataclasses import asdict

import optuna
from torch import nn

from medslim.kinds import Pruning
from medslim.objectives.data import Dataset
from medslim.objectives.sensitivity import DEFAULT_RATIOS, SensitivityCurve, sensitivity_curves
from medslim.search.study_format import SENSITIVITY_ATTR

logger = logging.getLogger(__name__)


def study_curves(
    study: optuna.Study,
    teacher: nn.Module,
    data: Dataset,
    units: list[str],
    *,
    teacher_auc: float,
    criterion: str,
    pruning: Pruning,
    seed: int,
) -> list[SensitivityCurve]:
    """The study's stored curves, or computed now (prune one group, BN-recalibrate, no
    fine-tuning) and stored, so workers and resumed runs never recompute them."""
    stored = stored_curves(study)
    if stored:
        return stored
    logger.info(
        "sensitivity: %d groups × %d ratios, no fine-tuning ...", len(units), len(DEFAULT_RATIOS)
    )
    curves = sensitivity_curves(
        teacher,
        data,
        units,
        teacher_auc=teacher_auc,
        criterion=criterion,
        pruning=pruning,
        seed=seed,
    )
    study.set_user_attr(SENSITIVITY_ATTR, [asdict(c) for c in curves])
    return curves


def stored_curves(study: optuna.Study) -> list[SensitivityCurve]:
    """The curves kept in the study (empty when no sensitivity analysis ran)."""
    stored = study.user_attrs.get(SENSITIVITY_ATTR, [])
    return [
        SensitivityCurve(
            unit=str(c["unit"]),
            ratios=tuple(c["ratios"]),
            val_auc=tuple(c["val_auc"]),
            auc_drop=tuple(c["auc_drop"]),
        )
        for c in stored
    ]


def format_curves(curves: list[SensitivityCurve], ceilings: dict[str, float] | None) -> str:
    ratios = curves[0].ratios if curves else ()
    header = f"{'group':<28}" + "".join(f"{f'drop@{r:.2f}':>11}" for r in ratios)
    lines = ["val AUC drop when only this group is pruned (BN recalibrated, no fine-tuning)"]
    lines.append(header + (f"{'ceiling':>9}" if ceilings else ""))
    for curve in curves:
        row = f"{curve.unit:<28}" + "".join(f"{d:>+11.4f}" for d in curve.auc_drop)
        if ceilings:
            row += f"{ceilings[curve.unit]:>9.2f}"
        lines.append(row)
    return "\n".join(lines)
