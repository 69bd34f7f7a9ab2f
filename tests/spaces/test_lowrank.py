"""Low-rank factorization: exact at full rank, FLOPs cut in proportion to the rank ratio, a
FLOPs model that agrees with the counted FLOPs, and factorized models stored and rebuilt."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from medslim.objectives.metrics import count_flops
from medslim.search.trial_models import bundle_model, rebuild
from medslim.spaces.blueprints import blueprint_for
from medslim.spaces.lowrank import (
    CHANNEL,
    LINEAR,
    SPATIAL,
    LowRank,
    PrunedRankPlan,
    factor_record,
    factorize,
    factorize_layer,
    layer_shapes,
    rank_flops_model,
)
from medslim.spaces.sparsity import PruningPlan, protected_layers, prunable_units

LAYERS = {
    "3x3": (nn.Conv2d(8, 12, 3, padding=1), (8, 9, 9)),
    "strided": (nn.Conv2d(8, 12, 3, stride=2, padding=1), (8, 9, 9)),
    "3x5 dilated": (
        nn.Conv2d(6, 10, (3, 5), stride=(2, 1), padding=(2, 4), dilation=2),
        (6, 11, 11),
    ),
    "1x1": (nn.Conv2d(8, 12, 1), (8, 5, 5)),
    "linear": (nn.Linear(20, 7), (20,)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_a_factorization_at_full_rank_reproduces_the_layer(name: str) -> None:
    torch.manual_seed(0)
    layer, shape = LAYERS[name]
    x = torch.randn(4, *shape)
    schemes = [LINEAR] if isinstance(layer, nn.Linear) else [CHANNEL]
    if isinstance(layer, nn.Conv2d) and min(layer.kernel_size) > 1:
        schemes.append(SPATIAL)
    for scheme in schemes:
        factorized, error = factorize_layer(layer, scheme, rank=10**6)
        assert isinstance(factorized, LowRank) and error < 1e-6
        with torch.no_grad():
            assert (factorized(x) - layer(x)).abs().max() < 1e-4, scheme


def _flops(model: nn.Module, shape: tuple[int, ...]) -> int:
    return count_flops(model, shape)


def test_rank_ratio_half_halves_a_convolutions_flops() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 2, 1))
    x = torch.randn(2, 16, 12, 12)
    before = _flops(model, (16, 12, 12))
    done = factorize(model, {"0": 0.5}, x)
    assert isinstance(model[0], LowRank) and done["0"]["ratio"] == 0.5
    share = (_flops(model, (16, 12, 12)) - _flops(model[2], (32, 12, 12))) / (
        before - _flops(model[2], (32, 12, 12))
    )
    assert 0.4 < share <= 0.5


@pytest.mark.parametrize(("model", "shape"), [("resnet8", (1, 28, 28)), ("mlp", (30,))])
def test_the_rank_flops_model_agrees_with_counted_flops(
    model: str, shape: tuple[int, ...]
) -> None:
    torch.manual_seed(0)
    teacher = blueprint_for(model, None, shape, 2).build().eval()
    x = torch.randn(2, *shape)
    shapes = layer_shapes(teacher, x, protected_layers(teacher, x))
    assert shapes and all(s.break_even() >= 2 for s in shapes.values())
    dense = count_flops(teacher, shape)
    flops = rank_flops_model(dense, shapes)
    for ratio in (0.3, 0.6, 0.9):
        ratios = dict.fromkeys(shapes, ratio)
        factorized = copy.deepcopy(teacher)
        factorize(factorized, ratios, x)
        counted = count_flops(factorized, shape)
        assert counted <= flops.flops(ratios) * 1.001  # integer ranks only round down
        assert abs(counted - flops.flops(ratios)) < 0.03 * dense


def test_factorized_and_pruned_models_rebuild_exactly() -> None:
    torch.manual_seed(0)
    blueprint = blueprint_for("resnet8", None, (1, 28, 28), 2)
    teacher = blueprint.build().eval()
    x = torch.randn(2, 1, 28, 28)
    units = list(prunable_units(teacher, x, "structured"))
    plan = PruningPlan(dict.fromkeys(units, 0.5), "l1", "structured")
    both = PrunedRankPlan(plan, 0.2 * count_flops(teacher, (1, 28, 28)), 0.9, 0.2)
    models = {"lowrank": copy.deepcopy(teacher), "prune+lowrank": copy.deepcopy(teacher)}
    factorize(models["lowrank"], dict.fromkeys(layer_shapes(teacher, x), 0.6), x)
    for _ in both.compress(models["prune+lowrank"], x, torch.zeros):
        pass
    for name, model in models.items():
        model.eval()
        assert factor_record(model), name
        rebuilt = rebuild(bundle_model(model, blueprint))
        assert factor_record(rebuilt) == factor_record(model)
        with torch.no_grad():
            assert torch.equal(rebuilt(x), model(x)), name
    counted = count_flops(models["prune+lowrank"], (1, 28, 28))
    assert counted < 0.21 * count_flops(teacher, (1, 28, 28))
