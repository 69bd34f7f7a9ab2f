"""What the report shows, as plain data: the front table with its test scores, every
finished trial per method, the 2-D front of each plot, calibration curves, the layer
profile, student specs, the normalised hypervolume and per-method importances."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import optuna
from optuna.trial import TrialState
from scipy.stats import spearmanr

from medslim.objectives.sensitivity import SensitivityCurve
from medslim.search.inspection.front_table import FrontTable, picked_rows
from medslim.search.inspection.hypervolume import HypervolumeHistory, hypervolume_history
from medslim.search.inspection.importances import MethodImportances, importances_by_method
from medslim.search.inspection.layer_profile import LayerProfile, layer_profile
from medslim.search.inspection.pareto import Front, FrontMember, compute_front, member_of
from medslim.search.methods import get_method
from medslim.search.records import trial_record
from medslim.search.sensitivity import stored_curves
from medslim.search.stored import StudyRef
from medslim.search.study_format import stored_config, stored_dataset

METRIC_NAMES = {"val_auc": "val AUC", "val_acc": "val ACC", "flops": "FLOPs"}


class Point(NamedTuple):
    trial: int | None
    flops: float
    value: float
    kind: str
    """`pruned`, `uniform`, `distilled` or `teacher`."""
    on_front: bool
    """On the study's front (all objectives, validation split)."""
    label: str
    """Hover text."""
    precision: str = "fp32"


@dataclass(frozen=True)
class TradeOff:
    """One metric against FLOPs: every finished trial, the non-dominated points of this
    pair alone (the staircase), and the teacher."""

    metric: str
    points: list[Point]
    front_2d: list[Point]
    teacher: Point


@dataclass(frozen=True)
class CalibrationCurve:
    name: str
    kind: str
    ece: float
    ece_ci: list[float]
    predicted: list[float]
    observed: list[float]
    counts: list[int]


@dataclass(frozen=True)
class ProxyCheck:
    """How well the screening proxy foretold each screened trial's val AUC after its
    fine-tune: (trial, FLOPs ratio, proxy of its pick, val AUC) per trial, and Spearman's ρ
    within bands of similar FLOPs (where a proxy has to rank; across FLOPs both follow
    size), the bands' mean (None with fewer than 3 trials a band)."""

    points: list[tuple[int, float, float, float]]
    rho_within: float | None


@dataclass(frozen=True)
class ReportData:
    study: str
    dataset: str
    objectives: list[str]
    finished: int
    table: FrontTable
    trade_offs: list[TradeOff]
    calibration: list[CalibrationCurve]
    """Teacher first; empty without test scores."""
    calibration_subject: str
    profile: LayerProfile
    students: list[dict[str, Any]]
    """One row per distilled front member: trial, scores and its student spec."""
    hypervolume: HypervolumeHistory | None
    importances: list[MethodImportances]
    curves: list[SensitivityCurve]
    history: list[tuple[int, float]]
    """(trial, val AUC) of every finished trial, in order."""
    proxy: ProxyCheck | None = None
    """None: no trial screened candidates."""


def report_data(ref: StudyRef, table: FrontTable) -> ReportData:
    study = ref.study
    front = compute_front(study)
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    students = []
    for m in front.members:
        row = get_method(m.method).spec_row(m.choices)
        if row is not None:
            scores = {"trial": m.trial, "val_auc": round(m.val_auc, 4), "flops": m.flops}
            students.append({**scores, **row})
    return ReportData(
        study=study.study_name,
        dataset=str(stored_dataset(study).get("name", "?")),
        objectives=front.objectives,
        finished=len(trials),
        table=table,
        trade_offs=trade_offs(study, front, table),
        calibration=calibration_curves(table),
        calibration_subject=calibration_subject(study, table),
        profile=layer_profile(ref, front),
        students=students,
        hypervolume=hypervolume_history(study, front.objectives),
        importances=importances_by_method(study),
        curves=stored_curves(study),
        history=[(t.number, float(trial_record(t)["val_auc"])) for t in trials],
        proxy=proxy_check(trials),
    )


BANDS = 3


def proxy_check(trials: list[optuna.trial.FrozenTrial]) -> ProxyCheck | None:
    """The screened trials' proxies against their val AUC, ranked within FLOPs bands."""
    points = []
    for trial in trials:
        record = trial_record(trial)
        if "fidelity" in record:
            flops, proxy = float(record["flops_ratio"]), float(record["fidelity"])
            points.append((trial.number, flops, proxy, float(record["val_auc"])))
    if not points:
        return None
    ordered = sorted(points, key=lambda p: p[1])
    size = len(ordered) // BANDS
    rhos = []
    for band in range(BANDS) if size >= 3 else ():
        chunk = ordered[band * size : (band + 1) * size if band < BANDS - 1 else None]
        rho = spearmanr([p[2] for p in chunk], [p[3] for p in chunk])[0]
        if np.isfinite(rho):
            rhos.append(float(rho))
    return ProxyCheck(points, float(np.mean(rhos)) if rhos else None)


