"""Allocations: how a pruning trial spreads its FLOPs target over the prunable groups.

A trial chooses a FLOPs target and an allocation. Each allocation is a one-parameter
family of ratio vectors (level 0 prunes nothing, level 1 puts every group at the cap), so
solving the level for the target on the analytic FLOPs model (`flops_model`) costs no
training and every trial lands where it aimed. The sampler then searches two numbers (the
target and the allocation) instead of one offset per group, which 20–40 trials cannot steer.

- `uniform`: every group at one ratio (what a for-loop over ratios does);
- `global`: Torch-Pruning's global ranking, isomorphic (groups of one structure share a
  ranking scope), each group capped against layer collapse;
- `sensitivity`: equal degradation, each group at the largest ratio whose measured drop
  stays under one threshold (ModelOpt FastNAS's rule);
- `free`: independent per-group ratios (EagleEye's random draw), solved for the target.

Candidates after the first are the family's ratios bent group by group by random exponents
(`free`: every candidate), so a trial can screen several allocations at its target.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from medslim.errors import UsageError
from medslim.registry import Registry
from medslim.spaces.flops_model import FlopsModel, ratio_keeping

if TYPE_CHECKING:
    from medslim.spaces.channel_groups import GroupRank

Ratios = dict[str, float]
Shape = Callable[[float], Ratios]
"""One family of allocations: level in [0, 1] → ratios, pruning more as the level grows."""
Curve = tuple[tuple[float, ...], tuple[float, ...]]
"""A group's sensitivity curve: ratios and the score drop when only it is pruned so."""

_BISECTIONS = 40
_CLOSE_ENOUGH = 0.005
"""Relative FLOPs error below which a solved allocation is not nudged channel by channel."""


@dataclass(frozen=True)
class AllocationBasis:
    """What allocations are computed from, fixed for a study: the FLOPs model, the per-group
    cap, the groups' rankings (for `global`) and sensitivity curves (for `sensitivity`)."""

    flops: FlopsModel
    cap: float
    ranks: Mapping[str, GroupRank] = field(default_factory=dict)
    curves: Mapping[str, Curve] = field(default_factory=dict)

    @property
    def units(self) -> list[str]:
        return list(self.flops.channels)

    def min_kept(self, unit: str) -> int:
        """The fewest channels (weights) the cap leaves a unit."""
        return self.flops.kept(unit, self.cap)


@dataclass(frozen=True)
class Allocation:
    """One registered allocation: its family, how far candidates bend it (the standard
    deviation of each group's log exponent; 0: one candidate only), whether the first
    candidate is bent too, and what of the basis it needs."""

    name: str
    family: Callable[[AllocationBasis], Shape]
    summary: str
    jitter: float = 0.3
    bend_first: bool = False
    needs: str | None = None
    """"ranks" (channel groups with importance) or "curves" (a sensitivity analysis)."""
    mix: tuple[str, ...] = ()
    """For an allocation that screens other families: their names, their own ratios first."""


@dataclass(frozen=True)
class Candidate:
    """Ratios solved for a target, and the FLOPs the model counts for them."""

    ratios: Ratios
    flops: float


ALLOCATIONS: Registry[Allocation] = Registry("allocation")


def register_allocation(allocation: Allocation) -> None:
    """Add an allocation a pruning trial may choose (`--allocations NAME,...`)."""
    ALLOCATIONS.register(allocation.name, allocation)


def get_allocation(name: str) -> Allocation:
    return ALLOCATIONS.get(name)


def allocation_names() -> list[str]:
    return ALLOCATIONS.names()


