"""What a compressed model forgets: the test images whose decision changes against the
teacher's, and the sensitivity and specificity of every class.

Compression tends to hurt atypical cases first while headline accuracy holds (Hooker et al.,
"What do compressed deep neural networks forget?"), so an unchanged AUC can hide a model
that now decides differently on a tenth of the images. Each model decides at its own
operating point (`thresholds.decisions`): a binary model at its val-chosen threshold, a
multi-class one by arg-max, a multi-label one at 0.5 per label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from medslim.kinds import BINARY, MULTI_LABEL, Task
from medslim.objectives.bootstrap import Interval, mean_samples, percentile_interval
from medslim.objectives.thresholds import positive_scores

FLIPS_KEPT = 48
"""Flipped test images a member's scores keep (the most confident first)."""


def flipped(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """Per test image: does any of its decisions differ between the two models?"""
    a = np.asarray(mine).reshape(len(mine), -1)
    b = np.asarray(theirs).reshape(len(theirs), -1)
    return (a != b).any(axis=1)


def flip_rate(
    mine: np.ndarray, theirs: np.ndarray, indices: np.ndarray, level: float = 0.95
) -> Interval:
    """The share of test images decided differently, with its bootstrap interval over the
    resamples `indices` (0 for a model against itself, 1 against its negation)."""
    changed = flipped(mine, theirs).astype(np.float64)
    return percentile_interval(float(changed.mean()), mean_samples(changed, indices), level)


@dataclass(frozen=True)
class Flip:
    """One test image decided differently: both models' scores and decisions."""

    index: int
    """Its row in the test split."""
    label: Any
    teacher_decision: Any
    member_decision: Any
    teacher_score: float
    member_score: float
    """Binary: the positive class's probability; otherwise the probability of the class the
    model decided (the most confident label for multi-label)."""
    confidence: float
    """How sure the member is of its new decision (the flips are ranked by it)."""
    outcome: str
    """`lost` (the teacher was right, the member is wrong), `gained`, or `changed`."""


def ranked_flips(
    y_true: np.ndarray,
    member: tuple[np.ndarray, np.ndarray],
    teacher: tuple[np.ndarray, np.ndarray],
    task: Task,
    positive: int = 1,
    limit: int = FLIPS_KEPT,
) -> list[Flip]:
    """The flipped images, most confident member decision first. `member` and `teacher`
    are each (scores, decisions) on the test split."""
    (m_scores, m_decided), (t_scores, t_decided) = member, teacher
    rows = np.flatnonzero(flipped(m_decided, t_decided))
    labels = np.asarray(y_true).reshape(len(y_true), -1)
    m_shown, m_sure = _shown(m_scores, m_decided, task, positive)
    t_shown, _ = _shown(t_scores, t_decided, task, positive)
    order = rows[np.argsort(-m_sure[rows], kind="stable")][:limit]
    flips = []
    for row in order:
        truth = labels[row] if task == MULTI_LABEL else labels[row, 0]
        teacher_right = _same(t_decided[row], truth)
        member_right = _same(m_decided[row], truth)
        outcome = "lost" if teacher_right else "gained" if member_right else "changed"
        flips.append(
            Flip(
                index=int(row),
                label=_plain(truth),
                teacher_decision=_plain(t_decided[row]),
                member_decision=_plain(m_decided[row]),
                teacher_score=float(t_shown[row]),
                member_score=float(m_shown[row]),
                confidence=float(m_sure[row]),
                outcome=outcome,
            )
        )
    return flips


def _shown(
    scores: np.ndarray, decided: np.ndarray, task: Task, positive: int
) -> tuple[np.ndarray, np.ndarray]:
    """(the score shown beside an image, the confidence in the decision)."""
    scores = np.asarray(scores, dtype=np.float64)
    if task == BINARY:
        p = positive_scores(scores, positive)
        return p, np.where(np.asarray(decided) == positive, p, 1.0 - p)
    if task == MULTI_LABEL:
        sure = np.abs(scores - 0.5).max(axis=1) * 2
        return scores.max(axis=1), sure
    chosen = np.take_along_axis(scores, np.asarray(decided).reshape(-1, 1), axis=1)[:, 0]
    return chosen, chosen


def _same(decided: np.ndarray, truth: np.ndarray) -> bool:
    return bool(np.array_equal(np.asarray(decided).reshape(-1), np.asarray(truth).reshape(-1)))


def _plain(value: Any) -> Any:
    array = np.asarray(value)
    return array.tolist() if array.ndim else int(array)


def per_class_rates(
    y_true: np.ndarray,
    mine: np.ndarray,
    task: Task,
    indices: np.ndarray,
    level: float = 0.95,
    reference: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Sensitivity and specificity of every class one-vs-rest (every label of a multi-label
    task) at the model's decisions `mine`, with intervals; with the teacher's decisions as
    `reference`, the paired differences too."""
    labels = np.asarray(y_true).reshape(len(y_true), -1)
    decided = np.asarray(mine).reshape(len(mine), -1)
    count = labels.shape[1] if task == MULTI_LABEL else int(max(labels.max(), decided.max())) + 1
    result = []
    for k in range(count):
        actual = _is_class(labels, k, task)
        entry: dict[str, Any] = {"class": k, "n": int(actual.sum())}
        for rate, hit in (("sensitivity", actual), ("specificity", ~actual)):
            value = _rate_interval(hit, _is_class(decided, k, task) == actual, indices, level)
            entry[rate] = value.estimate
            entry[f"{rate}_ci"] = [value.low, value.high]
            if reference is not None:
                theirs = _is_class(np.asarray(reference).reshape(len(labels), -1), k, task)
                delta = _rate_interval(
                    hit, _is_class(decided, k, task) == actual, indices, level, theirs == actual
                )
                entry[f"delta_{rate}"] = delta.estimate
                entry[f"delta_{rate}_ci"] = [delta.low, delta.high]
        result.append(entry)
    return result


def _is_class(values: np.ndarray, k: int, task: Task) -> np.ndarray:
    return values[:, k] == 1 if task == MULTI_LABEL else values[:, 0] == k


def _rate_interval(
    among: np.ndarray,
    right: np.ndarray,
    indices: np.ndarray,
    level: float,
    reference: np.ndarray | None = None,
) -> Interval:
    """The share of `among` images decided right (minus the reference's share, paired)."""
    if not among.any():
        return Interval(float("nan"), float("nan"), float("nan"))

    def share(correct: np.ndarray) -> tuple[float, np.ndarray]:
        hits = (correct & among).astype(np.float64)
        sizes = among[indices].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return float(hits.sum() / among.sum()), hits[indices].sum(axis=1) / sizes

    estimate, samples = share(right)
    if reference is not None:
        theirs, their_samples = share(reference)
        estimate, samples = estimate - theirs, samples - their_samples
    return percentile_interval(estimate, samples, level)