def trade_offs(study: optuna.Study, front: Front, table: FrontTable) -> list[TradeOff]:
    """val AUC and val ACC against FLOPs, every finished trial drawn once."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    on_front = {m.trial for m in front.members}
    config = stored_config(study) or {}
    result = []
    for metric in ("val_auc", "val_acc"):
        points = [_point(t, metric, t.number in on_front, config, front.units) for t in trials]
        teacher = Point(
            None,
            float(front.teacher["flops"]),
            float(front.teacher[metric]),
            "teacher",
            False,
            _teacher_label(front.teacher, table),
        )
        result.append(TradeOff(metric, points, staircase(points), teacher))
    return result


def staircase(points: list[Point]) -> list[Point]:
    """The points no other point beats on both FLOPs (fewer) and the metric (higher), by
    FLOPs: the 2-D front of this pair, drawn as steps."""
    front: list[Point] = []
    for point in sorted(points, key=lambda p: (p.flops, -p.value)):
        if not front or point.value > front[-1].value:
            front.append(point)
    return front


def _point(
    trial: optuna.trial.FrozenTrial,
    metric: str,
    on_front: bool,
    config: dict[str, Any],
    units: list[str],
) -> Point:
    member = member_of(trial, config, units)
    record = trial_record(trial)
    lines = [
        f"trial {trial.number} · {member.kind}" + (" · on the front" if on_front else ""),
        f"val AUC {member.val_auc:.4f} · val ACC {member.val_acc:.4f}",
        f"FLOPs {member.flops:,} ({member.flops_ratio:.1%} of the teacher) · "
        f"params {member.params:,}" + _deployed(member),
        member.description,
    ]
    value = float(record[metric])
    return Point(
        trial.number,
        float(member.flops),
        value,
        member.kind,
        on_front,
        "<br>".join(lines),
        member.precision,
    )


def _deployed(member: FrontMember) -> str:
    """` · int8, 34.1 kB` where the study measured ONNX files."""
    size = member.extra.get("size_bytes")
    return "" if size is None else f" · {member.precision}, {size / 1e3:.1f} kB ONNX"


def _teacher_label(teacher: dict[str, Any], table: FrontTable) -> str:
    lines = [
        "teacher (the reference)",
        f"val AUC {teacher['val_auc']:.4f} · val ACC {teacher['val_acc']:.4f}",
    ]
    test = table.rows[0].test
    if test is not None:
        low, high = test.test_auc_ci
        lines.append(
            f"test AUC {test.test_auc:.4f} [{low:.4f}, {high:.4f}] · ACC {test.test_acc:.4f}"
        )
    elif "test_auc" in teacher:
        lines.append(f"test AUC {teacher['test_auc']:.4f} · test ACC {teacher['test_acc']:.4f}")
    lines.append(f"FLOPs {int(teacher['flops']):,} · params {int(teacher['params']):,}")
    latency = table.rows[0].latency
    if latency is not None:
        lines.append(f"batch-1 latency {latency.median_ms:.3g} ms")
    return "<br>".join(lines)


def calibration_curves(table: FrontTable) -> list[CalibrationCurve]:
    """The teacher's and the picked members' reliability curves (`picked_rows`): nine
    curves at once read as none; every member's ECE is in the front table."""
    curves = []
    for row in [table.rows[0], *picked_rows(table)]:
        test = row.test
        if test is None or test.reliability is None or test.ece is None or test.ece_ci is None:
            continue
        name = "teacher" if row.trial is None else f"trial {row.trial} ({row.kind})"
        reliability = test.reliability
        curves.append(
            CalibrationCurve(
                name,
                row.kind,
                test.ece,
                test.ece_ci,
                list(reliability["predicted"]),
                list(reliability["observed"]),
                [int(c) for c in reliability["counts"]],
            )
        )
    return curves


def calibration_subject(study: optuna.Study, table: FrontTable) -> str:
    """What the reliability curves plot, in words."""
    task = stored_dataset(study).get("task")
    if table.positive is not None:
        return f"probability of {table.positive.describe()}"
    if task == "multi-label, binary-class":
        return "each label's probability"
    return "the top class's probability (confidence)"
