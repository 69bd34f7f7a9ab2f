"""Model families built from small frozen specs, registered by name.

A spec is plain data (it round-trips through JSON), so a trial's model can be rebuilt
exactly from what the study stores. Presets are named specs; `build_model` turns a spec
into a module for a given input shape and output width.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from spaces.errors import UsageError


@dataclass(frozen=True)
class MLPSpec:
    """A multilayer perceptron for tabular data."""

    hidden: tuple[int, ...] = (256, 128, 64)
    dropout: float = 0.1
    family: str = field(default="mlp", init=False)


@dataclass(frozen=True)
class ResNetSpec:
    """A ResNet of basic blocks; 3×3 stem and no max-pool, as MedMNIST uses at 28 px."""

    widths: tuple[int, ...] = (64, 128, 256, 512)
    blocks: tuple[int, ...] = (2, 2, 2, 2)
    kernel: int = 3
    family: str = field(default="resnet", init=False)


@dataclass(frozen=True)
class MobileNetSpec:
    """A MobileNetV2-style net: inverted residuals (1×1 expand, k×k depthwise, 1×1 project)."""

    widths: tuple[int, ...] = (16, 32, 64)
    blocks: tuple[int, ...] = (1, 2, 2)
    kernel: int = 3
    expansion: int = 4
    family: str = field(default="mobilenet", init=False)


ModelSpec = MLPSpec | ResNetSpec | MobileNetSpec


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

    def __init__(self, c_in: int, c_out: int, stride: int, kernel: int) -> None:
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv2d(c_in, c_out, kernel, stride, pad, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, kernel, 1, pad, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
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
    """Stem, stages of blocks (stride 2 from the second stage on), pooling, `head`."""

    def __init__(
        self,
        widths: tuple[int, ...],
        blocks: tuple[int, ...],
        in_channels: int,
        n_outputs: int,
        block: BlockFactory,
    ) -> None:
        super().__init__()
        if len(widths) != len(blocks) or not widths:
            raise UsageError(
                f"a {type(self).__name__} spec needs one width per stage: widths={widths}, "
                f"blocks={blocks}"
            )
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages: list[nn.Module] = []
        width = widths[0]
        for index, (out, count) in enumerate(zip(widths, blocks, strict=True)):
            stage = []
            for b in range(count):
                stage.append(block(width, out, 2 if index > 0 and b == 0 else 1))
                width = out
            stages.append(nn.Sequential(*stage))
        self.layers = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(width, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.pool(self.layers(x)).flatten(1)
        return self.head(x)


class ResNet(ConvNet):
    """Basic blocks; 3×3 stem and no max-pool, as MedMNIST uses at 28 px."""

    def __init__(self, spec: ResNetSpec, in_channels: int, n_outputs: int) -> None:
        super().__init__(
            spec.widths,
            spec.blocks,
            in_channels,
            n_outputs,
            lambda c_in, c_out, stride: BasicBlock(c_in, c_out, stride, spec.kernel),
        )


class MobileNet(ConvNet):
    """Inverted residuals with depthwise convolutions: few FLOPs per channel."""

    def __init__(self, spec: MobileNetSpec, in_channels: int, n_outputs: int) -> None:
        super().__init__(
            spec.widths,
            spec.blocks,
            in_channels,
            n_outputs,
            lambda c_in, c_out, stride: InvertedResidual(
                c_in, c_out, stride, spec.kernel, spec.expansion
            ),
        )


_BUILDERS: dict[str, Callable[[Any, tuple[int, ...], int], nn.Module]] = {
    "mlp": lambda spec, shape, n_out: MLP(spec, shape[0], n_out),
    "resnet": lambda spec, shape, n_out: ResNet(spec, shape[0], n_out),
    "mobilenet": lambda spec, shape, n_out: MobileNet(spec, shape[0], n_out),
}
_SPEC_TYPES: dict[str, type] = {"mlp": MLPSpec, "resnet": ResNetSpec, "mobilenet": MobileNetSpec}
_INPUT_KINDS: dict[str, str] = {"mlp": "tabular", "resnet": "image", "mobilenet": "image"}

PRESETS: dict[str, ModelSpec] = {}


def register_preset(name: str, spec: ModelSpec) -> None:
    """Add a named teacher preset; a name is registered once."""
    if name in PRESETS:
        raise ValueError(f"model preset {name!r} is already registered")
    PRESETS[name] = spec


register_preset("mlp", MLPSpec())
register_preset("resnet8", ResNetSpec(widths=(32, 64, 128), blocks=(1, 1, 1)))
register_preset("resnet18", ResNetSpec())


def preset_names() -> list[str]:
    return sorted(PRESETS)


def get_preset(name: str) -> ModelSpec:
    try:
        return PRESETS[name]
    except KeyError:
        raise UsageError(
            f"unknown model {name!r}; valid models: {', '.join(preset_names())}"
        ) from None


def input_kind(spec: ModelSpec) -> str:
    """Which data a family accepts ("image" or "tabular")."""
    return _INPUT_KINDS[spec.family]


def build_model(spec: ModelSpec, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    """An untrained model for one sample shape (C, H, W) or (F,) and `n_outputs` logits."""
    return _BUILDERS[spec.family](spec, input_shape, n_outputs)


def spec_to_dict(spec: ModelSpec) -> dict[str, Any]:
    """JSON-ready description: enough to rebuild the spec with `spec_from_dict`."""
    return asdict(spec)


def spec_from_dict(data: dict[str, Any]) -> ModelSpec:
    fields = dict(data)
    family = fields.pop("family")
    converted = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    return _SPEC_TYPES[family](**converted)
