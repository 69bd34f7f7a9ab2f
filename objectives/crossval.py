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
    pooled = pool(data.train, data.val)
    labels = pooled.y.cpu().numpy()
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
        train_rows, val_rows = torch.as_tensor(train_index), torch.as_tensor(val_index)
        folds.append(replace(data, train=pooled.take(train_rows), val=pooled.take(val_rows)))
    return folds


def pool(first: Split, second: Split) -> Split:
    """Both splits' samples in one (the first's pixel scale: the train statistics)."""
    x = torch.cat([first.x, second.x])
    return Split(x, torch.cat([first.y, second.y]).cpu(), first.scale).to(first.device)


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
