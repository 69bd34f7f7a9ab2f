"""Models from torchvision, timm, MONAI or a user's function, fitted to the dataset.

Each builder hands the library the dataset's channels and classes in its own keywords (and
MONAI the data's spatial dimensions: 3 for volumes); torchvision has no channel argument, so
its 3-channel stem (a 3-D one in its video ResNets) is replaced by one for the data's
channels (RGB weights summed for grey images, as timm adapts `in_chans`). `fit_to_input`
then runs the model once on the data's shape: a network that downsamples small images or
volumes to nothing (DenseNet-121 at 28 px) gets a stem that keeps the resolution, and a
model whose output is not one row of `n_outputs` logits per sample is refused with one line.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import logging
import math
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from medslim.errors import UsageError
from medslim.spaces.layers import MAX_POOLS, STEMS
from medslim.spaces.sources import MONAI_NETS, get_source, missing_library, source_syntax

logger = logging.getLogger(__name__)
_NOTED: set[str] = set()  # adaptations already logged in this process
_FILES: dict[tuple[str, float], ModuleType] = {}  # user files, loaded once per version


def build_torchvision(
    name: str,
    channels: int,
    outputs: int,
    args: dict[str, Any],
    pretrained: bool,
    spatial_dims: int = 2,
) -> nn.Module:
    torchvision = _library("torchvision")
    models = torchvision.models
    names = models.list_models(module=models) + models.list_models(module=models.video)
    if name not in names:
        raise UsageError(f"unknown torchvision model {name!r}; {_suggest(name, names)}")
    if pretrained:
        model = _pretrained(
            f"torchvision:{name}",
            lambda: torchvision.models.get_model(
                name, weights=torchvision.models.get_model_weights(name).DEFAULT, **args
            ),
        )
        _replace_head(model, outputs)
    else:
        model = _called(
            f"torchvision:{name}", torchvision.models.get_model, name, num_classes=outputs, **args
        )
    return _adapt_input_channels(model, channels, keep_weights=pretrained)


def build_timm(
    name: str,
    channels: int,
    outputs: int,
    args: dict[str, Any],
    pretrained: bool,
    spatial_dims: int = 2,
) -> nn.Module:
    if spatial_dims != 2:
        raise UsageError(
            f"timm:{name} is a 2-D model and the data are volumes; for volumes use resnet3d8, "
            "monai:NAME or torchvision:r3d_18"
        )
    timm = _library("timm")
    if not timm.is_model(name):
        raise UsageError(f"unknown timm model {name!r}; {_suggest(name, timm.list_models())}")
    keywords = {"num_classes": outputs, "in_chans": channels, **args}
    if pretrained:
        return _pretrained(
            f"timm:{name}", lambda: timm.create_model(name, pretrained=True, **keywords)
        )
    return _called(f"timm:{name}", timm.create_model, name, **keywords)


def build_monai(
    name: str,
    channels: int,
    outputs: int,
    args: dict[str, Any],
    pretrained: bool,
    spatial_dims: int = 2,
) -> nn.Module:
    monai = _library("monai")
    if name not in MONAI_NETS:
        raise UsageError(f"unknown MONAI classifier {name!r}; {_suggest(name, list(MONAI_NETS))}")
    channels_kw, classes_kw = MONAI_NETS[name]
    keywords = {"spatial_dims": spatial_dims, channels_kw: channels, classes_kw: outputs, **args}
    if name == "EfficientNetBN":
        keywords.setdefault("model_name", "efficientnet-b0")
    return _called(f"monai:{name}", getattr(monai.networks.nets, name), **keywords)


def build_factory(
    name: str,
    channels: int,
    outputs: int,
    args: dict[str, Any],
    pretrained: bool,
    spatial_dims: int = 2,
) -> nn.Module:
    """A user's `function(in_channels=C, num_classes=K, **model_args)`; for volumes its
    model takes (N, C, D, H, W) batches (`fit_to_input` checks that it runs on them)."""
    where, _, function_name = name.rpartition(":")
    module = _load_file(Path(where)) if where.endswith(".py") else _import(where)
    function = getattr(module, function_name, None)
    if not callable(function):
        defined = sorted(
            n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
        )
        listing = ", ".join(defined) or "none"
        raise UsageError(f"{where} has no function {function_name!r}; it defines: {listing}")
    keywords = {"in_channels": channels, "num_classes": outputs, **args}
    try:
        signature = inspect.signature(function)
        signature.bind(**keywords)
    except TypeError as error:
        raise UsageError(
            f"{name} cannot be called as {function_name}({_call_text(keywords)}): {error}; "
            f"its signature is {signature}. A model function must accept in_channels= and "
            "num_classes= (the dataset's channels and classes) and any --model-args"
        ) from error
    except ValueError:  # no signature to inspect (a builtin): let the call say what fails
        pass
    model = _called(name, function, **keywords)
    if not isinstance(model, nn.Module):
        raise UsageError(f"{name} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def fit_to_input(
    model: nn.Module, input_shape: tuple[int, ...], outputs: int, label: str
) -> nn.Module:
    """The model, able to run on one batch of `input_shape` samples with `outputs` logits
    each; its stem keeps the image's resolution when the model cannot run otherwise."""
    out = _forward(model, input_shape)
    adaptations: list[str] = []
    if isinstance(out, str) and len(input_shape) in (3, 4):
        for adapt in (_stride_one_stem, _drop_stem_pool):
            done = adapt(model)
            if done is None:
                continue
            adaptations.append(done)
            out = _forward(model, input_shape)
            if not isinstance(out, str):
                break
    size = "×".join(map(str, input_shape))
    if isinstance(out, str):
        raise UsageError(f"{label} cannot run on {size} inputs: {out}")
    if not isinstance(out, torch.Tensor):
        raise UsageError(
            f"{label} returns a {type(out).__name__}; medslim needs one tensor of logits "
            "of shape (batch, classes)"
        )
    if tuple(out.shape) != (2, outputs):
        raise UsageError(
            f"{label} returns outputs of shape {tuple(out.shape)} for 2 samples, but the "
            f"dataset has {outputs} outputs; build it with num_classes={outputs} (a model "
            "function is called with num_classes)"
        )
    note = f"{label}@{size}"
    if adaptations and note not in _NOTED:
        _NOTED.add(note)
        logger.info(
            "%s downsamples %s images to nothing as built; fitted: %s",
            label,
            size,
            ", ".join(adaptations),
        )
    return model


