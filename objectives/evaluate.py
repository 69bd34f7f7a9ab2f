"""Score one candidate: compress a copy of the teacher (prune it, factorize it, or both, as
its plan says), recalibrate, fine-tune, validate.

Nothing here reads the test split; only the Pareto re-scoring does, for front members.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from medslim.kinds import Task
from medslim.objectives.data import Dataset, Split
from medslim.objectives.metrics import (
    acc_score,
    auc_score,
    count_params,
    flops_by_module,
    measure_latency_ms,
    sparse_flops,
)
from medslim.objectives.proxy import ProxySlice, best_index, fidelity
from medslim.objectives.training import (
    BatchLoss,
    Recipe,
    TrainingDiverged,
    predict_scores,
    recalibrate_batchnorm,
    task_loss,
    train,
)
from medslim.spaces.sparsity import make_masks_permanent, pruned_copy

Screen = Callable[[nn.Module], None]
"""Looks at a pruned, not yet fine-tuned model; raises to stop spending on it."""


class Plan(Protocol):
    """What a trial does to a copy of the teacher, in `iterative_steps` steps (a frozen
    dataclass: `PruningPlan`, `RankPlan`, `PrunedRankPlan`)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def iterative_steps(self) -> int: ...

    def compress(
        self,
        model: nn.Module,
        example: torch.Tensor,
        sample_losses: Callable[[nn.Module], torch.Tensor],
    ) -> Iterator[int]:
        """Change `model` in place, yielding after each step (fine-tuned in between)."""
        ...


@dataclass(frozen=True)
class Budget:
    """What one trial may spend: fine-tune recipe (epochs per pruning step), calibration."""

    finetune: Recipe = Recipe(epochs=1)
    bn_batches: int = 8
    calibration_size: int = 64
    latency_repeats: int = 30


@dataclass(frozen=True)
class Scores:
    val_auc: float
    val_acc: float
    flops: int
    sparse_flops: int
    params: int
    nonzero_params: int
    latency_ms: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def split_scores(model: nn.Module, split: Split, task: Task) -> tuple[float, float]:
    """(AUC, ACC) of a model on one split."""
    y_score = predict_scores(model, split, task)
    if not np.isfinite(y_score).all():  # finite losses, then weights too large to evaluate
        raise TrainingDiverged("the model's predictions are not finite")
    y_true = split.y.cpu().numpy()
    return auc_score(y_true, y_score, task), acc_score(y_true, y_score, task)


def score_model(model: nn.Module, data: Dataset, budget: Budget) -> Scores:
    """Validation AUC/ACC, dense and sparse FLOPs, parameters and batch-1 latency."""
    val_auc, val_acc = split_scores(model, data.val, data.task)
    total, nonzero = count_params(model)
    per_module = flops_by_module(model, data.input_shape)
    return Scores(
        val_auc=val_auc,
        val_acc=val_acc,
        flops=sum(per_module.values()),
        sparse_flops=sparse_flops(model, per_module),
        params=total,
        nonzero_params=nonzero,
        latency_ms=measure_latency_ms(model, data.input_shape, repeats=budget.latency_repeats),
    )


