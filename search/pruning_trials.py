"""The pruning side of a study: a trial's FLOPs target and allocation, its candidates
screened by the proxy, and the best one fine-tuned and scored.

What a study computes once for this (`StudyAllocations`): the analytic FLOPs model, the
groups' rankings, the proxy's slice of training images, and, where an allocation needs
them, the groups' sensitivity curves measured with the proxy and kept in the study (so
every worker and every resumed run uses the same ones).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Protocol

import numpy as np
import optuna
from torch import nn

from medslim.objectives.crossval import cross_validate
from medslim.objectives.data import Dataset
from medslim.objectives.evaluate import (
    Budget,
    Plan,
    Scores,
    Screening,
    evaluate_candidates,
    evaluate_pruning,
    screen_candidates,
)
from medslim.objectives.metrics import flops_by_module
from medslim.objectives.proxy import ProxySlice, fidelity, proxy_slice
from medslim.objectives.sensitivity import sensitivity_curves
from medslim.objectives.training import BatchLoss
from medslim.search.study_format import PROXY_CURVES_ATTR, PROXY_CURVES_COST_ATTR
from medslim.spaces.allocation import (
    ALLOCATIONS,
    AllocationBasis,
    Candidate,
    Curve,
    candidates,
    check_fits,
)
from medslim.spaces.channel_groups import channel_groups
from medslim.spaces.criteria import get_criterion
from medslim.spaces.flops_model import FlopsModel, flops_model
from medslim.spaces.sparsity import (
    PruningPlan,
    SparsitySpace,
    TargetChoice,
    protected_layers,
    sample_plan,
    sample_target,
)

logger = logging.getLogger(__name__)

SCREENING_KEY = "screening"
"""In a trial's result: every screened candidate's proxy and ratios (network order) and the
pick; kept as the trial's JSON file, while the record keeps `fidelity` (the pick's proxy)
and `candidates` (how many were screened) as scalars."""
BASELINE_RATIO = "baseline_ratio"
"""Trial attr of a uniform baseline in a target space: the ratio it prunes every group at."""
CANDIDATE_RANGE = (2, 16)
"""Fewest and most candidates a trial screens by default."""
MIX_CURVE_GROUPS = 48
RANKING_CRITERION = "l2"
"""The importance `global` ranks channels by: Torch-Pruning's global-pruning default
(squared magnitude, normalised within each group)."""


@dataclass(frozen=True)
class StudyAllocations:
    """What every pruning trial of a target space shares."""

    basis: AllocationBasis
    where: ProxySlice
    bounds: tuple[float, float]
    """The FLOPs targets a trial may choose, as shares of the teacher's."""
    count: int
    """Candidates a trial screens (1: none)."""


def allocation_basis(
    teacher: nn.Module, data: Dataset, space: SparsitySpace, units: list[str]
) -> AllocationBasis:
    """The FLOPs model and group rankings of a study's teacher (curves come later, from
    the study); refuses an allocation it cannot serve, before any study is made."""
    example = data.train.batch(slice(0, 2))
    protected = protected_layers(teacher, example, space.ignore_layers)
    per_module = flops_by_module(teacher, data.input_shape)
    model = flops_model(
        teacher, example, per_module, units, protected, space.pruning, space.round_to
    )
    ranks = {}
    if space.pruning == "structured":
        importance = get_criterion(RANKING_CRITERION).channel_importance
        if importance is not None:
            ranks = dict(channel_groups(teacher, example, protected, importance()).ranks)
    basis = AllocationBasis(model, space.max_ratio, ranks)
    for allocation in space.allocations:
        check_fits(allocation, basis, curves_measurable=bool(units))
    return basis


def study_allocations(
    study: optuna.Study,
    basis: AllocationBasis,
    teacher: nn.Module,
    data: Dataset,
    space: SparsitySpace,
    *,
    seed: int,
    candidates: int | None,
    epochs: int,
    bn_batches: int,
    batch_size: int,
) -> StudyAllocations:
    """What the trials share: the basis with the study's curves where an allocation needs
    them, the proxy's slice, the targets' bounds and the candidates per trial."""
    where = proxy_slice(data, teacher, seed)
    if any(_needs_curves(a, len(basis.units)) for a in space.allocations):
        units = basis.units
        curves = study_proxy_curves(study, teacher, data, units, space, where, seed)
        basis = replace(basis, curves=curves)
    count = candidates or default_candidates(data, where, epochs, bn_batches, batch_size)
    return StudyAllocations(basis, where, target_bounds(basis.flops, space.max_ratio), count)


