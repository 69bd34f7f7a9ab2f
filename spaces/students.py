"""The student space: which small network a distillation trial builds, and its KD knobs.

Families are registered by name, each with the data kind it takes, how a trial samples its
spec and the trial parameters that reproduce a given spec (so seeds can be enqueued), and
which modules are its stages (whose outputs a feature loss matches). Sampling is
define-by-run: a family's own parameters (`student.expansion` for MobileNet) and the
per-stage ones beyond `student.stages` only exist when chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from spaces.architectures import MLPSpec, MobileNetSpec, ModelSpec, ResNetSpec, input_kind
from spaces.errors import UsageError


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

    kind: str = "image"
    widths: tuple[int, ...] = (4, 8, 16, 32, 64, 128)
    max_stages: int = 4
    max_blocks: int = 3
    kernels: tuple[int, ...] = (3, 5)
    expansions: tuple[int, ...] = (2, 4, 6)
    temperatures: tuple[float, float] = (1.0, 8.0)
    feature_weights: tuple[float, ...] = (0.0, 0.1, 1.0)
    min_resolution: int = 2

    @classmethod
    def for_teacher(cls, teacher: ModelSpec) -> StudentSpace:
        """Widths on the powers-of-two grid from 4 up to the teacher's widest layer."""
        widest = max(_widths(teacher))
        grid = tuple(2**k for k in range(2, 16) if 2**k <= max(widest, 4))
        return cls(kind=input_kind(teacher), widths=grid, max_stages=max(4, len(_widths(teacher))))


@dataclass(frozen=True)
class StudentFamily:
    """One family: the data it takes, spec ↔ trial parameters, and its stage modules."""

    kind: str
    sample: Callable[[Any, StudentSpace], ModelSpec]
    params: Callable[[ModelSpec], dict[str, Any]]
    stages: Callable[[nn.Module], list[nn.Module]]


STUDENT_FAMILIES: dict[str, StudentFamily] = {}


def register_family(name: str, family: StudentFamily) -> None:
    if name in STUDENT_FAMILIES:
        raise ValueError(f"student family {name!r} is already registered")
    STUDENT_FAMILIES[name] = family


def family_names(kind: str) -> list[str]:
    return [name for name, family in STUDENT_FAMILIES.items() if family.kind == kind]


def _widths(spec: ModelSpec) -> tuple[int, ...]:
    return spec.hidden if isinstance(spec, MLPSpec) else spec.widths


def _sample_widths(trial: Any, space: StudentSpace) -> tuple[int, ...]:
    stages = trial.suggest_int("student.stages", 1, space.max_stages)
    return tuple(
        trial.suggest_categorical(f"student.stage{i}.width", space.widths)
        for i in range(1, stages + 1)
    )


def _sample_blocks(trial: Any, space: StudentSpace, stages: int) -> tuple[int, ...]:
    return tuple(
        trial.suggest_int(f"student.stage{i}.blocks", 1, space.max_blocks)
        for i in range(1, stages + 1)
    )


def _sample_resnet(trial: Any, space: StudentSpace) -> ModelSpec:
    widths = _sample_widths(trial, space)
    blocks = _sample_blocks(trial, space, len(widths))
    return ResNetSpec(widths, blocks, trial.suggest_categorical("student.kernel", space.kernels))


def _sample_mobilenet(trial: Any, space: StudentSpace) -> ModelSpec:
    widths = _sample_widths(trial, space)
    blocks = _sample_blocks(trial, space, len(widths))
    kernel = trial.suggest_categorical("student.kernel", space.kernels)
    expansion = trial.suggest_categorical("student.expansion", space.expansions)
    return MobileNetSpec(widths, blocks, kernel, expansion)


def _sample_mlp(trial: Any, space: StudentSpace) -> ModelSpec:
    return MLPSpec(hidden=_sample_widths(trial, space))


