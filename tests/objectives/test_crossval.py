from __future__ import annotations

import pytest
import torch

from medslim.errors import UsageError
from medslim.objectives.crossval import cv_folds
from medslim.objectives.data import load_dataset


def test_folds_partition_train_plus_val_and_keep_test() -> None:
    data = load_dataset("breast-cancer", seed=0)
    folds = cv_folds(data, 4, seed=0)
    pooled = len(data.train) + len(data.val)
    assert len(folds) == 4
    assert sum(len(f.val) for f in folds) == pooled
    assert all(len(f.train) + len(f.val) == pooled for f in folds)
    rows = torch.cat([f.val.x for f in folds])
    assert torch.unique(rows, dim=0).shape[0] == pooled, "a sample is in two validation folds"
    share = torch.cat([data.train.y, data.val.y]).float().mean()
    assert all(abs(f.val.y.float().mean() - share) < 0.05 for f in folds), "not stratified"
    assert all(f.test is data.test for f in folds)


def test_too_few_folds_or_samples_is_a_usage_error() -> None:
    data = load_dataset("breast-cancer", seed=0)
    with pytest.raises(UsageError, match="at least 2"):
        cv_folds(data, 1, seed=0)
    with pytest.raises(UsageError, match="smallest class"):
        cv_folds(data, 1000, seed=0)
