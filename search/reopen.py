"""Reopen a stored study's data and cached teacher from its config, without training.

Re-scoring and export need the data splits and the teacher the trials were pruned from;
the study's stored config says which, and the teacher cache beside the storage holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from torch import nn

from objectives.data import Dataset, load_dataset
from objectives.teacher import obtain_teacher, teacher_key
from search.config import StudyConfig
from search.storage import storage_dir
from search.study import teacher_recipe
from spaces.architectures import ModelSpec, get_preset
from spaces.errors import UsageError


@dataclass(frozen=True)
class Reopened:
    config: StudyConfig
    data: Dataset
    teacher: nn.Module
    teacher_spec: ModelSpec


def study_config(study: optuna.Study, storage_url: str) -> StudyConfig:
    stored = study.user_attrs.get("config")
    if stored is None:
        raise UsageError(f"study {study.study_name!r} stores no medslim config")
    return StudyConfig.from_stored(stored, storage=storage_url, study=study.study_name)


def reopen(study: optuna.Study, storage_url: str, data_dir: Path | None = None) -> Reopened:
    """Data and teacher (CPU, eval mode) of a study; an error, not a retraining, when the
    cached teacher is gone."""
    config = study_config(study, storage_url)
    data = load_dataset(config.dataset, data_dir=data_dir, seed=config.seed)
    spec = get_preset(str(config.model))
    recipe = teacher_recipe(config, data)
    cache = storage_dir(storage_url) / "teachers"
    teacher_file = Path(config.teacher) if config.teacher else None
    if teacher_file is None:
        cached = cache / f"teacher-{teacher_key(data, spec, recipe, config.seed)}.pt"
        if not cached.is_file():
            raise UsageError(
                f"the teacher of study {study.study_name!r} is not cached at {cached}; "
                "run `medslim run` on this storage again to rebuild it"
            )
    teacher, _, _ = obtain_teacher(
        data,
        spec,
        recipe,
        seed=config.seed,
        cache_dir=cache,
        device=torch.device("cpu"),
        teacher_file=teacher_file,
    )
    return Reopened(config, data, teacher, spec)
