"""Re-score the Pareto front on the test split, once: bootstrap intervals, paired
differences to the teacher, operating points, calibration, degenerate-model flags and
side-by-side latency.

The front is chosen on validation scores; the test split is read only here, after the
search. Finished trials are frozen in Optuna, so each member's test scores are cached in
the study's user attrs under `test.trial.N` (the teacher's under `test.teacher`), keyed by
what changes them (the bootstrap settings, the positive class, the scoring version): a
second `medslim pareto` reads them instead of recomputing, and a change of settings
recomputes them. The margin and the metrics of the verdict only change how cached
intervals are judged. Entries cached by an older medslim are re-scored when the study's
teacher and data can be reopened, and shown as they are (without the newer columns)
otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import optuna
from torch import nn

from medslim.errors import UsageError
from medslim.kinds import BINARY, Task
from medslim.objectives.bootstrap import (
    Interval,
    Scored,
    batched_acc,
    batched_auc,
    interval,
    paired_interval,
    percentile_interval,
    rate_metric,
    stratified_indices,
)
from medslim.objectives.calibration import (
    calibration_targets,
    ece_samples,
    expected_calibration_error,
    reliability_curve,
)
from medslim.objectives.data import Dataset
from medslim.objectives.onnx_models import OnnxModule
from medslim.objectives.thresholds import (
    is_positive,
    positive_scores,
    predicts_one_class,
    threshold_at_specificity,
    youden_threshold,
)
from medslim.objectives.training import predict_scores
from medslim.search.inspection.classes import DEFAULT_POSITIVE
from medslim.search.inspection.latency import Latency, side_by_side
from medslim.search.inspection.pareto import Front, FrontMember
from medslim.search.inspection.reopen import reopen
from medslim.search.methods import FP32, precision_of
from medslim.search.records import trial_record
from medslim.search.refined import load_refined_model, load_refined_onnx
from medslim.search.stored import StudyRef
from medslim.search.trial_models import load_trial_model, load_trial_onnx, model_artifact_id

logger = logging.getLogger(__name__)

TEACHER_KEY = "test.teacher"
LEVEL = 0.95
SCHEMA = 2
"""Version of what a cached entry holds; entries of an older version are re-scored."""
SPECIFICITY_TARGETS = (0.90, 0.95)
"""Operating points: the highest sensitivity at these specificities, chosen on val."""


def trial_key(number: int) -> str:
    return f"test.trial.{number}"


def member_key(member: FrontMember) -> str:
    """Where a member's test scores are cached: its refined model's apart from its own."""
    return f"test.refined.{member.trial}" if member.refined else trial_key(member.trial)


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

    def key(self, task: str | None) -> dict[str, Any]:
        positive = self.positive if task == BINARY else None
        return {"bootstrap": asdict(self.bootstrap), "positive": positive, "schema": SCHEMA}


@dataclass(frozen=True)
class OperatingPoint:
    """Sensitivity at a specificity target: the threshold is chosen on val, the rates and
    their intervals are the test split's."""

    specificity_target: float
    threshold: float
    sensitivity: float
    sensitivity_ci: list[float]
    specificity: float
    specificity_ci: list[float]


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
    ece_ci: list[float] | None = None
    reliability: dict[str, list[float]] | None = None
    one_class_val: bool | None = None
    one_class_test: bool | None = None
    latency: dict[str, Any] | None = None
    n_test: int | None = None

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> TestScores:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in entry.items() if k in known})

    def non_inferior(self, margin: float) -> bool:
        """Non-inferior in AUC: the paired ΔAUC interval's lower bound is above −margin
        (see `verdict.NonInferiority` for other metrics)."""
        return self.delta_auc_ci[0] > -margin

    @property
    def flags(self) -> list[str]:
        """`1-class val` / `1-class test`: the model predicts a single class for every
        image of that split."""
        return [
            name
            for name, on in (
                ("1-class val", self.one_class_val),
                ("1-class test", self.one_class_test),
            )
            if on
        ]

    def latency_measured(self) -> Latency | None:
        return Latency(**self.latency) if self.latency else None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("bootstrap", "schema", "reliability"):
            data.pop(key)
        data["flags"] = self.flags
        return data


@dataclass(frozen=True)
class Rescored:
    teacher: TestScores
    members: dict[int, TestScores]
    missing: dict[int, str]
    """Front members that could not be re-scored, with the reason."""
    stale: str | None = None
    """Why older cached entries are shown as they are (they could not be re-scored)."""


class Predictions(NamedTuple):
    """Scores on the test split, and on val for choosing thresholds."""

    test: np.ndarray
    val: np.ndarray


