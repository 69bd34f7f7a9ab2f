"""Re-score the Pareto front on the test split, once: bootstrap intervals, paired
differences to the teacher, operating points, calibration, flips and per-class rates,
subgroups, degenerate-model flags and side-by-side latency (computed by `scoring`).

The front is chosen on validation scores; the test split is read only here, after the
search. Finished trials are frozen in Optuna, so each member's test scores are cached in
the study's user attrs under `test.trial.N` (the teacher's under `test.teacher`), keyed by
what changes them (the bootstrap settings, the positive class, the operating points, the
scoring version): a
second `medslim pareto` reads them instead of recomputing, and a change of settings
recomputes them. The margin and the metrics of the verdict only change how cached
intervals are judged. Entries cached by an older medslim are re-scored when the study's
teacher and data can be reopened, and shown as they are (without the newer columns)
otherwise. The first reading of the test split is recorded in the study (`acceptance`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import optuna
from torch import nn

from medslim.errors import UsageError
from medslim.objectives.bootstrap import stratified_indices
from medslim.objectives.onnx_models import OnnxModule
from medslim.search.acceptance import mark_test_read
from medslim.search.inspection.latency import Latency, side_by_side
from medslim.search.inspection.pareto import Front, FrontMember
from medslim.search.inspection.reopen import reopen
from medslim.search.inspection.scoring import (
    Labels,
    Predictions,
    RescoreSettings,
    TestScores,
    data_labels,
    model_predictions,
    score_predictions,
)
from medslim.search.methods import FP32, precision_of
from medslim.search.records import trial_record
from medslim.search.refined import load_refined_model, load_refined_onnx, refined_record
from medslim.search.stored import StudyRef
from medslim.search.study_format import DATASET_ATTR, study_attrs
from medslim.search.trial_models import load_trial_model, load_trial_onnx, model_artifact_id

logger = logging.getLogger(__name__)

TEACHER_KEY = "test.teacher"
DEFAULT_SETTINGS = RescoreSettings()


def trial_key(number: int) -> str:
    return f"test.trial.{number}"


def member_key(member: FrontMember) -> str:
    """Where a member's test scores are cached: its refined model's apart from its own."""
    return f"test.refined.{member.trial}" if member.refined else trial_key(member.trial)


@dataclass(frozen=True)
class Rescored:
    teacher: TestScores
    members: dict[int, TestScores]
    missing: dict[int, str]
    """Front members that could not be re-scored, with the reason."""
    stale: str | None = None
    """Why older cached entries are shown as they are (they could not be re-scored)."""


class _Cache(NamedTuple):
    fresh: TestScores | None
    legacy: TestScores | None
    """An older entry with the same bootstrap: shown when it cannot be re-scored."""


def _cached(attrs: dict[str, Any], key: str, wanted: dict[str, Any]) -> _Cache:
    entry = attrs.get(key)
    if not isinstance(entry, dict) or entry.get("bootstrap") != wanted["bootstrap"]:
        return _Cache(None, None)
    scores = TestScores.from_entry(entry)
    current = (
        scores.schema == wanted["schema"]
        and scores.positive == wanted["positive"]
        and entry.get("targets", {}) == wanted["targets"]
    )
    return _Cache(scores, None) if current else _Cache(None, scores)


def rescore_front(
    ref: StudyRef,
    front: Front,
    settings: RescoreSettings = DEFAULT_SETTINGS,
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
    attrs = study_attrs(study)
    wanted = settings.key(attrs.get(DATASET_ATTR, {}).get("task"))
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
    mark_test_read(study)
    labels = data_labels(data)
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
    record = refined_record(ref.study, trial.number) if refined else None  # None: not refined
    precision = precision_of(record or trial_record(trial))
    if precision is not FP32:
        data = load_refined_onnx(ref, trial.number) if record else load_trial_onnx(ref, trial)
        if data is not None:
            return OnnxModule(data, precision=precision.name)
    model = load_refined_model(ref, trial.number) if record else None
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
    study.set_user_attr(key, {**asdict(scores), "targets": settings.targets(labels.task)})
    return scores
