"""The closed vocabularies medslim passes around, as `Literal` types with their values.

Torch-free, so every layer (and the CLI) can import them. The task names are MedMNIST's.
"""

from __future__ import annotations

from typing import Literal, get_args

Task = Literal["binary-class", "multi-class", "multi-label, binary-class", "ordinal-regression"]
TASKS: tuple[Task, ...] = get_args(Task)
BINARY: Task = "binary-class"
MULTI_CLASS: Task = "multi-class"
MULTI_LABEL: Task = "multi-label, binary-class"
ORDINAL: Task = "ordinal-regression"
TASK_ALIASES: dict[str, Task] = {"multi-label": MULTI_LABEL}
"""Short names accepted for a task (`--task multi-label`) besides MedMNIST's own."""
TASK_CHOICES = ("binary-class", "multi-class", "multi-label", "ordinal-regression")
"""The task names `--task` offers."""

DataKind = Literal["image", "tabular", "volume"]
"""2-D images (C, H, W), feature vectors (F,), or 3-D volumes (C, D, H, W) such as CT and MRI."""
DATA_KINDS: tuple[DataKind, ...] = get_args(DataKind)
KIND_NAMES: dict[DataKind, str] = {
    "image": "2-D images",
    "tabular": "tabular features",
    "volume": "3-D volumes",
}

Pruning = Literal["structured", "unstructured"]
PRUNING_KINDS: tuple[Pruning, ...] = get_args(Pruning)

Objective = Literal["val_auc", "val_acc", "flops", "size_bytes", "latency_ms"]
OBJECTIVES: tuple[Objective, ...] = get_args(Objective)
DEPLOYMENT: tuple[Objective, ...] = ("size_bytes", "latency_ms")
"""Objectives measured on the exported ONNX model (onnxruntime on this machine)."""
Direction = Literal["minimize", "maximize"]
DIRECTIONS: dict[Objective, Direction] = {
    "val_auc": "maximize",
    "val_acc": "maximize",
    "flops": "minimize",
    "size_bytes": "minimize",
    "latency_ms": "minimize",
}

Quantize = Literal["none", "int8", "search"]
QUANTIZE: tuple[Quantize, ...] = get_args(Quantize)
"""`none`: fp32 only; `int8`: every trial quantized; `search`: each trial chooses."""
QuantizeMode = Literal["static", "dynamic"]
QUANTIZE_MODES: tuple[QuantizeMode, ...] = get_args(QuantizeMode)
"""Static: weights and activations int8 (QDQ, calibrated); dynamic: activations at run time."""
QuantizeWeights = Literal["per-channel", "per-tensor"]
QUANTIZE_WEIGHTS: tuple[QuantizeWeights, ...] = get_args(QuantizeWeights)
Calibration = Literal["minmax", "entropy", "percentile"]
CALIBRATIONS: tuple[Calibration, ...] = get_args(Calibration)
