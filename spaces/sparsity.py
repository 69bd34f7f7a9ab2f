"""The sparsity space: which per-group pruning ratios a trial may choose, and how to apply them.

A trial chooses a FLOPs target (a share of the teacher's, log-uniform) and an allocation
that spreads it over the groups (`allocation`): two numbers a small budget can steer,
where the ratios follow, solved for the target. Studies made before this chose one global
ratio plus a bounded offset per group (`--allocations offsets`), and keep doing so.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from medslim.errors import UsageError
from medslim.kinds import PRUNING_KINDS, Pruning
from medslim.spaces.channel_groups import Pruners, channel_groups
from medslim.spaces.criteria import Criterion, get_criterion, searchable_criteria
from medslim.spaces.graphs import head_layers, matching_modules, trace_calls
from medslim.spaces.layers import PRUNABLE

SampleLosses = Callable[[nn.Module], torch.Tensor]
"""Per-sample losses of a model on a fixed calibration batch (for gradient criteria)."""

OFFSET_PREFIX = "offset."
"""Trial parameter of a group's offset from the global ratio: `offset.<group>`."""
TARGET_PARAM = "flops.target"
"""Trial parameter: the FLOPs the pruned model aims at, as a share of the teacher's."""
ALLOCATION_PARAM = "allocation"
OFFSETS = "offsets"
"""The allocation of a global ratio plus per-group offsets (no FLOPs target)."""


@dataclass(frozen=True)
class SparsitySpace:
    """What a pruning trial may choose. `criterion=None` searches the criterion too."""

    pruning: Pruning = "structured"
    max_ratio: float = 0.9
    max_offset: float = 0.2
    criterion: str | None = "l1"
    iterative_steps: int = 1
    ceilings: tuple[tuple[str, float], ...] = ()
    """Per-unit ratio ceilings below `max_ratio` (e.g. from a sensitivity analysis)."""
    offset_prefix: str = OFFSET_PREFIX
    ignore_layers: tuple[str, ...] = ()
    """Layers (names or globs) kept whole besides the classifier head, which always is."""
    round_to: int = 1
    """Channel counts left by structured pruning are multiples of this."""
    allocations: tuple[str, ...] = (OFFSETS,)

    @property
    def targets(self) -> bool:
        """Whether trials choose a FLOPs target and an allocation (not offsets)."""
        return self.allocations != (OFFSETS,)

    def __post_init__(self) -> None:
        if self.pruning not in PRUNING_KINDS:
            raise UsageError(
                f"unknown pruning kind {self.pruning!r}; use one of {', '.join(PRUNING_KINDS)}"
            )
        if not 0.0 < self.max_ratio < 1.0:
            raise UsageError(f"--max-ratio must be in (0, 1), got {self.max_ratio}")
        if not 0.0 <= self.max_offset <= 1.0:
            raise UsageError(f"the per-group offset must be in [0, 1], got {self.max_offset}")
        if self.iterative_steps < 1:
            raise UsageError(f"--iterative-steps must be at least 1, got {self.iterative_steps}")
        if self.round_to < 1:
            raise UsageError(f"--round-to must be 1 or more, got {self.round_to}")
        if self.criterion is not None:
            _check_criterion_fits(get_criterion(self.criterion), self.pruning)


@dataclass(frozen=True)
class PruningPlan:
    """What one trial chose: a ratio per group (network order), the criterion, the steps."""

    ratios: dict[str, float]
    criterion: str
    pruning: Pruning
    iterative_steps: int = 1
    global_ratio: float = field(default=0.0)
    ignore: tuple[str, ...] = ()
    round_to: int = 1
    allocation: str | None = None
    """How the ratios were spread over the groups (None: global ratio plus offsets)."""
    target: float | None = None
    """The FLOPs share the ratios were solved for."""

    def compress(
        self, model: nn.Module, example: torch.Tensor, sample_losses: SampleLosses
    ) -> Iterator[int]:
        """Prune `model` in place (`prune_in_steps`)."""
        return prune_in_steps(model, self, example, sample_losses)

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "method": "prune",
            "pruning": self.pruning,
            "criterion": self.criterion,
            "iterative_steps": self.iterative_steps,
            "global_ratio": round(self.global_ratio, 4),
            "ratios": {k: round(v, 4) for k, v in self.ratios.items()},
        }
        if self.allocation is not None:
            described.update(allocation=self.allocation, target=self.target)
        return described


