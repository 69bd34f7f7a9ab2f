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

TrialMethod = Literal["prune", "distill"]
"""What one trial does: prune the teacher, or distill a student."""
TRIAL_METHODS: tuple[TrialMethod, ...] = get_args(TrialMethod)

Method = Literal["prune", "distill", "both"]
"""What a study searches: one trial method, or both on one front."""
METHODS: tuple[Method, ...] = get_args(Method)

Objective = Literal["val_auc", "val_acc", "flops"]
OBJECTIVES: tuple[Objective, ...] = get_args(Objective)
Direction = Literal["minimize", "maximize"]
DIRECTIONS: dict[Objective, Direction] = {
    "val_auc": "maximize",
    "val_acc": "maximize",
    "flops": "minimize",
}
