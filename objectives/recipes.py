"""The default teacher recipes: what `medslim run` trains a teacher with when the user
brings none.

Image teachers get a fixed budget of optimiser steps rather than of epochs, so that a
small dataset (BreastMNIST: 546 images, 4 steps an epoch) trains as long as a large one,
plus random affine augmentation, label smoothing and a short warm-up; the weights kept
are those of the epoch with the best val AUC (`teacher.BestOnVal`). On the CPU, resnet8
so trained beats the MedMNIST v2 paper's ResNet-18 (28) on PneumoniaMNIST and
BreastMNIST test AUC (benchmarks/teacher_quality.py).
"""

from __future__ import annotations

import math

from medslim.kinds import DataKind
from medslim.objectives.training import Recipe

TABULAR_EPOCHS = 60
IMAGE_STEPS = 600
"""Optimiser steps of an image teacher by default (epochs follow from the data's size)."""
IMAGE_EPOCHS = (10, 100)
"""Bounds of those epochs: at least 10 passes over large data, at most 100 over small."""
IMAGE_LABEL_SMOOTHING = 0.1
IMAGE_WEIGHT_DECAY = 5e-4
IMAGE_WARMUP_EPOCHS = 1


def default_teacher_epochs(kind: DataKind, n_train: int, batch_size: int) -> int:
    if kind == "tabular":
        return TABULAR_EPOCHS
    steps_per_epoch = max(1, n_train // min(batch_size, n_train))
    low, high = IMAGE_EPOCHS
    return min(high, max(low, math.ceil(IMAGE_STEPS / steps_per_epoch)))


def teacher_recipe(kind: DataKind, epochs: int, batch_size: int, lr: float) -> Recipe:
    """The teacher's recipe; part of its cache key, so a change here retrains teachers."""
    if kind == "tabular":
        return Recipe(epochs=epochs, batch_size=batch_size, lr=lr)
    return Recipe(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=IMAGE_WEIGHT_DECAY,
        augment=True,
        label_smoothing=IMAGE_LABEL_SMOOTHING,
        warmup_epochs=min(IMAGE_WARMUP_EPOCHS, epochs // 10),
    )
