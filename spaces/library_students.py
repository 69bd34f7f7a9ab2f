"""Students from a library's small networks: torchvision's MobileNetV3-Small or ResNet-18,
fitted to the data, then narrowed to a fraction of their width.

torchvision's ResNet has no width argument, so a narrower one is the built network with
every channel group cut to `width` by Torch-Pruning at initialisation: the same layers and
connections, fewer channels. The cut depends only on channel counts, so every build of a
spec has the same shapes.
"""

from __future__ import annotations

import torch
import torch_pruning as tp
from torch import nn

from medslim.spaces.channel_groups import Pruners, channel_groups
from medslim.spaces.library_models import build_torchvision, fit_to_input
from medslim.spaces.sparsity import protected_layers
from medslim.spaces.specs import LibrarySpec


def build_library_student(
    spec: LibrarySpec, input_shape: tuple[int, ...], n_outputs: int
) -> nn.Module:
    label = f"torchvision:{spec.arch}"
    model = build_torchvision(spec.arch, input_shape[0], n_outputs, {}, False)
    model = fit_to_input(model, input_shape, n_outputs, label)
    if spec.width < 1.0:
        narrow(model, spec.width, input_shape)
    return model


def narrow(model: nn.Module, width: float, input_shape: tuple[int, ...]) -> None:
    """Cut every prunable channel group of `model` (in place) to `width` of its channels."""
    example = torch.zeros(2, *input_shape)
    protected = protected_layers(model, example)
    units = channel_groups(model, example, protected).units
    Pruners(
        model,
        example,
        dict.fromkeys(units, 1.0 - width),
        protected,
        importance=tp.importance.GroupMagnitudeImportance(p=1),
        steps=1,
        round_to=1,
    ).step()