def _needs_curves(name: str, groups: int) -> bool:
    """An allocation of sensitivity needs the curves; a mix measures them only for up to
    `MIX_CURVE_GROUPS` groups (DenseNet-121's 120 groups take 480 prunes, half an hour on
    a CPU) and screens without that family beyond."""
    allocation = ALLOCATIONS[name]
    if allocation.needs == "curves":
        return True
    if "sensitivity" not in allocation.mix:
        return False
    if groups > MIX_CURVE_GROUPS:
        logger.info(
            "%d groups: allocation %r screens without sensitivity curves (more than %d "
            "groups); ask for --allocations sensitivity to measure them",
            groups,
            name,
            MIX_CURVE_GROUPS,
        )
        return False
    return True


def target_bounds(model: FlopsModel, cap: float) -> tuple[float, float]:
    """From every group at the cap to every group at a tenth of it (rounded, so that every
    machine builds the same distribution)."""
    low = model.flops(dict.fromkeys(model.channels, cap)) / model.dense
    high = model.flops(dict.fromkeys(model.channels, cap / 10)) / model.dense
    return float(f"{low:.4g}"), float(f"{max(high, low * 1.01):.4g}")


def default_candidates(
    data: Dataset, where: ProxySlice, epochs: int, bn_batches: int, batch_size: int
) -> int:
    """Candidates whose screening costs about one fine-tune epoch: a training step costs
    about three forward passes per image, a candidate one per recalibration and slice
    image (within `CANDIDATE_RANGE`). Tabular data screens one: on a few hundred rows the
    pruning itself (copy, dependency graph) outweighs the forward passes, and the default
    breast-cancer study took 61 s with the count this rule gives against 24 s with one."""
    if data.kind == "tabular":
        return 1
    per_candidate = min(len(data.train), bn_batches * batch_size) + len(where.images)
    count = round(3 * len(data.train) * max(epochs, 1) / per_candidate)
    low, high = CANDIDATE_RANGE
    return max(low, min(high, count))


def study_proxy_curves(
    study: optuna.Study,
    teacher: nn.Module,
    data: Dataset,
    units: list[str],
    space: SparsitySpace,
    where: ProxySlice,
    seed: int,
) -> dict[str, Curve]:
    """The study's stored proxy curves, or measured now (each group pruned alone, batch
    norm recalibrated, KL to the teacher on the slice) and stored."""
    stored = study.user_attrs.get(PROXY_CURVES_ATTR)
    if stored:
        return {c["unit"]: (tuple(c["ratios"]), tuple(c["kl"])) for c in stored}
    logger.info("proxy sensitivity: %d groups, each pruned alone at 4 ratios ...", len(units))
    cpu, wall = time.process_time(), time.perf_counter()
    curves = sensitivity_curves(
        teacher,
        data,
        units,
        teacher_auc=0.0,  # the teacher's own fidelity: each drop is a KL
        criterion=space.criterion or "l1",
        pruning=space.pruning,
        seed=seed,
        score=partial(fidelity, where=where),
    )
    kl = {c.unit: (c.ratios, tuple(round(d, 6) for d in c.auc_drop)) for c in curves}
    study.set_user_attr(
        PROXY_CURVES_ATTR,
        [{"unit": u, "ratios": list(r), "kl": list(d)} for u, (r, d) in kl.items()],
    )
    cost = {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}
    study.set_user_attr(PROXY_CURVES_COST_ATTR, {k: round(v, 2) for k, v in cost.items()})
    return kl


Evaluate = Callable[..., tuple[nn.Module, Scores]]


class TrialPlan(Plan, Protocol):
    """A candidate of a trial: ratios per unit (network order), described for its record."""

    @property
    def ratios(self) -> dict[str, float]: ...

    def describe(self) -> dict[str, Any]: ...


