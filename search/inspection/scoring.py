"""One model's test scores against the teacher's, as plain data: bootstrap intervals, paired
differences, operating points, calibration, agreement (flips, per-class rates), subgroups
and degenerate-model flags. `rescore` caches them in the study; this module only computes.

Every interval of one model is drawn on the same stratified resamples as the teacher's, so
each `delta_*` is a paired difference (member − teacher).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, NamedTuple

import numpy as np
from torch import nn

from medslim.errors import UsageError
from medslim.kinds import BINARY, ORDINAL, Task
from medslim.objectives.bootstrap import (
    Interval,
    Scored,
    batched_acc,
    batched_auc,
    batched_kappa,
    bias_corrected_interval,
    interval,
    interval_fields,
    paired_interval,
    rate_metric,
)
from medslim.objectives.calibration import (
    Calibrated,
    calibration_targets,
    ece_samples,
    expected_calibration_error,
    reliability_curve,
)
from medslim.objectives.data import Dataset
from medslim.objectives.forgetting import flip_rate, per_class_rates, ranked_flips
from medslim.objectives.subgroups import subgroup_scores
from medslim.objectives.thresholds import (
    decisions,
    is_positive,
    positive_scores,
    predicts_one_class,
    threshold_at_sensitivity,
    threshold_at_specificity,
    youden_threshold,
)
from medslim.objectives.training import predict_scores
from medslim.search.inspection.classes import DEFAULT_POSITIVE
from medslim.search.inspection.latency import Latency

LEVEL = 0.95
SCHEMA = 3
"""Version of what a cached entry holds; entries of an older version are re-scored."""
SPECIFICITY_TARGETS = (0.90, 0.95)
"""Operating points always scored: the highest sensitivity at these specificities (val)."""


@dataclass(frozen=True)
class Bootstrap:
    """How intervals are drawn; part of the cache key."""

    resamples: int = 1000
    seed: int = 0
    level: float = LEVEL

    def __post_init__(self) -> None:
        if self.resamples < 1:
            raise UsageError(f"--resamples must be at least 1, got {self.resamples}")


@dataclass(frozen=True)
class RescoreSettings:
    """Everything a cached test score depends on."""

    bootstrap: Bootstrap = Bootstrap()
    positive: int = DEFAULT_POSITIVE
    """The positive class of a binary task (ignored for other tasks)."""
    specificity_targets: tuple[float, ...] = SPECIFICITY_TARGETS
    sensitivity_targets: tuple[float, ...] = ()

    def key(self, task: str | None) -> dict[str, Any]:
        binary = task == BINARY
        return {
            "bootstrap": asdict(self.bootstrap),
            "positive": self.positive if binary else None,
            "schema": SCHEMA,
            "targets": self.targets(task),
        }

    def targets(self, task: str | None) -> dict[str, list[float]]:
        if task != BINARY:
            return {}
        return {
            "spec": sorted(set(self.specificity_targets)),
            "sens": sorted(set(self.sensitivity_targets)),
        }


@dataclass(frozen=True)
class OperatingPoint:
    """A threshold chosen on val for a target rate (`spec0.90`: the highest sensitivity with
    specificity ≥ 0.90 on val); the rates, their intervals and the paired differences to the
    teacher at its own such threshold are the test split's."""

    point: str
    threshold: float
    sensitivity: float
    sensitivity_ci: list[float]
    specificity: float
    specificity_ci: list[float]
    delta_sensitivity: float
    delta_sensitivity_ci: list[float]
    delta_specificity: float
    delta_specificity_ci: list[float]
    specificity_target: float | None = None
    sensitivity_target: float | None = None


