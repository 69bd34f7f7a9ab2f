"""A pruned model as plain data, and back.

Pruning changes a model's tensors (their shapes are in its state dict) and a few plain
attributes of its modules: channel counts, a depthwise convolution's groups, an attention
layer's head count. `changed_attributes` lists those against a fresh build of the model's
blueprint; `reshape` applies them and the state dict's shapes to another fresh build, so
the weights then load strictly. This works for any network, not only medslim's own, and
never pickles a module.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

Changes = dict[str, dict[str, Any]]
"""Module name → attribute → JSON value (tuples as lists)."""

_MISSING = object()


def changed_attributes(model: nn.Module, base: nn.Module) -> Changes:
    """Public plain-valued attributes (numbers, strings, tuples of them) of `model`'s
    modules that differ from the same module of `base`."""
    base_modules = dict(base.named_modules())
    changes: Changes = {}
    for name, module in model.named_modules():
        reference = base_modules.get(name)
        if reference is None or type(reference) is not type(module):
            raise ValueError(f"module {name!r} does not exist in the model's blueprint")
        differ = {
            key: _json(value)
            for key, value in vars(module).items()
            if not key.startswith("_")
            and key != "training"
            and _is_plain(value)
            and getattr(reference, key, _MISSING) != value
        }
        if differ:
            changes[name] = differ
    return changes


def reshape(model: nn.Module, changes: Changes, state: dict[str, torch.Tensor]) -> nn.Module:
    """`model` (a fresh build of the blueprint) with the changed attributes set and every
    parameter and buffer resized to the state dict's shape, ready for a strict load."""
    for name, attributes in changes.items():
        module = model.get_submodule(name)
        for key, value in attributes.items():
            current = getattr(module, key, None)
            setattr(module, key, _like(current, value))
    for key, tensor in state.items():
        owner, _, attribute = key.rpartition(".")
        module = model.get_submodule(owner)
        current = getattr(module, attribute, None)
        if not isinstance(current, torch.Tensor) or current.shape == tensor.shape:
            continue
        empty = torch.empty(tensor.shape, dtype=current.dtype, device=current.device)
        if isinstance(current, nn.Parameter):
            setattr(module, attribute, nn.Parameter(empty, requires_grad=current.requires_grad))
        else:
            module.register_buffer(attribute, empty)
    return model


def _is_plain(value: Any) -> bool:
    if isinstance(value, bool | int | float | str) or value is None:
        return True
    if isinstance(value, tuple | list):
        return all(_is_plain(v) for v in value)
    return False


def _json(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_json(v) for v in value]
    return value


def _like(current: Any, value: Any) -> Any:
    """A JSON value back in the type the attribute had (tuples stay tuples)."""
    if isinstance(current, tuple) and isinstance(value, list):
        return tuple(value)
    return value
