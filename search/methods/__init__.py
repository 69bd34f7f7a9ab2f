"""Compression methods as registered records (`base.Method`), one file each: `prune`,
`distill`, `lowrank` and `prune+lowrank` (`prune_lowrank.py`); `choice` says which a study
and each of its trials run; `precision` and `int8` are the precision stage every trial
may end with. Importing this package registers them; it imports neither torch nor Optuna.

The names the package had as one module (`StudentTrials`, `kd_finetune_loss`,
`students_lost`, ...) load on first use from where they live now.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from medslim.search.methods.base import (
    METHOD_PARAM,
    METHODS,
    Method,
    MethodTrials,
    Prepared,
    Seed,
    SeedContext,
    Style,
    TrialShared,
    get_method,
    method_names,
    register_method,
)
from medslim.search.methods.choice import (
    ALL,
    CHANCES,
    GROUPS,
    draw_method,
    method_choices,
    method_lost,
    methods_of,
    study_methods,
)

# Registration order is the order studies offer the methods in (`all`): one import each.
# isort: split
from medslim.search.methods.prune import PRUNE

# isort: split
from medslim.search.methods.distill import DISTILL

# isort: split
from medslim.search.methods.lowrank import LOWRANK

# isort: split
from medslim.search.methods.prune_lowrank import PRUNE_LOWRANK

# isort: split
from medslim.search.methods.int8 import INT8
from medslim.search.methods.precision import FP32, PRECISION_PARAM, PRECISIONS, precision_of

if TYPE_CHECKING:
    from medslim.search.student_trials import KD_FINETUNE, StudentTrials, kd_finetune_loss

STUDENT_CHANCES = CHANCES
STUDENTS_STOPPED_ATTR = DISTILL.stopped_attr

_LAZY = {
    "StudentTrials": "medslim.search.student_trials",
    "kd_finetune_loss": "medslim.search.student_trials",
    "teacher_signal": "medslim.search.student_trials",
    "KD_FINETUNE": "medslim.search.student_trials",
}


def students_lost(study: Any) -> bool:
    """Whether enough students finished and none of them is on the study's front."""
    return method_lost(study, DISTILL.name)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "ALL",
    "DISTILL",
    "FP32",
    "INT8",
    "GROUPS",
    "LOWRANK",
    "KD_FINETUNE",
    "METHODS",
    "METHOD_PARAM",
    "Method",
    "MethodTrials",
    "PRECISIONS",
    "PRECISION_PARAM",
    "PRUNE",
    "PRUNE_LOWRANK",
    "Prepared",
    "STUDENTS_STOPPED_ATTR",
    "STUDENT_CHANCES",
    "Seed",
    "SeedContext",
    "StudentTrials",
    "Style",
    "TrialShared",
    "draw_method",
    "get_method",
    "kd_finetune_loss",
    "method_choices",
    "method_lost",
    "method_names",
    "precision_of",
    "methods_of",
    "register_method",
    "students_lost",
    "study_methods",
]
