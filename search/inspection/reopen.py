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

from medslim.objectives.data import Dataset
from medslim.search.config import ResolvedConfig
from medslim.search.datasource import load_study_data
from medslim.search.session import teacher_source
from medslim.search.stored import StudyRef
from medslim.search.study_format import stored_dataset, study_attrs
from medslim.search.study_teacher import obtain_study_teacher
from medslim.spaces.blueprints import Blueprint, blueprint_for


def study_data(ref: StudyRef, data_dir: Path | None = None) -> Dataset:
    """The study's data, from its stored source (`data_dir` overrides its data dir)."""
    config = ref.config()
    if data_dir is not None:
        config = config.with_overrides(data_dir=str(data_dir))
    return load_study_data(config, stored_dataset(ref.study))


@dataclass(frozen=True)
class Reopened:
    config: ResolvedConfig
    data: Dataset
    teacher: nn.Module
    teacher_blueprint: Blueprint


def reopen(ref: StudyRef, data_dir: Path | None = None) -> Reopened:
    """Data (from the study's stored source; `data_dir` overrides its data dir) and teacher
    (CPU, eval mode) of a study; the teacher fetched from the study's store when this
    machine has not cached it, and an error, not a retraining, when neither holds it."""
    config = ref.config()
    data = study_data(ref, data_dir)
    blueprint = blueprint_for(
        str(config.model), config.model_args, data.input_shape, data.n_outputs
    )
    source = teacher_source(config, data, blueprint, ref.files_dir, study_attrs(ref.study))
    teacher = obtain_study_teacher(
        source, ref.study, ref.artifacts, torch.device("cpu"), may_train=False
    )
    return Reopened(config, data, teacher.model, blueprint)
