"""K-fold cross-validation over train+val for small data, where one val split is noisy.

Each fold is a `Dataset` whose train/val are that fold's parts of the pooled train+val data;
the test split is carried along untouched and never read here.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from sklearn.model_selection import KFold, StratifiedKFold
from torch import nn

from medslim.errors import UsageError
from medslim.kinds import MULTI_LABEL
from medslim.objectives.data import Dataset, Split
from medslim.objectives.evaluate import Scores


def cv_folds(data: Dataset, k: int, seed: int) -> list[Dataset]:
    """K stratified folds (plain K-fold for multi-label data) of the pooled train+val split."""
    if k < 2:
        raise UsageError(f"--cv needs at least 2 folds, got {k}")
    x = torch.cat([data.train.x, data.val.x])
    y = torch.cat([data.train.y, data.val.y])
    labels = y.cpu().numpy()
    if data.task == MULTI_LABEL:
        splitter = KFold(n_splits=k, shuffle=True, random_state=seed).split(labels)
    else:
        smallest = int(np.bincount(labels).min()) if labels.size else 0
        if smallest < k:
            raise UsageError(
                f"--cv {k} needs at least {k} samples of every class; the smallest class of "
                f"{data.name} has {smallest}"
            )
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(
            labels, labels
        )
    folds = []
    for train_index, val_index in splitter:
        train_at = torch.as_tensor(train_index, device=x.device)
        val_at = torch.as_tensor(val_index, device=x.device)
        folds.append(
            replace(
                data,
                train=Split(x[train_at], y[train_at]),
                val=Split(x[val_at], y[val_at]),
            )
        )
    return folds


def cross_validate(
    evaluate: Callable[[Dataset, int], tuple[nn.Module, Scores]],
    folds: list[Dataset],
    seed: int,
) -> tuple[nn.Module, Scores, list[float]]:
    """Evaluate once per fold; val AUC/ACC become fold means, the rest (FLOPs, size,
    latency) are the first fold's. Returns its model, the scores and each fold's AUC."""
    results = [evaluate(fold, seed + index) for index, fold in enumerate(folds)]
    aucs = [scores.val_auc for _, scores in results]
    model, first = results[0]
    mean_acc = statistics.mean(scores.val_acc for _, scores in results)
    return model, replace(first, val_auc=statistics.mean(aucs), val_acc=mean_acc), aucs
