"""The student space: which small network a distillation trial builds, and its KD knobs.

The families a student may come from are the registered model families with a
`StudentUse` (`families.register_family`): how a trial samples a spec, and the trial
parameters that reproduce one (so seeds can be enqueued). Sampling is define-by-run: a
family's own parameters (`student.expansion` for MobileNet) and the per-stage ones beyond
`student.stages` only exist when chosen.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from medslim.errors import UsageError
from medslim.kinds import DataKind
from medslim.spaces.families import get_family, input_kind, student_family_names
from medslim.spaces.specs import (
    ConvSpec,
    LibrarySpec,
    MLPSpec,
    ModelSpec,
    ResNet3DSpec,
    ResNetSpec,
    first_stage_min,
    stem_factor,
)

if TYPE_CHECKING:
    from torch import nn

    from medslim.spaces.blueprints import Blueprint
    from medslim.spaces.families import StudentUse


@dataclass(frozen=True)
class DistillSettings:
    """The distillation knobs: softmax temperature, soft-loss weight α, feature-loss weight."""

    temperature: float = 4.0
    alpha: float = 0.5
    feature_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise UsageError(f"the distillation temperature must be positive, not {self}")
        if not 0.0 <= self.alpha <= 1.0 or self.feature_weight < 0:
            raise UsageError(f"need 0 ≤ alpha ≤ 1 and feature_weight ≥ 0, not {self}")


@dataclass(frozen=True)
class StudentSpace:
    """What a distillation trial may choose; `for_teacher` derives the bounds from the teacher."""

    kind: DataKind = "image"
    widths: tuple[int, ...] = (4, 8, 16, 32, 64, 128)
    max_stages: int = 4
    max_blocks: int = 3
    kernels: tuple[int, ...] = (3, 5)
    expansions: tuple[int, ...] = (2, 4, 6)
    temperatures: tuple[float, float] = (1.0, 8.0)
    feature_weights: tuple[float, ...] = (0.0, 0.1, 1.0)
    min_resolution: int = 2
    library: bool = False
    """Also search library students (torchvision), as for teachers from outside medslim."""
    library_archs: tuple[str, ...] = ("mobilenet_v3_small", "resnet18")
    library_widths: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0)

    @property
    def families(self) -> list[str]:
        return student_family_names(self.kind, foreign_teacher=self.library)

    @classmethod
    def for_teacher(cls, teacher: ModelSpec) -> StudentSpace:
        """Widths on the powers-of-two grid from 4 up to the teacher's widest layer."""
        widest = max(_widths(teacher))
        return cls(
            kind=input_kind(teacher),
            widths=_grid(widest),
            max_stages=max(4, len(_widths(teacher))),
        )

    @classmethod
    def for_blueprint(cls, blueprint: Blueprint, teacher: nn.Module) -> StudentSpace:
        """A built-in teacher's space from its spec; for a teacher medslim did not write,
        measured: widths up to its widest layer, torchvision's small networks as students
        too, and no feature loss when it has no feature map to match."""
        if blueprint.builtin:
            return cls.for_teacher(blueprint.spec())
        from medslim.spaces.graphs import widest_layer

        kind = kind_of_shape(blueprint.input_shape)
        space = cls(kind=kind, widths=_grid(widest_layer(teacher)), library=kind == "image")
        if not feature_stages(teacher, blueprint):
            space = replace(space, feature_weights=(0.0,))
        return space


def kind_of_shape(input_shape: tuple[int, ...]) -> DataKind:
    """Which data one sample's shape is: (F,) tabular, (C, H, W) image, (C, D, H, W) volume."""
    kinds: dict[int, DataKind] = {3: "image", 4: "volume"}
    return kinds.get(len(input_shape), "tabular")


def _grid(widest: int) -> tuple[int, ...]:
    return tuple(2**k for k in range(2, 16) if 2**k <= max(widest, 4))


def _widths(spec: ModelSpec) -> tuple[int, ...]:
    if isinstance(spec, MLPSpec):
        return spec.hidden
    if isinstance(spec, ConvSpec):
        return spec.widths
    raise UsageError(f"students are sized from a teacher's stage widths; a {spec.family} has none")


def sample_student(trial: Any, space: StudentSpace) -> tuple[ModelSpec, DistillSettings]:
    """The family first, then its own parameters, then the distillation knobs."""
    family = trial.suggest_categorical("student.family", space.families)
    spec: ModelSpec = _student_use(family).sample(trial, space)
    settings = DistillSettings(
        temperature=trial.suggest_float("distill.temperature", *space.temperatures, log=True),
        alpha=trial.suggest_float("distill.alpha", 0.0, 1.0),
        feature_weight=trial.suggest_categorical("distill.feature_weight", space.feature_weights),
    )
    return spec, settings


