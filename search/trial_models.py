"""Every finished trial's model as an Optuna artifact: a state dict plus the plain-data
architecture that rebuilds it exactly (never a pickled module).

A structurally pruned model no longer matches its preset, so the bundle stores each
conv/linear/batch-norm layer's widths; `rebuild` builds the base spec, resizes those
layers, and loads the state dict strictly, so any mismatch fails loudly.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import torch
from optuna.artifacts import download_artifact, get_all_artifact_meta, upload_artifact
from optuna.storages import BaseStorage
from torch import nn

from medslim.errors import UsageError
from medslim.search.artifacts import MODEL_MIME, Artifacts
from medslim.search.records import trial_record
from medslim.spaces.families import build_model, get_preset, spec_from_dict, spec_to_dict
from medslim.spaces.specs import ModelSpec

if TYPE_CHECKING:
    from medslim.search.stored import StudyRef


@dataclass(frozen=True)
class ModelBundle:
    """What rebuilds one model: weights, and a JSON-able `spec` (base model + layer widths)."""

    state_dict: dict[str, torch.Tensor]
    spec: dict[str, Any]

    def save(self, path: Path) -> None:
        torch.save({"state_dict": self.state_dict, "spec": self.spec}, path)

    @classmethod
    def load(cls, path: Path) -> ModelBundle:
        try:
            content = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # weights_only refuses anything but tensors and plain data
            raise UsageError(
                f"model file {path} is not a readable model bundle: {error}"
            ) from error
        if not isinstance(content, dict) or not {"state_dict", "spec"} <= content.keys():
            raise UsageError(f"model file {path} holds no 'state_dict' and 'spec'")
        return cls(content["state_dict"], content["spec"])


def bundle_model(
    model: nn.Module, base: ModelSpec, input_shape: tuple[int, ...], n_outputs: int
) -> ModelBundle:
    """A CPU copy of `model`'s weights with the widths that tell it apart from `base`."""
    spec = {
        "model": spec_to_dict(base),
        "input_shape": list(input_shape),
        "n_outputs": n_outputs,
        "layers": layer_widths(model),
    }
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return ModelBundle(state, json.loads(json.dumps(spec)))  # plain JSON data only


def layer_widths(model: nn.Module) -> dict[str, list[int]]:
    """[in, out] channels/features of each conv and linear layer, [n] of each batch norm."""
    widths: dict[str, list[int]] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            widths[name] = [module.in_channels, module.out_channels]
        elif isinstance(module, nn.Linear):
            widths[name] = [module.in_features, module.out_features]
        elif isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
            widths[name] = [module.num_features]
    return widths


def rebuild(bundle: ModelBundle) -> nn.Module:
    """The bundle's model in eval mode, with exactly the stored shapes and weights."""
    spec = bundle.spec
    model = build_model(
        spec_from_dict(spec["model"]), tuple(spec["input_shape"]), int(spec["n_outputs"])
    )
    for name, widths in spec["layers"].items():
        _resize(model, name, widths)
    model.load_state_dict(bundle.state_dict, strict=True)
    return model.eval()


def _resize(model: nn.Module, name: str, widths: list[int]) -> None:
    old = model.get_submodule(name)
    new: nn.Module
    if isinstance(old, nn.Conv2d):
        if [old.in_channels, old.out_channels] == widths:
            return
        new = nn.Conv2d(
            widths[0],
            widths[1],
            _pair(old.kernel_size),
            _pair(old.stride),
            old.padding if isinstance(old.padding, str) else _pair(old.padding),
            _pair(old.dilation),
            old.groups,
            bias=old.bias is not None,
            padding_mode=old.padding_mode,
        )
    elif isinstance(old, nn.Linear):
        if [old.in_features, old.out_features] == widths:
            return
        new = nn.Linear(widths[0], widths[1], bias=old.bias is not None)
    elif isinstance(old, nn.BatchNorm1d | nn.BatchNorm2d):
        if [old.num_features] == widths:
            return
        new = type(old)(widths[0], old.eps, old.momentum, old.affine, old.track_running_stats)
    else:
        raise UsageError(f"layer {name!r} is a {type(old).__name__}; it cannot be resized")
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def _pair(value: tuple[int, ...]) -> tuple[int, int]:
    """A 2-D convolution's (height, width) setting, as its constructor takes it."""
    return value[0], value[1]


