"""The teacher: trained once per (data, model, seed, recipe), cached on disk by a hash of
that config, or loaded from a user's weights file (`checkpoints.load_weights`)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from medslim.objectives.checkpoints import load_weights
from medslim.objectives.data import Dataset
from medslim.objectives.evaluate import split_scores
from medslim.objectives.training import Recipe, train
from medslim.spaces.blueprints import Blueprint


@dataclass(frozen=True)
class TeacherScores:
    val_auc: float
    val_acc: float
    test_auc: float
    test_acc: float


def data_fingerprint(data: Dataset) -> str:
    """A short hash of the training and validation tensors: the same data, the same key."""
    digest = hashlib.sha256()
    for tensor in (data.train.x, data.train.y, data.val.x, data.val.y):
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def teacher_key(
    data: Dataset, blueprint: Blueprint, recipe: Recipe, seed: int, pretrained: bool = False
) -> str:
    config = {
        "data": data_fingerprint(data),
        "task": data.task,
        "model": blueprint.identity(),
        "recipe": asdict(recipe),
        "seed": seed,
    }
    if pretrained:  # training starts from the library's weights
        config["pretrained"] = True
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:20]


def obtain_teacher(
    data: Dataset,
    blueprint: Blueprint,
    recipe: Recipe,
    *,
    seed: int,
    cache_dir: Path,
    device: torch.device,
    teacher_file: Path | None = None,
    pretrained: bool = False,
) -> tuple[nn.Module, TeacherScores, bool]:
    """The teacher model on `device`, its scores, and whether it was trained just now
    (from the library's pretrained weights with `pretrained`)."""
    model = blueprint.build()
    trained = False
    if teacher_file is not None:
        load_weights(model, teacher_file, blueprint.model, "teacher")
        model.to(device)
    else:
        key = teacher_key(data, blueprint, recipe, seed, pretrained)
        weights = cache_dir / f"teacher-{key}.pt"
        if weights.is_file():
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            model.to(device)
        else:
            if pretrained:  # fetched only when a teacher is trained from them
                model = blueprint.build(pretrained=True)
            torch.manual_seed(seed)
            model.to(device)
            train(model, data.train.x, data.train.y, data.task, recipe, seed=seed)
            cache_dir.mkdir(parents=True, exist_ok=True)
            partial = weights.with_suffix(".tmp")
            torch.save(model.state_dict(), partial)
            os.replace(partial, weights)  # another worker never sees half a file
            trained = True
    model.eval()
    val_auc, val_acc = split_scores(model, data.val, data.task)
    test_auc, test_acc = split_scores(model, data.test, data.task)
    return model, TeacherScores(val_auc, val_acc, test_auc, test_acc), trained
