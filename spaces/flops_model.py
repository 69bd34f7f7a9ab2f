"""The FLOPs of a pruned network, counted from its ratios without pruning anything.

Solving per-group ratios for a FLOPs target takes hundreds of counts per candidate; pruning
a copy and counting it costs 0.03 s (resnet8) to 3.6 s (DenseNet-121) each, this costs
microseconds. Each conv/linear layer keeps its dense FLOPs times the share of output
channels and the share of input channels its groups leave (a depthwise convolution: the
one share), with the channel counts Torch-Pruning's local pruning keeps for a ratio
(`kept_channels`), so the count is exact for the layers a group cuts. FLOPs outside
conv/linear layers (attention products) are taken as fixed; a trial records the FLOPs its
pruned model really has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from medslim.kinds import Pruning

if TYPE_CHECKING:
    import torch
    from torch import nn

    from medslim.spaces.channel_groups import Link


@dataclass(frozen=True)
class LayerCost:
    """One conv/linear layer: its dense FLOPs, channel counts and the groups that cut it."""

    flops: int
    out_channels: int
    in_channels: int
    depthwise: bool
    cuts: tuple[tuple[str, Link], ...]
    """(group, link) for each dimension of this layer a group cuts."""


def kept_channels(channels: int, ratio: float, round_to: int = 1) -> int:
    """Channels Torch-Pruning's local pruning keeps of `channels` at `ratio` (its
    `int(C·(1 - ratio))`, then down to a multiple of `round_to` when any are cut)."""
    kept = int(channels * (1.0 - ratio))
    if kept < channels and round_to > 1:
        kept -= kept % round_to
    return max(kept, 0)


def ratio_keeping(channels: int, kept: int) -> float:
    """A ratio at which `kept_channels` keeps exactly `kept` of `channels` (round_to 1)."""
    if kept >= channels:
        return 0.0
    return 1.0 - (kept + 0.5) / channels


@dataclass(frozen=True)
class FlopsModel:
    """FLOPs of the teacher pruned by a ratio per unit, for one input (torch-free: the
    listing of allocations and the config's checks import this module)."""

    dense: int
    channels: dict[str, int]
    """Per unit: the channels (structured) or weights (unstructured) its ratio applies to."""
    layers: tuple[LayerCost, ...]
    fixed: int
    """FLOPs no unit changes."""
    structured: bool
    round_to: int = 1

    def kept(self, unit: str, ratio: float) -> int:
        if not self.structured:
            return self.channels[unit] - int(round(ratio * self.channels[unit]))
        return kept_channels(self.channels[unit], ratio, self.round_to)

    def flops(self, ratios: Mapping[str, float]) -> float:
        total = float(self.fixed)
        share = {u: self.kept(u, r) / self.channels[u] for u, r in ratios.items()}
        for layer in self.layers:
            out_cut = in_cut = 0.0
            for unit, link in layer.cuts:
                if unit not in share:
                    continue
                cut = (1.0 - share[unit]) * link.channels
                if link.outputs:
                    out_cut += cut
                else:
                    in_cut += cut
            if not self.structured:  # unstructured: the unit is the layer, its weights
                total += layer.flops * (1.0 - out_cut / layer.out_channels)
                continue
            out_share = 1.0 - out_cut / layer.out_channels
            in_share = 1.0 - in_cut / layer.in_channels
            factor = min(out_share, in_share) if layer.depthwise else out_share * in_share
            total += layer.flops * max(factor, 0.0)
        return total


def flops_model(
    model: nn.Module,
    example: torch.Tensor,
    per_module: Mapping[str, int],
    units: Sequence[str],
    protected: Sequence[str],
    pruning: Pruning,
    round_to: int = 1,
) -> FlopsModel:
    """The FLOPs model of `model` (dense FLOPs per layer: `metrics.flops_by_module`) over
    the units a trial gives ratios."""
    from medslim.spaces.channel_groups import Link, channel_groups

    modules = dict(model.named_modules())
    dense = int(sum(per_module.values()))
    if pruning == "unstructured":
        layers = []
        for name in units:
            weights = int(modules[name].weight.numel())
            link = Link(name, True, weights)
            layers.append(
                LayerCost(per_module.get(name, 0), weights, weights, False, ((name, link),))
            )
        counted = sum(layer.flops for layer in layers)
        channels = {name: layer.out_channels for name, layer in zip(units, layers, strict=True)}
        return FlopsModel(dense, channels, tuple(layers), dense - counted, structured=False)
    groups = channel_groups(model, example, protected)
    cuts: dict[str, list[tuple[str, Link]]] = {}
    for unit in units:
        for link in groups.links.get(unit, ()):
            cuts.setdefault(link.layer, []).append((unit, link))
    layers = []
    for name, flops in per_module.items():
        if not name or name not in cuts:
            continue
        out_channels, in_channels, depthwise = _shape(modules[name])
        layers.append(LayerCost(flops, out_channels, in_channels, depthwise, tuple(cuts[name])))
    counted = sum(layer.flops for layer in layers)
    channels = {unit: _shape(groups.units[unit])[0] for unit in units}
    return FlopsModel(dense, channels, tuple(layers), dense - counted, True, round_to)


def _shape(module: nn.Module) -> tuple[int, int, bool]:
    """(output channels, input channels, depthwise) of a conv or linear layer."""
    from torch import nn

    if isinstance(module, nn.Linear):
        return module.out_features, module.in_features, False
    if not isinstance(module, nn.modules.conv._ConvNd):
        raise TypeError(f"{type(module).__name__} is neither a convolution nor a linear layer")
    depthwise = module.groups > 1 and module.groups == module.in_channels
    return module.out_channels, module.in_channels, depthwise
