"""Bootstrap confidence intervals for test scores, and the paired difference of two models.

Resamples are stratified by label (every resample keeps each class's count, so AUC is
always defined) and seeded; the same resample indices serve every model, which makes the
difference of two models' scores a paired comparison. AUC and ACC are computed for all
resamples at once with the MedMNIST definitions of `objectives.metrics` (rank-based AUC
equals scikit-learn's `roc_auc_score`, ties included).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import numpy as np
from scipy.stats import rankdata

from medslim.kinds import BINARY, MULTI_LABEL, Task
from medslim.objectives.thresholds import is_positive, positive_scores

CHUNK = 100
"""Resamples scored per vectorised batch, to bound memory on large test sets."""

BatchedMetric = Callable[[np.ndarray, np.ndarray, Task], np.ndarray]


class Interval(NamedTuple):
    estimate: float
    low: float
    high: float


def interval_fields(name: str, value: Interval) -> dict[str, Any]:
    """`{name: estimate, name_ci: [low, high]}`, as test scores store an interval."""
    return {name: value.estimate, f"{name}_ci": [value.low, value.high]}


def stratified_indices(y_true: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, n) row indices; each resample draws every label pattern's rows with
    replacement, as many as it has."""
    if n_resamples < 1:
        raise ValueError(f"`n_resamples` must be at least 1, got {n_resamples}")
    y = np.asarray(y_true).reshape(len(y_true), -1)
    _, strata = np.unique(y, axis=0, return_inverse=True)
    rng = np.random.default_rng(seed)
    parts = []
    for stratum in np.unique(strata):
        rows = np.flatnonzero(strata.reshape(-1) == stratum)
        parts.append(rows[rng.integers(0, len(rows), size=(n_resamples, len(rows)))])
    return np.concatenate(parts, axis=1)


def batched_auc(y_true: np.ndarray, y_score: np.ndarray, task: Task) -> np.ndarray:
    """AUC per resample: y_true (B, n[, L]), y_score (B, n, C) → (B,)."""
    if task == BINARY:
        return _binary_auc(y_true.reshape(len(y_true), -1) == 1, _positive(y_score))
    if task == MULTI_LABEL:
        columns = range(y_score.shape[-1])
        return np.mean([_binary_auc(y_true[..., i] == 1, y_score[..., i]) for i in columns], 0)
    labels = y_true.reshape(len(y_true), -1)
    classes = range(y_score.shape[-1])
    return np.mean([_binary_auc(labels == i, y_score[..., i]) for i in classes], axis=0)


def batched_acc(y_true: np.ndarray, y_score: np.ndarray, task: Task) -> np.ndarray:
    """ACC per resample, as `objectives.metrics.acc_score` defines it (threshold 0.5)."""
    if task == BINARY:
        labels = y_true.reshape(len(y_true), -1)
        return ((_positive(y_score) > 0.5) == (labels == 1)).mean(axis=1)
    if task == MULTI_LABEL:
        return ((y_score > 0.5) == (y_true == 1)).mean(axis=(1, 2))
    labels = y_true.reshape(len(y_true), -1)
    return (np.argmax(y_score, axis=-1) == labels).mean(axis=1)


def _positive(y_score: np.ndarray) -> np.ndarray:
    return y_score[..., -1] if y_score.ndim == 3 else y_score


