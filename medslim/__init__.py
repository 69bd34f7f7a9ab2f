"""medslim: Optuna-driven pruning and distillation search for medical-imaging classifiers,
scored by validated AUC, accuracy and FLOPs.

    import medslim
    study = medslim.run(dataset="breastmnist", trials=20)
    print(study.front().as_json())

The public names below load on first use, so `import medslim` (and `medslim --help`) does
not import torch.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from medslim.errors import (
    DataError,
    ExportMismatch,
    MedslimError,
    StorageError,
    TrainingDiverged,
    UsageError,
)

if TYPE_CHECKING:
    from medslim.objectives.data import DatasetInfo, register_dataset
    from medslim.search.api import StoredStudy, StudyFailed, load_study, run
    from medslim.search.config import StudyConfig
    from medslim.search.methods import Method, register_method
    from medslim.search.samplers import register_sampler
    from medslim.spaces.criteria import Criterion, register_criterion
    from medslim.spaces.families import Family, StudentUse, register_family, register_preset
    from medslim.spaces.sources import ModelSource, register_source

try:
    __version__ = version("medslim")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

_LAZY = {
    "run": "medslim.search.api",
    "load_study": "medslim.search.api",
    "StoredStudy": "medslim.search.api",
    "StudyFailed": "medslim.search.api",
    "StudyConfig": "medslim.search.config",
    "register_dataset": "medslim.objectives.data",
    "DatasetInfo": "medslim.objectives.data",
    "register_criterion": "medslim.spaces.criteria",
    "Criterion": "medslim.spaces.criteria",
    "register_family": "medslim.spaces.families",
    "register_preset": "medslim.spaces.families",
    "Family": "medslim.spaces.families",
    "StudentUse": "medslim.spaces.families",
    "register_sampler": "medslim.search.samplers",
    "register_method": "medslim.search.methods",
    "Method": "medslim.search.methods",
    "register_source": "medslim.spaces.sources",
    "ModelSource": "medslim.spaces.sources",
}

__all__ = [
    "Criterion",
    "DataError",
    "DatasetInfo",
    "ExportMismatch",
    "Family",
    "MedslimError",
    "Method",
    "ModelSource",
    "StorageError",
    "StoredStudy",
    "StudentUse",
    "StudyConfig",
    "StudyFailed",
    "TrainingDiverged",
    "UsageError",
    "__version__",
    "load_study",
    "register_criterion",
    "register_dataset",
    "register_family",
    "register_method",
    "register_preset",
    "register_sampler",
    "register_source",
    "run",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'medslim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
