"""Low-rank factorization: a layer replaced by two thinner ones whose product approximates it.

- A convolution k×k becomes k×1 then 1×k (spatial SVD, as AIMET does: the weight reshaped
  to (in·kh) × (out·kw)), or k×k to `rank` channels then 1×1 (channel SVD: the weight
  reshaped to out × (in·kh·kw)); a 1×1 convolution is channel SVD.
- A linear layer becomes two by truncated SVD.

Per layer a trial gives a rank ratio in [0, cap], read as pruning ratios are: 0 leaves the
layer whole, r cuts the share r of its FLOPs. The rank is the largest whose two layers
cost at most (1 − r) of the layer's FLOPs, and of the two convolution schemes the one
whose truncated SVD keeps more of the weight wins. So the layer's FLOPs fall linearly in
its ratio, and a FLOPs model of that (`rank_flops_model`, the same `FlopsModel` pruning
uses) lets the allocations solve ratios for a FLOPs target without factorizing anything.

A factorized layer is a `LowRank` (a two-layer `nn.Sequential` that knows its scheme, rank
and ratio); `factor_record` lists them as plain data and `shape_factors` rebuilds their
shapes on a fresh model, so a stored model rebuilds exactly (`search.trial_models`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from medslim.spaces.allocation import AllocationBasis, get_allocation, solve
from medslim.spaces.flops_model import FlopsModel, LayerCost
from medslim.spaces.graphs import trace_calls
from medslim.spaces.sparsity import PruningPlan, protected_layers

SPATIAL = "spatial"
CHANNEL = "channel"
LINEAR = "linear"
MIN_RANK = 2
"""Layers whose break-even rank is below this stay whole (a two-class head, a 1-channel
stem): factorizing them saves nothing."""
RANK_PREFIX = "rank."
"""Trial attr `rank.<layer>`: the rank ratio a layer really got."""

Factors = dict[str, dict[str, Any]]
"""Layer name → {"scheme", "rank", "ratio"}: what `shape_factors` rebuilds."""
Layer = nn.Conv2d | nn.Linear


class LowRank(nn.Sequential):
    """A factorized layer: the first layer maps to `rank` channels (features), the second
    from them to the original outputs (with the original bias)."""

    def __init__(
        self, first: nn.Module, second: nn.Module, scheme: str, rank: int, ratio: float
    ) -> None:
        super().__init__(first, second)
        self.scheme = scheme
        self.rank = rank
        self.ratio = ratio


@dataclass(frozen=True)
class LayerShape:
    """A factorizable layer: its FLOPs for one input, and the FLOPs one rank costs per
    scheme."""

    flops: int
    per_rank: dict[str, float]

    def break_even(self) -> int:
        """The largest rank (of the cheapest scheme) that costs no more than the layer."""
        return int(self.flops // min(self.per_rank.values()))


def factorizable(module: nn.Module) -> bool:
    """A linear layer, or a 2-D convolution without groups, with zero padding given as
    numbers."""
    if isinstance(module, nn.Linear):
        return True
    return (
        isinstance(module, nn.Conv2d)
        and module.groups == 1
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
    )


def layer_shapes(
    model: nn.Module, example: torch.Tensor, protected: Sequence[str] = ()
) -> dict[str, LayerShape]:
    """Every layer a trial may factorize (in call order; not `protected`, not below
    `MIN_RANK`), with its costs for one input (FLOPs count two per multiply-add)."""
    shapes = {}
    for call in trace_calls(model, example[:1]):
        module = call.module
        if call.name in shapes or not factorizable(module) or _inside(call.name, protected):
            continue
        out = call.output
        if not isinstance(out, torch.Tensor) or not call.args:
            continue
        shape = _shape(_layer(module), tuple(call.args[0].shape), tuple(out.shape))
        if shape.break_even() >= MIN_RANK:
            shapes[call.name] = shape
    return shapes


def _layer(module: nn.Module) -> Layer:
    if not isinstance(module, nn.Conv2d | nn.Linear):
        raise TypeError(f"{type(module).__name__} is neither a 2-D convolution nor linear")
    return module


def _inside(name: str, protected: Sequence[str]) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in protected)


def _shape(module: Layer, inputs: tuple[int, ...], output: tuple[int, ...]) -> LayerShape:
    if isinstance(module, nn.Linear):
        rows = math.prod(output[1:-1])  # a linear layer over tokens runs once per token
        cin, cout = module.in_features, module.out_features
        return LayerShape(2 * rows * cin * cout, {LINEAR: 2.0 * rows * (cin + cout)})
    kh, kw = module.kernel_size
    cin, cout = module.in_channels, module.out_channels
    out_h, out_w = output[-2], output[-1]
    per_rank = {CHANNEL: 2.0 * out_h * out_w * (cin * kh * kw + cout)}
    if kh > 1 and kw > 1:  # k×1 keeps the input's width, 1×k then strides along it
        per_rank[SPATIAL] = 2.0 * out_h * (cin * kh * inputs[-1] + kw * cout * out_w)
    return LayerShape(2 * cout * cin * kh * kw * out_h * out_w, per_rank)


def rank_flops_model(dense: int, shapes: Mapping[str, LayerShape]) -> FlopsModel:
    """The FLOPs of the model with each layer's ratio r cutting the share r of its FLOPs:
    the FLOPs model pruning's allocations solve (`unstructured`: a unit's kept share is
    linear in its ratio), with each layer's break-even rank as its resolution."""
    from medslim.spaces.channel_groups import Link

    layers = []
    channels = {}
    for name, shape in shapes.items():
        resolution = max(shape.break_even(), 1)
        channels[name] = resolution
        link = Link(name, True, resolution)
        layers.append(LayerCost(shape.flops, resolution, resolution, False, ((name, link),)))
    counted = sum(layer.flops for layer in layers)
    return FlopsModel(dense, channels, tuple(layers), dense - counted, structured=False)


