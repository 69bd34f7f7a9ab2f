"""Find the cached teacher a stored study was compressed from.

A study stores its teacher's cache file name (`teacher.cache_file`). A study made before
that was stored, or before the teacher recipe or the data's fingerprint changed, is
matched by content instead: the cached teacher whose val AUC equals the study's stored
one. Resuming, re-scoring or exporting such a study then uses its own teacher, never a
new one trained with today's recipe.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medslim.objectives.data import Dataset
from medslim.objectives.evaluate import split_scores
from medslim.search.study_format import TEACHER_ATTR
from medslim.spaces.blueprints import Blueprint

logger = logging.getLogger(__name__)
MATCH_TOLERANCE = 1e-6


def study_teacher_file(
    cache_dir: Path, attrs: dict[str, Any], data: Dataset, blueprint: Blueprint
) -> Path | None:
    """The study's cached teacher file, or None when no cached file is the study's."""
    teacher = attrs.get(TEACHER_ATTR, {})
    stored = teacher.get("cache_file")
    if stored is not None:
        path = cache_dir / stored
        return path if path.is_file() and _fits(path, blueprint) else None
    want = teacher.get("val_auc")
    if want is None:
        return None
    for path in sorted(cache_dir.glob("teacher-*.pt")):
        auc = _val_auc(path, data, blueprint)
        if auc is not None and abs(auc - want) <= MATCH_TOLERANCE:
            logger.info("teacher of an older study found by its val AUC: %s", path.name)
            return path
    return None


def _val_auc(path: Path, data: Dataset, blueprint: Blueprint) -> float | None:
    """The val AUC of a cached teacher, or None when it does not fit the model."""
    model = _loaded(path, blueprint)
    if model is None:
        return None
    auc, _ = split_scores(model.to(data.val.device).eval(), data.val, data.task)
    return auc


def _fits(path: Path, blueprint: Blueprint) -> bool:
    """Whether the file is a teacher of this model: a study continued with --force-config
    under another model must not load, nor overwrite, the first model's cached file."""
    return _loaded(path, blueprint) is not None


def _loaded(path: Path, blueprint: Blueprint) -> nn.Module | None:
    model = blueprint.build()
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except (RuntimeError, ValueError, OSError, pickle.UnpicklingError):
        return None
    return model
