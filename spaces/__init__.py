"""What a trial may choose, and how a choice becomes a model."""

from spaces.architectures import (
    MLPSpec,
    MobileNetSpec,
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
from spaces.students import (
    STUDENT_FAMILIES,
    DistillSettings,
    StudentSpace,
    sample_student,
    student_params,
)

__all__ = [
    "CRITERIA",
    "STUDENT_FAMILIES",
    "Criterion",
    "DistillSettings",
    "MLPSpec",
    "MobileNetSpec",
    "ModelSpec",
    "PruningPlan",
    "ResNetSpec",
    "SparsitySpace",
    "StudentSpace",
    "UsageError",
    "build_model",
    "criterion_names",
    "get_criterion",
    "get_preset",
    "preset_names",
    "prunable_units",
    "prune_in_steps",
    "sample_plan",
    "sample_student",
    "spec_from_dict",
    "spec_to_dict",
    "student_params",
]
