"""Every finished trial's model as an Optuna artifact: a state dict plus the plain-data
architecture that rebuilds it exactly (never a pickled module).

A structurally pruned model no longer matches its blueprint, so the bundle stores the
blueprint, its factorized layers (scheme and rank; `spaces.lowrank`) and the module
attributes pruning changed (channel counts, groups, head counts; `spaces.shapes`);
`rebuild` builds the blueprint, factorizes those layers' shapes, applies the attributes and
the state dict's shapes, and loads the weights strictly, so any mismatch fails loudly.
Bundles written before blueprints existed (a built-in spec and each layer's widths)
rebuild too.
"""

from __future__ import annotations

import copy
import json
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import optuna
import torch
from optuna.artifacts import download_artifact, get_all_artifact_meta, upload_artifact
from optuna.storages import BaseStorage
from torch import nn

from medslim.errors import UsageError
from medslim.objectives.checkpoints import save_tensors
from medslim.search.artifacts import MODEL_MIME, Artifacts
from medslim.search.methods import get_method
from medslim.search.records import trial_record
from medslim.search.study_format import stored_config
from medslim.spaces.blueprints import Blueprint, blueprint_from_spec
from medslim.spaces.families import spec_from_dict
from medslim.spaces.lowrank import factor_record, shape_factors
from medslim.spaces.shapes import Changes, changed_attributes, reshape

if TYPE_CHECKING:
    from medslim.search.stored import StudyRef

T = TypeVar("T")


@dataclass(frozen=True)
class ModelBundle:
    """What rebuilds one model: weights, and a JSON-able `spec` (its blueprint and the
    attributes pruning changed)."""

    state_dict: dict[str, torch.Tensor]
    spec: dict[str, Any]

    def save(self, path: Path) -> None:
        save_tensors({"state_dict": self.state_dict, "spec": self.spec}, path)

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

    def blueprint(self) -> Blueprint:
        if "blueprint" in self.spec:
            return Blueprint.from_dict(self.spec["blueprint"])
        spec = spec_from_dict(self.spec["model"])  # a bundle from before blueprints
        return blueprint_from_spec(spec, tuple(self.spec["input_shape"]), self.spec["n_outputs"])


def bundle_model(model: nn.Module, base: Blueprint) -> ModelBundle:
    """A CPU copy of `model`'s weights with what tells it apart from `base`'s model: its
    factorized layers (`spaces.lowrank`), then the attributes pruning changed."""
    factors = factor_record(model)
    reference = _reference(base)
    if factors:
        reference = shape_factors(copy.deepcopy(reference), factors)
    spec: dict[str, Any] = {"blueprint": base.as_dict()}
    if factors:
        spec["factors"] = factors
    spec["changes"] = changed_attributes(model, reference)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return ModelBundle(state, json.loads(json.dumps(spec)))  # plain JSON data only


_REFERENCES: dict[str, nn.Module] = {}


def _reference(base: Blueprint) -> nn.Module:
    """A fresh build of `base` to compare pruned models with; built once per process (a
    study's pruned trials all share the teacher's blueprint)."""
    key = json.dumps(base.as_dict(), sort_keys=True)
    if key not in _REFERENCES:
        if len(_REFERENCES) > 8:  # students differ per trial: keep only a few
            _REFERENCES.clear()
        _REFERENCES[key] = base.build()
    return _REFERENCES[key]


def rebuild(bundle: ModelBundle) -> nn.Module:
    """The bundle's model in eval mode, with exactly the stored shapes and weights."""
    model = shape_factors(bundle.blueprint().build(), bundle.spec.get("factors", {}))
    changes = bundle.spec.get("changes")
    if changes is None:
        changes = _legacy_changes(model, bundle.spec["layers"])
    reshape(model, changes, bundle.state_dict)
    model.load_state_dict(bundle.state_dict, strict=True)
    return model.eval()


def _legacy_changes(model: nn.Module, layers: dict[str, list[int]]) -> Changes:
    """The widths an older bundle stored ([in, out] per conv and linear layer, [n] per
    batch norm) as changed attributes."""
    keys = {nn.Conv2d: ("in_channels", "out_channels"), nn.Linear: ("in_features", "out_features")}
    changes: Changes = {}
    for name, widths in layers.items():
        names = keys.get(type(model.get_submodule(name)), ("num_features",))
        changes[name] = dict(zip(names, widths, strict=True))
    return changes


def base_blueprint(
    study: optuna.Study, trial: optuna.trial.FrozenTrial, stored: Blueprint
) -> Blueprint:
    """The blueprint trial `trial`'s model started from, as its method says."""
    method = get_method(str(trial_record(trial)["method"]))
    return method.base(stored_config(study) or {}, trial, stored)