def _binary_auc(positive: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC per row with average ranks for ties (NaN where a class is absent)."""
    ranks = rankdata(score, axis=1)
    n_pos = positive.sum(axis=1)
    n_neg = positive.shape[1] - n_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        return ((ranks * positive).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def metric_samples(
    metric: BatchedMetric,
    y_true: np.ndarray,
    y_score: np.ndarray,
    task: Task,
    indices: np.ndarray,
) -> np.ndarray:
    """The metric on every resample (rows of `indices`), computed in chunks."""
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    chunks = [
        metric(y_true[rows], y_score[rows], task)
        for rows in np.array_split(indices, max(1, len(indices) // CHUNK))
    ]
    return np.concatenate(chunks)


def point_estimate(
    metric: BatchedMetric, y_true: np.ndarray, y_score: np.ndarray, task: Task
) -> float:
    """The metric on the full sample."""
    return float(metric(np.asarray(y_true)[None], np.asarray(y_score, np.float64)[None], task)[0])


def percentile_interval(estimate: float, samples: np.ndarray, level: float = 0.95) -> Interval:
    """Percentile bootstrap interval around `estimate`."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"`level` must be within (0, 1), got {level}")
    tail = (1.0 - level) / 2 * 100
    low, high = np.nanpercentile(samples, [tail, 100 - tail])
    return Interval(float(estimate), float(low), float(high))


Rate = Literal["sensitivity", "specificity"]


def rate_metric(rate: Rate, threshold: float, positive: int = 1) -> BatchedMetric:
    """Sensitivity or specificity of the binary decision `score of class positive >=
    threshold`, per resample (the threshold is fixed, chosen once on the val split)."""

    def metric(y_true: np.ndarray, y_score: np.ndarray, task: Task) -> np.ndarray:
        actual = is_positive(y_true, positive)
        predicted = positive_scores(y_score, positive, batched=True) >= threshold
        if rate == "sensitivity":
            return (predicted & actual).sum(axis=1) / actual.sum(axis=1)
        return (~predicted & ~actual).sum(axis=1) / (~actual).sum(axis=1)

    return metric


class Scored(NamedTuple):
    """One model's side of a paired comparison: its scores and the metric that rates them
    (a threshold metric carries that model's own threshold)."""

    scores: np.ndarray
    metric: BatchedMetric


def paired_interval(
    y_true: np.ndarray,
    model: Scored,
    reference: Scored,
    task: Task,
    indices: np.ndarray,
    level: float = 0.95,
) -> Interval:
    """The metric of `model` minus that of `reference`, on the same resamples (paired)."""
    estimate = point_estimate(model.metric, y_true, model.scores, task) - point_estimate(
        reference.metric, y_true, reference.scores, task
    )
    samples = metric_samples(model.metric, y_true, model.scores, task, indices) - (
        metric_samples(reference.metric, y_true, reference.scores, task, indices)
    )
    return percentile_interval(estimate, samples, level)


def interval(
    metric: BatchedMetric,
    y_true: np.ndarray,
    y_score: np.ndarray,
    task: Task,
    indices: np.ndarray,
    level: float = 0.95,
) -> Interval:
    """The metric on the full sample, with its percentile interval over the resamples."""
    return percentile_interval(
        point_estimate(metric, y_true, y_score, task),
        metric_samples(metric, y_true, y_score, task, indices),
        level,
    )


def bias_corrected_interval(
    estimate: float, samples: np.ndarray, level: float = 0.95, *, floor: float | None = None
) -> Interval:
    """For a metric the bootstrap overestimates (ECE grows with resampling noise, so its
    percentile interval can lie wholly above the estimate): the debiased estimate
    `2·estimate − mean(samples)` inside the basic bootstrap interval
    `[2·estimate − q_high, 2·estimate − q_low]`, both clipped at `floor` (0 for an ECE). The
    interval holds the estimate it is printed with."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"`level` must be within (0, 1), got {level}")
    tail = (1.0 - level) / 2 * 100
    q_low, q_high = np.nanpercentile(samples, [tail, 100 - tail])
    debiased = 2 * estimate - float(np.nanmean(samples))
    low, high = 2 * estimate - q_high, 2 * estimate - q_low
    if floor is not None:
        debiased, low, high = (max(floor, v) for v in (debiased, low, high))
    # The mean lies between the percentiles unless the resamples are extremely skewed.
    return Interval(float(debiased), float(min(low, debiased)), float(max(high, debiased)))


def batched_kappa(y_true: np.ndarray, y_score: np.ndarray, task: Task) -> np.ndarray:
    """Quadratic-weighted Cohen's kappa of the arg-max class per resample (ordinal tasks):
    disagreements weighted by the squared distance between the classes, as scikit-learn's
    `cohen_kappa_score(weights="quadratic")`."""
    labels = np.asarray(y_true).reshape(len(y_true), -1).astype(np.int64)
    classes = y_score.shape[-1]
    predicted = np.argmax(y_score, axis=-1)
    rows, n = labels.shape
    codes = labels * classes + predicted + (np.arange(rows) * classes * classes)[:, None]
    observed = np.bincount(codes.reshape(-1), minlength=rows * classes * classes)
    observed = observed.reshape(rows, classes, classes).astype(np.float64)
    expected = observed.sum(axis=2)[:, :, None] * observed.sum(axis=1)[:, None, :] / n
    grid = np.arange(classes)
    weights = (grid[:, None] - grid[None, :]) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 - (weights * observed).sum(axis=(1, 2)) / (weights * expected).sum(axis=(1, 2))


def mean_samples(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The mean of per-sample `values` (a 0/1 flip, say) on every resample."""
    return np.asarray(values, dtype=np.float64)[indices].mean(axis=1)