class Labels(NamedTuple):
    """The labels the predictions are scored against."""

    val: np.ndarray
    test: np.ndarray
    task: Task


def model_predictions(model: nn.Module, data: Dataset) -> Predictions:
    """The one place a front member's model meets the test split."""
    return Predictions(
        test=predict_scores(model, data.test, data.task),
        val=predict_scores(model, data.val, data.task),
    )


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

    def paired(metric: Any, reference_metric: Any = None) -> Interval:
        return paired_interval(
            y_test,
            Scored(predictions.test, metric),
            Scored(reference.test, reference_metric or metric),
            task,
            indices,
            level,
        )

    auc = interval(batched_auc, y_test, predictions.test, task, indices, level)
    acc = interval(batched_acc, y_test, predictions.test, task, indices, level)
    delta_auc, delta_acc = paired(batched_auc), paired(batched_acc)
    binary: dict[str, Any] = {}
    positive = settings.positive if task == BINARY else None
    if positive is not None:
        binary = _binary_scores(predictions, labels, indices, reference, positive, level)
    targets = calibration_targets(y_test, predictions.test, task, positive or DEFAULT_POSITIVE)
    ece = percentile_interval(
        expected_calibration_error(targets.probability, targets.outcome),
        ece_samples(targets, indices),
        level,
    )
    return TestScores(
        test_auc=auc.estimate,
        test_auc_ci=_span(auc),
        test_acc=acc.estimate,
        test_acc_ci=_span(acc),
        delta_auc=delta_auc.estimate,
        delta_auc_ci=_span(delta_auc),
        sensitivity=binary.pop("sensitivity", None),
        specificity=binary.pop("specificity", None),
        threshold=binary.pop("threshold", None),
        bootstrap=asdict(settings.bootstrap),
        positive=positive,
        schema=SCHEMA,
        delta_acc=delta_acc.estimate,
        delta_acc_ci=_span(delta_acc),
        ece=ece.estimate,
        ece_ci=_span(ece),
        reliability=reliability_curve(targets.probability, targets.outcome)._asdict(),
        one_class_val=predicts_one_class(predictions.val, task),
        one_class_test=predicts_one_class(predictions.test, task),
        latency=latency.as_json() if latency is not None else None,
        n_test=len(y_test),
        **binary,
    )


def _span(interval: Interval) -> list[float]:
    return [interval.low, interval.high]


def _binary_scores(
    predictions: Predictions,
    labels: Labels,
    indices: np.ndarray,
    reference: Predictions,
    positive: int,
    level: float,
) -> dict[str, Any]:
    """Sensitivity and specificity for the positive class at the threshold that maximises
    Youden's J on val (each model its own), their paired differences to the teacher's at
    its own such threshold, and the operating points at fixed specificities."""
    y_test, task = labels.test, labels.task
    val_positive = is_positive(labels.val, positive)

    def threshold(scores: Predictions) -> float:
        return youden_threshold(val_positive, positive_scores(scores.val, positive))

    mine, theirs = threshold(predictions), threshold(reference)
    result: dict[str, Any] = {"threshold": mine}
    for rate in ("sensitivity", "specificity"):
        metric = rate_metric(rate, mine, positive)
        value = interval(metric, y_test, predictions.test, task, indices, level)
        delta = paired_interval(
            y_test,
            Scored(predictions.test, metric),
            Scored(reference.test, rate_metric(rate, theirs, positive)),
            task,
            indices,
            level,
        )
        result[rate] = value.estimate
        result[f"{rate}_ci"] = _span(value)
        result[f"delta_{rate}"] = delta.estimate
        result[f"delta_{rate}_ci"] = _span(delta)
    points = []
    for target in SPECIFICITY_TARGETS:
        cut = threshold_at_specificity(
            val_positive, positive_scores(predictions.val, positive), target
        )
        sensitivity, specificity = (
            interval(
                rate_metric(rate, cut, positive), y_test, predictions.test, task, indices, level
            )
            for rate in ("sensitivity", "specificity")
        )
        point = OperatingPoint(
            specificity_target=target,
            threshold=cut,
            sensitivity=sensitivity.estimate,
            sensitivity_ci=_span(sensitivity),
            specificity=specificity.estimate,
            specificity_ci=_span(specificity),
        )
        points.append(asdict(point))
    result["operating_points"] = points
    return result


class _Cache(NamedTuple):
    fresh: TestScores | None
    legacy: TestScores | None
    """An older entry with the same bootstrap: shown when it cannot be re-scored."""


