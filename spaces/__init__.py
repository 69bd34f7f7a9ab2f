"""What a trial may choose, and how a choice becomes a model."""

from spaces.architectures import (
    MLPSpec,
    ModelSpec,
    ResNetSpec,
    build_model,
    get_preset,
    preset_names,
    spec_from_dict,
    spec_to_dict,
)
from spaces.criteria import CRITERIA, Criterion, criterion_names, get_criterion
from spaces.errors import UsageError
from spaces.sparsity import PruningPlan, SparsitySpace, prunable_units, prune_in_steps, sample_plan

__all__ = [
    "CRITERIA",
    "Criterion",
    "MLPSpec",
    "ModelSpec",
    "PruningPlan",
    "ResNetSpec",
    "SparsitySpace",
    "UsageError",
    "build_model",
    "criterion_names",
    "get_criterion",
    "get_preset",
    "preset_names",
    "prunable_units",
    "prune_in_steps",
    "sample_plan",
    "spec_from_dict",
    "spec_to_dict",
]