@dataclass(frozen=True)
class RankPlan:
    """What a low-rank trial chose: a rank ratio per layer (0: whole), and the allocation
    and FLOPs share they were solved for."""

    ratios: dict[str, float]
    allocation: str | None = None
    target: float | None = None
    iterative_steps: int = 1

    def compress(
        self, model: nn.Module, example: torch.Tensor, sample_losses: Callable[..., Any]
    ) -> Iterator[int]:
        """Factorize `model` in place (one step)."""
        factorize(model, self.ratios, example)
        yield 0

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {"ranks": {k: round(v, 4) for k, v in self.ratios.items()}}
        if self.allocation is not None:
            described.update(allocation=self.allocation, target=self.target)
        return described


@dataclass(frozen=True)
class PrunedRankPlan:
    """Prune by `prune`, then factorize the pruned model down to `target_flops` (uniform
    rank ratios solved on the pruned model's own FLOPs model): one trial of both."""

    prune: PruningPlan
    target_flops: float
    cap: float
    target: float | None = None
    """The share of the teacher's FLOPs both aim at together."""
    iterative_steps: int = 1

    def compress(
        self, model: nn.Module, example: torch.Tensor, sample_losses: Callable[..., Any]
    ) -> Iterator[int]:
        """Prune in steps; after the last, factorize."""
        pruning = replace(self.prune, iterative_steps=self.iterative_steps)
        for step in pruning.compress(model, example, sample_losses):
            if step == self.iterative_steps - 1:
                factorize(model, self.rank_ratios(model, example), example)
            yield step

    @property
    def ratios(self) -> dict[str, float]:
        """The pruning ratios (the rank ratios follow from the pruned model)."""
        return self.prune.ratios

    def rank_ratios(self, model: nn.Module, example: torch.Tensor) -> dict[str, float]:
        """One rank ratio for every layer of the pruned `model` (the head and ignored
        layers whole) that brings its FLOPs nearest `target_flops`."""
        shapes = layer_shapes(model, example, protected_layers(model, example, self.prune.ignore))
        basis = AllocationBasis(rank_flops_model(total_flops(model, example), shapes), self.cap)
        return solve(basis, get_allocation("uniform").family(basis), self.target_flops).ratios

    def describe(self) -> dict[str, Any]:
        return {**self.prune.describe(), "target": self.target}


def total_flops(model: nn.Module, example: torch.Tensor) -> int:
    """FLOPs of one forward pass on one input."""
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(example[:1])
    model.train(was_training)
    return int(counter.get_total_flops())


def factorize(model: nn.Module, ratios: Mapping[str, float], example: torch.Tensor) -> Factors:
    """Replace each layer with a ratio above 0 by its best factorization at that ratio;
    returns what was factorized."""
    shapes = layer_shapes(model, example)
    done: Factors = {}
    for name, ratio in ratios.items():
        if ratio <= 0 or name not in shapes:
            continue
        module = _layer(model.get_submodule(name))
        budget = (1.0 - ratio) * shapes[name].flops
        factorized = best_factorization(module, shapes[name], budget, ratio)
        _replace(model, name, factorized)
        done[name] = {"scheme": factorized.scheme, "rank": factorized.rank, "ratio": ratio}
    return done


