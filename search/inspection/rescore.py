"""Re-score the Pareto front on the test split, once: bootstrap intervals, the paired
difference to the teacher, and a non-inferiority verdict.

The front is chosen on validation scores; the test split is read only here, after the
search. Finished trials are frozen in Optuna, so each member's test scores are cached in
the study's user attrs under `test.trial.N` (the teacher's under `test.teacher`), keyed by
the bootstrap settings: a second `medslim pareto` reads them instead of recomputing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from torch import nn

from medslim.errors import UsageError
from medslim.kinds import BINARY, Task
from medslim.objectives.bootstrap import (
    Interval,
    batched_acc,
    batched_auc,
    metric_samples,
    percentile_interval,
    point_estimate,
    sensitivity_specificity,
    stratified_indices,
    youden_threshold,
)
from medslim.objectives.data import Dataset
from medslim.objectives.training import predict_scores
from medslim.search.inspection.pareto import Front
from medslim.search.inspection.reopen import Reopened, reopen
from medslim.search.stored import StudyRef
from medslim.search.trial_models import load_trial_model, model_artifact_id

TEACHER_KEY = "test.teacher"
LEVEL = 0.95


def trial_key(number: int) -> str:
    return f"test.trial.{number}"


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
class TestScores:
    """One model's test scores; `delta_auc` is its AUC minus the teacher's (paired)."""

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

    def non_inferior(self, margin: float) -> bool:
        """Non-inferior to the teacher when the delta's lower bound is above −margin."""
        return self.delta_auc_ci[0] > -margin

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("bootstrap")
        return data


@dataclass(frozen=True)
class Rescored:
    teacher: TestScores
    members: dict[int, TestScores]
    missing: dict[int, str]
    """Front members that could not be re-scored, with the reason."""


@dataclass(frozen=True)
class Predictions:
    """Scores on the test split, and on val for picking a binary threshold."""

    test: np.ndarray
    val: np.ndarray


def model_predictions(model: nn.Module, data: Dataset) -> Predictions:
    """The one place a front member's model meets the test split."""
    return Predictions(
        test=predict_scores(model, data.test, data.task),
        val=predict_scores(model, data.val, data.task),
    )


def score_predictions(
    predictions: Predictions,
    data: Dataset,
    indices: np.ndarray,
    reference: np.ndarray,
    bootstrap: Bootstrap,
) -> TestScores:
    """Intervals over the resamples `indices`; `reference` is the teacher's test scores,
    scored on the same resamples for the paired difference."""
    y_test = data.test.y.cpu().numpy()
    task = data.task

    def interval(metric: Callable[..., np.ndarray], scores: np.ndarray) -> Interval:
        return percentile_interval(
            point_estimate(metric, y_test, scores, task),
            metric_samples(metric, y_test, scores, task, indices),
            bootstrap.level,
        )

    auc = interval(batched_auc, predictions.test)
    acc = interval(batched_acc, predictions.test)
    delta = paired_difference(y_test, predictions.test, reference, task, indices, bootstrap.level)
    sensitivity = specificity = threshold = None
    if task == BINARY:
        threshold = youden_threshold(data.val.y.cpu().numpy(), _positive(predictions.val))
        sensitivity, specificity = sensitivity_specificity(
            y_test, _positive(predictions.test), threshold
        )
    return TestScores(
        test_auc=auc.estimate,
        test_auc_ci=[auc.low, auc.high],
        test_acc=acc.estimate,
        test_acc_ci=[acc.low, acc.high],
        delta_auc=delta.estimate,
        delta_auc_ci=[delta.low, delta.high],
        sensitivity=sensitivity,
        specificity=specificity,
        threshold=threshold,
        bootstrap=asdict(bootstrap),
    )


def paired_difference(
    y_true: np.ndarray,
    scores: np.ndarray,
    reference: np.ndarray,
    task: Task,
    indices: np.ndarray,
    level: float = LEVEL,
) -> Interval:
    """AUC of `scores` minus AUC of `reference`, both on the same resamples."""
    estimate = point_estimate(batched_auc, y_true, scores, task) - point_estimate(
        batched_auc, y_true, reference, task
    )
    samples = metric_samples(batched_auc, y_true, scores, task, indices) - metric_samples(
        batched_auc, y_true, reference, task, indices
    )
    return percentile_interval(estimate, samples, level)


def _positive(scores: np.ndarray) -> np.ndarray:
    return scores[:, -1] if scores.ndim == 2 else scores


def _cached(attrs: dict[str, Any], key: str, bootstrap: Bootstrap) -> TestScores | None:
    entry = attrs.get(key)
    if entry is None or entry.get("bootstrap") != asdict(bootstrap):
        return None
    return TestScores(**entry)