def save_trial_model(
    trial: optuna.Trial, model: nn.Module, base: Blueprint, store: Artifacts
) -> str:
    """Upload the trial's model bundle as an artifact (Optuna notes its id on the trial)."""
    bundle = bundle_model(model, base)
    # a guess from `.pt` says "SNES page table"
    return upload_trial_file(trial, store, _bundle_name(trial.number), bundle.save, MODEL_MIME)


def save_trial_onnx(trial: optuna.Trial, data: bytes, store: Artifacts) -> str:
    """Upload the ONNX file the trial was measured (and, converted, scored) as."""

    def write(path: Path) -> None:
        path.write_bytes(data)

    return upload_trial_file(trial, store, onnx_name(trial.number), write, MODEL_MIME)


def load_trial_onnx(ref: StudyRef, trial: optuna.trial.FrozenTrial) -> bytes | None:
    """The ONNX file the trial was measured as (None: the study did not deploy)."""
    return _load_trial_file(ref, trial, onnx_name(trial.number), Path.read_bytes)


def onnx_name(number: int) -> str:
    return f"trial-{number}.onnx"


def save_screening(trial: optuna.Trial, record: dict[str, Any], store: Artifacts) -> str:
    """Upload every screened candidate's proxy and ratios as the trial's JSON file."""

    def write(path: Path) -> None:
        path.write_text(json.dumps(record), encoding="utf-8")

    return upload_trial_file(
        trial, store, _screening_name(trial.number), write, "application/json"
    )


def upload_trial_file(
    trial: optuna.Trial, store: Artifacts, name: str, write: Callable[[Path], None], mime: str
) -> str:
    """Write a file with `write` and upload it as the trial's artifact `name` (Optuna
    records the file's own name)."""
    path = _staging() / name
    try:
        write(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return upload_artifact(
                artifact_store=store, file_path=str(path), study_or_trial=trial, mimetype=mime
            )
    finally:
        path.unlink(missing_ok=True)


def load_screening(ref: StudyRef, trial: optuna.trial.FrozenTrial) -> dict[str, Any] | None:
    """The trial's screening record (None: it screened no candidates)."""

    def read(path: Path) -> dict[str, Any]:
        return dict(json.loads(path.read_text(encoding="utf-8")))

    return _load_trial_file(ref, trial, _screening_name(trial.number), read)


def _load_trial_file(
    ref: StudyRef, trial: optuna.trial.FrozenTrial, name: str, read: Callable[[Path], T]
) -> T | None:
    """The trial's artifact `name`, downloaded and read (None: the trial has none)."""
    metas = get_all_artifact_meta(trial, storage=ref.storage)
    artifact_id = next((m.artifact_id for m in metas if m.filename == name), None)
    if artifact_id is None:
        return None
    return read_artifact(ref, artifact_id, f"{name} of trial {trial.number}", read)


def read_artifact(
    ref: StudyRef, artifact_id: str, what: str, read: Callable[[Path], T], hint: str = ""
) -> T:
    """The study's artifact `artifact_id`, downloaded to a temporary file and `read`; a file
    missing from the store is a one-line `UsageError` naming `what` it is."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "artifact"
        try:
            download_artifact(
                artifact_store=ref.artifacts, file_path=str(path), artifact_id=artifact_id
            )
        except Exception as error:  # the store raises its own types for a missing file
            raise UsageError(
                f"{what} (artifact {artifact_id}) is missing from {ref.artifacts.url}: "
                f"{error}{hint}"
            ) from error
        return read(path)


def _screening_name(number: int) -> str:
    return f"trial-{number}-candidates.json"


_STAGING: list[tempfile.TemporaryDirectory[str]] = []


def _staging() -> Path:
    """One temporary folder per process for the bundles on their way to the store (made and
    removed once, not per trial; removed when the process exits)."""
    if not _STAGING:
        _STAGING.append(tempfile.TemporaryDirectory(prefix="medslim-models-"))
    return Path(_STAGING[0].name)


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
    what = f"model of trial {trial.number}"
    bundle = read_artifact(ref, artifact_id, what, ModelBundle.load, _local_hint(ref))
    stored = bundle.blueprint()
    expected = base_blueprint(ref.study, trial, stored)
    if expected.as_dict() != stored.as_dict():
        raise UsageError(
            f"trial {trial.number}'s stored model is a {stored.as_dict()}, "
            f"but its study describes a {expected.as_dict()}"
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