# How each method's trials say which base model they started from (branch point by
# user_attrs["method"]): pruned trials start from the study's teacher preset, distilled
# students from their own spec.
BaseSpecFn = Callable[[optuna.Study, optuna.trial.FrozenTrial], ModelSpec]
BASE_SPECS: dict[str, BaseSpecFn] = {
    "prune": lambda study, trial: get_preset(study.user_attrs["config"]["model"]),
    "distill": lambda study, trial: spec_from_dict(trial.user_attrs["student_spec"]),
}


def base_spec(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> ModelSpec:
    method = str(trial_record(trial).get("method", "prune"))
    if method not in BASE_SPECS:
        raise UsageError(f"trial {trial.number} has method {method!r}; known: {list(BASE_SPECS)}")
    return BASE_SPECS[method](study, trial)


def save_trial_model(
    trial: optuna.Trial,
    model: nn.Module,
    base: ModelSpec,
    input_shape: tuple[int, ...],
    n_outputs: int,
    store: Artifacts,
) -> str:
    """Upload the trial's model bundle as an artifact (Optuna notes its id on the trial)."""
    bundle = bundle_model(model, base, input_shape, n_outputs)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / _bundle_name(trial.number)
        bundle.save(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            artifact_id = upload_artifact(
                artifact_store=store,
                file_path=str(path),
                study_or_trial=trial,
                mimetype=MODEL_MIME,  # a guess from `.pt` says "SNES page table"
            )
    return artifact_id


def model_artifact_id(storage: BaseStorage, trial: optuna.trial.FrozenTrial) -> str | None:
    """The id of the model bundle `save_trial_model` uploaded for this trial, if any."""
    name = _bundle_name(trial.number)
    metas = get_all_artifact_meta(trial, storage=storage)
    return next((meta.artifact_id for meta in metas if meta.filename == name), None)


def _bundle_name(number: int) -> str:
    return f"trial-{number}.pt"


def load_trial_bundle(ref: StudyRef, trial: optuna.trial.FrozenTrial) -> ModelBundle:
    """The trial's stored bundle, checked against the base model its method implies."""
    artifact_id = model_artifact_id(ref.storage, trial)
    if artifact_id is None:
        raise UsageError(
            f"trial {trial.number} of study {ref.name!r} stored no model; "
            "only trials run by this version of medslim can be re-scored or exported"
        )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.pt"
        try:
            download_artifact(
                artifact_store=ref.artifacts, file_path=str(path), artifact_id=artifact_id
            )
        except Exception as error:  # the store raises its own types for a missing file
            raise UsageError(
                f"model of trial {trial.number} (artifact {artifact_id}) is missing from "
                f"{ref.artifacts.url}: {error}" + _local_hint(ref)
            ) from error
        bundle = ModelBundle.load(path)
    expected = spec_to_dict(base_spec(ref.study, trial))
    if json.loads(json.dumps(expected)) != json.loads(json.dumps(bundle.spec["model"])):
        raise UsageError(
            f"trial {trial.number}'s stored model is a {bundle.spec['model']}, "
            f"but its user attrs describe a {expected}"
        )
    return bundle


def _local_hint(ref: StudyRef) -> str:
    if not ref.artifacts.local_only:
        return ""
    return (
        f"; study {ref.name!r} keeps models in the cache of the machine that ran each trial "
        "(it was made without --artifacts): read it there"
    )


def load_trial_model(ref: StudyRef, trial: optuna.trial.FrozenTrial) -> nn.Module:
    return rebuild(load_trial_bundle(ref, trial))