def _cached(attrs: dict[str, Any], key: str, wanted: dict[str, Any]) -> _Cache:
    entry = attrs.get(key)
    if not isinstance(entry, dict) or entry.get("bootstrap") != wanted["bootstrap"]:
        return _Cache(None, None)
    scores = TestScores.from_entry(entry)
    current = scores.schema == wanted["schema"] and scores.positive == wanted["positive"]
    return _Cache(scores, None) if current else _Cache(None, scores)


def rescore_front(
    ref: StudyRef,
    front: Front,
    settings: RescoreSettings = RescoreSettings(),
    *,
    data_dir: Path | None = None,
) -> Rescored:
    """Test scores of the teacher and every front member, computed once and cached."""
    rescored = _rescore(ref, front, settings, data_dir, compute=True)
    if rescored is None:  # computing always yields the teacher's scores
        raise RuntimeError("re-scoring gave no teacher scores")
    return rescored


def cached_scores(ref: StudyRef, front: Front, settings: RescoreSettings) -> Rescored | None:
    """What earlier re-scoring cached, without computing (None: the teacher's scores are not
    cached for these settings); uncached members are listed as missing."""
    return _rescore(ref, front, settings, None, compute=False)


def _rescore(
    ref: StudyRef, front: Front, settings: RescoreSettings, data_dir: Path | None, *, compute: bool
) -> Rescored | None:
    study = ref.study
    attrs = study.user_attrs
    wanted = settings.key(attrs.get("dataset", {}).get("task"))
    teacher = _cached(attrs, TEACHER_KEY, wanted)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    members: dict[int, TestScores] = {}
    legacy: dict[int, TestScores] = {}
    missing: dict[int, str] = {}
    todo = []
    for member in front.members:
        cached = _cached(attrs, member_key(member), wanted)
        if cached.fresh is not None:
            members[member.trial] = cached.fresh
        elif model_artifact_id(ref.storage, trials[member.trial]) is None:
            missing[member.trial] = "no stored model (trial ran before models were kept)"
        else:
            todo.append(member.trial)
            if cached.legacy is not None:
                legacy[member.trial] = cached.legacy
    if teacher.fresh is not None and not todo:
        return Rescored(teacher.fresh, members, missing)
    if not compute:
        if teacher.fresh is None:
            return None
        missing.update({n: "not scored yet (medslim pareto scores it)" for n in todo})
        return Rescored(teacher.fresh, members, missing)
    try:
        context = reopen(ref, data_dir)
    except UsageError as error:
        old_teacher = teacher.fresh or teacher.legacy
        if old_teacher is None or set(todo) - set(legacy):
            raise
        logger.warning("showing test scores cached by an older medslim: %s", error)
        return Rescored(old_teacher, {**members, **legacy}, missing, str(error))
    data = context.data
    labels = Labels(data.val.y.cpu().numpy(), data.test.y.cpu().numpy(), data.task)
    indices = stratified_indices(
        labels.test, settings.bootstrap.resamples, settings.bootstrap.seed
    )
    refined = {m.trial for m in front.members if m.refined}
    models = {number: member_model(ref, trials[number], number in refined) for number in todo}
    teacher_latency, latencies = side_by_side(context.teacher, models, data.input_shape)
    reference = model_predictions(context.teacher, data)
    scored = {TEACHER_KEY: (reference, teacher_latency)}
    keys = {m.trial: member_key(m) for m in front.members}
    for number, model in models.items():
        scored[keys[number]] = (model_predictions(model, data), latencies[number])
    results = {
        key: _score_and_cache(study, key, p, labels, indices, reference, settings, latency)
        for key, (p, latency) in scored.items()
    }
    members.update({number: results[keys[number]] for number in todo})
    return Rescored(results[TEACHER_KEY], members, missing)


def member_model(ref: StudyRef, trial: optuna.trial.FrozenTrial, refined: bool) -> nn.Module:
    """The model a member's scores are of: its refined one where it was refined, and where
    it deploys converted (int8), the ONNX file it was scored as, run by onnxruntime."""
    precision = precision_of(trial_record(trial))
    if precision is not FP32:
        data = load_refined_onnx(ref, trial.number) if refined else load_trial_onnx(ref, trial)
        if data is not None:
            return OnnxModule(data, precision=precision.name)
    model = load_refined_model(ref, trial.number) if refined else None
    return model if model is not None else load_trial_model(ref, trial)


def _score_and_cache(
    study: optuna.Study,
    key: str,
    predictions: Predictions,
    labels: Labels,
    indices: np.ndarray,
    reference: Predictions,
    settings: RescoreSettings,
    latency: Latency,
) -> TestScores:
    scores = score_predictions(predictions, labels, indices, reference, settings, latency)
    study.set_user_attr(key, asdict(scores))
    return scores
