from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from medslim.objectives.metrics import (
    acc_score,
    auc_score,
    count_flops,
    count_params,
    flops_by_module,
    measure_latency_ms,
    sparse_flops,
)


def test_binary_auc_and_acc_match_a_hand_computation() -> None:
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.6, 0.4, 0.8])
    scores = np.stack([1 - p1, p1], axis=1)
    # Positive/negative pairs ranked right: (0.4>0.1), (0.8>0.1), (0.8>0.6); wrong: 0.4<0.6.
    assert auc_score(y, scores, "binary-class") == pytest.approx(3 / 4)
    # Thresholded at 0.5: predictions 0,1,0,1 → 2 of 4 right.
    assert acc_score(y.reshape(-1, 1), scores, "binary-class") == pytest.approx(0.5)


def test_multiclass_auc_is_the_mean_one_vs_rest_auc() -> None:
    y = np.array([0, 1, 2, 2])
    scores = np.array([[0.8, 0.1, 0.1], [0.2, 0.5, 0.3], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]])
    # class 0: perfect (1.0); class 1: positive 0.5 vs negatives 0.1,0.6,0.2 → 2/3;
    # class 2: positives 0.3,0.6 vs negatives 0.1,0.3 → (1+0.5)+(1+1) over 4 = 0.875.
    assert auc_score(y, scores, "multi-class") == pytest.approx((1 + 2 / 3 + 0.875) / 3)
    assert acc_score(y, scores, "ordinal-regression") == pytest.approx(3 / 4)


def test_multilabel_scores_average_over_labels() -> None:
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    scores = np.array([[0.9, 0.2], [0.3, 0.4], [0.7, 0.6], [0.1, 0.7]])
    # label 0 AUC 1.0; label 1: positives 0.4,0.6 vs negatives 0.2,0.7 → 2/4.
    assert auc_score(y, scores, "multi-label, binary-class") == pytest.approx(0.75)
    # label 0 accuracy 1.0; label 1 predictions 0,0,1,1 vs 0,1,1,0 → 0.5.
    assert acc_score(y, scores, "multi-label, binary-class") == pytest.approx(0.75)


def test_flops_equal_two_per_multiply_accumulate() -> None:
    conv = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False))
    assert count_flops(conv, (2, 5, 5)) == 2 * (4 * 2 * 9) * 25
    linear = nn.Sequential(nn.Linear(6, 3))
    assert count_flops(linear, (6,)) == 2 * 6 * 3


def test_sparse_flops_and_nonzero_params_follow_zeroed_weights() -> None:
    model = nn.Sequential(nn.Linear(10, 10, bias=False))
    with torch.no_grad():
        model[0].weight[:, :7] = 0.0
    per_module = flops_by_module(model, (10,))
    assert sparse_flops(model, per_module) == pytest.approx(0.3 * count_flops(model, (10,)))
    assert count_params(model) == (100, 30)


def test_latency_is_a_positive_median() -> None:
    model = nn.Sequential(nn.Linear(8, 8))
    assert 0 < measure_latency_ms(model, (8,), repeats=5, warmup=1) < 1000