@dataclass(frozen=True)
class TestScores:
    """One model's test scores; each `delta_*` is its metric minus the teacher's, paired
    (same resamples). Fields after `bootstrap` are None in entries cached by medslim
    versions before they existed."""

    test_auc: float
    test_auc_ci: list[float]
    test_acc: float
    test_acc_ci: list[float]
    delta_auc: float
    delta_auc_ci: list[float]
    sensitivity: float | None
    specificity: float | None
    threshold: float | None
    bootstrap: dict[str, Any]
    positive: int | None = None
    schema: int = 1
    sensitivity_ci: list[float] | None = None
    specificity_ci: list[float] | None = None
    delta_acc: float | None = None
    delta_acc_ci: list[float] | None = None
    delta_sensitivity: float | None = None
    delta_sensitivity_ci: list[float] | None = None
    delta_specificity: float | None = None
    delta_specificity_ci: list[float] | None = None
    operating_points: list[dict[str, Any]] = field(default_factory=list)
    ece: float | None = None
    """Debiased (see `bootstrap.bias_corrected_interval`); `ece_binned` is the plain one."""
    ece_ci: list[float] | None = None
    reliability: dict[str, list[float]] | None = None
    one_class_val: bool | None = None
    one_class_test: bool | None = None
    """At the model's operating threshold for a binary task (where sens/spec are measured)."""
    latency: dict[str, Any] | None = None
    n_test: int | None = None
    ece_binned: float | None = None
    delta_ece: float | None = None
    delta_ece_ci: list[float] | None = None
    kappa: float | None = None
    """Quadratic-weighted kappa (ordinal tasks)."""
    kappa_ci: list[float] | None = None
    delta_kappa: float | None = None
    delta_kappa_ci: list[float] | None = None
    flip_rate: float | None = None
    """Share of test images decided differently from the teacher (each at its own point)."""
    flip_rate_ci: list[float] | None = None
    flips: list[dict[str, Any]] | None = None
    """The flipped test images, most confident first (see `forgetting.Flip`)."""
    per_class: list[dict[str, Any]] | None = None
    one_class_at_half: bool | None = None
    """Binary: one class for every test image at 0.5, the threshold ACC uses."""
    subgroups: list[dict[str, Any]] | None = None

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> TestScores:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in entry.items() if k in known})

    def non_inferior(self, margin: float) -> bool:
        """Non-inferior in AUC: the paired ΔAUC interval's lower bound is above −margin
        (see `verdict` for other criteria)."""
        return self.delta_auc_ci[0] > -margin

    @property
    def flags(self) -> list[str]:
        """`1-class val` / `1-class test`: the model decides one class for every image of
        that split (at its operating threshold for a binary task, so its sens/spec are 1
        and 0); `ACC: 1-class at 0.5`: only at the 0.5 threshold of ACC."""
        found = [
            name
            for name, on in (
                ("1-class val", self.one_class_val),
                ("1-class test", self.one_class_test),
            )
            if on
        ]
        if self.one_class_at_half and not self.one_class_test:
            found.append("ACC: 1-class at 0.5")
        return found

    def latency_measured(self) -> Latency | None:
        return Latency(**self.latency) if self.latency else None

    def point(self, name: str) -> dict[str, Any] | None:
        """The operating point `spec0.90` / `sens0.95`, if scored."""
        return next((p for p in self.operating_points if _point_name(p) == name), None)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("bootstrap", "schema", "reliability"):
            data.pop(key)
        data["flags"] = self.flags
        return data


def _point_name(point: dict[str, Any]) -> str:
    if point.get("point"):
        return str(point["point"])
    return f"spec{point['specificity_target']:.2f}"  # cached before points were named


class Predictions(NamedTuple):
    """Scores on the test split, and on val for choosing thresholds."""

    test: np.ndarray
    val: np.ndarray


class Labels(NamedTuple):
    """The labels the predictions are scored against (and the test split's subgroups)."""

    val: np.ndarray
    test: np.ndarray
    task: Task
    groups: dict[str, np.ndarray] | None = None