def _width_params(widths: tuple[int, ...]) -> dict[str, Any]:
    params: dict[str, Any] = {"student.stages": len(widths)}
    params.update({f"student.stage{i}.width": w for i, w in enumerate(widths, 1)})
    return params


def _conv_params(spec: Any) -> dict[str, Any]:
    params = _width_params(spec.widths)
    params.update({f"student.stage{i}.blocks": b for i, b in enumerate(spec.blocks, 1)})
    params["student.kernel"] = spec.kernel
    if isinstance(spec, MobileNetSpec):
        params["student.expansion"] = spec.expansion
    return params


def _conv_stages(model: nn.Module) -> list[nn.Module]:
    return list(model.get_submodule("layers"))


def _mlp_stages(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.get_submodule("body") if isinstance(m, nn.Dropout)]


register_family("resnet", StudentFamily("image", _sample_resnet, _conv_params, _conv_stages))
register_family("mobilenet", StudentFamily("image", _sample_mobilenet, _conv_params, _conv_stages))
register_family(
    "mlp", StudentFamily("tabular", _sample_mlp, lambda s: _width_params(s.hidden), _mlp_stages)
)


def sample_student(trial: Any, space: StudentSpace) -> tuple[ModelSpec, DistillSettings]:
    """The family first, then its own parameters, then the distillation knobs."""
    family = trial.suggest_categorical("student.family", family_names(space.kind))
    spec = STUDENT_FAMILIES[family].sample(trial, space)
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
        **STUDENT_FAMILIES[spec.family].params(spec),
        "distill.temperature": settings.temperature,
        "distill.alpha": settings.alpha,
        "distill.feature_weight": settings.feature_weight,
    }


def scaled_teacher(teacher: ModelSpec, divisor: int, space: StudentSpace) -> ModelSpec:
    """The teacher with every width divided by `divisor`, snapped to the space's width grid."""
    widths = tuple(min(space.widths, key=lambda g: abs(g - w / divisor)) for w in _widths(teacher))
    if isinstance(teacher, MLPSpec):
        return replace(teacher, hidden=widths)
    kernel = teacher.kernel if teacher.kernel in space.kernels else space.kernels[0]
    return replace(teacher, widths=widths, kernel=kernel)


def structural_problem(
    spec: ModelSpec, input_shape: tuple[int, ...], space: StudentSpace
) -> str | None:
    """Why `spec` cannot be built for this input (None when it can): e.g. too many
    downsamplings for the image size."""
    if input_kind(spec) != space.kind:
        return f"a {spec.family} student takes {input_kind(spec)} data, not {space.kind}"
    if isinstance(spec, MLPSpec):
        return None
    if len(spec.widths) != len(spec.blocks):
        return f"{len(spec.widths)} widths but {len(spec.blocks)} block counts"
    size = min(input_shape[1:])
    for _ in spec.widths[1:]:
        size = (size + 1) // 2  # a stride-2 convolution padded by kernel // 2
    if size < space.min_resolution:
        return (
            f"{len(spec.widths)} stages downsample a {min(input_shape[1:])}-px input to "
            f"{size} px, below the {space.min_resolution} px minimum"
        )
    return None


def feature_stages(model: nn.Module, spec: ModelSpec) -> list[nn.Module]:
    """The modules whose outputs are the model's stage features, in network order."""
    return STUDENT_FAMILIES[spec.family].stages(model)


def describe_student(spec: dict[str, Any]) -> str:
    """`resnet 8-16-32 ×1-1-1 k3`: a spec dict (from `spec_to_dict`) in one short line."""
    widths = spec.get("widths", spec.get("hidden", []))
    text = f"{spec['family']} " + "-".join(str(w) for w in widths)
    if "blocks" in spec:
        text += " ×" + "-".join(str(b) for b in spec["blocks"]) + f" k{spec['kernel']}"
    if "expansion" in spec:
        text += f" e{spec['expansion']}"
    return text
