"""What a compressed model forgets: flip rates, ranked flips, per-class rates; and the
debiased ECE and quadratic-weighted kappa the verdict reads."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from medslim.objectives.bootstrap import (
    batched_kappa,
    bias_corrected_interval,
    metric_samples,
    point_estimate,
    stratified_indices,
)
from medslim.objectives.calibration import (
    calibration_targets,
    ece_samples,
    expected_calibration_error,
)
from medslim.objectives.forgetting import flip_rate, per_class_rates, ranked_flips
from medslim.objectives.thresholds import decisions, predicts_one_class


def _binary(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(np.int64)
    p = 1 / (1 + np.exp(-(1.2 * (2 * y - 1) + rng.normal(0, 1.2, n))))
    return y, np.stack([1 - p, p], axis=1)


def test_flip_rate_against_itself_is_zero_and_against_its_negation_is_one() -> None:
    y, scores = _binary(200)
    indices = stratified_indices(y, 300, seed=0)
    mine = decisions(scores, "binary-class", 0.5)
    same = flip_rate(mine, mine, indices)
    assert tuple(same) == (0.0, 0.0, 0.0)
    negated = decisions(scores[:, ::-1], "binary-class", 0.5 + 1e-9)  # the other class wins
    assert (negated == 1 - mine).all()
    assert tuple(flip_rate(mine, negated, indices)) == (1.0, 1.0, 1.0)
    halfway = mine.copy()
    halfway[::4] = 1 - halfway[::4]
    rate = flip_rate(mine, halfway, indices)
    assert rate.estimate == pytest.approx(0.25) and rate.low < 0.25 < rate.high


def test_flips_are_ranked_by_the_members_confidence_and_say_what_was_lost() -> None:
    y = np.array([1, 0, 1, 0, 1])
    teacher = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.2, 0.8]])
    member = np.array([[0.95, 0.05], [0.8, 0.2], [0.6, 0.4], [0.2, 0.8], [0.2, 0.8]])
    theirs, mine = (decisions(s, "binary-class", 0.5) for s in (teacher, member))
    flips = ranked_flips(y, (member, mine), (teacher, theirs), "binary-class")
    assert [f.index for f in flips] == [0, 3, 2]  # confidence 0.95, 0.8, 0.6
    assert [f.outcome for f in flips] == ["lost", "lost", "lost"]
    assert flips[0].teacher_score == pytest.approx(0.9)
    assert flips[0].member_score == pytest.approx(0.05)
    gained = ranked_flips(y, (teacher, theirs), (member, mine), "binary-class")
    assert {f.outcome for f in gained} == {"gained"}


def test_per_class_rates_are_one_vs_rest_with_paired_differences() -> None:
    y = np.array([0, 0, 1, 1, 2, 2, 2, 1])
    mine = np.array([0, 1, 1, 1, 2, 0, 2, 1])
    indices = stratified_indices(y, 200, seed=0)
    rates = per_class_rates(y, mine, "multi-class", indices, reference=y)
    assert [r["n"] for r in rates] == [2, 3, 3]
    assert rates[0]["sensitivity"] == pytest.approx(0.5)
    assert rates[2]["sensitivity"] == pytest.approx(2 / 3)
    assert rates[1]["specificity"] == pytest.approx(4 / 5)  # one class-0 image called 1
    assert rates[0]["delta_sensitivity"] == pytest.approx(-0.5)  # the reference is perfect
    for r in rates:
        low, high = r["sensitivity_ci"]
        assert low <= r["sensitivity"] <= high


def test_one_class_flag_is_judged_where_sensitivity_and_specificity_are() -> None:
    scores = np.stack([np.full(10, 0.7), np.linspace(0.1, 0.3, 10)], axis=1)
    assert predicts_one_class(scores, "binary-class")  # every score below 0.5
    assert not predicts_one_class(scores, "binary-class", threshold=0.2)  # split at 0.2


def test_ece_interval_holds_its_debiased_estimate_even_at_small_n() -> None:
    for seed in range(8):
        y, scores = _binary(60, seed)
        targets = calibration_targets(y, scores, "binary-class")
        plain = expected_calibration_error(targets.probability, targets.outcome)
        samples = ece_samples(targets, stratified_indices(y, 500, seed=seed))
        # The plain ECE's percentile interval can miss it: resampling inflates ECE.
        ece = bias_corrected_interval(plain, samples, floor=0.0)
        assert ece.low <= ece.estimate <= ece.high
        assert ece.estimate <= plain + 1e-12 and ece.low >= 0.0


def test_batched_kappa_is_scikit_learns_quadratic_weighted_kappa() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 300)
    logits = (
        rng.normal(size=(300, 5)) + 2.0 * np.eye(5)[np.clip(y + rng.integers(-1, 2, 300), 0, 4)]
    )
    scores = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = cohen_kappa_score(y, scores.argmax(1), weights="quadratic")
    assert point_estimate(batched_kappa, y[:, None], scores, "ordinal-regression") == (
        pytest.approx(expected)
    )
    indices = stratified_indices(y[:, None], 5, seed=1)
    for row, value in zip(
        indices,
        metric_samples(batched_kappa, y[:, None], scores, "ordinal-regression", indices),
        strict=True,
    ):
        assert value == pytest.approx(
            cohen_kappa_score(y[row], scores[row].argmax(1), weights="quadratic")
        )
