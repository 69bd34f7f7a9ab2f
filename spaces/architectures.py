"""The networks of medslim's own families (MLP, ResNet, MobileNetV2-style, 3-D ResNet), built
from the specs in `specs`. `families` registers them; nothing else needs to import this module.
The CNNs are written once for images and volumes: the sample's shape (C, H, W) or
(C, D, H, W) picks 2-D or 3-D convolutions, norms and pools."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from medslim.errors import UsageError
from medslim.spaces.layers import convolution
from medslim.spaces.specs import (
    FIRST_STAGE_MIN,
    MLPSpec,
    MobileNetSpec,
    ResNet3DSpec,
    ResNetSpec,
    stem_factor,
)


def _norm(dims: int, channels: int) -> nn.Module:
    return nn.BatchNorm3d(channels) if dims == 3 else nn.BatchNorm2d(channels)


def _check_rank(network: str, input_shape: tuple[int, ...], volumes: bool) -> None:
    """A 2-D network refuses volumes and a 3-D one images, naming the family that fits."""
    if len(input_shape) == (4 if volumes else 3):
        return
    takes, other = (
        ("volumes (C, D, H, W)", "resnet8") if volumes else ("images (C, H, W)", "resnet3d8")
    )
    raise UsageError(
        f"a {network} takes {takes}, not samples of shape {tuple(input_shape)}; "
        f"try --model {other}"
    )


class MLP(nn.Module):
    """Linear → BN → ReLU → Dropout stacks, then a linear head named `head`."""

    def __init__(self, spec: MLPSpec, n_features: int, n_outputs: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for hidden in spec.hidden:
            layers += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
            layers.append(nn.Dropout(spec.dropout))
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class BasicBlock(nn.Module):
    """Two k×k convolutions with a residual connection (projected when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int, kernel: int, dims: int = 2) -> None:
        super().__init__()
        pad = kernel // 2
        conv = convolution(dims)
        self.conv1 = conv(c_in, c_out, kernel, stride, pad, bias=False)
        self.bn1 = _norm(dims, c_out)
        self.conv2 = conv(c_out, c_out, kernel, 1, pad, bias=False)
        self.bn2 = _norm(dims, c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                conv(c_in, c_out, 1, stride, bias=False), _norm(dims, c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class InvertedResidual(nn.Module):
    """MobileNetV2's block: expand, depthwise k×k, linear projection; residual at equal shape."""

    def __init__(self, c_in: int, c_out: int, stride: int, kernel: int, expansion: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        self.expand = nn.Sequential(
            nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)
        )
        self.depthwise = nn.Sequential(
            nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
        )
        self.project = nn.Sequential(
            nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)
        )
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return x + out if self.residual else out


BlockFactory = Callable[[int, int, int], nn.Module]
"""(in channels, out channels, stride) → one block."""


class ConvNet(nn.Module):
    """Stem (downsampling by `stem_factor` of the input size), stages of blocks (stride 2
    from the second stage on), pooling, `head`; 3-D throughout for a volume's shape."""

    def __init__(
        self,
        widths: tuple[int, ...],
        blocks: tuple[int, ...],
        input_shape: tuple[int, ...],
        n_outputs: int,
        block: BlockFactory,
        first_stage: int = FIRST_STAGE_MIN,
    ) -> None:
        super().__init__()
        if len(widths) != len(blocks) or not widths:
            raise UsageError(
                f"a {type(self).__name__} spec needs one width per stage: widths={widths}, "
                f"blocks={blocks}"
            )
        dims = len(input_shape) - 1
        stem = stem_factor(min(input_shape[1:]), first_stage)
        stride = 1 if stem == 1 else 2
        self.conv1 = convolution(dims)(input_shape[0], widths[0], 3, stride, 1, bias=False)
        self.bn1 = _norm(dims, widths[0])
        pool = nn.MaxPool3d(3, 2, 1) if dims == 3 else nn.MaxPool2d(3, 2, 1)
        self.stem_pool: nn.Module = pool if stem == 4 else nn.Identity()
        stages: list[nn.Module] = []
        width = widths[0]
        for index, (out, count) in enumerate(zip(widths, blocks, strict=True)):
            stage = []
            for b in range(count):
                stage.append(block(width, out, 2 if index > 0 and b == 0 else 1))
                width = out
            stages.append(nn.Sequential(*stage))
        self.layers = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool3d(1) if dims == 3 else nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(width, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_pool(torch.relu(self.bn1(self.conv1(x))))
        x = self.pool(self.layers(x)).flatten(1)
        return self.head(x)


class ResNet(ConvNet):
    """Basic blocks; 3×3 stem and no max-pool below 64 px, as MedMNIST uses at 28 px."""

    def __init__(self, spec: ResNetSpec, input_shape: tuple[int, ...], n_outputs: int) -> None:
        _check_rank("ResNet", input_shape, volumes=False)
        super().__init__(
            spec.widths,
            spec.blocks,
            input_shape,
            n_outputs,
            lambda c_in, c_out, stride: BasicBlock(c_in, c_out, stride, spec.kernel),
        )


class ResNet3D(ConvNet):
    """Basic blocks of 3-D convolutions, for volumes (C, D, H, W)."""

    def __init__(self, spec: ResNet3DSpec, input_shape: tuple[int, ...], n_outputs: int) -> None:
        _check_rank("3-D ResNet", input_shape, volumes=True)
        super().__init__(
            spec.widths,
            spec.blocks,
            input_shape,
            n_outputs,
            lambda c_in, c_out, stride: BasicBlock(c_in, c_out, stride, spec.kernel, dims=3),
            spec.first_stage,
        )


class MobileNet(ConvNet):
    """Inverted residuals with depthwise convolutions: few FLOPs per channel."""

    def __init__(self, spec: MobileNetSpec, input_shape: tuple[int, ...], n_outputs: int) -> None:
        _check_rank("MobileNet", input_shape, volumes=False)
        super().__init__(
            spec.widths,
            spec.blocks,
            input_shape,
            n_outputs,
            lambda c_in, c_out, stride: InvertedResidual(
                c_in, c_out, stride, spec.kernel, spec.expansion
            ),
        )
