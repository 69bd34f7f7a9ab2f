from __future__ import annotations

import optuna
import pytest
import torch
import torch.nn.functional as F

from medslim.errors import UsageError
from medslim.objectives.metrics import count_flops, count_params, flops_by_module, sparse_flops
from medslim.spaces.criteria import criterion_names, get_criterion
from medslim.spaces.families import build_model
from medslim.spaces.sparsity import (
    PruningPlan,
    SparsitySpace,
    make_masks_permanent,
    prunable_units,
    prune_in_steps,
    pruned_copy,
    sample_plan,
    uniform_params,
    uniform_ratios,
)
from medslim.spaces.specs import MLPSpec, ResNetSpec

FAMILIES = {
    "resnet": (ResNetSpec(widths=(8, 16), blocks=(1, 1)), (1, 16, 16)),
    "mlp": (MLPSpec(hidden=(16, 8)), (10,)),
}


def _setup(family: str):
    torch.manual_seed(0)
    spec, shape = FAMILIES[family]
    model = build_model(spec, shape, 3).eval()
    x = torch.randn(12, *shape)
    y = torch.randint(0, 3, (12,))

    def losses(m: torch.nn.Module) -> torch.Tensor:
        return F.cross_entropy(m(x), y, reduction="none")

    return model, shape, x, losses


def _prune(model, shape, losses, ratio, criterion="l1", pruning="structured", steps=1):
    units = prunable_units(model, torch.zeros(2, *shape), pruning)
    plan = PruningPlan({u: ratio for u in units}, criterion, pruning, steps)
    copy = pruned_copy(model)
    for _ in prune_in_steps(copy, plan, torch.zeros(2, *shape), losses):
        pass
    make_masks_permanent(copy)
    return copy


def test_units_are_readable_names_in_network_order_without_the_head() -> None:
    model, shape, _, _ = _setup("resnet")
    units = list(prunable_units(model, torch.zeros(2, *shape), "structured"))
    assert units[0] == "conv1"
    assert "head" not in units
    order = [name for name, _ in model.named_modules()]
    assert units == sorted(units, key=order.index)


@pytest.mark.parametrize("family", FAMILIES)
def test_structured_flops_and_params_shrink_monotonically(family: str) -> None:
    model, shape, _, losses = _setup(family)
    flops = [count_flops(_prune(model, shape, losses, r), shape) for r in (0.0, 0.25, 0.5, 0.75)]
    assert flops == sorted(flops, reverse=True) and len(set(flops)) == 4
    assert count_params(_prune(model, shape, losses, 0.5))[0] < count_params(model)[0]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("criterion", criterion_names())
def test_every_criterion_keeps_every_family_runnable(family: str, criterion: str) -> None:
    model, shape, x, losses = _setup(family)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruned = _prune(model, shape, losses, 0.5, criterion, steps=2)
    assert pruned(x).shape == (12, 3)
    assert count_flops(pruned, shape) < count_flops(model, shape)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the teacher was modified"


def test_unstructured_keeps_dense_flops_and_cuts_sparse_flops() -> None:
    model, shape, x, losses = _setup("resnet")
    pruned = _prune(model, shape, losses, 0.6, "taylor", "unstructured", steps=3)
    assert count_flops(pruned, shape) == count_flops(model, shape)
    sparse = sparse_flops(pruned, flops_by_module(pruned, shape))
    assert sparse < 0.5 * count_flops(model, shape)
    conv = pruned.get_submodule("layers.0.0.conv1").weight
    assert abs(float((conv == 0).float().mean()) - 0.6) < 0.02
    assert pruned(x).shape == (12, 3)


def test_channel_only_criterion_is_refused_for_unstructured() -> None:
    with pytest.raises(UsageError, match="structured"):
        SparsitySpace(pruning="unstructured", criterion="bn-scale")
    assert get_criterion("bn-scale").weight_score is None


def test_uniform_baseline_params_reproduce_a_uniform_plan() -> None:
    space = SparsitySpace(max_ratio=0.8, max_offset=0.2, criterion=None)
    units = ["conv1", "layers.0.0.conv1"]
    ratios = uniform_ratios(space, 4)
    assert ratios == [0.2, 0.4, 0.6, 0.8]
    plan = sample_plan(optuna.trial.FixedTrial(uniform_params(space, units, 0.4)), space, units)
    assert plan.ratios == {"conv1": 0.4, "layers.0.0.conv1": 0.4}
    assert plan.criterion == "l1"


def test_offsets_are_bounded_and_clipped_to_the_ceiling() -> None:
    space = SparsitySpace(max_ratio=0.5, max_offset=0.2)
    params = {"sparsity.global": 0.45, "offset.a": 0.2, "offset.b": -0.2}
    plan = sample_plan(optuna.trial.FixedTrial(params), space, ["a", "b"])
    assert plan.ratios == {"a": 0.5, "b": pytest.approx(0.25)}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_ratio": 1.0}, "max-ratio"),
        ({"iterative_steps": 0}, "iterative-steps"),
        ({"pruning": "diagonal"}, "pruning kind"),
        ({"criterion": "magic"}, "unknown criterion"),
    ],
)
def test_bad_space_settings_are_usage_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        SparsitySpace(**kwargs)
