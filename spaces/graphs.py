"""Facts about a network medslim did not write, found by running it once, never by name:
its classifier head, the module that gives its last feature map, its attention layers."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from medslim.errors import UsageError
from medslim.spaces.layers import POOLING, WEIGHTED, is_feature_map, out_width


@dataclass(frozen=True)
class Call:
    """One module's forward call, in the order calls finished (inner before outer): its
    arguments (detached copies) and its output."""

    name: str
    module: nn.Module
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    output: object


def trace_calls(model: nn.Module, example: torch.Tensor) -> list[Call]:
    """Every module call of one forward pass in eval mode (no gradients), in finishing order."""
    calls: list[Call] = []

    def keeper(name: str) -> Callable[..., None]:
        def keep(module: nn.Module, args: tuple, kwargs: dict, output: object) -> None:
            calls.append(Call(name, module, _detached(args), _detached(kwargs), output))

        return keep

    hooks = [
        module.register_forward_hook(keeper(name), with_kwargs=True)
        for name, module in model.named_modules()
        if name
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return calls


def _detached(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, tuple | list):
        return type(value)(_detached(v) for v in value)
    if isinstance(value, dict):
        return {k: _detached(v) for k, v in value.items()}
    return value


def head_layers(calls: Sequence[Call]) -> list[str]:
    """The classifier: the last convolution or linear layer to run, and any layer with
    weights that runs after it (a final norm). Never pruned."""
    weighted = [i for i, c in enumerate(calls) if isinstance(c.module, WEIGHTED)]
    if not weighted:
        raise UsageError("the model has no convolution or linear layer to prune")
    last = weighted[-1]
    after = [c.name for c in calls[last + 1 :] if _has_own_parameters(c.module)]
    return [calls[last].name, *after]


def feature_map_module(calls: Sequence[Call]) -> str | None:
    """The module that gives the last spatial feature map (N, C, H, W), or (N, C, D, H, W) in
    a volume network, before the head, or None when the network works on other shapes after
    it (a transformer's tokens)."""
    chosen: int | None = None
    for index, call in enumerate(calls):
        output = call.output
        if is_feature_map(output):
            if not isinstance(call.module, POOLING):
                chosen = index
        elif isinstance(output, torch.Tensor) and output.dim() == 3 and chosen is not None:
            chosen = None  # tokens after the map: no map feeds the head directly
    if chosen is None:
        return None
    output = calls[chosen].output
    outer = [c.name for c in calls[chosen:] if c.output is output]
    return outer[-1]  # the outermost module returning that very tensor


def attention_heads(model: nn.Module) -> dict[nn.Module, nn.Module]:
    """Attention layers in timm's convention (a fused `qkv` linear layer and a `num_heads`
    attribute): their `qkv` layer → the attention module."""
    found: dict[nn.Module, nn.Module] = {}
    for module in model.modules():
        qkv = getattr(module, "qkv", None)
        if isinstance(qkv, nn.Linear) and isinstance(vars(module).get("num_heads"), int):
            found[qkv] = module
    return found


def head_count(attention: nn.Module) -> int:
    """An attention module's `num_heads`."""
    return int(vars(attention)["num_heads"])


def sync_attention(layers: dict[nn.Module, nn.Module], num_heads: dict[nn.Module, int]) -> None:
    """After Torch-Pruning removed heads: the attention modules' own head counts follow."""
    for qkv, attention in layers.items():
        heads = num_heads[qkv]
        head_dim = int(vars(qkv)["out_features"]) // (3 * heads)
        values = {"num_heads": heads, "head_dim": head_dim, "attn_dim": heads * head_dim}
        for key, value in values.items():
            if key in vars(attention):
                setattr(attention, key, value)


def matching_modules(model: nn.Module, patterns: Iterable[str]) -> list[str]:
    """Names of the modules each pattern (a name, or a glob like `layer4.*`) matches; a
    pattern that matches nothing is an error that shows some names."""
    names = [name for name, _ in model.named_modules() if name]
    matched: list[str] = []
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            shown = ", ".join(n for n in names if "." not in n)
            raise UsageError(
                f"--ignore-layers {pattern!r} matches no layer of the model; its top-level "
                f"modules: {shown} (names as in model.named_modules(); globs allowed)"
            )
        matched += [h for h in hits if h not in matched]
    return matched


def widest_layer(model: nn.Module) -> int:
    """The most output channels or features of any convolution or linear layer."""
    widths = [out_width(m) for m in model.modules() if isinstance(m, WEIGHTED)]
    return max(widths, default=1)


def _has_own_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False))
