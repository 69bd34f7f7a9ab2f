"""Decisions from scores: operating points against a hand computation, Youden's J, the
positive class, and the one-class (degenerate) flag."""

from __future__ import annotations

import numpy as np
import pytest

from medslim.objectives.bootstrap import interval, rate_metric, stratified_indices
from medslim.objectives.thresholds import (
    is_positive,
    positive_scores,
    predicts_one_class,
    rates,
    threshold_at_specificity,
    youden_threshold,
)

# 10 negatives and 6 positives, scores chosen so every count can be checked by hand.
NEGATIVES = [0.05, 0.10, 0.15, 0.20, 0.30, 0.35, 0.40, 0.55, 0.60, 0.90]
POSITIVES = [0.25, 0.50, 0.58, 0.70, 0.80, 0.95]
SCORES = np.array(NEGATIVES + POSITIVES)
LABELS = np.array([0] * 10 + [1] * 6)


def test_sensitivity_at_fixed_specificity_matches_a_hand_computation() -> None:
    positive = LABELS == 1
    # Specificity ≥ 0.90 allows one false positive of ten: predict positive from 0.70 up
    # (0.90 is the one negative above); that catches 0.70, 0.80, 0.95: sensitivity 3/6.
    cut = threshold_at_specificity(positive, SCORES, 0.90)
    assert cut == pytest.approx(0.70)
    assert rates(positive, SCORES, cut) == pytest.approx((3 / 6, 9 / 10))
    # Specificity ≥ 0.80 allows two (0.60 and 0.90): from 0.60, catching 0.70, 0.80, 0.95;
    # lowering further to 0.58 adds a positive and no negative: sensitivity 4/6.
    cut = threshold_at_specificity(positive, SCORES, 0.80)
    assert cut == pytest.approx(0.58)
    assert rates(positive, SCORES, cut) == pytest.approx((4 / 6, 8 / 10))
    # Specificity 1.0: only above every negative (0.90): 0.95 alone.
    cut = threshold_at_specificity(positive, SCORES, 1.0)
    assert rates(positive, SCORES, cut) == pytest.approx((1 / 6, 1.0))


def test_a_threshold_above_every_score_predicts_no_positive() -> None:
    positive = np.array([False, True, False])
    scores = np.array([0.9, 0.2, 0.8])  # the positive scores lowest: spec 1 only by saying no
    cut = threshold_at_specificity(positive, scores, 1.0)
    assert cut > 0.9 and rates(positive, scores, cut) == (0.0, 1.0)


def test_youden_threshold_maximises_sensitivity_plus_specificity() -> None:
    positive = LABELS == 1
    best = max(sum(rates(positive, SCORES, t)) for t in np.unique(np.concatenate([SCORES, [1.0]])))
    assert sum(rates(positive, SCORES, youden_threshold(positive, SCORES))) == pytest.approx(best)


def test_the_positive_class_picks_the_column_and_the_labels() -> None:
    pairs = np.stack([1 - SCORES, SCORES], axis=1)
    assert positive_scores(pairs, 1) == pytest.approx(SCORES)
    assert positive_scores(pairs, 0) == pytest.approx(1 - SCORES)
    assert positive_scores(SCORES, 0) == pytest.approx(1 - SCORES)  # one sigmoid column
    assert (is_positive(LABELS[:, None], 0) == (LABELS == 0)).all()
    # Sensitivity for class 0 at a threshold on its own score is specificity for class 1.
    sens0, spec0 = rates(LABELS == 0, 1 - SCORES, 1 - 0.6 + 1e-9)
    sens1, spec1 = rates(LABELS == 1, SCORES, 0.6)
    assert (sens0, spec0) == pytest.approx((spec1, sens1))


def test_batched_rates_equal_the_rates_on_every_resample() -> None:
    pairs = np.stack([1 - SCORES, SCORES], axis=1)
    indices = stratified_indices(LABELS, 50, seed=0)
    for rate, position in (("sensitivity", 0), ("specificity", 1)):
        metric = rate_metric(rate, 0.58, positive=1)  # type: ignore[arg-type]
        samples = metric(LABELS[indices], pairs[indices], "binary-class")
        for row, value in zip(indices, samples, strict=True):
            assert value == pytest.approx(rates(LABELS[row] == 1, SCORES[row], 0.58)[position])
        whole = interval(metric, LABELS, pairs, "binary-class", indices)
        assert whole.estimate == pytest.approx(rates(LABELS == 1, SCORES, 0.58)[position])


@pytest.mark.parametrize(
    "task, scores, one_class",
    [
        ("binary-class", [[0.4, 0.6], [0.3, 0.7], [0.45, 0.55]], True),  # all above 0.5
        ("binary-class", [[0.4, 0.6], [0.7, 0.3]], False),
        ("multi-class", [[0.1, 0.8, 0.1], [0.2, 0.5, 0.3]], True),  # arg-max 1 twice
        ("multi-class", [[0.1, 0.8, 0.1], [0.6, 0.3, 0.1]], False),
        ("multi-label, binary-class", [[0.9, 0.1], [0.8, 0.2]], True),  # same label set
        ("multi-label, binary-class", [[0.9, 0.1], [0.8, 0.7]], False),
    ],
)
def test_one_class_flag(task: str, scores: list[list[float]], one_class: bool) -> None:
    assert predicts_one_class(np.array(scores), task) is one_class  # type: ignore[arg-type]


def test_a_one_class_model_has_a_zero_width_acc_interval_under_stratified_resampling() -> None:
    """Why a degenerate model is flagged instead of shown as a precise estimate."""
    from medslim.objectives.bootstrap import batched_acc

    always_positive = np.tile([0.2, 0.8], (len(LABELS), 1))
    assert predicts_one_class(always_positive, "binary-class")
    acc = interval(
        batched_acc, LABELS, always_positive, "binary-class", stratified_indices(LABELS, 200, 0)
    )
    assert acc.low == acc.high == acc.estimate == pytest.approx(6 / 16)
