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
from medslim.objectives.data import Dataset, load_dataset
from medslim.objectives.teacher import obtain_teacher, teacher_key
from medslim.search.config import ResolvedConfig
from medslim.search.session import teacher_recipe
from medslim.search.stored import StudyRef
from medslim.spaces.blueprints import Blueprint, blueprint_for


@dataclass(frozen=True)
class Reopened:
    config: ResolvedConfig
    data: Dataset
    teacher: nn.Module
    teacher_blueprint: Blueprint


def reopen(ref: StudyRef, data_dir: Path | None = None) -> Reopened:
    """Data and teacher (CPU, eval mode) of a study; an error, not a retraining, when the
    cached teacher is gone."""
    config = ref.config()
    data = load_dataset(config.dataset, data_dir=data_dir, seed=config.seed)
    blueprint = blueprint_for(
        str(config.model), config.model_args, data.input_shape, data.n_outputs
    )
    recipe = teacher_recipe(config, data.kind)
    cache = ref.files_dir / "teachers"
    teacher_file = Path(config.teacher) if config.teacher else None
    if teacher_file is None:
        key = teacher_key(data, blueprint, recipe, config.seed, config.pretrained)
        cached = cache / f"teacher-{key}.pt"
        if not cached.is_file():
            raise UsageError(
                f"the teacher of study {ref.name!r} is not cached at {cached} (or its model "
                "file changed); run `medslim run` on this storage again to rebuild it"
            )
    teacher, _, _ = obtain_teacher(
        data,
        blueprint,
        recipe,
        seed=config.seed,
        cache_dir=cache,
        device=torch.device("cpu"),
        teacher_file=teacher_file,
    )
    return Reopened(config, data, teacher, blueprint)