def best_factorization(module: Layer, shape: LayerShape, budget: float, ratio: float) -> LowRank:
    """Of the schemes, the one whose truncated SVD at the largest rank within `budget` FLOPs
    keeps the most of the weight (relative Frobenius error)."""
    best: tuple[float, LowRank] | None = None
    for scheme, per_rank in shape.per_rank.items():
        rank = max(1, int(budget // per_rank))
        factorized, error = factorize_layer(module, scheme, rank, ratio)
        if best is None or error < best[0]:
            best = (error, factorized)
    assert best is not None  # every layer has a scheme
    return best[1]


def factorize_layer(
    module: Layer, scheme: str, rank: int, ratio: float = 0.0
) -> tuple[LowRank, float]:
    """`module` as two layers of `rank` (capped at the full rank) by truncated SVD, and the
    relative error of the truncated weight."""
    weight = module.weight.detach()
    matrix = _matrix(weight, scheme)
    u, s, vh = torch.linalg.svd(matrix.float(), full_matrices=False)
    rank = min(rank, len(s))
    root = s[:rank].sqrt()
    left = (u[:, :rank] * root).to(weight.dtype)
    right = (root[:, None] * vh[:rank]).to(weight.dtype)
    error = float(s[rank:].square().sum().sqrt() / s.square().sum().sqrt().clamp_min(1e-30))
    first, second = _pair(module, scheme, rank)
    with torch.no_grad():
        first.weight.copy_(_first_weight(left, right, weight, scheme, rank))
        second.weight.copy_(_second_weight(left, right, weight, scheme, rank))
        if module.bias is not None and second.bias is not None:
            second.bias.copy_(module.bias.detach())
    return LowRank(first, second, scheme, rank, ratio).to(weight.device), error


def _matrix(weight: torch.Tensor, scheme: str) -> torch.Tensor:
    """The weight as the matrix a scheme decomposes."""
    if scheme == LINEAR:
        return weight  # out × in
    out, cin, kh, kw = weight.shape
    if scheme == CHANNEL:
        return weight.reshape(out, cin * kh * kw)
    return weight.permute(1, 2, 0, 3).reshape(cin * kh, out * kw)  # (in·kh) × (out·kw)


def _first_weight(
    left: torch.Tensor, right: torch.Tensor, weight: torch.Tensor, scheme: str, rank: int
) -> torch.Tensor:
    if scheme == LINEAR:
        return right  # rank × in
    out, cin, kh, kw = weight.shape
    if scheme == CHANNEL:
        return right.reshape(rank, cin, kh, kw)
    return left.reshape(cin, kh, rank).permute(2, 0, 1).unsqueeze(-1)  # rank × in × kh × 1


def _second_weight(
    left: torch.Tensor, right: torch.Tensor, weight: torch.Tensor, scheme: str, rank: int
) -> torch.Tensor:
    if scheme == LINEAR:
        return left  # out × rank
    out, cin, kh, kw = weight.shape
    if scheme == CHANNEL:
        return left.reshape(out, rank, 1, 1)
    return right.reshape(rank, out, kw).permute(1, 0, 2).unsqueeze(2)  # out × rank × 1 × kw


def layer_factors(module: Layer, scheme: str, rank: int, ratio: float = 0.0) -> LowRank:
    """Two untrained layers of `rank` in `scheme` with `module`'s inputs, outputs, stride,
    padding and dilation (the shapes a stored factorized layer is rebuilt with)."""
    return LowRank(*_pair(module, scheme, rank), scheme, rank, ratio)


def _pair(module: Layer, scheme: str, rank: int) -> tuple[Layer, Layer]:
    bias = module.bias is not None
    if isinstance(module, nn.Linear):
        return (
            nn.Linear(module.in_features, rank, bias=False),
            nn.Linear(rank, module.out_features, bias=bias),
        )
    (kh, kw), (sh, sw) = _two(module.kernel_size), _two(module.stride)
    (ph, pw), (dh, dw) = _two(module.padding), _two(module.dilation)
    first: Layer
    second: Layer
    if scheme == CHANNEL:
        first = nn.Conv2d(
            module.in_channels,
            rank,
            (kh, kw),
            stride=(sh, sw),
            padding=(ph, pw),
            dilation=(dh, dw),
            bias=False,
        )
        second = nn.Conv2d(rank, module.out_channels, 1, bias=bias)
    else:
        first = nn.Conv2d(
            module.in_channels,
            rank,
            (kh, 1),
            stride=(sh, 1),
            padding=(ph, 0),
            dilation=(dh, 1),
            bias=False,
        )
        second = nn.Conv2d(
            rank,
            module.out_channels,
            (1, kw),
            stride=(1, sw),
            padding=(0, pw),
            dilation=(1, dw),
            bias=bias,
        )
    return first, second


def _two(value: Any) -> tuple[int, int]:
    """A convolution's pair of numbers (kernel, stride, padding, dilation) as ints."""
    first, second = value
    return int(first), int(second)


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    owner, _, attribute = name.rpartition(".")
    setattr(model.get_submodule(owner), attribute, module)


def factor_record(model: nn.Module) -> Factors:
    """Every factorized layer of `model`, as plain data."""
    return {
        name: {"scheme": m.scheme, "rank": m.rank, "ratio": m.ratio}
        for name, m in model.named_modules()
        if isinstance(m, LowRank)
    }


def shape_factors(model: nn.Module, factors: Factors) -> nn.Module:
    """`model` (a fresh build) with the layers `factors` names replaced by factorized ones
    of the recorded schemes and ranks (untrained: the weights load next)."""
    for name, factor in factors.items():
        module = _layer(model.get_submodule(name))
        _replace(
            model,
            name,
            layer_factors(module, factor["scheme"], int(factor["rank"]), float(factor["ratio"])),
        )
    return model
