"""Scores within subgroups of the test split (`sex`, `age_band`, `site`: columns of a CSV
manifest), for the teacher and a member, with the paired difference.

A compressed model can hold its overall AUC while losing it for one site or one sex, so each
subgroup gets its own intervals: resampled within the subgroup (stratified by label,
seeded), the same resamples for both models. A subgroup with a single class has no AUC
and no sensitivity or specificity for the class it lacks; it is reported with its counts.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from medslim.kinds import BINARY, Task
from medslim.objectives.bootstrap import (
    Scored,
    batched_acc,
    batched_auc,
    interval,
    interval_fields,
    paired_interval,
    rate_metric,
    stratified_indices,
)
from medslim.objectives.thresholds import is_positive


def subgroup_scores(
    y_true: np.ndarray,
    groups: dict[str, np.ndarray],
    scores: tuple[np.ndarray, np.ndarray],
    task: Task,
    *,
    positive: int = 1,
    thresholds: tuple[float | None, float | None] = (None, None),
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> list[dict[str, Any]]:
    """One entry per (column, value): counts, the member's AUC (and for a binary task its
    sensitivity and specificity at `thresholds`, each model its own; ACC otherwise), the
    teacher's, and the paired differences. `scores` is (member's, teacher's) on test."""
    y_true = np.asarray(y_true)
    result = []
    for column, values in groups.items():
        values = np.asarray(values).astype(str)
        for value in sorted(set(values.tolist())):
            rows = np.flatnonzero(values == value)
            entry: dict[str, Any] = {"column": column, "value": value, "n": len(rows)}
            y = y_true[rows]
            if task == BINARY:
                entry["n_positive"] = int(is_positive(y, positive).sum())
            if len(np.unique(y.reshape(len(y), -1), axis=0)) < 2:
                entry["note"] = "one class only: no AUC"
                result.append(entry)
                continue
            indices = stratified_indices(
                y, resamples, zlib.crc32(f"{seed}:{column}={value}".encode())
            )
            mine, theirs = scores[0][rows], scores[1][rows]
            metrics: dict[str, tuple[Any, Any]] = {"auc": (batched_auc, batched_auc)}
            if task == BINARY and None not in thresholds:
                for rate in ("sensitivity", "specificity"):
                    metrics[rate] = (
                        rate_metric(rate, float(thresholds[0]), positive),  # type: ignore[arg-type]
                        rate_metric(rate, float(thresholds[1]), positive),  # type: ignore[arg-type]
                    )
            else:
                metrics["acc"] = (batched_acc, batched_acc)
            for name, (metric, reference) in metrics.items():
                own = interval(metric, y, mine, task, indices, level)
                teacher = interval(reference, y, theirs, task, indices, level)
                delta = paired_interval(
                    y, Scored(mine, metric), Scored(theirs, reference), task, indices, level
                )
                entry.update(interval_fields(name, own))
                entry.update(interval_fields(f"teacher_{name}", teacher))
                entry.update(interval_fields(f"delta_{name}", delta))
            result.append(entry)
    return result
