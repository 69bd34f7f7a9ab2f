"""`medslim export`: a trial's model as a `.pt` bundle (state dict + JSON-able spec, loads
with `torch.load(weights_only=True)`) or as ONNX checked against PyTorch by onnxruntime."""

from __future__ import annotations

import importlib.util
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medslim.errors import ExportMismatch, UsageError
from medslim.objectives.metrics import measure_latency_ms
from medslim.search.refined import load_refined_bundle
from medslim.search.stored import StudyRef
from medslim.search.trial_models import ModelBundle, load_trial_bundle, rebuild

FORMATS = ("pt", "onnx")
ONNX_TOLERANCE = 1e-4
CHECK_BATCH = 64
"""Validation inputs compared between PyTorch and onnxruntime."""


@dataclass(frozen=True)
class OnnxCheck:
    max_abs_diff: float
    torch_latency_ms: float
    onnx_latency_ms: float


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
    one, unless `original`); for ONNX, return the onnxruntime check."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "onnx" and importlib.util.find_spec("onnxruntime") is None:
        raise UsageError("ONNX export needs onnxruntime: pip install 'medslim[onnx]'")
    trial = ref.finished_trial(number)
    bundle = None if original else load_refined_bundle(ref, number)
    if bundle is None:
        bundle = load_trial_bundle(ref, trial)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "pt":
        bundle.save(out)
        return None
    inputs = validation_inputs(ref, bundle, data_dir)
    return export_onnx(rebuild(bundle), inputs, out)


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
    import onnxruntime

    model = model.cpu().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (inputs[:1],),
            str(out),
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            dynamo=False,
        )
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        expected = model(inputs).numpy()
    actual = session.run(None, {"input": inputs.numpy()})[0]
    diff = float(np.max(np.abs(actual - expected)))
    check = OnnxCheck(
        max_abs_diff=diff,
        torch_latency_ms=measure_latency_ms(model, tuple(inputs.shape[1:]), repeats=repeats),
        onnx_latency_ms=_onnx_latency_ms(session, inputs[:1].numpy(), repeats),
    )
    if not diff <= ONNX_TOLERANCE:
        raise ExportMismatch(
            f"ONNX outputs differ from PyTorch by {diff:.3g} (> {ONNX_TOLERANCE:g}) on "
            f"{len(inputs)} validation inputs; {out} is not trustworthy"
        )
    return check


def _onnx_latency_ms(session: object, x: np.ndarray, repeats: int = 30, warmup: int = 5) -> float:
    timings = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        session.run(None, {"input": x})  # type: ignore[attr-defined]
        if i >= warmup:
            timings.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(timings)
