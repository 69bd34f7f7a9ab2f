"""Performance-based pruning (the second seed document): prune one group at a time at a few
ratios, recalibrate batch norm, no fine-tuning, and record the val AUC drop.

The curves tell which groups tolerate cutting; `ceilings_from_curves` turns them into a
per-group ratio ceiling that can shape the search space.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from torch import nn

from medslim.kinds import Pruning
from medslim.objectives.data import Dataset
from medslim.objectives.evaluate import Budget, prune_model, split_scores
from medslim.objectives.training import Recipe
from medslim.spaces.sparsity import PruningPlan

DEFAULT_RATIOS = (0.25, 0.5, 0.75, 0.9)


@dataclass(frozen=True)
class SensitivityCurve:
    unit: str
    ratios: tuple[float, ...]
    val_auc: tuple[float, ...]
    auc_drop: tuple[float, ...]


def sensitivity_curves(
    teacher: nn.Module,
    data: Dataset,
    units: Sequence[str],
    *,
    teacher_auc: float,
    criterion: str = "l1",
    pruning: Pruning = "structured",
    ratios: Sequence[float] = DEFAULT_RATIOS,
    budget: Budget | None = None,
    seed: int = 0,
    on_point: Callable[[str, float, float], None] | None = None,
    score: Callable[[nn.Module], float] | None = None,
) -> list[SensitivityCurve]:
    """One curve per unit, in network order; every other unit stays dense. `score` rates
    each pruned model in place of its val AUC (`teacher_auc` is then the teacher's score)."""
    no_finetune = replace(budget or Budget(), finetune=Recipe(epochs=0))
    curves = []
    for unit in units:
        aucs = []
        for ratio in ratios:
            plan_ratios = {u: (ratio if u == unit else 0.0) for u in units}
            plan = PruningPlan(plan_ratios, criterion, pruning, 1, ratio)
            model = prune_model(teacher, plan, data, no_finetune, seed=seed)
            auc = score(model) if score else split_scores(model, data.val, data.task)[0]
            aucs.append(auc)
            if on_point is not None:
                on_point(unit, ratio, auc)
        curves.append(
            SensitivityCurve(
                unit, tuple(ratios), tuple(aucs), tuple(teacher_auc - a for a in aucs)
            )
        )
    return curves


def ceilings_from_curves(
    curves: Sequence[SensitivityCurve], max_drop: float, floor: float
) -> dict[str, float]:
    """Per unit, the largest tested ratio whose AUC drop stays within `max_drop` (at least
    `floor`, so no group is frozen by one noisy point)."""
    ceilings = {}
    for curve in curves:
        tolerated = [r for r, d in zip(curve.ratios, curve.auc_drop, strict=True) if d <= max_drop]
        ceilings[curve.unit] = max([floor, *tolerated])
    return ceilings
