"""What a classifier decides from its scores: the positive class's score, thresholds chosen
on the validation split (Youden's J, a fixed specificity), the sensitivity and specificity
they give, and whether a model predicts a single class at all (a degenerate model).

Binary scores are softmax pairs `(n, 2)` (or one sigmoid column `(n,)` for class 1); the
positive class is a label index, 1 unless the user names another one.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_curve

from medslim.kinds import BINARY, MULTI_LABEL, Task

_EPS = 1e-12


def positive_scores(
    y_score: np.ndarray, positive: int = 1, *, batched: bool = False
) -> np.ndarray:
    """The score of class `positive`: a column of `(n, 2)` softmax scores (`(B, n, 2)` when
    `batched`); a single sigmoid column `(n,)` is class 1's probability, so class 0 gets its
    complement."""
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_score.ndim == (2 if batched else 1):
        return y_score if positive == 1 else 1.0 - y_score
    return y_score[..., positive]


def is_positive(y_true: np.ndarray, positive: int = 1) -> np.ndarray:
    """Boolean labels of the positive class; `(n,)` or `(n, 1)` labels, or `(B, n[, 1])`."""
    y = np.asarray(y_true)
    if y.ndim >= 2 and y.shape[-1] == 1:
        y = y[..., 0]
    return y == positive


def youden_threshold(positive: np.ndarray, score: np.ndarray) -> float:
    """The score threshold that maximises sensitivity + specificity − 1 (Youden's J);
    `score >= threshold` predicts positive."""
    fpr, tpr, thresholds = roc_curve(np.asarray(positive).reshape(-1), score)
    best = int(np.argmax(tpr - fpr))
    return float(min(thresholds[best], 1.0))  # roc_curve's first threshold is +inf


def threshold_at_specificity(positive: np.ndarray, score: np.ndarray, specificity: float) -> float:
    """The threshold with the highest sensitivity among those whose specificity is at least
    `specificity` (on the split given, normally val); `score >= threshold` predicts positive."""
    fpr, tpr, thresholds = _full_curve(positive, score, specificity, "specificity")
    feasible = np.flatnonzero(fpr <= 1.0 - specificity + _EPS)
    best = feasible[np.argmax(tpr[feasible])]  # tpr grows along the curve: the last feasible
    threshold = float(thresholds[best])
    if not np.isfinite(threshold):  # nothing but "predict no positive" reaches it
        return float(np.nextafter(np.max(score), np.inf))
    return threshold


def threshold_at_sensitivity(positive: np.ndarray, score: np.ndarray, sensitivity: float) -> float:
    """The threshold with the highest specificity among those whose sensitivity is at least
    `sensitivity` (on the split given, normally val); `score >= threshold` predicts positive."""
    fpr, tpr, thresholds = _full_curve(positive, score, sensitivity, "sensitivity")
    feasible = np.flatnonzero(tpr >= sensitivity - _EPS)
    best = feasible[np.argmin(fpr[feasible])]  # the first point reaching the sensitivity
    return float(min(thresholds[best], 1.0))


def _full_curve(
    positive: np.ndarray, score: np.ndarray, target: float, name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The whole ROC curve (every threshold), for a target rate checked to be in (0, 1]."""
    if not 0.0 < target <= 1.0:
        raise ValueError(f"`{name}` must be within (0, 1], got {target}")
    fpr, tpr, thresholds = roc_curve(
        np.asarray(positive).reshape(-1), score, drop_intermediate=False
    )
    return fpr, tpr, thresholds


def rates(positive: np.ndarray, score: np.ndarray, threshold: float) -> tuple[float, float]:
    """(sensitivity, specificity): true-positive and true-negative rates of
    `score >= threshold` against the boolean labels `positive`."""
    positive = np.asarray(positive).reshape(-1)
    predicted = np.asarray(score).reshape(-1) >= threshold
    return float(predicted[positive].mean()), float((~predicted[~positive]).mean())


def predicted_labels(y_score: np.ndarray, task: Task) -> np.ndarray:
    """The labels behind MedMNIST's ACC: class 1 above 0.5 (binary), each label above 0.5
    (multi-label), the arg-max class otherwise."""
    y_score = np.asarray(y_score)
    if task == MULTI_LABEL:
        return y_score > 0.5
    if task == BINARY:
        return (positive_scores(y_score, 1) > 0.5).astype(np.int64)
    return np.argmax(y_score, axis=-1)


def decisions(
    y_score: np.ndarray, task: Task, threshold: float | None = None, positive: int = 1
) -> np.ndarray:
    """What a model decides at its operating point: for a binary task the positive class
    where its score reaches `threshold` (chosen on val), else the other class; without a
    threshold, the labels behind ACC (`predicted_labels`)."""
    if task != BINARY or threshold is None:
        return predicted_labels(y_score, task)
    hit = positive_scores(y_score, positive) >= threshold
    return np.where(hit, positive, 1 - positive).astype(np.int64)


def predicts_one_class(
    y_score: np.ndarray, task: Task, threshold: float | None = None, positive: int = 1
) -> bool:
    """True when every sample gets the same decision (at `threshold` for a binary task, else
    at 0.5 / the arg-max): its ACC is then the majority rate (with a zero-width interval),
    or its sensitivity and specificity are 1 and 0."""
    labels = decisions(y_score, task, threshold, positive)
    return len(np.unique(labels.reshape(len(labels), -1), axis=0)) <= 1
