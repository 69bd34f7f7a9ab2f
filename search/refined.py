"""A front member fine-tuned longer (`medslim refine`), stored beside its trial.

Optuna freezes a finished trial, so the refined model is the study's artifact
`trial-N-refined.pt` and its record the study attr `refined.trial.N` (epochs, val scores,
the artifact's id). Readers that show or export trial N use the refined model where one
exists (`pareto`, `report`, the dashboard's notes, `export`) and say so.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import optuna
from optuna.artifacts import upload_artifact
from torch import nn

from medslim.search.artifacts import MODEL_MIME
from medslim.search.stored import StudyRef
from medslim.search.study_format import REFINED_PREFIX
from medslim.search.trial_models import ModelBundle, bundle_model, read_artifact, rebuild
from medslim.spaces.blueprints import Blueprint

T = TypeVar("T")


def refined_record(study: optuna.Study, number: int) -> dict[str, Any] | None:
    """Trial `number`'s refined record, or None when it was never refined."""
    record = study.user_attrs.get(f"{REFINED_PREFIX}{number}")
    return dict(record) if isinstance(record, dict) else None


def refined_records(study: optuna.Study) -> dict[int, dict[str, Any]]:
    return {
        int(key[len(REFINED_PREFIX) :]): dict(value)
        for key, value in study.user_attrs.items()
        if key.startswith(REFINED_PREFIX) and isinstance(value, dict)
    }


def save_refined(
    ref: StudyRef,
    number: int,
    model: nn.Module,
    base: Blueprint,
    record: dict[str, Any],
    onnx: bytes | None = None,
) -> dict[str, Any]:
    """Upload the refined model (and the ONNX file it deploys as, where its trial deployed
    converted: `onnx`) to the study's store and record it (a later refine of the same trial
    replaces the record; its earlier files stay in the store)."""
    bundle = bundle_model(model, base)
    stored = {**record, "artifact_id": _upload(ref, f"trial-{number}-refined.pt", bundle.save)}
    if onnx is not None:
        name = f"trial-{number}-refined.onnx"
        stored["onnx_artifact_id"] = _upload(ref, name, lambda path: path.write_bytes(onnx))
    ref.study.set_user_attr(f"{REFINED_PREFIX}{number}", stored)
    return stored


def _upload(ref: StudyRef, name: str, write: Callable[[Path], object]) -> str:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        write(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return upload_artifact(
                artifact_store=ref.artifacts,
                file_path=str(path),
                study_or_trial=ref.study,
                mimetype=MODEL_MIME,
            )


def load_refined_bundle(ref: StudyRef, number: int) -> ModelBundle | None:
    record = refined_record(ref.study, number)
    if record is None:
        return None
    return _download(ref, number, record["artifact_id"], ModelBundle.load)


def load_refined_onnx(ref: StudyRef, number: int) -> bytes | None:
    """The ONNX file a refined member deploys as (None: it deploys as its PyTorch model)."""
    record = refined_record(ref.study, number)
    if record is None or "onnx_artifact_id" not in record:
        return None
    return _download(ref, number, record["onnx_artifact_id"], Path.read_bytes)


def _download(ref: StudyRef, number: int, artifact_id: str, read: Callable[[Path], T]) -> T:
    return read_artifact(ref, artifact_id, f"refined model of trial {number}", read)


def load_refined_model(ref: StudyRef, number: int) -> nn.Module | None:
    bundle = load_refined_bundle(ref, number)
    return rebuild(bundle) if bundle is not None else None
