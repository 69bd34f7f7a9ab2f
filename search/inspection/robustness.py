"""Robustness of the front on corrupted test images: per corruption and severity, each
model's AUC and ACC with intervals, the drop against clean images, and the paired
difference to the teacher.

The corruptions come from `objectives.corruptions` (MedMNIST-C's set for a MedMNIST
dataset, else the generic set; the report says which), seeded, so two runs score the same
images. Like the clean test scores, the results are cached in the study (`robust.teacher`,
`robust.trial.N`), keyed by what changes them. Heavier than the clean scores (a corrupted
copy of the test split per corruption and severity), so `pareto` runs it only when asked
(`--robustness`) or when a criterion needs it; `report` and the model card run it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medslim.objectives.bootstrap import (
    Interval,
    batched_acc,
    batched_auc,
    interval_fields,
    metric_samples,
    percentile_interval,
    point_estimate,
    stratified_indices,
)
from medslim.objectives.corruptions import SEVERITIES, CorruptionSet, choose_set, corrupted_sets
from medslim.objectives.data import Dataset
from medslim.objectives.split import Split
from medslim.objectives.training import predict_scores
from medslim.search.acceptance import mark_test_read
from medslim.search.inspection.pareto import Front
from medslim.search.inspection.reopen import reopen
from medslim.search.inspection.rescore import member_model
from medslim.search.inspection.scoring import Bootstrap
from medslim.search.stored import StudyRef
from medslim.search.study_format import DATASET_ATTR, study_attrs
from medslim.search.trial_models import model_artifact_id

logger = logging.getLogger(__name__)

TEACHER_KEY = "robust.teacher"
SCHEMA = 1
METRICS = {"auc": batched_auc, "acc": batched_acc}


def trial_key(number: int, refined: bool = False) -> str:
    """Where a member's corrupted-image scores are cached (its refined model's apart)."""
    return f"robust.refined.{number}" if refined else f"robust.trial.{number}"


@dataclass(frozen=True)
class RobustnessSettings:
    """Which corruptions, at which severities, seeded how; part of the cache key."""

    corruptions: str | None = None
    """A corruption set (`generic`, a MedMNIST dataset); None: the dataset's own."""
    severities: tuple[int, ...] = SEVERITIES
    seed: int = 0


@dataclass(frozen=True)
class Robustness:
    corruption_set: str
    source: str
    note: str
    skipped: dict[str, str]
    """Corruptions not applied, with why."""
    teacher: dict[str, Any]
    members: dict[int, dict[str, Any]]
    """Per model: `results`, one row per corruption and severity (see `_row`)."""
    missing: dict[int, str] = field(default_factory=dict)

    def failures(self, trial: int, bound: float, metric: str = "auc") -> list[str]:
        """`gaussian_noise@3`: where the member's paired Δ interval reaches `bound`."""
        rows = self.members.get(trial, {}).get("results", [])
        return [
            f"{r['corruption']}@{r['severity']}"
            for r in rows
            if r[f"delta_{metric}_ci"][0] <= bound
        ]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def robustness_front(
    ref: StudyRef,
    front: Front,
    bootstrap: Bootstrap,
    settings: RobustnessSettings = RobustnessSettings(),  # noqa: B008 - frozen, never mutated
    *,
    data_dir: Path | None = None,
) -> Robustness:
    """The teacher's and every front member's scores on the corrupted test split, computed
    once per settings and cached in the study."""
    study = ref.study
    attrs = study_attrs(study)
    dataset = attrs.get(DATASET_ATTR, {})
    chosen = choose_set(str(dataset.get("name", "")), settings.corruptions)
    wanted = _key(chosen, bootstrap, settings)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    members: dict[int, dict[str, Any]] = {}
    missing: dict[int, str] = {}
    todo = []
    refined = {m.trial for m in front.members if m.refined}
    for member in front.members:
        entry = attrs.get(trial_key(member.trial, member.trial in refined))
        if isinstance(entry, dict) and entry.get("key") == wanted:
            members[member.trial] = entry
        elif model_artifact_id(ref.storage, trials[member.trial]) is None:
            missing[member.trial] = "no stored model"
        else:
            todo.append(member.trial)
    teacher = attrs.get(TEACHER_KEY)
    if todo or not (isinstance(teacher, dict) and teacher.get("key") == wanted):
        context = reopen(ref, data_dir)
        mark_test_read(study)
        models: dict[int | None, nn.Module] = {None: context.teacher}
        models.update({n: member_model(ref, trials[n], n in refined) for n in todo})
        scored, skipped = score_corrupted(context.data, models, chosen, bootstrap, settings)
        for number, results in scored.items():
            entry = {"key": wanted, "results": results, "skipped": skipped}
            key = TEACHER_KEY if number is None else trial_key(number, number in refined)
            study.set_user_attr(key, entry)
            if number is None:
                teacher = entry
            else:
                members[number] = entry
    assert isinstance(teacher, dict)
    return Robustness(
        chosen.name,
        chosen.source,
        chosen.note,
        dict(teacher.get("skipped", {})),
        teacher,
        members,
        missing,
    )


