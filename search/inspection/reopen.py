"""Reopen a stored study's data and teacher from its config, without training.

Re-scoring and export need the data splits and the teacher the trials were pruned from;
the study's stored config says which, and this machine's teacher cache or the study's
artifact store holds it (checked against the fingerprint the study recorded).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from medslim.objectives.data import Dataset, load_dataset
from medslim.search.config import ResolvedConfig
from medslim.search.session import teacher_recipe
from medslim.search.stored import StudyRef
from medslim.search.study_teacher import TeacherSource, obtain_study_teacher
from medslim.spaces.families import get_preset
from medslim.spaces.specs import ModelSpec


@dataclass(frozen=True)
class Reopened:
    config: ResolvedConfig
    data: Dataset
    teacher: nn.Module
    teacher_spec: ModelSpec


def reopen(ref: StudyRef, data_dir: Path | None = None) -> Reopened:
    """Data and teacher (CPU, eval mode) of a study; the teacher fetched from the study's
    store when this machine has not cached it, and an error, not a retraining, when neither
    holds it."""
    config = ref.config()
    data = load_dataset(config.dataset, data_dir=data_dir, seed=config.seed)
    spec = get_preset(str(config.model))
    source = TeacherSource(
        data,
        spec,
        teacher_recipe(config, data.kind),
        config.seed,
        ref.files_dir / "teachers",
        Path(config.teacher) if config.teacher else None,
    )
    teacher = obtain_study_teacher(
        source, ref.study, ref.artifacts, torch.device("cpu"), may_train=False
    )
    return Reopened(config, data, teacher.model, spec)
