"""Calibration: does a model's predicted probability match how often it is right?

Pruning and distillation change calibration even when AUC holds, so the report shows it
for the teacher and every front member. What is calibrated depends on the task: for a
binary task the positive class's probability against its label; for multi-class and
ordinal tasks the top class's probability against being correct (confidence calibration);
for multi-label tasks every label's probability against that label, pooled.

The expected calibration error (ECE) is the gap between mean probability and observed
frequency in equal-width bins, weighted by each bin's share of the predictions.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from medslim.kinds import BINARY, MULTI_LABEL, Task
from medslim.objectives.bootstrap import CHUNK
from medslim.objectives.thresholds import is_positive, positive_scores

BINS = 10


class Calibrated(NamedTuple):
    """(n, k) probabilities and 0/1 outcomes; k is 1 except for multi-label tasks."""

    probability: np.ndarray
    outcome: np.ndarray


class Reliability(NamedTuple):
    """Per non-empty bin: mean predicted probability, observed frequency, predictions."""

    predicted: list[float]
    observed: list[float]
    counts: list[int]


def calibration_targets(
    y_true: np.ndarray, y_score: np.ndarray, task: Task, positive: int = 1
) -> Calibrated:
    """The probabilities a task's calibration is about, with what actually happened."""
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if task == BINARY:
        probability = positive_scores(y_score, positive)
        outcome = is_positive(y_true, positive)
    elif task == MULTI_LABEL:
        return Calibrated(y_score, (y_true == 1).astype(np.float64))
    else:
        probability = y_score.max(axis=1)
        outcome = np.argmax(y_score, axis=1) == y_true.reshape(-1)
    return Calibrated(probability[:, None], outcome.astype(np.float64)[:, None])


def bin_index(probability: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Equal-width bins over [0, 1]; a probability of exactly 1 falls in the last bin."""
    return np.minimum((np.asarray(probability) * bins).astype(np.int64), bins - 1)


def expected_calibration_error(
    probability: np.ndarray, outcome: np.ndarray, bins: int = BINS
) -> float:
    """Σ over bins of (share of predictions) × |observed frequency − mean probability|."""
    return float(batched_ece(probability.reshape(1, -1), outcome.reshape(1, -1), bins)[0])


def batched_ece(probability: np.ndarray, outcome: np.ndarray, bins: int = BINS) -> np.ndarray:
    """ECE of each row of (B, m) probabilities and outcomes (one bootstrap resample a row)."""
    which = bin_index(probability, bins)
    gap = outcome - probability
    total = np.zeros(len(probability))
    for b in range(bins):
        total += np.abs(np.where(which == b, gap, 0.0).sum(axis=1))
    return total / probability.shape[1]


def reliability_curve(
    probability: np.ndarray, outcome: np.ndarray, bins: int = BINS
) -> Reliability:
    """The points of a reliability diagram (empty bins left out)."""
    probability = np.asarray(probability).reshape(-1)
    outcome = np.asarray(outcome).reshape(-1)
    which = bin_index(probability, bins)
    counts = np.bincount(which, minlength=bins)
    filled = np.flatnonzero(counts)
    predicted = np.bincount(which, weights=probability, minlength=bins)[filled] / counts[filled]
    observed = np.bincount(which, weights=outcome, minlength=bins)[filled] / counts[filled]
    return Reliability(predicted.tolist(), observed.tolist(), counts[filled].tolist())


def ece_samples(targets: Calibrated, indices: np.ndarray, bins: int = BINS) -> np.ndarray:
    """ECE on every bootstrap resample (rows of sample `indices`), in chunks of resamples."""
    chunks = [
        batched_ece(
            targets.probability[rows].reshape(len(rows), -1),
            targets.outcome[rows].reshape(len(rows), -1),
            bins,
        )
        for rows in np.array_split(indices, max(1, len(indices) // CHUNK))
    ]
    return np.concatenate(chunks)
