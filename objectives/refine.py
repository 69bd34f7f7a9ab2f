"""Refining: a chosen front member fine-tuned longer on its teacher's soft labels.

A trial's one fine-tune epoch is enough to rank candidates, not to deploy one. Refining
trains the member further the way its teacher was trained (random affine augmentation,
so the teacher runs on each augmented batch, a short warm-up and cosine decay) with the
KD loss of pruned models' fine-tuning, and keeps the epoch with the best val AUC, as the
teacher's own training does; the test split is never read.
"""

from __future__ import annotations

import torch
from torch import nn

from medslim.objectives.data import Dataset
from medslim.objectives.distill import Distiller, TeacherSignal
from medslim.objectives.evaluate import Budget, Scores, score_model
from medslim.objectives.recipes import IMAGE_BATCH
from medslim.objectives.teacher import BestOnVal
from medslim.objectives.training import Recipe, train
from medslim.spaces.students import DistillSettings

REFINE_EPOCHS = 10
REFINE_KD = DistillSettings(temperature=4.0, alpha=0.5)
"""The soft-label term, as in the fine-tuning of pruned models (`--kd`)."""


def refine_model(
    model: nn.Module,
    teacher: nn.Module,
    data: Dataset,
    *,
    epochs: int = REFINE_EPOCHS,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
) -> tuple[nn.Module, Scores, int]:
    """Train `model` in place on the teacher's soft labels; returns it (its best val
    epoch's weights), its val scores and that epoch (counted from 1)."""
    if epochs < 1:
        raise ValueError(f"`epochs` must be 1 or more, got {epochs}")
    images = data.train.is_images
    recipe = Recipe(
        epochs=epochs,
        batch_size=min(batch_size, IMAGE_BATCH) if images else batch_size,
        lr=lr,
        augment=images,
        warmup_epochs=1 if epochs >= 5 else 0,
    )
    signal = TeacherSignal(teacher, [], torch.empty(0))
    loss = Distiller(signal, REFINE_KD, data.task, augment=True)  # the teacher sees each batch
    best = BestOnVal(data)
    torch.manual_seed(seed)
    train(model, data.train, data.task, recipe, seed=seed, loss=loss, on_epoch=best)
    best.restore(model)
    model.eval()
    return model, score_model(model, data, Budget()), best.epoch + 1
