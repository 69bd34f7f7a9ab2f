"""Model sources by prefix: where a `--model` string's network comes from.

    resnet8                     a built-in preset (`families.PRESETS`; resnet3d8 for volumes)
    family:resnet               a built-in family, its spec fields in --model-args
    torchvision:resnet18        torchvision's classification builders (r3d_18 and its
                                video kin for volumes)
    timm:vit_tiny_patch16_224   timm's `create_model` (extra medslim[timm])
    monai:DenseNet121           MONAI's classification networks, 2-D or 3-D as the data
                                (extra medslim[monai])
    path/to/nets.py:build       a function in a Python file
    package.module:build        a function in an importable module

A source is one small record plus one `register_source` line. Every source builds
`(name, input_shape, n_outputs, args, pretrained) -> nn.Module`, for a sample shape of
(C, H, W) images or (C, D, H, W) volumes. Torch-free at import:
builders load their library on first use, and `known` lists names without importing it, so
`medslim list` and `--help` stay quick.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medslim.errors import UsageError
from medslim.registry import Registry

if TYPE_CHECKING:
    from torch import nn

SourceBuilder = Callable[[str, tuple[int, ...], int, dict[str, Any], bool], "nn.Module"]
"""(name, one sample's shape (C, H, W) or (F,), n_outputs, model args, pretrained) → a model."""

FILE = "file"
MODULE = "module"
FAMILY = "family"


@dataclass(frozen=True)
class ModelSource:
    """One source of models: its `--model` prefix, the library it needs (and the pip extra
    that installs it), names it lists without importing anything, and its builder."""

    prefix: str
    summary: str
    build: SourceBuilder
    known: tuple[str, ...] = ()
    library: str | None = None
    extra: str | None = None
    names: Callable[[], list[str]] | None = None
    """Every name the installed library offers (imports it): `medslim list PREFIX`."""
    pretrained: bool = False
    """Whether `--pretrained` can fetch weights for this source."""
    syntax: str = ""
    """How a `--model` value of this source is written (default `PREFIX:NAME`)."""

    def __post_init__(self) -> None:
        if not self.syntax:
            object.__setattr__(self, "syntax", f"{self.prefix}:NAME")


SOURCES: Registry[ModelSource] = Registry("model source", "sources")


def register_source(source: ModelSource) -> None:
    """Add a model source under its prefix (`--model PREFIX:NAME`); prefixes are unique."""
    SOURCES.register(source.prefix, source)


def get_source(prefix: str) -> ModelSource:
    return SOURCES.get(prefix)


def source_syntax() -> list[str]:
    """How each kind of `--model` value is written, for messages and `medslim list`."""
    return ["PRESET", *(source.syntax for source in SOURCES.values())]


@dataclass(frozen=True)
class ModelName:
    """A `--model` value split into its source and the name within it. For a file the
    name is `/absolute/path.py:function`; for a module `package.module:function`."""

    source: str
    name: str


def parse_model(text: str) -> ModelName:
    """Which source a `--model` value names. A preset has no colon; `PREFIX:NAME` names a
    registered source; `X.py:F` a file (made absolute, it must exist); `a.b:F` a module."""
    text = text.strip()
    if ":" not in text:
        return ModelName("preset", text)
    prefix, _, rest = text.partition(":")
    if prefix in SOURCES and prefix not in (FILE, MODULE):
        if not rest:
            raise UsageError(f"--model {text!r} names no model; write {prefix}:NAME")
        return ModelName(prefix, rest)
    where, _, function = text.rpartition(":")
    if not function.isidentifier():
        raise UsageError(
            f"--model {text!r}: {function!r} is not a function name; write "
            f"{' or '.join(source_syntax()[-2:])}"
        )
    if where.endswith(".py"):
        path = Path(where).expanduser()
        if not path.is_file():
            raise UsageError(f"--model {text!r}: file {where} does not exist")
        return ModelName(FILE, f"{path.resolve()}:{function}")
    if all(part.isidentifier() for part in where.split(".")):
        return ModelName(MODULE, f"{where}:{function}")
    raise UsageError(
        f"unknown model source {prefix!r} in --model {text!r}; sources: "
        + ", ".join(source_syntax())
    )


def model_text(text: str) -> str:
    """A `--model` value as a study stores it: a file's path made absolute."""
    where, _, function = text.rpartition(":")
    if where.endswith(".py"):
        return f"{Path(where).expanduser().resolve()}:{function}"
    return text


def missing_library(source: ModelSource, error: ImportError) -> UsageError:
    """The one-line error for a source whose library is not installed (or fails to load)."""
    how = (
        f"pip install 'medslim[{source.extra}]'"
        if source.extra
        else f"pip install {source.library}"
    )
    return UsageError(
        f"--model {source.prefix}:NAME needs {source.library}, which cannot be imported "
        f"({type(error).__name__}: {error}); {how}"
    )


# The registered sources. Each builder imports its library (and torch) on first use.

TORCHVISION_KNOWN = (
    "resnet18",
    "resnet34",
    "resnet50",
    "densenet121",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "regnet_y_400mf",
    "convnext_tiny",
    "shufflenet_v2_x1_0",
)
"""Tested with medslim (tests/spaces/test_sources.py); any torchvision classifier builds."""
TORCHVISION_VIDEO = ("r3d_18", "mc3_18", "r2plus1d_18")
"""torchvision's 3-D video ResNets: for volumes, depth taking the place of time (tested)."""
VIDEO_MODELS = (
    *TORCHVISION_VIDEO,
    *("s3d", "mvit_v1_b", "mvit_v2_s", "swin3d_t", "swin3d_s", "swin3d_b"),
)
"""Every model of `torchvision.models.video` (0.29): they take volumes, not images."""

TIMM_KNOWN = ("vit_tiny_patch16_224", "resnet18", "efficientnet_b0", "mobilenetv3_small_100")
MONAI_NETS: dict[str, tuple[str, str]] = {
    **dict.fromkeys(
        ("DenseNet121", "DenseNet169", "DenseNet201", "DenseNet264"),
        ("in_channels", "out_channels"),
    ),
    **dict.fromkeys(
        ("EfficientNetBN", "SEResNet50", "SEResNet101", "SEResNet152", "SEResNext50"),
        ("in_channels", "num_classes"),
    ),
    **dict.fromkeys(
        ("resnet10", "resnet18", "resnet34", "resnet50"), ("n_input_channels", "num_classes")
    ),
}
"""MONAI's classifiers (built with the data's spatial_dims, 2 or 3) and the keywords they
take for channels and classes."""


def _library_builder(function: str) -> SourceBuilder:
    """A builder that loads `library_models` (and torch) on first use and calls `function`
    with the data's channels and spatial dimensions (2 for images, 3 for volumes)."""

    def build(
        name: str, shape: tuple[int, ...], outputs: int, args: dict[str, Any], pretrained: bool
    ) -> nn.Module:
        from medslim.spaces import library_models

        builder: Callable[..., nn.Module] = getattr(library_models, function)
        return builder(name, shape[0], outputs, args, pretrained, spatial_dims=len(shape) - 1)

    return build


def _family(
    name: str, shape: tuple[int, ...], outputs: int, args: dict[str, Any], pretrained: bool
) -> nn.Module:
    from medslim.spaces.families import build_model, spec_from_dict

    return build_model(spec_from_dict({"family": name, **args}), shape, outputs)


def _family_names() -> list[str]:
    from medslim.spaces.families import FAMILIES

    return list(FAMILIES)


def _torchvision_names() -> list[str]:
    import torchvision

    models = torchvision.models
    return sorted(models.list_models(module=models) + models.list_models(module=models.video))


def _timm_names() -> list[str]:
    import timm

    return list(timm.list_models())


register_source(
    ModelSource(
        "torchvision",
        "torchvision's classification builders (grey images: a 1-channel stem); its video "
        "ResNets (r3d_18, mc3_18, r2plus1d_18) for volumes",
        _library_builder("build_torchvision"),
        TORCHVISION_KNOWN + TORCHVISION_VIDEO,
        library="torchvision",
        names=_torchvision_names,
        pretrained=True,
    )
)
register_source(
    ModelSource(
        "timm",
        "timm.create_model(NAME, num_classes=, in_chans=); ViTs need img_size in --model-args",
        _library_builder("build_timm"),
        TIMM_KNOWN,
        library="timm",
        extra="timm",
        names=_timm_names,
        pretrained=True,
    )
)
register_source(
    ModelSource(
        "monai",
        "MONAI's classification networks (spatial_dims=2 for images, 3 for volumes)",
        _library_builder("build_monai"),
        tuple(MONAI_NETS),
        library="monai",
        extra="monai",
        names=lambda: list(MONAI_NETS),
    )
)
register_source(
    ModelSource(
        FAMILY,
        "a built-in family, its spec fields as --model-args",
        _family,
        names=_family_names,
    )
)
register_source(
    ModelSource(
        FILE,
        "your function in a Python file, called as "
        "FUNCTION(in_channels=C, num_classes=K, **model_args)",
        _library_builder("build_factory"),
        syntax="FILE.py:FUNCTION",
    )
)
register_source(
    ModelSource(
        MODULE,
        "your function in an importable module, called the same way",
        _library_builder("build_factory"),
        syntax="package.module:FUNCTION",
    )
)