def _forward(model: nn.Module, input_shape: tuple[int, ...]) -> Any:
    """The model's output for a batch of two zero samples, or why it failed (a string)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(torch.zeros(2, *input_shape))
    except Exception as error:  # any library's own complaint, kept to its first line
        return f"{type(error).__name__}: {_first_line(error)}"
    finally:
        model.train(was_training)


def _stride_one_stem(model: nn.Module) -> str | None:
    stem = next((m for m in model.modules() if isinstance(m, STEMS)), None)
    if stem is None or set(stem.stride) == {1}:
        return None
    stem.stride = (1,) * len(stem.stride)
    return "stem convolution stride 1"


def _drop_stem_pool(model: nn.Module) -> str | None:
    """Replace the first max-pool when it comes before the second convolution."""
    convs = 0
    for name, module in model.named_modules():
        convs += isinstance(module, STEMS)
        if convs > 1:
            return None
        if isinstance(module, MAX_POOLS):
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, nn.Identity())
            return "no stem max-pool"
    return None


def _adapt_input_channels(model: nn.Module, channels: int, *, keep_weights: bool) -> nn.Module:
    """Swap the first 3-channel convolution (2-D, or 3-D in a video model) for one taking
    `channels` (RGB weights summed for one channel, spread over more, when the weights are
    pretrained)."""
    stem = next(((n, m) for n, m in model.named_modules() if isinstance(m, STEMS)), None)
    if channels == 3 or stem is None or stem[1].in_channels != 3:
        return model
    name, old = stem
    new = type(old)(
        channels,
        old.out_channels,
        old.kernel_size,  # type: ignore[arg-type]
        old.stride,  # type: ignore[arg-type]
        old.padding,  # type: ignore[arg-type]
        old.dilation,  # type: ignore[arg-type]
        old.groups,
        bias=old.bias is not None,
        padding_mode=old.padding_mode,
    )
    if keep_weights:
        with torch.no_grad():
            weight = old.weight
            if channels == 1:
                new.weight.copy_(weight.sum(dim=1, keepdim=True))
            else:
                repeats = math.ceil(channels / 3)
                tiles = (1, repeats) + (1,) * (weight.dim() - 2)
                new.weight.copy_(weight.repeat(*tiles)[:, :channels] * 3 / channels)
            if old.bias is not None and new.bias is not None:
                new.bias.copy_(old.bias)
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)
    return model


def _replace_head(model: nn.Module, outputs: int) -> None:
    """A pretrained ImageNet model's last linear layer, re-made with `outputs` features."""
    linear = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linear:
        raise UsageError(
            f"{type(model).__name__} has no linear classifier to give {outputs} outputs; "
            "train it yourself and pass --teacher PATH instead of --pretrained"
        )
    name, head = linear[-1]
    parent, _, child = name.rpartition(".")
    replacement = nn.Linear(head.in_features, outputs, bias=head.bias is not None)
    setattr(model.get_submodule(parent) if parent else model, child, replacement)


