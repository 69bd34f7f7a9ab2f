"""Reopen a stored study's data and cached teacher from its config, without training.

Re-scoring and export need the data splits and the teacher the trials were pruned from;
the study's stored config says which, and the teacher cache beside the storage holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from medslim.errors import UsageError
from medslim.objectives.data import Dataset
from medslim.objectives.teacher import obtain_teacher, teacher_key
from medslim.search.config import ResolvedConfig
from medslim.search.datasource import ATTR, load_study_data
from medslim.search.session import teacher_recipe
from medslim.search.stored import StudyRef
from medslim.search.teacher_files import study_teacher_file
from medslim.spaces.families import get_preset
from medslim.spaces.specs import ModelSpec


def study_data(ref: StudyRef, data_dir: Path | None = None) -> Dataset:
    """The study's data, from its stored source (`data_dir` overrides its data dir)."""
    config = ref.config()
    if data_dir is not None:
        config = config.with_overrides(data_dir=str(data_dir))
    return load_study_data(config, ref.study.user_attrs.get(ATTR))


@dataclass(frozen=True)
class Reopened:
    config: ResolvedConfig
    data: Dataset
    teacher: nn.Module
    teacher_spec: ModelSpec


def reopen(ref: StudyRef, data_dir: Path | None = None) -> Reopened:
    """Data (from the study's stored source; `data_dir` overrides its data dir) and
    teacher (CPU, eval mode) of a study; an error, not a retraining, when the cached
    teacher is gone."""
    config = ref.config()
    data = study_data(ref, data_dir)
    spec = get_preset(str(config.model))
    recipe = teacher_recipe(config, data.kind)
    cache = ref.files_dir / "teachers"
    teacher_file = Path(config.teacher) if config.teacher else None
    if teacher_file is None:
        teacher_file = study_teacher_file(cache, ref.study.user_attrs, data, spec)
    if teacher_file is None:
        cached = cache / f"teacher-{teacher_key(data, spec, recipe, config.seed)}.pt"
        if not cached.is_file():
            raise UsageError(
                f"the teacher of study {ref.name!r} is not cached in {cache}; "
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
