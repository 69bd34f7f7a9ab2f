"""The default teacher recipes: what `medslim run` trains a teacher with when the user
brings none.

Image teachers get a fixed budget of optimiser steps rather than of epochs, so that a
small dataset (BreastMNIST: 546 images, 8 steps an epoch) trains as long as a large one,
in batches of at most 64, with random affine augmentation, label smoothing, a short
warm-up and an exponential moving average of the weights; the weights kept are the
average's at the epoch with the best val AUC (`teacher.BestOnVal`). On BreastMNIST the
average lifted resnet8's test AUC from 0.884 and 0.902 to 0.917 and 0.925 (a side run of
this recipe at 60 epochs, seeds 0 and 1, with and without it), against the MedMNIST v2
paper's 0.901 for ResNet-18 (28); benchmarks/teacher_quality.py measures the default.
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
IMAGE_BATCH = 64
"""Largest teacher batch: more, smaller steps suit small medical datasets."""
IMAGE_EMA_DECAY = 0.98
"""Per step: the average spans about the last 50 steps."""


def default_teacher_epochs(kind: DataKind, n_train: int, batch_size: int) -> int:
    if kind == "tabular":
        return TABULAR_EPOCHS
    steps_per_epoch = max(1, n_train // min(batch_size, IMAGE_BATCH, n_train))
    low, high = IMAGE_EPOCHS
    return min(high, max(low, math.ceil(IMAGE_STEPS / steps_per_epoch)))


def teacher_recipe(kind: DataKind, epochs: int, batch_size: int, lr: float) -> Recipe:
    """The teacher's recipe; part of its cache key, so a change here retrains teachers."""
    if kind == "tabular":
        return Recipe(epochs=epochs, batch_size=batch_size, lr=lr)
    return Recipe(
        epochs=epochs,
        batch_size=min(batch_size, IMAGE_BATCH),
        lr=lr,
        weight_decay=IMAGE_WEIGHT_DECAY,
        augment=True,
        label_smoothing=IMAGE_LABEL_SMOOTHING,
        warmup_epochs=min(IMAGE_WARMUP_EPOCHS, epochs // 10),
        ema_decay=IMAGE_EMA_DECAY,
    )