def check_fits(name: str, basis: AllocationBasis, curves_measurable: bool = False) -> None:
    """Refuse an allocation the basis cannot serve, in one line (`curves_measurable`: the
    curves it lacks can still be measured)."""
    allocation = get_allocation(name)
    if allocation.needs == "ranks" and not basis.ranks:
        raise UsageError(
            f"allocation {name!r} ranks channels across groups; it needs structured pruning "
            "of a model with channel groups"
        )
    if allocation.needs == "curves" and not (basis.curves or curves_measurable):
        raise UsageError(
            f"allocation {name!r} needs sensitivity curves, and this study has no groups to "
            "measure them on; choose another allocation"
        )


def candidates(
    basis: AllocationBasis,
    name: str,
    target_flops: float,
    count: int,
    rng: np.random.Generator,
) -> list[Candidate]:
    """`count` allocations of family `name` solved for `target_flops` (one for a family
    that candidates do not bend); the first is the family's own unless it bends them all."""
    allocation = get_allocation(name)
    check_fits(name, basis)
    if allocation.mix:
        shapes = [get_allocation(m).family(basis) for m in allocation.mix if _fits(m, basis)]
    else:
        shapes = [allocation.family(basis)]
    if allocation.jitter <= 0:
        count = 1
    found = []
    for index in range(count):
        shape = shapes[index % len(shapes)]
        if allocation.bend_first or index >= len(shapes):
            exponents = np.exp(rng.normal(0.0, allocation.jitter, len(basis.units)))
            shape = _bend(shape, dict(zip(basis.units, exponents.tolist(), strict=True)), basis)
        found.append(solve(basis, shape, target_flops))
    return found


def _fits(name: str, basis: AllocationBasis) -> bool:
    try:
        check_fits(name, basis)
    except UsageError:
        return False
    return True


def solve(basis: AllocationBasis, shape: Shape, target_flops: float) -> Candidate:
    """The family's ratios whose FLOPs come nearest `target_flops`: bisection on the level,
    then single-channel nudges. A target below what the cap allows gives the family's
    smallest model (the caller records the FLOPs reached)."""
    model = basis.flops
    lowest = shape(1.0)
    if model.flops(lowest) >= target_flops:
        return Candidate(lowest, model.flops(lowest))
    low, high = 0.0, 1.0
    for _ in range(_BISECTIONS):
        middle = (low + high) / 2
        if model.flops(shape(middle)) > target_flops:
            low = middle
        else:
            high = middle
    ratios = min((shape(low), shape(high)), key=lambda r: _miss(model.flops(r), target_flops))
    ratios = _nudge(basis, ratios, target_flops)
    return Candidate(ratios, model.flops(ratios))


def _miss(flops: float, target: float) -> float:
    return abs(math.log(max(flops, 1.0) / max(target, 1.0)))


def _nudge(basis: AllocationBasis, ratios: Ratios, target: float) -> Ratios:
    """Move one group by one channel (or `round_to`) at a time while that brings the FLOPs
    nearer the target: closes the gap integer channel counts leave along a family."""
    model = basis.flops
    step = model.round_to if model.structured else 1
    kept = {u: model.kept(u, r) for u, r in ratios.items()}
    best = _miss(model.flops(ratios), target)
    for _ in range(4 * len(kept)):
        if best < _CLOSE_ENOUGH:
            break
        moves = []
        for unit, channels in kept.items():
            for new in (channels - step, channels + step):
                if basis.min_kept(unit) <= new <= model.channels[unit]:
                    moved = {**ratios, unit: _ratio_for(model, unit, new)}
                    moves.append((_miss(model.flops(moved), target), unit, new, moved))
        if not moves:
            break
        miss, unit, new, moved = min(moves, key=lambda m: m[0])
        if miss >= best:
            break
        best, kept[unit], ratios = miss, new, moved
    return ratios


def _ratio_for(model: FlopsModel, unit: str, kept: int) -> float:
    channels = model.channels[unit]
    if model.structured:
        return ratio_keeping(channels, kept)
    return (channels - kept) / channels