def _key(chosen: CorruptionSet, bootstrap: Bootstrap, settings: RobustnessSettings) -> dict:
    return {
        "set": chosen.name,
        "severities": list(settings.severities),
        "seed": settings.seed,
        "bootstrap": asdict(bootstrap),
        "schema": SCHEMA,
    }


def score_corrupted(
    data: Dataset,
    models: dict[int | None, nn.Module],
    chosen: CorruptionSet,
    bootstrap: Bootstrap,
    settings: RobustnessSettings,
) -> tuple[dict[int | None, list[dict[str, Any]]], dict[str, str]]:
    """Every model (the teacher under key None) on every corruption and severity: rows of
    scores with the paired difference to the teacher, and the corruptions skipped."""
    test = data.test
    images = np.asarray(test.x.cpu().numpy())
    y = test.y.cpu().numpy()
    indices = stratified_indices(y, bootstrap.resamples, bootstrap.seed)
    clean = {
        n: _samples(predict_scores(m, test, data.task), y, data.task, indices)
        for n, m in models.items()
    }
    rows: dict[int | None, list[dict[str, Any]]] = {n: [] for n in models}
    skipped: dict[str, str] = {}
    for corrupted in corrupted_sets(images, chosen, settings.severities, settings.seed):
        if corrupted.images is None:
            skipped[corrupted.corruption] = str(corrupted.skipped)
            continue
        split = Split(torch.from_numpy(corrupted.images), test.y, test.scale)
        found = {
            n: _samples(predict_scores(m, split, data.task), y, data.task, indices)
            for n, m in models.items()
        }
        for number in models:
            rows[number].append(
                _row(corrupted.corruption, corrupted.severity, found, clean, number, bootstrap)
            )
    return rows, skipped


def _samples(
    scores: np.ndarray, y: np.ndarray, task: Any, indices: np.ndarray
) -> dict[str, tuple[float, np.ndarray]]:
    """Each metric's point estimate and its value on every resample."""
    return {
        name: (
            point_estimate(metric, y, scores, task),
            metric_samples(metric, y, scores, task, indices),
        )
        for name, metric in METRICS.items()
    }


def _row(
    corruption: str,
    severity: int,
    found: dict[int | None, dict[str, tuple[float, np.ndarray]]],
    clean: dict[int | None, dict[str, tuple[float, np.ndarray]]],
    number: int | None,
    bootstrap: Bootstrap,
) -> dict[str, Any]:
    """One model under one corruption: its scores, the drop from its clean scores, and
    (members) the paired difference to the teacher under the same corruption."""
    level = bootstrap.level
    row: dict[str, Any] = {"corruption": corruption, "severity": severity}
    for metric in METRICS:
        estimate, samples = found[number][metric]
        row.update(interval_fields(metric, percentile_interval(estimate, samples, level)))
        clean_estimate, clean_samples = clean[number][metric]
        drop = percentile_interval(clean_estimate - estimate, clean_samples - samples, level)
        row.update(interval_fields(f"drop_{metric}", drop))
        their_estimate, their_samples = found[None][metric]
        delta: Interval = percentile_interval(
            estimate - their_estimate, samples - their_samples, level
        )
        row.update(interval_fields(f"delta_{metric}", delta))
    return row