def student_params(spec: ModelSpec, settings: DistillSettings) -> dict[str, Any]:
    """The trial parameters `sample_student` turns into exactly this spec and these knobs."""
    return {
        "student.family": spec.family,
        **_student_use(spec.family).params(spec),
        "distill.temperature": settings.temperature,
        "distill.alpha": settings.alpha,
        "distill.feature_weight": settings.feature_weight,
    }


def scaled_teacher(teacher: ModelSpec, divisor: int, space: StudentSpace) -> ModelSpec:
    """The teacher with every width divided by `divisor`, snapped to the space's width grid."""
    widths = tuple(min(space.widths, key=lambda g: abs(g - w / divisor)) for w in _widths(teacher))
    if isinstance(teacher, MLPSpec):
        return replace(teacher, hidden=widths)
    if not isinstance(teacher, ConvSpec):
        raise UsageError(f"a {teacher.family} teacher has no scaled-down student of its family")
    kernel = teacher.kernel if teacher.kernel in space.kernels else space.kernels[0]
    if isinstance(teacher, ResNet3DSpec):  # the stem every sampled 3-D student has
        return ResNet3DSpec(widths, teacher.blocks, kernel)
    return replace(teacher, widths=widths, kernel=kernel)


def structural_problem(
    spec: ModelSpec, input_shape: tuple[int, ...], space: StudentSpace
) -> str | None:
    """Why `spec` cannot be built for this input (None when it can): e.g. too many
    downsamplings for the image size."""
    if input_kind(spec) != space.kind:
        return f"a {spec.family} student takes {input_kind(spec)} data, not {space.kind}"
    if isinstance(spec, LibrarySpec):
        return None if 0 < spec.width <= 1 else f"width {spec.width} is not in (0, 1]"
    if not isinstance(spec, ConvSpec):
        return None
    if len(spec.widths) != len(spec.blocks):
        return f"{len(spec.widths)} widths but {len(spec.blocks)} block counts"
    size = min(input_shape[1:]) // stem_factor(min(input_shape[1:]), first_stage_min(spec))
    for _ in spec.widths[1:]:
        size = (size + 1) // 2  # a stride-2 convolution padded by kernel // 2
    if size < space.min_resolution:
        return (
            f"{len(spec.widths)} stages downsample a {min(input_shape[1:])}-px input to "
            f"{size} px, below the {space.min_resolution} px minimum"
        )
    return None


def sized_students(
    space: StudentSpace, flops: Callable[[ModelSpec], int], targets: list[float]
) -> list[ModelSpec]:
    """For each FLOPs target, the three-stage ResNet student (3-D for volumes) on the
    space's width grid (widths w, 2w, 4w, one block each) whose FLOPs are nearest on a log
    scale: students sized from a teacher medslim cannot scale down by its widths."""
    resnet = ResNet3DSpec if space.kind == "volume" else ResNetSpec
    candidates: list[ModelSpec] = [
        resnet(widths=(w, 2 * w, 4 * w), blocks=(1, 1, 1), kernel=space.kernels[0])
        for w in space.widths
        if 4 * w <= space.widths[-1]
    ]
    costs = {spec: flops(spec) for spec in candidates}
    chosen = [
        min(candidates, key=lambda s: abs(math.log(costs[s]) - math.log(target)))
        for target in targets
    ]
    return list(dict.fromkeys(chosen))


def feature_stages(model: nn.Module, blueprint: Blueprint) -> list[nn.Module]:
    """The modules whose outputs are the model's stage features, in network order: a
    built-in family's stages, else the module giving its last feature map (none when it
    has no map before the head, e.g. a vision transformer)."""
    if blueprint.builtin:
        stages = get_family(blueprint.spec().family).stages
        if stages is not None:
            return stages(model)
    import torch

    from medslim.spaces.graphs import feature_map_module, trace_calls

    device = next(model.parameters()).device
    example = torch.zeros(2, *blueprint.input_shape, device=device)
    name = feature_map_module(trace_calls(model, example))
    return [] if name is None else [model.get_submodule(name)]


def _student_use(family: str) -> StudentUse:
    use = get_family(family).student
    if use is None:
        raise UsageError(f"model family {family!r} is not searched as a student")
    return use


def describe_student(spec: dict[str, Any]) -> str:
    """`resnet 8-16-32 ×1-1-1 k3`: a spec dict (from `spec_to_dict`) in one short line."""
    if "arch" in spec:
        return f"{spec['family']} {spec['arch']} ×{spec['width']:g}"
    widths = spec.get("widths", spec.get("hidden", []))
    text = f"{spec['family']} " + "-".join(str(w) for w in widths)
    if "blocks" in spec:
        text += " ×" + "-".join(str(b) for b in spec["blocks"]) + f" k{spec['kernel']}"
    if "expansion" in spec:
        text += f" e{spec['expansion']}"
    return text
