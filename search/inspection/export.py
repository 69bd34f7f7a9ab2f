"""`medslim export`: a trial's model as a `.pt` bundle (state dict + JSON-able spec, loads
with `torch.load(weights_only=True)`) or as ONNX checked against PyTorch by onnxruntime;
where the study deployed, the ONNX file the trial was measured and scored as (quantized for
an int8 member)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medslim.errors import ExportMismatch, UsageError
from medslim.objectives.metrics import measure_latency_ms
from medslim.objectives.onnx_latency import side_by_side
from medslim.objectives.onnx_models import INPUT, onnx_session, require_onnx, to_onnx
from medslim.search.methods import FP32, precision_of
from medslim.search.records import trial_record
from medslim.search.refined import load_refined_bundle, load_refined_onnx, refined_record
from medslim.search.stored import StudyRef
from medslim.search.trial_models import (
    ModelBundle,
    load_trial_bundle,
    load_trial_onnx,
    rebuild,
)

logger = logging.getLogger(__name__)

FORMATS = ("pt", "onnx")
ONNX_TOLERANCE = 1e-4
CHECK_BATCH = 64
"""Validation inputs compared between PyTorch and onnxruntime."""


@dataclass(frozen=True)
class OnnxCheck:
    max_abs_diff: float
    torch_latency_ms: float
    onnx_latency_ms: float
    precision: str = "fp32"
    measured: bool = False
    """Whether the file written is the one the trial was measured (and scored) as."""


def export_trial(
    ref: StudyRef,
    number: int,
    fmt: str,
    out: Path,
    *,
    data_dir: Path | None = None,
    original: bool = False,
) -> OnnxCheck | None:
    """Write trial `number`'s model to `out` (its refined model where `medslim refine` made
    one, unless `original`); for ONNX, the file the trial was measured and scored as where
    the study deployed (a quantized one for an int8 member), and the onnxruntime check."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        require_onnx("ONNX export")
    trial = ref.finished_trial(number)
    refined = None if original else refined_record(ref.study, number)
    bundle = load_refined_bundle(ref, number) if refined else None
    if bundle is None:
        bundle = load_trial_bundle(ref, trial)
    precision = precision_of(refined or trial_record(trial))
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "pt":
        if precision is not FP32:
            logger.warning(
                "trial %d deploys as %s: the .pt file holds its fp32 weights before conversion; "
                "--format onnx writes the %s file it was scored as",
                number,
                precision.name,
                precision.name,
            )
        bundle.save(out)
        return None
    inputs = validation_inputs(ref, bundle, data_dir)
    measured = load_refined_onnx(ref, number) if refined else load_trial_onnx(ref, trial)
    if measured is None:
        return export_onnx(rebuild(bundle), inputs, out)
    out.write_bytes(measured)  # exactly the file that was measured and scored
    return check_onnx(rebuild(bundle), measured, inputs, out, precision=precision.name)


def validation_inputs(ref: StudyRef, bundle: ModelBundle, data_dir: Path | None) -> torch.Tensor:
    """A batch of the study's validation inputs (the data the model was selected on)."""
    from medslim.search.inspection.reopen import study_data

    config = ref.config()
    data = study_data(ref, data_dir)
    if tuple(data.input_shape) != bundle.blueprint().input_shape:
        raise UsageError(f"dataset {config.dataset!r} no longer matches the stored model")
    return data.val.batch(slice(0, CHECK_BATCH)).cpu().contiguous()


def export_onnx(
    model: nn.Module, inputs: torch.Tensor, out: Path, *, repeats: int = 30
) -> OnnxCheck:
    """Export with a dynamic batch axis, then compare onnxruntime with PyTorch (and time
    both at batch 1, median of `repeats`)."""
    data = to_onnx(model, inputs)
    out.write_bytes(data)
    return check_onnx(model, data, inputs, out, repeats=repeats, measured=False)


def check_onnx(
    model: nn.Module,
    data: bytes,
    inputs: torch.Tensor,
    out: Path,
    *,
    precision: str = FP32.name,
    repeats: int = 30,
    measured: bool = True,
) -> OnnxCheck:
    """onnxruntime's outputs of `data` (written to `out`) against PyTorch's on `inputs`, both
    timed at batch 1; an fp32 file that differs is refused (`ExportMismatch`), a converted
    one (int8) differs by design and is reported."""
    model = model.cpu().eval()
    session = onnx_session(data)
    with torch.inference_mode():
        expected = model(inputs).numpy()
    actual = session.run(None, {INPUT: inputs.numpy()})[0]
    diff = float(np.max(np.abs(actual - expected)))
    (timing,) = side_by_side([session], tuple(inputs.shape[1:]), rounds=repeats)
    check = OnnxCheck(
        max_abs_diff=diff,
        torch_latency_ms=measure_latency_ms(model, tuple(inputs.shape[1:]), repeats=repeats),
        onnx_latency_ms=timing.median_ms,
        precision=precision,
        measured=measured,
    )
    if precision == FP32.name and not diff <= ONNX_TOLERANCE:
        raise ExportMismatch(
            f"ONNX outputs differ from PyTorch by {diff:.3g} (> {ONNX_TOLERANCE:g}) on "
            f"{len(inputs)} validation inputs; {out} is not trustworthy"
        )
    return check
