"""The layer types medslim reasons about, in one place for 2-D and 3-D networks alike.

Every module that lists layer types (FLOPs per layer, the roots of Torch-Pruning's channel
groups, the layers masked by unstructured pruning, batch-norm recalibration, a library
model's stem, the pools before a head) reads them from here, so a volume network's
`Conv3d` and `BatchNorm3d` count wherever their 2-D twins do.
"""

from __future__ import annotations

import torch
from torch import nn

CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
WEIGHTED = (*CONVOLUTIONS, nn.Linear)
"""Layers whose weights multiply their inputs: they carry a network's FLOPs."""
PRUNABLE = (nn.Conv2d, nn.Conv3d, nn.Linear)
"""Roots of the channel groups structured pruning cuts, and the weights unstructured pruning
masks (1-D convolutions, e.g. efficient channel attention, stay whole as they always have)."""
STEMS = (nn.Conv2d, nn.Conv3d)
"""Convolutions that can be a network's first layer on an image or a volume."""
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
MAX_POOLS = (nn.MaxPool2d, nn.MaxPool3d)
POOLING = (
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.AvgPool2d,
    nn.MaxPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool3d,
    nn.AvgPool3d,
    nn.MaxPool3d,
)
SPATIAL_DIMS = {4: 2, 5: 3}
"""Tensor rank of a batch of feature maps → its spatial dimensions (N, C, H, W / D, H, W)."""


def is_feature_map(tensor: object) -> bool:
    """A batch of 2-D or 3-D feature maps (N, C, H, W) or (N, C, D, H, W)."""
    return isinstance(tensor, torch.Tensor) and tensor.dim() in SPATIAL_DIMS


def convolution(spatial_dims: int) -> type[nn.Conv2d] | type[nn.Conv3d]:
    """`nn.Conv2d` for images, `nn.Conv3d` for volumes."""
    return nn.Conv3d if spatial_dims == 3 else nn.Conv2d


def out_width(module: nn.Module) -> int:
    """Output channels of a convolution, output features of a linear layer."""
    if isinstance(module, CONVOLUTIONS):
        return module.out_channels
    if isinstance(module, nn.Linear):
        return module.out_features
    raise TypeError(f"{type(module).__name__} is neither a convolution nor a linear layer")
