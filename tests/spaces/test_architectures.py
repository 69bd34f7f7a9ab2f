from __future__ import annotations

import pytest
import torch

from medslim.errors import UsageError
from medslim.objectives.metrics import count_flops
from medslim.spaces.families import (
    build_model,
    get_preset,
    input_kind,
    preset_names,
    spec_from_dict,
    spec_to_dict,
)
from medslim.spaces.specs import MLPSpec, ResNetSpec


def _shape(spec) -> tuple[int, ...]:
    return {"tabular": (30,), "image": (3, 28, 28), "volume": (1, 8, 8, 8)}[input_kind(spec)]


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_runs_forward_and_backward(name: str) -> None:
    torch.manual_seed(0)
    spec = get_preset(name)
    model = build_model(spec, _shape(spec), 5)
    out = model(torch.randn(4, *_shape(spec)))
    assert out.shape == (4, 5)
    out.sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert isinstance(model.get_submodule("head"), torch.nn.Linear)


@pytest.mark.parametrize("name", preset_names())
def test_spec_round_trips_through_json_dict(name: str) -> None:
    spec = get_preset(name)
    assert spec_from_dict(spec_to_dict(spec)) == spec


def test_resnet8_is_small_and_resnet18_is_the_medmnist_size() -> None:
    small = build_model(get_preset("resnet8"), (1, 28, 28), 2)
    big = build_model(get_preset("resnet18"), (1, 28, 28), 2)
    assert 100_000 < sum(p.numel() for p in small.parameters()) < 1_000_000
    assert 10_000_000 < sum(p.numel() for p in big.parameters()) < 12_000_000


def test_flops_grow_with_width_and_depth() -> None:
    narrow = build_model(ResNetSpec(widths=(8, 16), blocks=(1, 1)), (1, 28, 28), 2)
    wide = build_model(ResNetSpec(widths=(16, 32), blocks=(1, 1)), (1, 28, 28), 2)
    deep = build_model(ResNetSpec(widths=(8, 16), blocks=(2, 2)), (1, 28, 28), 2)
    assert count_flops(narrow, (1, 28, 28)) < count_flops(wide, (1, 28, 28))
    assert count_flops(narrow, (1, 28, 28)) < count_flops(deep, (1, 28, 28))
    assert count_flops(build_model(MLPSpec(hidden=(8,)), (30,), 2), (30,)) == 2 * (30 * 8 + 8 * 2)


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(UsageError, match="resnet8"):
        get_preset("resnet1000")