def _check_criterion_fits(criterion: Criterion, pruning: Pruning) -> None:
    if not criterion.fits(pruning):
        other = "structured" if pruning == "unstructured" else "unstructured"
        raise UsageError(
            f"criterion {criterion.name!r} cannot rank what --pruning {pruning} removes; "
            f"use it with --pruning {other}, or pick another criterion"
        )


def prunable_units(
    model: nn.Module, example_input: torch.Tensor, pruning: Pruning, ignore: Sequence[str] = ()
) -> dict[str, nn.Module]:
    """Readable name → module, in network order, for every unit a trial gives a ratio.

    Structured: one entry per torch-pruning dependency group (channels coupled across a
    residual addition share one ratio), named after the group's root layer. Unstructured:
    each conv/linear weight. The classifier head (found, not named) and the layers `ignore`
    names stay whole.
    """
    protected = protected_layers(model, example_input, ignore)
    if pruning == "unstructured":
        return {
            name: m
            for name, m in model.named_modules()
            if isinstance(m, PRUNABLE)
            and not any(name == p or name.startswith(f"{p}.") for p in protected)
        }
    return channel_groups(model, example_input, protected).units


def protected_layers(
    model: nn.Module, example_input: torch.Tensor, ignore: Sequence[str] = ()
) -> list[str]:
    """The layers no trial cuts: the classifier head and what `ignore` names."""
    head = head_layers(trace_calls(model, example_input))
    return head + [name for name in matching_modules(model, ignore) if name not in head]


def sample_plan(trial: Any, space: SparsitySpace, unit_names: Sequence[str]) -> PruningPlan:
    """Ask the trial for a global ratio, one bounded offset per unit, and maybe the criterion."""
    global_ratio = trial.suggest_float("sparsity.global", 0.0, space.max_ratio)
    ceilings = dict(space.ceilings)
    ratios = {}
    for name in unit_names:
        offset = 0.0
        if space.max_offset > 0:
            offset = trial.suggest_float(
                f"{space.offset_prefix}{name}", -space.max_offset, space.max_offset
            )
        ceiling = min(space.max_ratio, ceilings.get(name, space.max_ratio))
        ratios[name] = min(max(global_ratio + offset, 0.0), ceiling)
    return PruningPlan(
        ratios,
        _criterion(trial, space),
        space.pruning,
        space.iterative_steps,
        global_ratio,
        space.ignore_layers,
        space.round_to,
    )


@dataclass(frozen=True)
class TargetChoice:
    """What a trial of a target space chose: its FLOPs share, allocation and criterion."""

    target: float
    allocation: str
    criterion: str


def sample_target(trial: Any, space: SparsitySpace, bounds: tuple[float, float]) -> TargetChoice:
    """Ask for the FLOPs target (log-uniform within `bounds`), the allocation (when the
    study offers several; a uniform baseline keeps `uniform`) and maybe the criterion."""
    target = trial.suggest_float(TARGET_PARAM, *bounds, log=True)
    if trial.user_attrs.get("baseline") == "uniform":
        allocation = "uniform"
    elif len(space.allocations) == 1:
        allocation = space.allocations[0]
    else:
        allocation = trial.suggest_categorical(ALLOCATION_PARAM, space.allocations)
    return TargetChoice(target, allocation, _criterion(trial, space))


def _criterion(trial: Any, space: SparsitySpace) -> str:
    if space.criterion is not None:
        return space.criterion
    return str(trial.suggest_categorical("criterion", searchable_criteria(space.pruning)))


def uniform_params(
    space: SparsitySpace, unit_names: Sequence[str], ratio: float, target: float = 0.0
) -> dict:
    """The trial parameters of the uniform baseline at `ratio`: its FLOPs share `target`
    in a target space, else the global ratio with all offsets zero."""
    params: dict[str, Any]
    if space.targets:
        params = {TARGET_PARAM: target}
    else:
        params = {"sparsity.global": ratio}
        if space.max_offset > 0:
            params.update({f"{space.offset_prefix}{name}": 0.0 for name in unit_names})
    if space.criterion is None:
        params["criterion"] = "l1"
    return params


def uniform_ratios(space: SparsitySpace, count: int = 9) -> list[float]:
    """Evenly spaced baseline ratios in (0, max_ratio]."""
    return [round(space.max_ratio * (i + 1) / count, 4) for i in range(count)]


