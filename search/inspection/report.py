"""`medslim report`: one standalone HTML file to inspect a study and pick a model.

Compute, then draw: `report_data` gathers plain data (front, baselines, teacher, ratio
profiles, student specs), `figures` turns it into plotly figures, `write_report` writes
them into one HTML page with plotly.js inlined, so it opens without a server.
"""

from __future__ import annotations

import html
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import optuna
import plotly.graph_objects as go
from optuna.trial import TrialState

from medslim.objectives.sensitivity import SensitivityCurve
from medslim.search.inspection.pareto import compute_front, short_choices
from medslim.search.records import trial_record
from medslim.search.sensitivity import stored_curves

MIN_IMPORTANCE_TRIALS = 4
"""Fewer finished trials than this make parameter importances meaningless (or fail)."""

METRIC_NAMES = {"val_auc": "val AUC", "val_acc": "val ACC", "flops": "FLOPs"}


class Point(NamedTuple):
    trial: int | None
    flops: float
    value: float
    label: str


@dataclass(frozen=True)
class TradeOff:
    """One metric against FLOPs: every trial, the front, the uniform baselines, the teacher."""

    metric: str
    trials: list[Point]
    front: list[Point]
    baselines: list[Point]
    teacher: Point


@dataclass(frozen=True)
class RatioProfile:
    """Per-unit pruning ratios of pruned front members; units in network order."""

    units: list[str]
    trials: list[int]
    ratios: list[list[float]]


@dataclass(frozen=True)
class ReportData:
    study: str
    dataset: str
    objectives: list[str]
    finished: int
    trade_offs: list[TradeOff]
    profile: RatioProfile
    students: list[dict[str, Any]]
    """One row per distilled front member: trial, scores and its student spec."""
    hypervolume_reference: list[float] | None
    """None with a single objective (no hypervolume)."""
    importances: bool


class Section(NamedTuple):
    title: str
    figure: go.Figure | None
    text: str


def report_data(study: optuna.Study) -> ReportData:
    front = compute_front(study)
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    on_front = {m.trial for m in front.members}
    teacher = front.teacher
    trade_offs = []
    for metric in ("val_auc", "val_acc"):
        points = {t.number: _point(t, metric) for t in trials}
        trade_offs.append(
            TradeOff(
                metric=metric,
                trials=[p for n, p in points.items() if n not in on_front],
                front=[points[m.trial] for m in front.members],
                baselines=[
                    points[t.number] for t in trials if t.user_attrs.get("baseline") == "uniform"
                ],
                teacher=Point(None, float(teacher["flops"]), float(teacher[metric]), "teacher"),
            )
        )
    units = list(study.user_attrs.get("units", []))
    pruned = [m for m in front.members if m.method == "prune"]
    profile = RatioProfile(
        units=units,
        trials=[m.trial for m in pruned],
        ratios=[[float(m.choices.get("ratios", {}).get(u, 0.0)) for u in units] for m in pruned],
    )
    by_number = {t.number: t for t in trials}
    students = [
        {
            "trial": m.trial,
            "val_auc": m.val_auc,
            "flops": m.flops,
            **by_number[m.trial].user_attrs.get("student_spec", {}),
        }
        for m in front.members
        if m.method == "distill"
    ]
    return ReportData(
        study=study.study_name,
        dataset=str(study.user_attrs.get("dataset", {}).get("name", "?")),
        objectives=front.objectives,
        finished=len(trials),
        trade_offs=trade_offs,
        profile=profile,
        students=students,
        hypervolume_reference=_reference_point(front.objectives, trials, teacher),
        importances=len(trials) >= MIN_IMPORTANCE_TRIALS,
    )


def _point(trial: optuna.trial.FrozenTrial, metric: str) -> Point:
    attrs = trial_record(trial)
    choices = short_choices(attrs["plan"]) if "plan" in attrs else attrs.get("method", "")
    tag = " (uniform baseline)" if attrs.get("baseline") == "uniform" else ""
    label = (
        f"trial {trial.number}{tag}<br>{METRIC_NAMES[metric]} {attrs[metric]:.4f}, "
        f"FLOPs {int(attrs['flops']):,}<br>{choices}"
    )
    return Point(trial.number, float(attrs["flops"]), float(attrs[metric]), label)


def _reference_point(
    objectives: list[str], trials: list[optuna.trial.FrozenTrial], teacher: dict[str, Any]
) -> list[float] | None:
    """Worst corner of the objective space: 0 for AUC/ACC, above the largest FLOPs."""
    if len(objectives) < 2:
        return None
    largest = max([float(teacher.get("flops", 0))] + [trial_record(t)["flops"] for t in trials])
    return [largest * 1.05 if name == "flops" else 0.0 for name in objectives]


