"""Channel groups: what structured pruning can cut in any network, and the pruners that cut it.

Torch-Pruning's dependency graph couples channels across residual additions, concatenations
(DenseNet), depthwise and grouped convolutions, squeeze-excitation, LayerNorm and attention
heads. Where it cannot trace the whole network (ShuffleNet's channel shuffle), medslim traces
the largest pieces it can on their own and keeps only the groups that leave each piece's
inputs and outputs as they were, so the rest of the network never sees a difference. Layers
in no group stay whole and are listed once; nothing here raises for a layer it cannot cut.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
import torch_pruning as tp
from torch import nn

from medslim.errors import UsageError
from medslim.spaces.graphs import attention_heads, head_count, sync_attention, trace_calls

logger = logging.getLogger(__name__)
ROOT_TYPES = [nn.Conv2d, nn.Linear]
_LOGGED: set[tuple[str, ...]] = set()
T = TypeVar("T")
Inputs = tuple[tuple[Any, ...], dict[str, Any]]
"""One forward call's positional and keyword arguments."""


@dataclass(frozen=True)
class Piece:
    """A module Torch-Pruning traces on its own ("" is the whole model), with the inputs
    it saw in one forward pass of the model."""

    name: str
    module: nn.Module
    inputs: Inputs

    @property
    def whole(self) -> bool:
        return self.name == ""

    def full_name(self, relative: str) -> str:
        return f"{self.name}.{relative}" if self.name else relative


@dataclass(frozen=True)
class Link:
    """One dimension of one layer that a group cuts: the layer's name, whether the group
    removes its output or its input channels, and how many of them the group holds."""

    layer: str
    outputs: bool
    channels: int


@dataclass(frozen=True)
class Groups:
    """Each prunable group's name (its root layer) and root module, in network order, the
    layers with weights that no group cuts (besides the protected ones), and per group the
    conv/linear dimensions it cuts (what an analytic FLOPs count needs)."""

    units: dict[str, nn.Module]
    whole: list[str]
    links: dict[str, tuple[Link, ...]]
    ranks: dict[str, GroupRank] = field(default_factory=dict)
    """With `importance`: each group's channel importance and isomorphic scope."""


@dataclass(frozen=True)
class GroupRank:
    """One group's channel importance (Torch-Pruning's, normalised within the group) and
    its scope: groups of the same structure (Torch-Pruning's isomorphic pruning) share one."""

    importance: tuple[float, ...]
    scope: str


def channel_groups(
    model: nn.Module, example: torch.Tensor, protected: Sequence[str], importance: Any = None
) -> Groups:
    """The groups a trial gives a ratio, and the layers left whole; with a Torch-Pruning
    `importance`, each group's ranking too."""
    names: dict[Any, str] = {module: name for name, module in model.named_modules()}
    for name, module in model.named_modules():  # parameters outside any layer (ConvNeXt's
        for param in module.parameters(recurse=False):  # layer scale) count for their module
            names.setdefault(param, name)
    order = {name: index for index, name in enumerate(dict.fromkeys(names.values()))}
    roots: dict[str, nn.Module] = {}
    links: dict[str, tuple[Link, ...]] = {}
    ranks: dict[str, GroupRank] = {}
    members: set[str] = set(protected)

    def grouped(piece: Piece) -> tuple[Any, list[Any]]:
        graph = _graph(piece)
        ignored = _protected_in(piece, protected)
        return graph, list(
            graph.get_all_groups(ignored_layers=ignored, root_module_types=ROOT_TYPES)
        )

    def has_weights(piece: Piece) -> bool:
        return any(True for _ in piece.module.parameters())

    for piece, (graph, groups) in _largest_traceable(model, example, grouped, has_weights):
        for group in groups:
            root = group[0].dep.target.module
            if not piece.whole and not _keeps_interface(piece, names[root]):
                continue
            roots[names[root]] = root
            links[names[root]] = _links(graph, group, names)
            if importance is not None:
                ranks[names[root]] = _rank(graph, group, importance)
            members |= {
                names[dep.target.module]
                for dep, _ in group
                if dep.target.module in names and _cuts_outputs(graph, dep)
            }
    whole = [
        name
        for name, module in model.named_modules()
        if name not in members and any(True for _ in module.parameters(recurse=False))
    ]
    units = {name: roots[name] for name in sorted(roots, key=order.__getitem__)}
    _log_whole_layers(whole)
    return Groups(
        units,
        whole,
        {name: links[name] for name in units},
        {name: ranks[name] for name in units if name in ranks},
    )


