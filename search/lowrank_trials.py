"""The low-rank side of a study (`methods.lowrank`, `methods.prune_lowrank`): a trial's
FLOPs target spread over the factorizable layers by an allocation, candidates solved on the
rank FLOPs model, screened by the proxy, and the best fine-tuned as pruned models are.

The trials are pruning trials with another plan per candidate: `lowrank_trials` factorize
the teacher at each candidate's rank ratios; `pruned_rank_trials` prune it at the pruning
candidates of a share of the target and factorize the rest of the way.
"""

from __future__ import annotations

import math
from dataclasses import replace

import optuna
from torch import nn

from medslim.errors import UsageError
from medslim.objectives.evaluate import Scores, Screen
from medslim.objectives.proxy import proxy_slice
from medslim.search.methods.base import Prepared, TrialShared
from medslim.search.pruning_trials import (
    PruningTrials,
    StudyAllocations,
    TrialPlan,
    default_candidates,
    target_bounds,
)
from medslim.spaces.allocation import AllocationBasis, Candidate, check_fits
from medslim.spaces.blueprints import Blueprint
from medslim.spaces.lowrank import (
    PrunedRankPlan,
    RankPlan,
    factor_record,
    layer_shapes,
    rank_flops_model,
)
from medslim.spaces.sparsity import PruningPlan, TargetChoice, protected_layers

SHARE_PARAM = "lowrank.share"
"""Trial parameter of `prune+lowrank`: the share of the FLOPs cut (in log terms) that
factorization makes; pruning makes the rest."""
SHARE_BOUNDS = (0.2, 0.8)
FALLBACK = "free"
"""The allocation a low-rank trial uses when the one it chose needs channel groups or
sensitivity curves (`global`, `sensitivity`), which layers to factorize do not have."""


class RankedTrials:
    """Pruning trials of another plan, whose record also keeps the rank ratio each layer
    really got (`rank.<layer>`)."""

    def __init__(self, trials: PruningTrials, base: Blueprint) -> None:
        self.trials = trials
        self.base = base

    def prepare(self, trial: optuna.Trial, screen: Screen | None) -> Prepared:
        evaluate, choices = self.trials.prepare(trial, screen)

        def ranked(seed: int) -> tuple[nn.Module, Scores]:
            model, scores = evaluate(seed=seed)
            factors = factor_record(model)
            ranks = {name: float(f["ratio"]) for name, f in factors.items()}
            choices["plan"] = {**choices["plan"], "ranks": ranks}
            return model, scores

        return Prepared(ranked, choices, self.base)


def lowrank_trials(shared: TrialShared) -> RankedTrials:
    """Trials that factorize the teacher at rank ratios solved for their FLOPs target."""
    session = shared.session
    config = session.config
    if not session.space.targets:
        raise UsageError(
            "low-rank trials choose a FLOPs target; they cannot run in a study of offsets "
            "(allocations offsets): choose other allocations"
        )
    teacher, data, space = session.teacher, session.data, session.space
    example = data.train.batch(slice(0, 2))
    shapes = layer_shapes(
        teacher, example, protected_layers(teacher, example, space.ignore_layers)
    )
    if not shapes:
        raise UsageError(
            f"{config.model} has no convolution or linear layer worth factorizing (besides "
            "its head); use another method"
        )
    basis = AllocationBasis(rank_flops_model(session.teacher_flops, shapes), space.max_ratio)
    if session.allocations is not None:
        where, count = session.allocations.where, session.allocations.count
    else:
        where = proxy_slice(data, teacher, config.seed)
        count = config.candidates or default_candidates(
            data, where, config.epochs, shared.budget.bn_batches, config.batch_size
        )
    bounds = target_bounds(basis.flops, space.max_ratio)
    trials = LowRankCandidates(
        teacher,
        data,
        replace(space, criterion=space.criterion or "l1"),  # no criterion to choose
        basis.units,
        shared.budget,
        StudyAllocations(basis, where, bounds, count),
        seed=config.seed,
        loss=shared.loss,
        folds=[],
    )
    return RankedTrials(trials, session.teacher_blueprint)


def pruned_rank_trials(shared: TrialShared) -> RankedTrials:
    """Trials that prune at a share of their FLOPs target, then factorize to it."""
    session = shared.session
    allocations = session.allocations
    if allocations is None:
        raise UsageError(
            "prune+lowrank trials choose a FLOPs target and need the teacher's channel "
            "groups; choose allocations other than offsets, and a model with groups"
        )
    low, high = allocations.bounds
    rank_low = 1.0 - session.space.max_ratio  # every layer factorized at the cap
    trials = PrunedRankCandidates(
        session.teacher,
        session.data,
        session.space,
        session.unit_names,
        shared.budget,
        replace(allocations, bounds=(float(f"{low * rank_low:.4g}"), high)),
        seed=session.config.seed,
        loss=shared.loss,
        folds=[],
    )
    return RankedTrials(trials, session.teacher_blueprint)


class LowRankCandidates(PruningTrials):
    """Candidates that factorize the teacher at their ratios."""

    def _plan(self, candidate: Candidate, choice: TargetChoice) -> TrialPlan:
        return RankPlan(candidate.ratios, choice.allocation, choice.target)

    def _candidates(
        self, trial: optuna.Trial, choice: TargetChoice, allocations: StudyAllocations
    ) -> list[TrialPlan]:
        try:
            check_fits(choice.allocation, allocations.basis)
        except UsageError:
            choice = replace(choice, allocation=FALLBACK)
        return super()._candidates(trial, choice, allocations)


class PrunedRankCandidates(PruningTrials):
    """Pruning candidates at target^(1 − share), each factorized on to the target."""

    def _candidates(
        self, trial: optuna.Trial, choice: TargetChoice, allocations: StudyAllocations
    ) -> list[TrialPlan]:
        share = trial.suggest_float(SHARE_PARAM, *SHARE_BOUNDS)
        pruned = replace(choice, target=math.exp((1.0 - share) * math.log(choice.target)))
        dense = allocations.basis.flops.dense
        return [
            PrunedRankPlan(
                _pruning(plan),
                choice.target * dense,
                self.space.max_ratio,
                choice.target,
                iterative_steps=plan.iterative_steps,
            )
            for plan in super()._candidates(trial, pruned, allocations)
        ]


def _pruning(plan: TrialPlan) -> PruningPlan:
    if not isinstance(plan, PruningPlan):
        raise TypeError(f"expected a pruning plan, got {type(plan).__name__}")
    return plan
