"""Model families and named presets: one record per family, registered by name.

A family says which spec type describes it, which data it takes, how a spec becomes a
module, which modules are its stages (whose outputs a feature loss can match), and, if it
may be searched as a distillation student, how a trial samples its spec. Adding a family is
one spec dataclass, one builder and one `register_family` line.

Torch-free at import: builders load the networks on first use, so listing families and
presets (`medslim list`) stays quick.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from medslim.kinds import DataKind
from medslim.registry import Registry
from medslim.spaces.specs import (
    FIRST_STAGE_MIN,
    ConvSpec,
    LibrarySpec,
    MLPSpec,
    MobileNetSpec,
    ModelSpec,
    ResNet3DSpec,
    ResNetSpec,
)

if TYPE_CHECKING:
    from torch import nn

    from medslim.spaces.students import StudentSpace

Builder = Callable[[Any, tuple[int, ...], int], "nn.Module"]
"""(spec, one sample's shape (C, H, W), (C, D, H, W) or (F,), number of outputs) → an
untrained module."""


@dataclass(frozen=True)
class StudentUse:
    """How a distillation trial samples a spec of this family, and the trial parameters
    that reproduce a given spec (so scaled-down teachers can be enqueued as seeds).
    `any_teacher=False`: searched only for teachers from outside medslim (studies of
    medslim's own teachers keep the space they were made with)."""

    sample: Callable[[Any, StudentSpace], Any]
    params: Callable[[Any], dict[str, Any]]
    any_teacher: bool = True


@dataclass(frozen=True)
class Family:
    """One model family: its spec type, the data it takes, its builder and stages, and
    whether (and how) the student search may use it."""

    spec_type: type
    input_kind: DataKind
    build: Builder
    stages: Callable[[nn.Module], list[nn.Module]] | None
    """None: the stage is found by running the model (`graphs.feature_map_module`)."""
    student: StudentUse | None = None


FAMILIES: Registry[Family] = Registry("model family", "registered")
PRESETS: Registry[ModelSpec] = Registry("model", "valid models", ordered=True)


def register_family(name: str, family: Family) -> None:
    """Add a model family under `name` (the `family` field of its specs); names are unique."""
    FAMILIES.register(name, family)


def register_preset(name: str, spec: ModelSpec) -> None:
    """Add a named teacher preset (`--model NAME`); its family must be registered."""
    get_family(spec.family)
    PRESETS.register(name, spec)


def get_family(name: str) -> Family:
    return FAMILIES.get(name)


def student_family_names(kind: DataKind, *, foreign_teacher: bool = True) -> list[str]:
    """Families the student search may build for `kind` data, in registration order;
    without `foreign_teacher`, those searched for medslim's own teachers."""
    return [
        n
        for n, f in FAMILIES.items()
        if f.student is not None
        and f.input_kind == kind
        and (foreign_teacher or f.student.any_teacher)
    ]


def preset_names() -> list[str]:
    return PRESETS.names()


def get_preset(name: str) -> ModelSpec:
    return PRESETS.get(name)


def input_kind(spec: ModelSpec) -> DataKind:
    """Which data a spec's family accepts ("image", "volume" or "tabular")."""
    return get_family(spec.family).input_kind


def build_model(spec: ModelSpec, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    """An untrained model for one sample shape (C, H, W) or (F,) and `n_outputs` logits."""
    return get_family(spec.family).build(spec, input_shape, n_outputs)


def spec_to_dict(spec: ModelSpec) -> dict[str, Any]:
    """JSON-ready description: enough to rebuild the spec with `spec_from_dict`."""
    return asdict(spec)  # type: ignore[call-overload]  # every spec is a dataclass


def spec_from_dict(data: dict[str, Any]) -> ModelSpec:
    fields = dict(data)
    family = get_family(fields.pop("family"))
    converted = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    spec: ModelSpec = family.spec_type(**converted)
    return spec


# The built-in families. Builders import the networks (and torch) on first use.


def _build_mlp(spec: MLPSpec, shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    from medslim.spaces.architectures import MLP

    return MLP(spec, shape[0], n_outputs)


def _build_resnet(spec: ResNetSpec, shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    from medslim.spaces.architectures import ResNet

    return ResNet(spec, shape, n_outputs)


def _build_resnet3d(spec: ResNet3DSpec, shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    from medslim.spaces.architectures import ResNet3D

    return ResNet3D(spec, shape, n_outputs)


def _build_mobilenet(spec: MobileNetSpec, shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    from medslim.spaces.architectures import MobileNet

    return MobileNet(spec, shape, n_outputs)


def _build_library(spec: LibrarySpec, shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    from medslim.spaces.library_students import build_library_student

    return build_library_student(spec, shape, n_outputs)


def _conv_stages(model: nn.Module) -> list[nn.Module]:
    return list(model.get_submodule("layers").children())


def _mlp_stages(model: nn.Module) -> list[nn.Module]:
    from torch import nn

    return [m for m in model.get_submodule("body").children() if isinstance(m, nn.Dropout)]


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


def _sample_resnet(trial: Any, space: StudentSpace) -> ResNetSpec:
    widths = _sample_widths(trial, space)
    blocks = _sample_blocks(trial, space, len(widths))
    return ResNetSpec(widths, blocks, trial.suggest_categorical("student.kernel", space.kernels))


def _sample_resnet3d(trial: Any, space: StudentSpace) -> ResNet3DSpec:
    widths = _sample_widths(trial, space)
    blocks = _sample_blocks(trial, space, len(widths))
    kernel = trial.suggest_categorical("student.kernel", space.kernels)
    return ResNet3DSpec(widths, blocks, kernel)


def _sample_mobilenet(trial: Any, space: StudentSpace) -> MobileNetSpec:
    widths = _sample_widths(trial, space)
    blocks = _sample_blocks(trial, space, len(widths))
    kernel = trial.suggest_categorical("student.kernel", space.kernels)
    expansion = trial.suggest_categorical("student.expansion", space.expansions)
    return MobileNetSpec(widths, blocks, kernel, expansion)


def _sample_mlp(trial: Any, space: StudentSpace) -> MLPSpec:
    return MLPSpec(hidden=_sample_widths(trial, space))


def _sample_library(trial: Any, space: StudentSpace) -> LibrarySpec:
    arch = trial.suggest_categorical("student.arch", space.library_archs)
    return LibrarySpec(arch, trial.suggest_categorical("student.width", space.library_widths))


def _library_params(spec: LibrarySpec) -> dict[str, Any]:
    return {"student.arch": spec.arch, "student.width": spec.width}


def _width_params(widths: tuple[int, ...]) -> dict[str, Any]:
    params: dict[str, Any] = {"student.stages": len(widths)}
    params.update({f"student.stage{i}.width": w for i, w in enumerate(widths, 1)})
    return params


def _conv_params(spec: ConvSpec) -> dict[str, Any]:
    params = _width_params(spec.widths)
    params.update({f"student.stage{i}.blocks": b for i, b in enumerate(spec.blocks, 1)})
    params["student.kernel"] = spec.kernel
    if isinstance(spec, MobileNetSpec):
        params["student.expansion"] = spec.expansion
    return params


def _mlp_params(spec: MLPSpec) -> dict[str, Any]:
    return _width_params(spec.hidden)


register_family(
    "resnet",
    Family(
        ResNetSpec, "image", _build_resnet, _conv_stages, StudentUse(_sample_resnet, _conv_params)
    ),
)
register_family(
    "resnet3d",
    Family(
        ResNet3DSpec,
        "volume",
        _build_resnet3d,
        _conv_stages,
        StudentUse(_sample_resnet3d, _conv_params),
    ),
)
register_family(
    "mobilenet",
    Family(
        MobileNetSpec,
        "image",
        _build_mobilenet,
        _conv_stages,
        StudentUse(_sample_mobilenet, _conv_params),
    ),
)
register_family(
    "mlp",
    Family(MLPSpec, "tabular", _build_mlp, _mlp_stages, StudentUse(_sample_mlp, _mlp_params)),
)
register_family(
    "torchvision",
    Family(
        LibrarySpec,
        "image",
        _build_library,
        None,
        StudentUse(_sample_library, _library_params, any_teacher=False),
    ),
)

register_preset("mlp", MLPSpec())
register_preset("resnet8", ResNetSpec(widths=(32, 64, 128), blocks=(1, 1, 1)))
register_preset("resnet18", ResNetSpec())
register_preset("resnet3d8", ResNet3DSpec(widths=(16, 32, 64), blocks=(1, 1, 1)))
register_preset("resnet3d18", ResNet3DSpec(first_stage=FIRST_STAGE_MIN))