def _bend(shape: Shape, exponents: dict[str, float], basis: AllocationBasis) -> Shape:
    """The family with each group's ratio r replaced by cap·(r/cap)^exponent: the same ends
    (nothing pruned, all at the cap), another path between them."""
    cap = basis.cap

    def bent(level: float) -> Ratios:
        return {u: cap * (min(r, cap) / cap) ** exponents[u] for u, r in shape(level).items()}

    return bent


def _uniform(basis: AllocationBasis) -> Shape:
    units = basis.units

    def shape(level: float) -> Ratios:
        return dict.fromkeys(units, basis.cap * level)

    return shape


def _global(basis: AllocationBasis) -> Shape:
    """Torch-Pruning's isomorphic global pruning at level p: in each scope, the share p of
    its channels with the lowest normalised importance, no group beyond the cap."""
    scopes: dict[str, list[str]] = {}
    for unit in basis.units:
        scopes.setdefault(basis.ranks[unit].scope, []).append(unit)
    ordered = {
        scope: np.sort(np.concatenate([basis.ranks[u].importance for u in units]))
        for scope, units in scopes.items()
    }
    importance = {u: np.asarray(basis.ranks[u].importance) for u in basis.units}

    def shape(level: float) -> Ratios:
        ratios = {}
        for scope, units in scopes.items():
            values = ordered[scope]
            pruned = len(values) - int(len(values) * (1.0 - level))
            for unit in units:
                channels = basis.flops.channels[unit]
                cut = 0 if pruned <= 0 else int((importance[unit] <= values[pruned - 1]).sum())
                kept = max(channels - cut, basis.min_kept(unit))
                ratios[unit] = ratio_keeping(channels, kept)
        return ratios

    return shape


def _sensitivity(basis: AllocationBasis) -> Shape:
    """Equal degradation: at threshold τ each group takes the largest ratio (up to the cap)
    whose drop, linear between the measured points and never falling, stays within τ."""
    curves = {u: _envelope(basis.curves[u]) for u in basis.units}
    highest = max((max(d) for _, d in curves.values()), default=0.0)
    low, high = -1e-9, highest + 1e-9

    def shape(level: float) -> Ratios:
        threshold = low + level * (high - low)
        return {u: min(basis.cap, _largest_within(curves[u], threshold)) for u in basis.units}

    return shape


def _envelope(curve: Curve) -> Curve:
    """The curve from (0, 0), sorted by ratio, its drop made non-decreasing."""
    points = sorted(zip(*curve, strict=True))
    ratios, drops, worst = [0.0], [0.0], 0.0
    for ratio, drop in points:
        worst = max(worst, drop)
        ratios.append(ratio)
        drops.append(worst)
    return tuple(ratios), tuple(drops)


def _largest_within(curve: Curve, threshold: float) -> float:
    ratios, drops = curve
    if drops[0] > threshold:
        return 0.0
    for k in range(1, len(ratios)):
        if drops[k] > threshold:
            share = (threshold - drops[k - 1]) / (drops[k] - drops[k - 1])
            return ratios[k - 1] + share * (ratios[k] - ratios[k - 1])
    return 1.0  # within the threshold at every measured ratio: up to the cap


register_allocation(Allocation("uniform", _uniform, "one ratio for every group", jitter=0.0))
register_allocation(
    Allocation(
        "global",
        _global,
        "Torch-Pruning's isomorphic global ranking, capped per group",
        needs="ranks",
    )
)
register_allocation(
    Allocation(
        "sensitivity",
        _sensitivity,
        "equal degradation: each group up to one threshold of its measured drop",
        needs="curves",
    )
)
register_allocation(
    Allocation(
        "free",
        _uniform,
        "independent per-group ratios at the target (EagleEye's random draw)",
        jitter=0.8,
        bend_first=True,
    )
)
register_allocation(
    Allocation(
        "screened",
        _uniform,
        "the proxy picks among uniform, global, sensitivity and bent draws of them",
        jitter=0.5,
        mix=("uniform", "global", "sensitivity"),
    )
)
