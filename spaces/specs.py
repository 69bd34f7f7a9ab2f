"""Model specs: small frozen dataclasses that describe a network as plain data.

A spec round-trips through JSON (`spec_to_dict` / `spec_from_dict` in `families`), so a
trial's model can be rebuilt exactly from what the study stores. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

FIRST_STAGE_MIN = 28
"""The CNN stem downsamples only while the first stage still sees at least this many px."""
VOLUME_FIRST_STAGE_MIN = 14
"""The same for the small 3-D ResNets: a voxel costs as much as a pixel row, so the first
stage of `resnet3d8` sees 14–28 voxels a side (28³ and 64³ volumes train on a CPU)."""


def stem_factor(size: int, first_stage: int = FIRST_STAGE_MIN) -> int:
    """How much the stem of medslim's CNNs downsamples an input of `size` px: 1 below 56 px
    (MedMNIST's 28-px ResNet: 3×3 stem, no max-pool), 2 from 56 px (a stride-2 stem), 4
    from 112 px (stride-2 stem and a 3×3 max-pool, as ImageNet ResNets): the first stage
    sees 28–56 px, so a 224-px image costs ~4× a 28-px one, not 64×. `first_stage` moves
    those thresholds (volumes)."""
    return 4 if size >= 4 * first_stage else 2 if size >= 2 * first_stage else 1


class ModelSpec(Protocol):
    """What every spec has: the name of its family (the key of `families.FAMILIES`)."""

    @property
    def family(self) -> str: ...


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
class ResNet3DSpec:
    """A ResNet of basic blocks with 3-D convolutions, for volumes (C, D, H, W); its stem
    downsamples while the first stage still sees at least `first_stage` voxels a side."""

    widths: tuple[int, ...] = (64, 128, 256, 512)
    blocks: tuple[int, ...] = (2, 2, 2, 2)
    kernel: int = 3
    first_stage: int = VOLUME_FIRST_STAGE_MIN
    family: str = field(default="resnet3d", init=False)


def first_stage_min(spec: object) -> int:
    """The smallest first-stage size a spec's stem keeps (2-D families: `FIRST_STAGE_MIN`)."""
    return int(getattr(spec, "first_stage", FIRST_STAGE_MIN))


@dataclass(frozen=True)
class MobileNetSpec:
    """A MobileNetV2-style net: inverted residuals (1×1 expand, k×k depthwise, 1×1 project)."""

    widths: tuple[int, ...] = (16, 32, 64)
    blocks: tuple[int, ...] = (1, 2, 2)
    kernel: int = 3
    expansion: int = 4
    family: str = field(default="mobilenet", init=False)


@dataclass(frozen=True)
class LibrarySpec:
    """A library's network (torchvision's `arch`) with every channel group narrowed to
    `width` of its own: a student for teachers from outside medslim."""

    arch: str = "mobilenet_v3_small"
    width: float = 0.5
    family: str = field(default="torchvision", init=False)


ConvSpec = ResNetSpec | ResNet3DSpec | MobileNetSpec
"""The specs of medslim's own CNN families: widths and blocks per stage, a kernel size."""
