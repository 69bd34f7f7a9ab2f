"""Hypervolume of a study's front as the trials came in, relative to the teacher.

Raw hypervolume has units of AUC × ACC × FLOPs, which no reader can judge. Here every
objective is divided by the teacher's value and the reference point is (AUC 0, ACC 0, the
teacher's FLOPs): one member with the teacher's val AUC and ACC at no FLOPs would score
1.0, the teacher itself 0, and members costing more FLOPs than the teacher add nothing.
The uniform-ratio baselines alone give the line the search has to beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import optuna
from optuna.trial import TrialState

from medslim.kinds import DIRECTIONS
from medslim.search.records import trial_record
from medslim.search.study_format import stored_teacher

REFERENCE = "val AUC 0, val ACC 0, the teacher's FLOPs (each objective ÷ the teacher's)"


@dataclass(frozen=True)
class HypervolumeHistory:
    trials: list[int]
    values: list[float]
    """Normalised hypervolume of the feasible trials up to and including each trial."""
    baselines: float | None
    """What the uniform baselines alone reach (None without any)."""
    reference: str = REFERENCE


def hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """Volume dominated by `points` (n, d), all objectives minimised, up to `reference`
    (d,): slices along the last objective, recursively (exact; fine for fronts of a few
    hundred points in two or three objectives)."""
    points = np.asarray(points, dtype=np.float64)
    points = points[np.all(points < reference, axis=1)]
    if len(points) == 0:
        return 0.0
    if points.shape[1] == 1:
        return float(reference[0] - points[:, 0].min())
    order = np.argsort(points[:, -1])
    points = points[order]
    volume = 0.0
    for i in range(len(points)):
        top = points[i + 1, -1] if i + 1 < len(points) else reference[-1]
        depth = top - points[i, -1]
        if depth > 0:
            volume += depth * hypervolume(points[: i + 1, :-1], reference[:-1])
    return volume


def normalised_points(
    trials: list[optuna.trial.FrozenTrial], objectives: list[str], teacher: dict[str, float]
) -> np.ndarray:
    """Each trial's objectives ÷ the teacher's, turned into minimisation."""
    rows = []
    for trial in trials:
        record = trial_record(trial)
        row = []
        for name in objectives:
            value = float(record[name]) / float(teacher[name])
            row.append(-value if DIRECTIONS[name] == "maximize" else value)  # type: ignore[index]
        rows.append(row)
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(objectives))


def reference_point(objectives: list[str]) -> np.ndarray:
    return np.array([0.0 if DIRECTIONS[n] == "maximize" else 1.0 for n in objectives])  # type: ignore[index]


def hypervolume_history(study: optuna.Study, objectives: list[str]) -> HypervolumeHistory | None:
    """None with a single objective, or without the teacher's scores to normalise by."""
    teacher = stored_teacher(study) or {}
    if len(objectives) < 2 or not all(teacher.get(n) for n in objectives):
        return None
    trials = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if _feasible(t)
    ]
    trials.sort(key=lambda t: t.number)
    points = normalised_points(trials, objectives, teacher)
    reference = reference_point(objectives)
    values = [hypervolume(points[: i + 1], reference) for i in range(len(trials))]
    uniform = [i for i, t in enumerate(trials) if t.user_attrs.get("baseline") == "uniform"]
    baselines = hypervolume(points[uniform], reference) if uniform else None
    return HypervolumeHistory([t.number for t in trials], values, baselines)


def _feasible(trial: optuna.trial.FrozenTrial) -> bool:
    """Trials that break a constraint (`--max-flops`, `--min-auc`) are not on the front."""
    return all(value <= 0.0 for value in trial.constraints.values())