def calibration_batch(split: Split, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random subset of the training split for gradient-based criteria."""
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(split), generator=generator)[: min(size, len(split))]
    return split.batch(index), split.labels(index)


def evaluate_pruning(
    teacher: nn.Module,
    plan: Plan,
    data: Dataset,
    budget: Budget,
    *,
    seed: int = 0,
    loss: BatchLoss | None = None,
    screen: Screen | None = None,
) -> tuple[nn.Module, Scores]:
    """Prune a copy of the teacher by `plan` (fine-tuning after each step) and score it;
    `loss` replaces the fine-tuning loss (e.g. with the teacher's soft labels)."""
    model = prune_model(teacher, plan, data, budget, seed=seed, loss=loss, screen=screen)
    return model, score_model(model, data, budget)


@dataclass(frozen=True)
class Screening:
    """Which candidate a trial fine-tuned, and every candidate's proxy score."""

    chosen: int
    proxies: list[float]


def evaluate_candidates(
    teacher: nn.Module,
    plans: Sequence[Plan],
    data: Dataset,
    budget: Budget,
    where: ProxySlice,
    *,
    seed: int = 0,
    loss: BatchLoss | None = None,
    screen: Screen | None = None,
) -> tuple[nn.Module, Scores, Screening]:
    """Screen the candidates, fine-tune and score only the best.

    One pruned in one step keeps going from its screened state; a plan of several steps is
    pruned again step by step once chosen (the proxy saw it pruned at once)."""
    best, screening = screen_candidates(teacher, plans, data, budget, where, seed=seed)
    plan = plans[screening.chosen]
    if plan.iterative_steps > 1:
        model = prune_model(teacher, plan, data, budget, seed=seed, loss=loss, screen=screen)
    else:
        model = _finish(best, data, budget, seed=seed, loss=loss, screen=screen)
    return model, score_model(model, data, budget), screening


def screen_candidates(
    teacher: nn.Module,
    plans: Sequence[Plan],
    data: Dataset,
    budget: Budget,
    where: ProxySlice,
    *,
    seed: int = 0,
    score: Callable[[nn.Module, ProxySlice], float] = fidelity,
) -> tuple[nn.Module, Screening]:
    """Prune and recalibrate each candidate and `score` it: the best candidate's model
    (pruned at once, not fine-tuned) and every proxy."""
    best: nn.Module | None = None
    proxies: list[float] = []
    for index, plan in enumerate(plans):
        model = recalibrated_prune(teacher, plan, data, budget, seed=seed)
        proxies.append(score(model, where))
        if best_index(proxies) == index:
            best = model
    if best is None:
        raise ValueError("screening needs at least one candidate")
    return best, Screening(best_index(proxies), proxies)


def recalibrated_prune(
    teacher: nn.Module, plan: Plan, data: Dataset, budget: Budget, *, seed: int = 0
) -> nn.Module:
    """A copy of the teacher pruned by `plan` at once, batch norm recalibrated, not
    fine-tuned (unstructured masks still in place)."""
    torch.manual_seed(seed)
    model = pruned_copy(teacher)
    one_step = replace(plan, iterative_steps=1)
    for _ in one_step.compress(model, *_pruning_inputs(data, budget, seed)):
        recalibrate_batchnorm(model, data.train, budget.bn_batches)
    return model


def prune_model(
    teacher: nn.Module,
    plan: Plan,
    data: Dataset,
    budget: Budget,
    *,
    seed: int = 0,
    loss: BatchLoss | None = None,
    screen: Screen | None = None,
) -> nn.Module:
    """A pruned, batch-norm-recalibrated and fine-tuned copy of the teacher; `screen` sees
    the fully pruned, recalibrated model before its last fine-tune and may stop the work
    there by raising."""
    torch.manual_seed(seed)
    model = pruned_copy(teacher)
    for step in plan.compress(model, *_pruning_inputs(data, budget, seed)):
        recalibrate_batchnorm(model, data.train, budget.bn_batches)
        if step < plan.iterative_steps - 1:
            train(model, data.train, data.task, budget.finetune, seed=seed + step, loss=loss)
    return _finish(
        model, data, budget, seed=seed + plan.iterative_steps - 1, loss=loss, screen=screen
    )


def _pruning_inputs(
    data: Dataset, budget: Budget, seed: int
) -> tuple[torch.Tensor, Callable[[nn.Module], torch.Tensor]]:
    """What pruning needs besides the plan: an example batch and the per-sample losses on
    a fixed calibration batch (for gradient criteria)."""
    calib_x, calib_y = calibration_batch(data.train, budget.calibration_size, seed)

    def sample_losses(m: nn.Module) -> torch.Tensor:
        return task_loss(m(calib_x), calib_y, data.task)

    return data.train.batch(slice(0, 2)), sample_losses


def _finish(
    model: nn.Module,
    data: Dataset,
    budget: Budget,
    *,
    seed: int,
    loss: BatchLoss | None,
    screen: Screen | None,
) -> nn.Module:
    """The last fine-tune of a pruned, recalibrated model (after `screen` looked at it)."""
    if screen is not None:
        screen(model)
    train(model, data.train, data.task, budget.finetune, seed=seed, loss=loss)
    make_masks_permanent(model)
    model.eval()
    return model