def _pretrained(label: str, build: Callable[[], nn.Module]) -> nn.Module:
    try:
        return build()
    except UsageError:
        raise
    except Exception as error:  # offline, a proxy, a missing weight file: all one answer
        raise UsageError(
            f"could not get pretrained weights for {label} ({type(error).__name__}: "
            f"{_first_line(error)}); on a machine without internet pass your own weights "
            "with --teacher PATH instead of --pretrained"
        ) from error


def _called(label: str, function: Callable[..., Any], *args: Any, **keywords: Any) -> Any:
    """`function(*args, **keywords)`, with what it raises turned into one line naming
    the model."""
    try:
        return function(*args, **keywords)
    except UsageError:
        raise
    except Exception as error:  # the model's own code refusing its arguments
        raise UsageError(
            f"building {label}({_call_text(keywords)}) failed: {type(error).__name__}: "
            f"{_first_line(error)}"
        ) from error


def _library(prefix: str) -> Any:
    source = get_source(prefix)
    try:
        return importlib.import_module(str(source.library))
    except ImportError as error:
        raise missing_library(source, error) from error


def _import(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except Exception as error:  # ImportError, or whatever the module raises at import
        hint = ""
        if "." not in module:  # `tv:resnet18` reads as module tv, function resnet18
            hint = f"; or a model source: {', '.join(source_syntax()[1:-2])}"
        raise UsageError(
            f"cannot import module {module!r} ({type(error).__name__}: {_first_line(error)}); "
            f"it must be installed or on PYTHONPATH{hint}"
        ) from error


def _load_file(path: Path) -> ModuleType:
    """A user's Python file, executed once per version (path and modification time)."""
    key = (str(path), path.stat().st_mtime)
    if key in _FILES:
        return _FILES[key]
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    name = f"medslim_user_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot load {path} as Python code")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # a syntax error, a failing import inside the file, ...
        del sys.modules[name]
        raise UsageError(
            f"cannot import {path} ({type(error).__name__}: {_first_line(error)})"
        ) from error
    _FILES[key] = module
    return module


def _suggest(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=5)
    if close:
        return f"did you mean {', '.join(close)}?"
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    return f"known: {shown}"


def _call_text(keywords: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in keywords.items())


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
