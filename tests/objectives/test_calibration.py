"""Calibration: ECE against a hand computation, the reliability curve, resampled ECE."""

from __future__ import annotations

import numpy as np
import pytest

from medslim.objectives.bootstrap import stratified_indices
from medslim.objectives.calibration import (
    batched_ece,
    calibration_targets,
    ece_samples,
    expected_calibration_error,
    reliability_curve,
)


def test_ece_matches_a_hand_computation() -> None:
    # One prediction per bin: ECE is the mean |outcome - probability|.
    probability = np.array([0.10, 0.20, 0.70, 0.80, 0.95])
    outcome = np.array([0.0, 1.0, 1.0, 1.0, 0.0])
    expected = (0.10 + 0.80 + 0.30 + 0.20 + 0.95) / 5
    assert expected_calibration_error(probability, outcome) == pytest.approx(expected)
    # Two bins of three: [0.6, 0.65, 0.68] with 2 of 3 true, [0.91, 0.93, 0.99] with 3 of 3.
    probability = np.array([0.60, 0.65, 0.68, 0.91, 0.93, 0.99])
    outcome = np.array([1.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    low = abs(2 / 3 - (0.60 + 0.65 + 0.68) / 3)
    high = abs(1.0 - (0.91 + 0.93 + 0.99) / 3)
    assert expected_calibration_error(probability, outcome) == pytest.approx((low + high) / 2)
    curve = reliability_curve(probability, outcome)
    assert curve.counts == [3, 3]
    assert curve.predicted == pytest.approx([(0.60 + 0.65 + 0.68) / 3, (0.91 + 0.93 + 0.99) / 3])
    assert curve.observed == pytest.approx([2 / 3, 1.0])


def test_a_probability_of_one_falls_in_the_last_bin_and_perfect_calibration_scores_zero() -> None:
    probability = np.array([1.0, 1.0, 0.0, 0.0])
    outcome = np.array([1.0, 1.0, 0.0, 0.0])
    assert expected_calibration_error(probability, outcome) == 0.0
    assert reliability_curve(probability, outcome).counts == [2, 2]


def test_targets_per_task() -> None:
    binary = calibration_targets(
        np.array([0, 1, 1]),
        np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]),
        "binary-class",
        positive=0,
    )
    assert binary.probability[:, 0] == pytest.approx([0.8, 0.3, 0.6])
    assert binary.outcome[:, 0].tolist() == [1.0, 0.0, 0.0]
    multi = calibration_targets(
        np.array([[2], [0]]), np.array([[0.1, 0.2, 0.7], [0.3, 0.6, 0.1]]), "multi-class"
    )
    assert multi.probability[:, 0] == pytest.approx([0.7, 0.6])  # top-class confidence
    assert multi.outcome[:, 0].tolist() == [1.0, 0.0]  # right, wrong


def test_resampled_ece_equals_the_ece_of_each_resample() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    scores = np.clip(0.3 * y + rng.random(200) * 0.7, 0, 1)
    pairs = np.stack([1 - scores, scores], axis=1)
    targets = calibration_targets(y, pairs, "binary-class")
    indices = stratified_indices(y, 30, seed=1)
    samples = ece_samples(targets, indices)
    for row, value in zip(indices, samples, strict=True):
        assert value == pytest.approx(
            expected_calibration_error(targets.probability[row], targets.outcome[row])
        )
    assert batched_ece(targets.probability.T, targets.outcome.T)[0] == pytest.approx(
        expected_calibration_error(targets.probability, targets.outcome)
    )