def model_predictions(model: nn.Module, data: Dataset) -> Predictions:
    """The one place a front member's model meets the test split."""
    return Predictions(
        test=predict_scores(model, data.test, data.task),
        val=predict_scores(model, data.val, data.task),
    )


def data_labels(data: Dataset) -> Labels:
    return Labels(
        data.val.y.cpu().numpy(),
        data.test.y.cpu().numpy(),
        data.task,
        dict(data.test_groups) or None,
    )


class _Pair(NamedTuple):
    """Both models' sides of one comparison (the member's first)."""

    mine: Any
    theirs: Any


def score_predictions(
    predictions: Predictions,
    labels: Labels,
    indices: np.ndarray,
    reference: Predictions,
    settings: RescoreSettings,
    latency: Latency | None = None,
) -> TestScores:
    """Every test score of one model over the resamples `indices`; `reference` is the
    teacher's predictions, scored on the same resamples for the paired differences."""
    y_test, task, level = labels.test, labels.task, settings.bootstrap.level
    scores = _Pair(predictions.test, reference.test)

    def paired(metric: Any, reference_metric: Any = None) -> Interval:
        return paired_interval(
            y_test,
            Scored(scores.mine, metric),
            Scored(scores.theirs, reference_metric or metric),
            task,
            indices,
            level,
        )

    auc = interval(batched_auc, y_test, scores.mine, task, indices, level)
    acc = interval(batched_acc, y_test, scores.mine, task, indices, level)
    positive = settings.positive if task == BINARY else None
    thresholds = _Pair(None, None)
    binary: dict[str, Any] = {}
    if positive is not None:
        val_positive = is_positive(labels.val, positive)
        thresholds = _Pair(
            *(
                youden_threshold(val_positive, positive_scores(p.val, positive))
                for p in (predictions, reference)
            )
        )
        binary = _binary_scores(predictions, labels, indices, reference, thresholds, settings)
    extra: dict[str, Any] = {}
    if task == ORDINAL:
        extra.update(
            interval_fields("kappa", interval(batched_kappa, y_test, scores.mine, task, indices))
        )
        extra.update(interval_fields("delta_kappa", paired(batched_kappa)))
    chosen = positive if positive is not None else DEFAULT_POSITIVE
    decided = _Pair(
        decisions(scores.mine, task, thresholds.mine, chosen),
        decisions(scores.theirs, task, thresholds.theirs, chosen),
    )
    return TestScores(
        **interval_fields("test_auc", auc),
        **interval_fields("test_acc", acc),
        **interval_fields("delta_auc", paired(batched_auc)),
        **interval_fields("delta_acc", paired(batched_acc)),
        sensitivity=binary.pop("sensitivity", None),
        specificity=binary.pop("specificity", None),
        threshold=thresholds.mine,
        bootstrap=asdict(settings.bootstrap),
        positive=positive,
        schema=SCHEMA,
        **_calibration(labels, scores, indices, chosen, level),
        one_class_val=predicts_one_class(predictions.val, task, thresholds.mine, chosen),
        one_class_test=predicts_one_class(scores.mine, task, thresholds.mine, chosen),
        one_class_at_half=predicts_one_class(scores.mine, task) if positive is not None else None,
        latency=latency.as_json() if latency is not None else None,
        n_test=len(y_test),
        **interval_fields("flip_rate", flip_rate(decided.mine, decided.theirs, indices, level)),
        flips=[
            asdict(f)
            for f in ranked_flips(
                y_test, (scores.mine, decided.mine), (scores.theirs, decided.theirs), task, chosen
            )
        ],
        per_class=per_class_rates(y_test, decided.mine, task, indices, level, decided.theirs),
        subgroups=_subgroups(labels, scores, thresholds, chosen, settings),
        **binary,
        **extra,
    )


