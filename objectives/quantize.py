"""INT8 quantization of an exported model with onnxruntime's tools.

Static quantization (the default) writes a QDQ model: weights int8 (per channel or per
tensor), activations int8 with ranges calibrated on a seeded sample of the training split
(min-max by default), so two runs give identical files. `reduce_range` (7-bit weights)
avoids the saturation of u8·s8 products on x86 CPUs without VNNI, and is off elsewhere.
Dynamic quantization (weights only; activations quantized at run time) suits MLPs.

Layers onnxruntime has no INT8 kernel for stay fp32; `fp32_ops` names them. A model it
cannot quantize at all stays fp32 as a whole, with the reason (never a crash of a study).
"""

from __future__ import annotations

import logging
import platform
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medslim.kinds import (
    CALIBRATIONS,
    QUANTIZE_MODES,
    QUANTIZE_WEIGHTS,
    Calibration,
    QuantizeMode,
    QuantizeWeights,
)
from medslim.objectives.split import Split

logger = logging.getLogger(__name__)

_QDQ = frozenset({"QuantizeLinear", "DequantizeLinear"})
_VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@dataclass(frozen=True)
class QuantSettings:
    """How a model is quantized (all but `reduce_range` are study settings)."""

    mode: QuantizeMode = "static"
    weights: QuantizeWeights = "per-channel"
    calibration: int = 128
    """Training images the activation ranges are calibrated on (static mode)."""
    method: Calibration = "minmax"
    reduce_range: bool | None = None
    """None: on where the CPU lacks VNNI (`needs_reduce_range`)."""
    seed: int = 0

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("mode", self.mode, QUANTIZE_MODES),
            ("weights", self.weights, QUANTIZE_WEIGHTS),
            ("method", self.method, CALIBRATIONS),
        ):
            if value not in allowed:
                raise ValueError(f"`{name}` must be one of {', '.join(allowed)}, got {value!r}")
        if self.calibration < 1:
            raise ValueError(f"`calibration` must be 1 image or more, got {self.calibration}")


@dataclass(frozen=True)
class Quantized:
    """A quantized model's bytes, what of it stayed fp32, and how it was made."""

    data: bytes
    fp32_ops: list[str] = field(default_factory=list)
    """`Conv layers.2.conv1`: weighted nodes left fp32 (no INT8 kernel for them)."""
    reduce_range: bool = False
    failed: str | None = None
    """Why the whole model stayed fp32 (then `data` is the fp32 model)."""

    @property
    def precision(self) -> str:
        return "fp32" if self.failed else "int8"


def needs_reduce_range() -> bool:
    """7-bit weights on x86 CPUs without VNNI (onnxruntime's advice for u8·s8 kernels)."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return True  # unknown: the safe choice
    return not any(flag in flags for flag in _VNNI_FLAGS)


def calibration_inputs(split: Split, count: int, seed: int) -> np.ndarray:
    """A seeded sample of `count` model inputs of `split` (float32, CPU)."""
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(split), generator=generator)[: min(count, len(split))]
    return split.batch(index.sort().values).cpu().float().contiguous().numpy()


def quantize(fp32: bytes, inputs: np.ndarray, settings: QuantSettings) -> Quantized:
    """`fp32` quantized to INT8; the fp32 model, with the reason, if onnxruntime cannot."""
    reduce_range = settings.reduce_range
    if reduce_range is None:
        reduce_range = needs_reduce_range()
    try:
        with _quiet_root_logger():
            data = _quantize(fp32, inputs, settings, reduce_range)
    except Exception as error:  # onnxruntime raises many types; the trial keeps fp32
        reason = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        logger.warning("quantization failed, the model stays fp32: %s", reason)
        return Quantized(fp32, reduce_range=reduce_range, failed=reason)
    left = fp32_ops(data)
    if left:
        logger.info("left fp32 (no INT8 kernel): %s", ", ".join(left))
    return Quantized(data, left, reduce_range)


def _quantize(
    fp32: bytes, inputs: np.ndarray, settings: QuantSettings, reduce_range: bool
) -> bytes:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([inputs[i : i + 1] for i in range(len(inputs))])

        def get_next(self) -> dict[str, Any] | None:
            batch = next(self.batches, None)
            return None if batch is None else {"input": batch}

    per_channel = settings.weights == "per-channel"
    with tempfile.TemporaryDirectory() as folder:
        source, prepared, out = (Path(folder) / n for n in ("in.onnx", "pre.onnx", "q.onnx"))
        source.write_bytes(fp32)
        try:  # shape inference and graph optimisation (batch norms folded), as advised
            quant_pre_process(str(source), str(prepared))
        except Exception as error:  # an exotic graph: quantize it as exported
            logger.info("onnxruntime's pre-processing failed (%s); quantizing as exported", error)
            prepared = source
        if settings.mode == "dynamic":
            quantize_dynamic(
                str(prepared),
                str(out),
                per_channel=per_channel,
                reduce_range=reduce_range,
                weight_type=QuantType.QInt8,
            )
        else:
            quantize_static(
                str(prepared),
                str(out),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=per_channel,
                reduce_range=reduce_range,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=getattr(CalibrationMethod, _METHODS[settings.method]),
            )
        return out.read_bytes()


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime's quantization tools log through the root logger (`Axis 1 is
    out-of-range for weight ...` for every batch norm); medslim says what matters itself."""
    root = logging.getLogger()

    def below_error(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR

    root.addFilter(below_error)
    try:
        yield
    finally:
        root.removeFilter(below_error)


_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


def fp32_ops(data: bytes) -> list[str]:
    """The nodes of a quantized model that still compute with fp32 weights (a float
    initializer of two or more dimensions as a direct input): the layers onnxruntime has
    no INT8 kernel for (`Einsum`, ...), as `op_type node_name`."""
    import onnx

    graph = onnx.load_from_string(data).graph
    weights = {
        init.name
        for init in graph.initializer
        if init.data_type == onnx.TensorProto.FLOAT and len(init.dims) >= 2
    }
    return [
        f"{node.op_type} {node.name}".rstrip()
        for node in graph.node
        if node.op_type not in _QDQ and weights.intersection(node.input)
    ]