def figures(study: optuna.Study, data: ReportData) -> list[Section]:
    """One section per view, each with a figure (or a line saying why there is none)."""
    sections = [
        Section(f"{METRIC_NAMES[t.metric]} vs FLOPs", trade_off_figure(t), "")
        for t in data.trade_offs
    ]
    sections.append(Section("Per-layer pruning ratios of the front", profile_figure(data), ""))
    curves = stored_curves(study)
    if curves:
        sections.append(Section("Sensitivity per group", sensitivity_figure(curves), ""))
    sections.append(
        Section("Student specs of distilled front members", students_figure(data), "")
        if data.students
        else Section("Student specs of distilled front members", None, "No distilled member.")
    )
    sections += _history_sections(study, data)
    return sections


def trade_off_figure(t: TradeOff) -> go.Figure:
    name = METRIC_NAMES[t.metric]
    fig = go.Figure()
    for points, label, marker in (
        (t.trials, "other trials", {"color": "lightgray", "size": 7}),
        (t.baselines, "uniform baselines", {"color": "orange", "size": 11, "symbol": "square"}),
        (t.front, "Pareto front (val)", {"color": "royalblue", "size": 10}),
        ([t.teacher], "teacher", {"color": "crimson", "size": 14, "symbol": "star"}),
    ):
        fig.add_trace(
            go.Scatter(
                x=[p.flops for p in points],
                y=[p.value for p in points],
                mode="lines+markers" if label.startswith("Pareto") else "markers",
                name=label,
                marker=marker,
                text=[p.label for p in points],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    fig.update_layout(
        title=f"{name} vs FLOPs (front chosen on the validation split)",
        xaxis={"title": "FLOPs per input (log)", "type": "log"},
        yaxis={"title": name},
    )
    return fig


def profile_figure(data: ReportData) -> go.Figure:
    profile = data.profile
    fig = go.Figure(
        go.Heatmap(
            z=profile.ratios,
            x=profile.units,
            y=[f"trial {n}" for n in profile.trials],
            zmin=0.0,
            zmax=1.0,
            colorscale="Viridis",
            colorbar={"title": "ratio"},
        )
    )
    fig.update_layout(
        title="Pruning ratio per layer group (network order)",
        xaxis={"title": "layer group"},
        yaxis={"title": "front member", "type": "category"},
    )
    return fig


def students_figure(data: ReportData) -> go.Figure:
    columns = sorted({k for row in data.students for k in row}, key=_column_order)
    cells = [[str(row.get(c, "")) for row in data.students] for c in columns]
    return go.Figure(go.Table(header={"values": columns}, cells={"values": cells}))


def _column_order(name: str) -> tuple[int, str]:
    first = ("trial", "val_auc", "flops")
    return (first.index(name), name) if name in first else (len(first), name)


def _history_sections(study: optuna.Study, data: ReportData) -> list[Section]:
    index = {name: i for i, name in enumerate(data.objectives)}
    first = data.objectives[0]

    def target(trial: optuna.trial.FrozenTrial) -> float:
        return trial.values[index[first]]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        history = optuna.visualization.plot_optimization_history(
            study, target=target, target_name=METRIC_NAMES[first]
        )
        sections = [Section("Optimisation history", history, "")]
        if data.hypervolume_reference is None:
            sections.append(Section("Hypervolume history", None, "One objective: no hypervolume."))
        else:
            hypervolume = optuna.visualization.plot_hypervolume_history(
                study, data.hypervolume_reference
            )
            sections.append(Section("Hypervolume history", hypervolume, ""))
        if data.importances:
            importances = optuna.visualization.plot_param_importances(
                study,
                evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
                target=target,
                target_name=METRIC_NAMES[first],
            )
            sections.append(Section(f"Parameter importances for {first}", importances, ""))
        else:
            sections.append(
                Section(
                    "Parameter importances",
                    None,
                    f"Needs at least {MIN_IMPORTANCE_TRIALS} finished trials.",
                )
            )
    return sections


def sensitivity_figure(curves: list[SensitivityCurve]) -> go.Figure:
    figure = go.Figure(
        [go.Scatter(x=c.ratios, y=c.auc_drop, mode="lines+markers", name=c.unit) for c in curves]
    )
    figure.update_layout(
        title="Sensitivity: val AUC drop per group pruned alone",
        xaxis_title="pruning ratio of the group",
        yaxis_title="val AUC drop",
    )
    return figure


def render_html(data: ReportData, sections: list[Section]) -> str:
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>medslim report: {html.escape(data.study)}</title></head><body>",
        f"<h1>{html.escape(data.study)}</h1>",
        f"<p>Dataset {html.escape(data.dataset)}; {data.finished} finished trials; objectives "
        f"{html.escape(', '.join(data.objectives))}. The front is chosen on the validation "
        "split.</p>",
    ]
    plotly_js: bool | str = True  # inlined once, with the first figure
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.figure is None:
            parts.append(f"<p>{html.escape(section.text)}</p>")
            continue
        parts.append(section.figure.to_html(full_html=False, include_plotlyjs=plotly_js))
        plotly_js = False
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(study: optuna.Study, out: Path) -> ReportData:
    data = report_data(study)
    out.write_text(render_html(data, figures(study, data)), encoding="utf-8")
    return data