class PruningTrials:
    """Sample a pruning trial, build its candidates, screen them, fine-tune and score the
    best; `choices` is what the trial's record keeps of it."""

    def __init__(
        self,
        teacher: nn.Module,
        data: Dataset,
        space: SparsitySpace,
        units: list[str],
        budget: Budget,
        allocations: StudyAllocations | None,
        *,
        seed: int,
        loss: BatchLoss | None,
        folds: list[Dataset],
    ) -> None:
        self.teacher = teacher
        self.data = data
        self.space = space
        self.units = units
        self.budget = budget
        self.allocations = allocations
        self.seed = seed
        self.loss = loss
        self.folds = folds

    def prepare(
        self, trial: optuna.Trial, screen: Callable[[nn.Module], None] | None
    ) -> tuple[Evaluate, dict[str, Any]]:
        """The trial's evaluation (called with a seed) and its choices so far."""
        if self.allocations is None:  # a study of offsets
            plan = sample_plan(trial, self.space, self.units)
            return self._plan_evaluation(trial, plan, screen), {"plan": plan.describe()}
        choice = sample_target(trial, self.space, self.allocations.bounds)
        plans = self._candidates(trial, choice, self.allocations)
        choices: dict[str, Any] = {"plan": plans[0].describe()}
        if len(plans) == 1:
            return self._plan_evaluation(trial, plans[0], screen), choices

        where = self.allocations.where

        def evaluate(seed: int) -> tuple[nn.Module, Scores]:
            if self.folds:  # screened on the whole training split, scored over the folds
                _, screening = screen_candidates(
                    self.teacher, plans, self.data, self.budget, where, seed=seed
                )
            else:
                model, scores, screening = evaluate_candidates(
                    self.teacher,
                    plans,
                    self.data,
                    self.budget,
                    where,
                    seed=seed,
                    loss=self.loss,
                    screen=screen,
                )
            chosen = plans[screening.chosen]
            choices["plan"] = chosen.describe()
            choices["fidelity"] = round(screening.proxies[screening.chosen], 5)
            choices["candidates"] = len(plans)
            choices[SCREENING_KEY] = candidate_record(plans, screening, self.units)
            if self.folds:
                return self._cross_validated(trial, chosen, seed=seed)
            return model, scores

        return evaluate, choices

    def _candidates(
        self, trial: optuna.Trial, choice: TargetChoice, allocations: StudyAllocations
    ) -> list[TrialPlan]:
        """The trial's candidates; a uniform baseline prunes at its ratio exactly."""
        basis = allocations.basis
        ratio = trial.user_attrs.get(BASELINE_RATIO)
        if ratio is not None:
            found = [Candidate(dict.fromkeys(basis.units, float(ratio)), 0.0)]
        else:
            rng = np.random.default_rng([self.seed, trial.number])
            target = choice.target * basis.flops.dense
            found = candidates(basis, choice.allocation, target, allocations.count, rng)
        return [self._plan(c, choice) for c in found]

    def _plan(self, candidate: Candidate, choice: TargetChoice) -> TrialPlan:
        """What the trial does with one candidate's ratios (here: prune by them)."""
        return PruningPlan(
            candidate.ratios,
            choice.criterion,
            self.space.pruning,
            self.space.iterative_steps,
            ignore=self.space.ignore_layers,
            round_to=self.space.round_to,
            allocation=choice.allocation,
            target=choice.target,
        )

    def _plan_evaluation(
        self,
        trial: optuna.Trial,
        plan: TrialPlan,
        screen: Callable[[nn.Module], None] | None,
    ) -> Evaluate:
        if self.folds:
            return partial(self._cross_validated, trial, plan)
        return partial(
            evaluate_pruning,
            self.teacher,
            plan,
            self.data,
            self.budget,
            loss=self.loss,
            screen=screen,
        )

    def _cross_validated(
        self, trial: optuna.Trial, plan: TrialPlan, *, seed: int
    ) -> tuple[nn.Module, Scores]:
        """`--cv K`: the trial's val scores are K-fold means over train+val; each fold's AUC
        is kept on the trial."""

        def one_fold(fold: Dataset, fold_seed: int) -> tuple[nn.Module, Scores]:
            return evaluate_pruning(self.teacher, plan, fold, self.budget, seed=fold_seed)

        model, scores, fold_aucs = cross_validate(one_fold, self.folds, seed)
        trial.set_user_attr("cv_fold_auc", fold_aucs)
        return model, scores


def candidate_record(
    plans: Sequence[TrialPlan], screening: Screening, units: list[str]
) -> dict[str, Any]:
    """Compact: the pick, each candidate's proxy, and its ratios in network order."""
    return {
        "chosen": screening.chosen,
        "proxy": [round(p, 5) for p in screening.proxies],
        "ratios": [[round(plan.ratios[u], 3) for u in units] for plan in plans],
    }