def prune_in_steps(
    model: nn.Module,
    plan: PruningPlan,
    example_input: torch.Tensor,
    sample_losses: SampleLosses,
) -> Iterator[int]:
    """Prune `model` in place in `plan.iterative_steps` steps, yielding after each.

    The caller fine-tunes between yields (prune → fine-tune → repeat, as the seed
    documents describe). Step k reaches k/K of each target ratio.
    """
    criterion = get_criterion(plan.criterion)
    _check_criterion_fits(criterion, plan.pruning)
    if plan.pruning == "unstructured":
        yield from _prune_unstructured(model, plan, criterion, sample_losses)
        return
    # Unit names are the groups' root module names, so the pruner's own dependency graph
    # is the only one this builds.
    if criterion.channel_importance is None:  # refused by _check_criterion_fits already
        raise UsageError(f"criterion {criterion.name!r} cannot rank channels")
    importance = criterion.channel_importance()
    pruners = Pruners(
        model,
        example_input,
        plan.ratios,
        protected_layers(model, example_input, plan.ignore),
        importance=importance,
        steps=plan.iterative_steps,
        round_to=plan.round_to,
    )
    for step in range(plan.iterative_steps):
        _prepare_gradients(model, criterion, importance, sample_losses)
        pruners.step()
        model.zero_grad(set_to_none=True)
        yield step


def _prune_unstructured(
    model: nn.Module, plan: PruningPlan, criterion: Criterion, sample_losses: SampleLosses
) -> Iterator[int]:
    units = {name: model.get_submodule(name) for name in plan.ratios}
    weight_score = criterion.weight_score
    if weight_score is None:  # refused by _check_criterion_fits already
        raise UsageError(f"criterion {criterion.name!r} cannot rank single weights")
    for step in range(plan.iterative_steps):
        fisher = _prepare_gradients(model, criterion, None, sample_losses)
        fraction = (step + 1) / plan.iterative_steps
        for name, module in units.items():
            # Once masked, the trainable tensor is `weight_orig` and `weight` is derived.
            weight = _weight(module)
            param: torch.Tensor = getattr(module, "weight_orig", weight)
            score = weight_score(weight, param.grad, fisher.get(param))
            mask_so_far: torch.Tensor | None = getattr(module, "weight_mask", None)
            if mask_so_far is not None:  # weights cut in an earlier step stay cut
                score = score.masked_fill(mask_so_far == 0, float("-inf"))
                torch_prune.remove(module, "weight")
            mask = _keep_mask(score, plan.ratios[name] * fraction)
            torch_prune.custom_from_mask(module, "weight", mask)
        model.zero_grad(set_to_none=True)
        yield step


def _weight(module: nn.Module) -> torch.Tensor:
    weight = module.weight
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{type(module).__name__} has no weight tensor to prune")
    return weight


def _keep_mask(score: torch.Tensor, ratio: float) -> torch.Tensor:
    """1 for the weights to keep: all but the `ratio` share with the lowest scores."""
    count = int(round(ratio * score.numel()))
    mask = torch.ones_like(score)
    if count > 0:
        lowest = torch.topk(score.flatten(), count, largest=False).indices
        mask.view(-1)[lowest] = 0.0
    return mask


def _prepare_gradients(
    model: nn.Module,
    criterion: Criterion,
    importance: Any,
    sample_losses: SampleLosses,
) -> dict[torch.Tensor, torch.Tensor]:
    """Fill `.grad` (first order) or return the diagonal empirical Fisher (second order)."""
    model.zero_grad(set_to_none=True)
    if criterion.gradients == "none":
        return {}
    was_training = model.training
    model.eval()
    losses = sample_losses(model)
    fisher: dict[torch.Tensor, torch.Tensor] = {}
    if criterion.gradients == "batch":
        losses.mean().backward()
    else:
        params = [p for p in model.parameters() if p.requires_grad]
        for index, loss in enumerate(losses):
            grads = torch.autograd.grad(loss, params, retain_graph=index < len(losses) - 1)
            for p, g in zip(params, grads, strict=True):
                fisher[p] = fisher.get(p, 0.0) + g.detach() ** 2 / len(losses)
        if importance is not None:
            # torch-pruning's accumulator keeps grad²; handing it sqrt(mean g²) once makes
            # it hold the mean over samples.
            importance.zero_grad()
            for p in params:
                p.grad = fisher[p].sqrt()
            importance.accumulate_grad(model)
    model.train(was_training)
    return fisher


def pruned_copy(teacher: nn.Module) -> nn.Module:
    """A deep copy to prune: the teacher itself is never modified."""
    return copy.deepcopy(teacher)


def make_masks_permanent(model: nn.Module) -> None:
    """Fold unstructured masks into plain weights (zeros stay zero) for export and counting."""
    for module in model.modules():
        if hasattr(module, "weight_mask"):
            torch_prune.remove(module, "weight")