def _calibration(
    labels: Labels, scores: _Pair, indices: np.ndarray, positive: int, level: float
) -> dict[str, Any]:
    """ECE debiased with an interval that holds it, and the paired ΔECE, the same way."""
    targets: list[Calibrated] = [
        calibration_targets(labels.test, s, labels.task, positive) for s in scores
    ]
    binned = [expected_calibration_error(t.probability, t.outcome) for t in targets]
    samples = [ece_samples(t, indices) for t in targets]
    ece = bias_corrected_interval(binned[0], samples[0], level, floor=0.0)
    delta = bias_corrected_interval(binned[0] - binned[1], samples[0] - samples[1], level)
    mine = targets[0]
    return {
        **interval_fields("ece", ece),
        **interval_fields("delta_ece", delta),
        "ece_binned": binned[0],
        "reliability": reliability_curve(mine.probability, mine.outcome)._asdict(),
    }


def _binary_scores(
    predictions: Predictions,
    labels: Labels,
    indices: np.ndarray,
    reference: Predictions,
    thresholds: _Pair,
    settings: RescoreSettings,
) -> dict[str, Any]:
    """Sensitivity and specificity for the positive class at the threshold that maximises
    Youden's J on val (each model its own), their paired differences to the teacher's, and
    the operating points at fixed specificities (and sensitivities)."""
    positive, level = settings.positive, settings.bootstrap.level
    result: dict[str, Any] = {}
    rates = _rates(labels, indices, predictions, reference, thresholds, positive, level)
    for rate in ("sensitivity", "specificity"):
        value, delta = rates[rate]
        result.update(interval_fields(rate, value))
        result.update(interval_fields(f"delta_{rate}", delta))
    val_positive = is_positive(labels.val, positive)
    choosers = {"spec": threshold_at_specificity, "sens": threshold_at_sensitivity}
    points = []
    for kind, targets in settings.targets(BINARY).items():
        for target in targets:
            cut = _Pair(
                *(
                    choosers[kind](val_positive, positive_scores(p.val, positive), target)
                    for p in (predictions, reference)
                )
            )
            found = _rates(labels, indices, predictions, reference, cut, positive, level)
            point = OperatingPoint(
                point=f"{kind}{target:.2f}",
                threshold=cut.mine,
                **interval_fields("sensitivity", found["sensitivity"][0]),
                **interval_fields("specificity", found["specificity"][0]),
                **interval_fields("delta_sensitivity", found["sensitivity"][1]),
                **interval_fields("delta_specificity", found["specificity"][1]),
                specificity_target=target if kind == "spec" else None,
                sensitivity_target=target if kind == "sens" else None,
            )
            points.append(asdict(point))
    result["operating_points"] = points
    return result


def _rates(
    labels: Labels,
    indices: np.ndarray,
    predictions: Predictions,
    reference: Predictions,
    thresholds: _Pair,
    positive: int,
    level: float,
) -> dict[str, tuple[Interval, Interval]]:
    """(the member's rate, its paired difference to the teacher's) at these thresholds."""
    y_test, task = labels.test, labels.task
    found = {}
    for rate in ("sensitivity", "specificity"):
        metric = rate_metric(rate, thresholds.mine, positive)
        theirs = rate_metric(rate, thresholds.theirs, positive)
        found[rate] = (
            interval(metric, y_test, predictions.test, task, indices, level),
            paired_interval(
                y_test,
                Scored(predictions.test, metric),
                Scored(reference.test, theirs),
                task,
                indices,
                level,
            ),
        )
    return found


def _subgroups(
    labels: Labels, scores: _Pair, thresholds: _Pair, positive: int, settings: RescoreSettings
) -> list[dict[str, Any]] | None:
    if not labels.groups:
        return None
    return subgroup_scores(
        labels.test,
        labels.groups,
        (scores.mine, scores.theirs),
        labels.task,
        positive=positive,
        thresholds=(thresholds.mine, thresholds.theirs),
        resamples=settings.bootstrap.resamples,
        seed=settings.bootstrap.seed,
        level=settings.bootstrap.level,
    )
