"""A blueprint: what builds one untrained model exactly, as plain data.

The model string in canonical form (a preset becomes `family:NAME` with its spec fields as
arguments, a file path becomes absolute), its keyword arguments, one sample's shape and the
number of outputs. A study's teacher, every pruned trial's base model and every student is a
blueprint; a stored model is a blueprint plus the widths pruning changed (`shapes`), never a
pickled module. Torch-free: building imports the source's library on first use.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medslim.errors import UsageError
from medslim.kinds import DataKind
from medslim.spaces.families import get_family, get_preset, spec_from_dict, spec_to_dict
from medslim.spaces.sources import FAMILY, FILE, MODULE, VIDEO_MODELS, get_source, parse_model
from medslim.spaces.specs import ModelSpec

if TYPE_CHECKING:
    from torch import nn

LIBRARY_KINDS: dict[str, DataKind] = {"torchvision": "image", "timm": "image"}
"""The data a library's models take (MONAI's are built for either: not listed)."""


@dataclass(frozen=True)
class Blueprint:
    """One model as data: `build()` makes it (random weights, or the library's pretrained
    ones), `as_dict()`/`from_dict()` store it."""

    model: str
    input_shape: tuple[int, ...]
    n_outputs: int
    args: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def builtin(self) -> bool:
        """A medslim family (resnet, mobilenet, mlp, torchvision students), not a user's
        or a library's model."""
        return self.model.startswith(f"{FAMILY}:")

    def spec(self) -> ModelSpec:
        """The family spec of a built-in blueprint."""
        if not self.builtin:
            raise ValueError(f"{self.model} is not a built-in family")
        return spec_from_dict({"family": self.model.partition(":")[2], **self.args})

    def build(self, *, pretrained: bool = False) -> nn.Module:
        """The model for `input_shape` and `n_outputs`; a library's model is adapted to the
        input (grey stem, small images) and checked to give one logit row per sample."""
        name = parse_model(self.model)
        source = get_source(name.source)
        if pretrained and not source.pretrained:
            raise UsageError(
                f"--pretrained is for torchvision and timm models, not {self.model}; load "
                "your own weights with --teacher PATH"
            )
        model = source.build(
            name.name, self.input_shape, self.n_outputs, dict(self.args), pretrained
        )
        if self.builtin:
            return model
        from medslim.spaces.library_models import fit_to_input

        return fit_to_input(model, self.input_shape, self.n_outputs, self.model)

    def identity(self) -> dict[str, Any]:
        """What tells two models apart in cache keys (a built-in one as its spec dict, as
        teachers were always keyed)."""
        if self.builtin:
            return spec_to_dict(self.spec())
        identity: dict[str, Any] = {"model": self.model, "args": self.args}
        where = self.model.rpartition(":")[0]
        if where.endswith(".py"):  # an edited file is another model
            identity["code"] = hashlib.sha256(Path(where).read_bytes()).hexdigest()[:16]
        return identity

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "args": self.args,
            "input_shape": list(self.input_shape),
            "n_outputs": self.n_outputs,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Blueprint:
        return cls(
            str(data["model"]),
            tuple(int(s) for s in data["input_shape"]),
            int(data["n_outputs"]),
            dict(data.get("args", {})),
        )


def blueprint_for(
    model: str,
    args: dict[str, Any] | None,
    input_shape: tuple[int, ...],
    n_outputs: int,
) -> Blueprint:
    """The canonical blueprint of a `--model` value and its `--model-args`."""
    args = _plain(args or {}, model)
    name = parse_model(model)
    if name.source in ("preset", FAMILY):
        base = spec_to_dict(get_preset(name.name)) if name.source == "preset" else {}
        family = base.pop("family", name.name)
        return blueprint_from_spec(
            _family_spec(family, {**base, **args}, model), input_shape, n_outputs
        )
    get_source(name.source)
    canonical = name.name if name.source in (FILE, MODULE) else f"{name.source}:{name.name}"
    return Blueprint(canonical, tuple(input_shape), n_outputs, args)


def blueprint_from_spec(
    spec: ModelSpec, input_shape: tuple[int, ...], n_outputs: int
) -> Blueprint:
    fields = spec_to_dict(spec)
    family = fields.pop("family")
    return Blueprint(f"{FAMILY}:{family}", tuple(input_shape), n_outputs, _plain(fields, family))


def input_kind(blueprint: Blueprint) -> DataKind | None:
    """Which data the model takes; None for a user's function (it is told the shape) and
    for MONAI's networks (built for the data's spatial dimensions)."""
    return model_kind(blueprint.model)


def model_kind(model: str) -> DataKind | None:
    """`input_kind` of a `--model` value, known before the data (a preset, a family, a
    library's model); None for a user's function, whose file need not be here yet."""
    if model.rpartition(":")[0].endswith(".py"):
        return None
    name = parse_model(model)
    if name.source == "preset":
        return get_family(get_preset(name.name).family).input_kind
    if name.source == FAMILY:
        return get_family(name.name).input_kind
    if name.source == "torchvision" and name.name in VIDEO_MODELS:
        return "volume"
    return LIBRARY_KINDS.get(name.source)


def _family_spec(family: str, fields: dict[str, Any], model: str) -> ModelSpec:
    get_family(family)
    try:
        return spec_from_dict({"family": family, **fields})
    except TypeError as error:
        raise UsageError(f"--model-args do not fit --model {model}: {error}") from error


def _plain(args: dict[str, Any], model: str) -> dict[str, Any]:
    """The arguments as JSON data (tuples become lists), as a study stores them."""
    if not isinstance(args, dict):
        raise UsageError(f"--model-args must be a JSON object, not {type(args).__name__}")
    try:
        plain: dict[str, Any] = json.loads(json.dumps(args))
    except (TypeError, ValueError) as error:
        raise UsageError(f"--model-args for {model} must be plain JSON data: {error}") from error
    return plain