def rescore_front(
    ref: StudyRef, front: Front, bootstrap: Bootstrap, *, data_dir: Path | None = None
) -> Rescored:
    """Test scores of the teacher and every front member, computed once and cached."""
    study = ref.study
    attrs = study.user_attrs
    teacher = _cached(attrs, TEACHER_KEY, bootstrap)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    members: dict[int, TestScores] = {}
    missing: dict[int, str] = {}
    todo = []
    for member in front.members:
        cached = _cached(attrs, trial_key(member.trial), bootstrap)
        if cached is not None:
            members[member.trial] = cached
        elif model_artifact_id(ref.storage, trials[member.trial]) is None:
            missing[member.trial] = "no stored model (trial ran before models were kept)"
        else:
            todo.append(member.trial)
    if teacher is not None and not todo:
        return Rescored(teacher, members, missing)
    context = reopen(ref, data_dir)
    indices = stratified_indices(
        context.data.test.y.cpu().numpy(), bootstrap.resamples, bootstrap.seed
    )
    teacher_predictions = model_predictions(context.teacher, context.data)
    teacher = _score_and_cache(
        study, TEACHER_KEY, teacher_predictions, context, indices, teacher_predictions, bootstrap
    )
    for number in todo:
        model = load_trial_model(ref, trials[number])
        members[number] = _score_and_cache(
            study,
            trial_key(number),
            model_predictions(model, context.data),
            context,
            indices,
            teacher_predictions,
            bootstrap,
        )
    return Rescored(teacher, members, missing)


def _score_and_cache(
    study: optuna.Study,
    key: str,
    predictions: Predictions,
    context: Reopened,
    indices: np.ndarray,
    teacher: Predictions,
    bootstrap: Bootstrap,
) -> TestScores:
    scores = score_predictions(predictions, context.data, indices, teacher.test, bootstrap)
    study.set_user_attr(key, asdict(scores))
    return scores


def front_json_with_tests(
    front_json: dict[str, Any], rescored: Rescored, margin: float
) -> dict[str, Any]:
    """`medslim pareto --json` with test scores added to the teacher and each member."""
    teacher = rescored.teacher.as_json()
    for key in ("delta_auc", "delta_auc_ci"):
        teacher.pop(key)
    data = dict(front_json)
    data["teacher"] = {**front_json["teacher"], **teacher}
    data["test"] = {
        "split": "test",
        "margin": margin,
        "confidence": LEVEL,
        "resamples": rescored.teacher.bootstrap["resamples"],
        "note": "front chosen on the validation split; test scores computed once afterwards",
    }
    members = []
    for member in front_json["front"]:
        scores = rescored.members.get(member["trial"])
        if scores is None:
            members.append({**member, "test_missing": rescored.missing.get(member["trial"])})
        else:
            members.append(
                {**member, **scores.as_json(), "non_inferior": scores.non_inferior(margin)}
            )
    data["front"] = members
    return data


def format_tests(front: Front, rescored: Rescored, margin: float) -> str:
    """The test table: one row per model, the teacher first as the reference."""
    t = rescored.teacher
    binary = t.sensitivity is not None
    resamples = t.bootstrap["resamples"]
    lines = [
        f"test split (front chosen on the validation split; scored once, "
        f"95% stratified bootstrap CIs, {resamples} resamples; "
        f"non-inferior: ΔAUC lower bound > -{margin:g})",
        f"{'trial':>7} {'val AUC':>8} {'test AUC [95% CI]':>24} {'test ACC [95% CI]':>24} "
        f"{'ΔAUC [95% CI]':>26}" + (f" {'sens':>6} {'spec':>6}" if binary else "") + "  verdict",
    ]
    rows: list[tuple[str, float, TestScores | None, str]] = [
        ("teacher", front.teacher.get("val_auc", float("nan")), t, "reference")
    ]
    for member in front.members:
        scores = rescored.members.get(member.trial)
        if scores is None:
            reason = rescored.missing.get(member.trial, "not scored")
            rows.append((str(member.trial), member.val_auc, None, reason))
            continue
        verdict = "non-inferior" if scores.non_inferior(margin) else "not shown non-inferior"
        rows.append((str(member.trial), member.val_auc, scores, verdict))
    for name, val_auc, scores, verdict in rows:
        if scores is None:
            lines.append(f"{name:>7} {val_auc:>8.4f}  {verdict}")
            continue
        line = (
            f"{name:>7} {val_auc:>8.4f} {_ci(scores.test_auc, scores.test_auc_ci):>24} "
            f"{_ci(scores.test_acc, scores.test_acc_ci):>24} "
            f"{_ci(scores.delta_auc, scores.delta_auc_ci, signed=True):>26}"
        )
        if binary:
            line += f" {scores.sensitivity:>6.3f} {scores.specificity:>6.3f}"
        lines.append(f"{line}  {verdict}")
    if binary:
        lines.append("sens/spec at the threshold that maximises Youden's J on the val split")
    return "\n".join(lines)


def _ci(value: float, ci: list[float], signed: bool = False) -> str:
    fmt = "+.4f" if signed else ".4f"
    return f"{value:{fmt}} [{ci[0]:{fmt}}, {ci[1]:{fmt}}]"