def _rank(graph: Any, group: Any, importance: Any) -> GroupRank:
    """The group's channel importance, and its structure as Torch-Pruning's isomorphic
    pruning tags it (the layer types and cut dimensions along the group)."""
    with torch.no_grad(), _quiet():
        scores = importance(group)
    tags = []
    for dep, _ in group:
        side = "out" if graph.is_out_channel_pruning_fn(dep.handler) else "in"
        tags.append(
            f"{type(dep.source.module).__name__}>{type(dep.target.module).__name__}:{side}"
        )
    values = tuple(float(v) for v in scores.detach().cpu()) if scores is not None else ()
    return GroupRank(values, "|".join(tags))


def _links(graph: Any, group: Any, names: dict[Any, str]) -> tuple[Link, ...]:
    """The conv/linear dimensions a group cuts, each once."""
    found: dict[tuple[str, bool], Link] = {}
    for dep, idxs in group:
        module = dep.target.module
        if isinstance(module, tuple(ROOT_TYPES)) and module in names:
            outputs = _cuts_outputs(graph, dep)
            found.setdefault((names[module], outputs), Link(names[module], outputs, len(idxs)))
    return tuple(found.values())


def _log_whole_layers(whole: list[str]) -> None:
    """Once per process and network: which layers no trial will cut."""
    key = tuple(whole)
    if whole and key not in _LOGGED:
        _LOGGED.add(key)
        shown = ", ".join(whole[:12]) + (f" and {len(whole) - 12} more" if len(whole) > 12 else "")
        logger.info(
            "%d layers stay whole (Torch-Pruning cannot cut them, or they are coupled to the "
            "head or --ignore-layers): %s",
            len(whole),
            shown,
        )


class Pruners:
    """Torch-Pruning pruners over a model (one, or one per traceable piece), stepped
    together; attention modules learn their new head counts after each step."""

    def __init__(
        self,
        model: nn.Module,
        example: torch.Tensor,
        ratios: dict[str, float],
        protected: Sequence[str],
        *,
        importance: Any,
        steps: int,
        round_to: int,
    ) -> None:
        self.attention = attention_heads(model)

        def make(piece: Piece) -> Any:
            return self._pruner(piece, ratios, protected, importance, steps, round_to)

        def wanted(piece: Piece) -> bool:
            return any(_inside(piece, name) for name in ratios)

        traced = _largest_traceable(model, example, make, wanted)
        self.pruners: list[Any] = [pruner for _, pruner in traced if pruner is not None]

    def _pruner(
        self,
        piece: Piece,
        ratios: dict[str, float],
        protected: Sequence[str],
        importance: Any,
        steps: int,
        round_to: int,
    ) -> Any:
        local = {
            piece.module.get_submodule(_relative(piece, name)): ratio
            for name, ratio in ratios.items()
            if _inside(piece, name)
        }
        if not local:
            return None
        inside = set(piece.module.modules())
        heads = {qkv: head_count(a) for qkv, a in self.attention.items() if qkv in inside}
        with _quiet():
            pruner = tp.pruner.BasePruner(
                piece.module,
                piece.inputs,
                importance=importance,
                pruning_ratio=0.0,
                pruning_ratio_dict=local,
                ignored_layers=_protected_in(piece, protected),
                iterative_steps=steps,
                round_to=round_to if round_to > 1 else None,
                num_heads=heads,
                prune_num_heads=bool(heads),
                prune_head_dims=not heads,
                forward_fn=_call,
            )
        if heads:  # known once the pruner's graph says which group holds which heads
            pruner.head_pruning_ratio_dict = {
                qkv: pruner.iterative_pruning_ratio_scheduler(ratio, steps)
                for qkv, ratio in _head_ratios(pruner, local, heads).items()
            }
        return pruner

    def step(self) -> None:
        for pruner in self.pruners:
            with _quiet():
                pruner.step()
            layers = {qkv: self.attention[qkv] for qkv in pruner.num_heads}
            sync_attention(layers, pruner.num_heads)


def _head_ratios(
    pruner: Any, ratios: dict[nn.Module, float], heads: dict[nn.Module, int]
) -> dict[nn.Module, float]:
    """Each attention layer's share of heads to remove: its group's ratio, keeping one."""
    found = {}
    for qkv, count in heads.items():
        group = pruner.DG.get_pruning_group(
            qkv, pruner.DG.get_pruner_of_module(qkv).prune_out_channels, [0]
        )
        ratio = next(
            (ratios[dep.target.module] for dep, _ in group if dep.target.module in ratios), 0.0
        )
        found[qkv] = min(ratio, (count - 1) / count)
    return found


