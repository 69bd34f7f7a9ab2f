"""Allocations: every family lands on its FLOPs target, counted without pruning; `global` is
Torch-Pruning's global ranking; unreachable targets say what they reached."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch_pruning as tp

from medslim.errors import UsageError
from medslim.objectives.metrics import count_flops, flops_by_module
from medslim.spaces.allocation import (
    AllocationBasis,
    allocation_names,
    candidates,
    check_fits,
)
from medslim.spaces.blueprints import blueprint_for
from medslim.spaces.channel_groups import channel_groups
from medslim.spaces.flops_model import FlopsModel, flops_model, kept_channels, ratio_keeping
from medslim.spaces.sparsity import (
    PruningPlan,
    protected_layers,
    prunable_units,
    prune_in_steps,
    pruned_copy,
)

SHAPE = (1, 28, 28)
MODELS = ("resnet8", "torchvision:resnet18")


def _teacher(model: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return blueprint_for(model, None, SHAPE, 2).build().eval()


def _basis(model: torch.nn.Module, pruning: str = "structured") -> AllocationBasis:
    example = torch.zeros(2, *SHAPE)
    protected = protected_layers(model, example)
    units = list(prunable_units(model, example, pruning))
    per_module = flops_by_module(model, SHAPE)
    flops = flops_model(model, example, per_module, units, protected, pruning)
    ranks = {}
    if pruning == "structured":
        importance = tp.importance.GroupMagnitudeImportance(p=2)
        ranks = dict(channel_groups(model, example, protected, importance).ranks)
    rng = np.random.default_rng(0)
    curves = {u: ((0.25, 0.5, 0.75, 0.9), tuple(np.sort(rng.uniform(0, 0.5, 4)))) for u in units}
    return AllocationBasis(flops, 0.9, ranks, curves)


def _real_flops(model: torch.nn.Module, ratios: dict[str, float], pruning: str) -> int:
    pruned = pruned_copy(model)
    plan = PruningPlan(ratios, "l1", pruning)
    example = torch.zeros(2, *SHAPE)
    for _ in prune_in_steps(pruned, plan, example, lambda m: torch.zeros(1)):
        pass
    if pruning == "unstructured":
        from medslim.objectives.metrics import sparse_flops

        return sparse_flops(pruned, flops_by_module(pruned, SHAPE))
    return count_flops(pruned, SHAPE)


@pytest.mark.parametrize("model_name", MODELS)
def test_the_flops_model_counts_what_pruning_leaves(model_name: str) -> None:
    model = _teacher(model_name)
    basis = _basis(model)
    rng = np.random.default_rng(1)
    for _ in range(3):
        ratios = {u: float(rng.uniform(0, 0.9)) for u in basis.units}
        assert basis.flops.flops(ratios) == _real_flops(model, ratios, "structured")
    assert basis.flops.flops({}) == basis.flops.dense == count_flops(model, SHAPE)


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("name", allocation_names())
def test_every_allocation_hits_its_flops_target_within_two_percent(
    model_name: str, name: str
) -> None:
    model = _teacher(model_name)
    basis = _basis(model)
    for share in (0.5, 0.2, 0.05):
        found = candidates(basis, name, share * basis.flops.dense, 2, np.random.default_rng(0))
        for candidate in found:
            real = _real_flops(model, candidate.ratios, "structured")
            assert abs(real / (share * basis.flops.dense) - 1) < 0.02, (name, share)
            assert real == candidate.flops
            assert max(candidate.ratios.values()) <= basis.cap + 1e-9


def test_unstructured_targets_count_masked_weights() -> None:
    model = _teacher("resnet8")
    basis = _basis(model, "unstructured")
    for name in ("uniform", "free", "sensitivity"):
        (candidate,) = candidates(
            basis, name, 0.3 * basis.flops.dense, 1, np.random.default_rng(0)
        )
        real = _real_flops(model, candidate.ratios, "unstructured")
        assert abs(real / (0.3 * basis.flops.dense) - 1) < 0.02
    with pytest.raises(UsageError, match="structured pruning"):
        check_fits("global", basis)


def test_a_target_below_the_cap_reaches_the_smallest_model_and_says_so() -> None:
    basis = _basis(_teacher("resnet8"))
    smallest = basis.flops.flops(dict.fromkeys(basis.units, basis.cap))
    for name in allocation_names():
        (candidate,) = candidates(basis, name, smallest / 10, 1, np.random.default_rng(0))
        assert candidate.flops == pytest.approx(smallest)  # what it reached, not the target


def test_global_keeps_the_channels_torch_pruning_global_pruning_keeps() -> None:
    model = _teacher("torchvision:resnet18")
    basis = _basis(model)
    level = 0.3  # below the cap: Torch-Pruning caps no group either
    shape = _global_shape(basis)
    ours = {u: basis.flops.kept(u, r) for u, r in shape(level).items()}
    theirs = pruned_copy(model)
    example = torch.zeros(2, *SHAPE)
    ignored = [theirs.get_submodule(n) for n in protected_layers(theirs, example)]
    tp.pruner.MetaPruner(
        theirs,
        example,
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=level,
        global_pruning=True,
        isomorphic=True,
        ignored_layers=ignored,
    ).step()
    kept = {u: _out_channels(theirs.get_submodule(u)) for u in basis.units}
    assert ours == kept
    assert len(set(r for r in shape(level).values())) > 1, "global ranking is not uniform"


def _global_shape(basis: AllocationBasis):  # the family itself, unbent
    from medslim.spaces.allocation import get_allocation

    return get_allocation("global").family(basis)


def _out_channels(module: torch.nn.Module) -> int:
    return module.out_features if isinstance(module, torch.nn.Linear) else module.out_channels


def test_sensitivity_prunes_the_tolerant_group_more() -> None:
    basis = _basis(_teacher("resnet8"))
    tolerant, touchy = basis.units[1], basis.units[2]
    curves = dict(basis.curves)
    curves[tolerant] = ((0.25, 0.5, 0.75, 0.9), (0.0, 0.01, 0.02, 0.03))
    curves[touchy] = ((0.25, 0.5, 0.75, 0.9), (0.2, 0.4, 0.6, 0.8))
    basis = AllocationBasis(basis.flops, basis.cap, basis.ranks, curves)
    (candidate,) = candidates(basis, "sensitivity", 0.4 * basis.flops.dense, 1, None)
    assert candidate.ratios[tolerant] > candidate.ratios[touchy]


def test_candidates_are_seeded_and_the_first_is_the_familys_own() -> None:
    basis = _basis(_teacher("resnet8"))
    target = 0.2 * basis.flops.dense
    one = candidates(basis, "screened", target, 5, np.random.default_rng(3))
    two = candidates(basis, "screened", target, 5, np.random.default_rng(3))
    assert [c.ratios for c in one] == [c.ratios for c in two]
    assert len({tuple(c.ratios.values()) for c in one}) == 5
    assert len(set(one[0].ratios.values())) == 1, "the screened mix starts with uniform"
    (uniform,) = candidates(basis, "uniform", target, 5, np.random.default_rng(3))
    assert len(set(uniform.ratios.values())) == 1


def test_allocations_that_lack_what_they_need_are_refused() -> None:
    basis = _basis(_teacher("resnet8"))
    bare = AllocationBasis(basis.flops, basis.cap)
    with pytest.raises(UsageError, match="sensitivity curves"):
        check_fits("sensitivity", bare)
    check_fits("sensitivity", bare, curves_measurable=True)
    with pytest.raises(UsageError, match="unknown allocation 'nope'"):
        check_fits("nope", basis)


def test_channel_arithmetic_matches_torch_pruning() -> None:
    for channels in (3, 16, 64, 130):
        for kept in range(1, channels + 1):
            assert kept_channels(channels, ratio_keeping(channels, kept)) == kept
    assert kept_channels(64, 0.5, round_to=8) == 32 and kept_channels(64, 0.3, 8) == 40
    model = FlopsModel(100, {"a": 10}, (), 100, structured=True)
    assert model.flops({"a": 0.5}) == 100  # a unit no layer depends on changes nothing