def _largest_traceable(
    model: nn.Module,
    example: torch.Tensor,
    attempt: Callable[[Piece], T],
    wanted: Callable[[Piece], bool],
) -> list[tuple[Piece, T]]:
    """`attempt` on the whole model; where it raises, on each child, recursively: the
    largest `wanted` pieces it succeeds on, with its results."""
    whole = Piece("", model, ((example,), {}))
    try:
        return [(whole, attempt(whole))]
    except Exception:  # Torch-Pruning cannot trace the whole model: try its pieces
        pass
    inputs = _recorded_inputs(model, example)
    found: list[tuple[Piece, T]] = []

    def visit(prefix: str, module: nn.Module) -> None:
        for child_name, child in module.named_children():
            name = f"{prefix}.{child_name}" if prefix else child_name
            if name not in inputs:  # never called in the forward pass
                continue
            piece = Piece(name, child, inputs[name])
            if not wanted(piece):
                continue
            try:
                found.append((piece, attempt(piece)))
            except Exception:  # split it further; a leaf that fails stays whole
                visit(name, child)

    visit("", model)
    logger.debug("Torch-Pruning traces pieces on their own: %s", [p.name for p, _ in found])
    return found


def _graph(piece: Piece) -> Any:
    with _quiet():
        return tp.DependencyGraph().build_dependency(
            piece.module, example_inputs=piece.inputs, forward_fn=_call, verbose=False
        )


def _call(module: nn.Module, inputs: Inputs) -> Any:
    args, kwargs = inputs
    return module(*args, **kwargs)


def _recorded_inputs(model: nn.Module, example: torch.Tensor) -> dict[str, Inputs]:
    """Each module's arguments the first time it runs in one forward pass."""
    seen: dict[str, Inputs] = {}
    for call in trace_calls(model, example):
        seen.setdefault(call.name, (call.args, call.kwargs))
    return seen


def _keeps_interface(piece: Piece, root_name: str) -> bool:
    """Whether cutting half of this group's channels in a copy of the piece leaves the
    piece's outputs as they were (and its inputs acceptable)."""
    expected = _shapes(_call_eval(piece.module, piece.inputs))
    trial = copy.deepcopy(piece.module)
    try:
        test = Piece(piece.name, trial, piece.inputs)
        trial_graph = _graph(test)
        root = trial.get_submodule(_relative(piece, root_name))
        pruner = trial_graph.get_pruner_of_module(root)
        channels = pruner.get_out_channels(root)
        if channels is None or channels < 2:
            return False
        group = trial_graph.get_pruning_group(
            root, pruner.prune_out_channels, list(range(channels // 2))
        )
        with _quiet():
            group.prune()
        return _shapes(_call_eval(trial, piece.inputs)) == expected
    except Exception:  # the cut breaks the piece: this group stays whole
        return False


def _call_eval(module: nn.Module, inputs: Inputs) -> Any:
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            return _call(module, inputs)
    finally:
        module.train(was_training)


def _shapes(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, tuple | list):
        return tuple(_shapes(v) for v in value)
    return type(value).__name__


def _cuts_outputs(graph: Any, dep: Any) -> bool:
    return bool(graph.is_out_channel_pruning_fn(dep.handler))


def _protected_in(piece: Piece, protected: Sequence[str]) -> list[nn.Module]:
    """The protected modules inside the piece, and every module inside those."""
    return [
        module
        for name in protected
        if _inside(piece, name)
        for module in piece.module.get_submodule(_relative(piece, name)).modules()
    ]


def _inside(piece: Piece, name: str) -> bool:
    return piece.whole or name == piece.name or name.startswith(piece.name + ".")


def _relative(piece: Piece, name: str) -> str:
    return name if piece.whole else name[len(piece.name) + 1 :]


class _quiet(warnings.catch_warnings):
    """Torch-Pruning warns about every unwrapped parameter it guesses a dimension for."""

    def __enter__(self) -> Any:
        result = super().__enter__()
        warnings.simplefilter("ignore")
        return result


def group_regularizer(
    model: nn.Module, example: torch.Tensor, protected: Sequence[str], strength: float
) -> Callable[[nn.Module], None]:
    """Torch-Pruning's group-sparsity regulariser of `model` (its GroupNormPruner): called
    after each backward pass, it pulls each channel group's weights towards zero, the
    weakest groups hardest, so that pruning later removes what training already emptied.
    Needs a model Torch-Pruning can trace whole."""
    ignored = [module for name in protected for module in model.get_submodule(name).modules()]
    try:
        with _quiet():
            pruner = tp.pruner.GroupNormPruner(
                model,
                example,
                importance=tp.importance.GroupMagnitudeImportance(p=2),
                reg=strength,
                ignored_layers=ignored,
            )
    except Exception as error:  # Torch-Pruning cannot trace the whole model
        raise UsageError(
            f"--sparsity-training needs a model Torch-Pruning can trace whole ({error}); "
            "run without it"
        ) from error

    def regularize(trained: nn.Module) -> None:
        with _quiet():
            pruner.regularize(trained)

    return regularize
