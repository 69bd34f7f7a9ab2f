"""The report's sections, drawn from `ReportData`: the front table, then plotly figures
with one colour and marker per kind of member (as each method draws its own: pruned,
uniform baseline, distilled, factorized, ...) and the teacher; open markers for members
that deploy converted (int8)."""

from __future__ import annotations

import html
import math
from typing import Any, NamedTuple

import plotly.graph_objects as go

from medslim.objectives.sensitivity import SensitivityCurve
from medslim.search.inspection.front_table import Row, render_html
from medslim.search.inspection.hypervolume import HypervolumeHistory
from medslim.search.inspection.importances import MethodImportances
from medslim.search.inspection.layer_profile import LayerProfile
from medslim.search.inspection.report_data import (
    METRIC_NAMES,
    CalibrationCurve,
    ProxyCheck,
    ReportData,
    TradeOff,
)
from medslim.search.methods import METHODS, PRECISIONS, Style, get_method

STYLES = {
    **{kind: style for method in METHODS.values() for kind, style in method.styles.items()},
    "teacher": Style("teacher", "#d62728", "star"),
}
"""Each member kind's style, as its method draws it, and the teacher's."""
KINDS = [kind for kind in STYLES if kind != "teacher"]
FRONT_LINE = "#444"
HEIGHT = 460
LEGEND = {"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0}


class Section(NamedTuple):
    title: str
    body: str
    """HTML: a table, a figure's div, or a line saying why there is none."""


class Drawn(NamedTuple):
    title: str
    figure: go.Figure | None
    text: str = ""


def sections(data: ReportData) -> list[Section]:
    """Every section of the page, in reading order; plotly.js is inlined once."""
    parts: list[Drawn | Section] = [Section("Models on the front", render_html(data.table))]
    parts += [
        Drawn(f"{METRIC_NAMES[t.metric]} vs FLOPs", trade_off_figure(t)) for t in data.trade_offs
    ]
    if data.table.tested:
        parts.append(Drawn("Test AUC with 95% intervals", test_figure(data.table.rows)))
        parts.append(
            Drawn(
                "Calibration on the test split",
                calibration_figure(data.calibration, data.calibration_subject),
                "The teacher and the picked members (the non-inferior ones with the fewest "
                "FLOPs, else the best test AUC; every member's ECE is in its details row). "
                "Expected calibration error (ECE): the gap between predicted probability and "
                "observed frequency over 10 equal-width bins, weighted by each bin's share.",
            )
        )
    title = "Per-layer pruning ratios of the front"
    if data.profile.rows:
        parts.append(Drawn(title, profile_figure(data.profile)))
    else:
        parts.append(Drawn(title, None, "No pruned member on the front."))
    if data.students:
        parts.append(students_section(data.students))
    if data.curves:
        parts.append(Drawn("Sensitivity per group", sensitivity_figure(data.curves)))
    if data.proxy is not None:
        parts.append(proxy_drawn(data.proxy))
    parts.append(Drawn("Optimisation history", history_figure(data.history)))
    parts.append(hypervolume_drawn(data.hypervolume))
    parts += [importance_drawn(i) for i in data.importances]
    return _as_html(parts)


def _as_html(parts: list[Drawn | Section]) -> list[Section]:
    out = []
    plotly_js = True
    for part in parts:
        if isinstance(part, Section):
            out.append(part)
        elif part.figure is None:
            out.append(Section(part.title, f"<p>{html.escape(part.text)}</p>"))
        else:
            body = part.figure.to_html(
                full_html=False,
                include_plotlyjs=plotly_js,
                config={"responsive": True, "displaylogo": False},
                default_width="100%",
            )
            intro = f"<p>{html.escape(part.text)}</p>" if part.text else ""
            out.append(Section(part.title, intro + body))
            plotly_js = False
    return out


def trade_off_figure(t: TradeOff) -> go.Figure:
    name = METRIC_NAMES[t.metric]
    fig = go.Figure()
    for kind in KINDS:
        style = STYLES[kind]
        for on_front in (True, False):
            points = [p for p in t.points if p.kind == kind and p.on_front == on_front]
            if not points:
                continue
            fig.add_trace(
                go.Scatter(
                    x=[p.flops for p in points],
                    y=[p.value for p in points],
                    mode="markers+text" if on_front else "markers",
                    name=f"{style.label} · {'front' if on_front else 'other'}",
                    legendgroup=kind,
                    marker={
                        "color": style.colour,
                        "symbol": [_symbol(style, p.precision) for p in points],
                        "size": 12 if on_front else 8,
                        "opacity": 1.0 if on_front else 0.35,
                        "line": {"width": 1.5 if on_front else 0, "color": "#222"},
                    },
                    text=trial_labels([(p.trial, p.flops, p.value) for p in points]),
                    textposition="top center",
                    textfont={"size": 10},
                    hovertext=[p.label for p in points],
                    hovertemplate="%{hovertext}<extra></extra>",
                )
            )
    fig.add_trace(
        go.Scatter(
            x=[p.flops for p in t.front_2d] + [t.teacher.flops],
            y=[p.value for p in t.front_2d]
            + [t.front_2d[-1].value if t.front_2d else t.teacher.value],
            mode="lines",
            line={"color": FRONT_LINE, "width": 1.5, "shape": "hv"},
            name=f"best {name} for its FLOPs",
            hoverinfo="skip",
        )
    )
    teacher = STYLES["teacher"]
    fig.add_trace(
        go.Scatter(
            x=[t.teacher.flops],
            y=[t.teacher.value],
            mode="markers",
            name="teacher",
            marker={"color": teacher.colour, "symbol": teacher.symbol, "size": 16},
            text=[t.teacher.label],
            hovertemplate="%{text}<extra></extra>",
        )
    )
    fig.add_hline(
        y=t.teacher.value,
        line={"dash": "dash", "color": teacher.colour, "width": 1},
        annotation_text=f"teacher {name} {t.teacher.value:.3f}",
        annotation_position="bottom left",
    )
    fig.update_layout(
        title=f"{name} vs FLOPs (val split; big markers: the front)",
        xaxis={"title": "FLOPs per input (log scale)", "type": "log"},
        yaxis={"title": name},
        height=HEIGHT,
        legend=LEGEND,
        margin={"l": 60, "r": 20, "t": 60, "b": 40},
    )
    return fig


def test_figure(rows: list[Row]) -> go.Figure:
    fig = go.Figure()
    teacher = rows[0].test
    if teacher is not None:
        low, high = teacher.test_auc_ci
        fig.add_hrect(
            y0=low, y1=high, fillcolor=STYLES["teacher"].colour, opacity=0.08, line_width=0
        )
        fig.add_hline(
            y=teacher.test_auc,
            line={"dash": "dash", "color": STYLES["teacher"].colour, "width": 1},
            annotation_text=f"teacher test AUC {teacher.test_auc:.3f} (band: its 95% interval)",
            annotation_position="bottom left",
        )
    for kind in KINDS:
        members = [r for r in rows[1:] if r.kind == kind and r.test is not None]
        if not members:
            continue
        style = STYLES[kind]
        fig.add_trace(
            go.Scatter(
                x=[r.flops for r in members],
                y=[_test(r).test_auc for r in members],
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [_test(r).test_auc_ci[1] - _test(r).test_auc for r in members],
                    "arrayminus": [_test(r).test_auc - _test(r).test_auc_ci[0] for r in members],
                },
                mode="markers+text",
                name=style.label,
                marker={
                    "color": style.colour,
                    "symbol": [_symbol(style, r.precision) for r in members],
                    "size": 11,
                },
                text=trial_labels([(r.trial, r.flops, _test(r).test_auc) for r in members]),
                textposition="middle right",
                textfont={"size": 10},
                hovertext=[_test_label(r) for r in members],
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )
    fig.update_layout(
        title="Test AUC of the front (95% bootstrap intervals)",
        xaxis={"title": "FLOPs per input (log scale)", "type": "log"},
        yaxis={"title": "test AUC"},
        height=HEIGHT,
        legend=LEGEND,
        margin={"l": 60, "r": 20, "t": 60, "b": 40},
    )
    return fig


def trial_labels(points: list[tuple[int | None, float, float]]) -> list[str]:
    """Each point's trial number as its label; points drawn on the same spot share one
    label (`10, 11`) on the first, so none hides another unnamed."""
    spots: dict[tuple[float, float], list[int]] = {}
    for trial, x, y in points:
        if trial is not None:
            spots.setdefault((round(math.log10(max(x, 1)), 2), round(y, 3)), []).append(trial)
    labels = []
    for trial, x, y in points:
        same = spots.get((round(math.log10(max(x, 1)), 2), round(y, 3)), [])
        first = bool(same) and same[0] == trial
        labels.append(", ".join(str(t) for t in same) if first else "")
    return labels


def _symbol(style: Style, precision: str) -> str:
    """The kind's marker, open for a member that deploys converted (int8)."""
    return style.symbol + PRECISIONS.get(precision).marker


def _test(row: Row) -> Any:
    return row.test


def _test_label(row: Row) -> str:
    test = _test(row)
    low, high = test.delta_auc_ci
    verdict = row.verdict.text if row.verdict else ""
    flags = f" · {', '.join(row.flags)}" if row.flags else ""
    return (
        f"trial {row.trial} · {row.kind}<br>test AUC {test.test_auc:.4f} "
        f"[{test.test_auc_ci[0]:.4f}, {test.test_auc_ci[1]:.4f}]<br>"
        f"ΔAUC {test.delta_auc:+.4f} [{low:+.4f}, {high:+.4f}] · {verdict}{flags}<br>"
        f"FLOPs {row.flops:,} ({row.flops_ratio:.1%}) · {row.description}"
    )


def calibration_figure(curves: list[CalibrationCurve], subject: str) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            line={"dash": "dot", "color": "#999"},
            name="perfectly calibrated",
            hoverinfo="skip",
        )
    )
    largest = max((max(c.counts) for c in curves), default=1)
    for curve in curves:
        style = STYLES.get(curve.kind, STYLES["pruned"])
        teacher = curve.kind == "teacher"
        fig.add_trace(
            go.Scatter(
                x=curve.predicted,
                y=curve.observed,
                mode="lines+markers",
                name=f"{curve.name.split(' (')[0]} · ECE {curve.ece:.3f}",
                line={"dash": "dash" if teacher else "solid", "width": 3 if teacher else 1.5},
                marker={
                    "symbol": style.symbol,
                    "size": [6 + 12 * math.sqrt(c / largest) for c in curve.counts],
                    **({"color": style.colour} if teacher else {}),
                },
                customdata=curve.counts,
                hovertemplate=(
                    f"{curve.name}<br>ECE {curve.ece:.3f} [{curve.ece_ci[0]:.3f}, "
                    f"{curve.ece_ci[1]:.3f}]<br>predicted %{{x:.3f}} · observed %{{y:.3f}}"
                    "<br>%{customdata} predictions<extra></extra>"
                ),
            )
        )
    fig.update_layout(
        title="Reliability on the test split (ECE: calibration error)",
        xaxis={"title": f"mean predicted {subject}", "range": [-0.02, 1.02]},
        yaxis={"title": "observed frequency", "range": [-0.02, 1.02]},
        height=HEIGHT + 40,
        legend={"font": {"size": 10}, "tracegroupgap": 0},
        margin={"l": 60, "r": 10, "t": 60, "b": 40},
    )
    return fig


def profile_figure(profile: LayerProfile) -> go.Figure:
    columns = [
        f"{label} · {total} {'ch' if profile.unit == 'channels' else 'w'}"
        if total is not None
        else label
        for label, total in zip(profile.labels, profile.totals, strict=True)
    ]
    text = [
        [
            f"{ratio:.2f}" + ("" if kept is None or total is None else f"<br>{kept}/{total}")
            for ratio, kept, total in zip(row.ratios, row.kept, profile.totals, strict=True)
        ]
        for row in profile.rows
    ]
    cap = profile.cap
    fig = go.Figure(
        go.Heatmap(
            z=[row.ratios for row in profile.rows],
            x=columns,
            y=[row.label for row in profile.rows],
            text=text,
            texttemplate="%{text}",
            zmin=0.0,
            zmax=cap,
            colorscale="Blues",
            colorbar={
                "title": {"text": "pruning ratio", "side": "right"},
                "tickvals": [0, cap / 2, cap],
                "ticktext": ["0", f"{cap / 2:.2f}", f"{cap:g} = cap"],
            },
            hovertemplate="%{y}<br>%{x}: ratio %{z:.2f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Pruning ratio per group (cells: ratio, kept/total {profile.unit})",
        xaxis={
            "title": "group: its first layer's module path (short alias: s2.b1 = stage 2, "
            "block 1)",
            "automargin": True,
        },
        yaxis={"type": "category", "autorange": "reversed", "automargin": True},
        height=200 + 46 * len(profile.rows),
        margin={"l": 60, "r": 20, "t": 60, "b": 40},
    )
    return fig


def students_section(students: list[dict[str, Any]]) -> Section:
    columns = list(dict.fromkeys(k for row in students for k in row))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = "".join(
        "<tr>"
        + "".join(f"<td class='r'>{html.escape(_cell(row.get(c, '')))}</td>" for c in columns)
        + "</tr>"
        for row in students
    )
    return Section(
        "Student specs of distilled front members",
        f"<div class='table-box'><table class='specs'><thead><tr>{head}</tr></thead>"
        f"<tbody>{rows}</tbody></table></div>",
    )


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return "-".join(map(str, value))
    return f"{value:,}" if isinstance(value, int) and value > 9999 else str(value)


def sensitivity_figure(curves: list[SensitivityCurve]) -> go.Figure:
    figure = go.Figure(
        [go.Scatter(x=c.ratios, y=c.auc_drop, mode="lines+markers", name=c.unit) for c in curves]
    )
    figure.update_layout(
        title="Sensitivity: val AUC drop per group pruned alone",
        xaxis_title="pruning ratio of the group",
        yaxis_title="val AUC drop",
        height=HEIGHT,
        legend=LEGEND,
    )
    return figure


def proxy_drawn(check: ProxyCheck) -> Drawn:
    """The screened trials: the proxy of the candidate each fine-tuned, against the val AUC
    it reached, coloured by FLOPs (the proxy must rank models of similar FLOPs)."""
    numbers, flops, proxies, aucs = zip(*check.points, strict=True)
    figure = go.Figure(
        go.Scatter(
            x=proxies,
            y=aucs,
            mode="markers+text",
            text=[str(n) for n in numbers],
            textposition="top center",
            marker={
                "color": [math.log10(f) for f in flops],
                "colorscale": "Viridis",
                "colorbar": {"title": "log10 FLOPs×"},
                "size": 10,
            },
            hovertemplate="trial %{text}: proxy %{x:.4f}, val AUC %{y:.4f}<extra></extra>",
        )
    )
    figure.update_layout(
        xaxis_title="proxy of the pick: −KL to the teacher, training slice, no fine-tune",
        yaxis_title="val AUC after the fine-tune",
        height=HEIGHT,
    )
    rho = (
        "too few trials per FLOPs band" if check.rho_within is None else f"{check.rho_within:.2f}"
    )
    text = (
        "Each screened trial pruned several candidates at its FLOPs target, recalibrated "
        "batch norm and scored them by how closely they still match the teacher on training "
        "images; only the best was fine-tuned. Spearman ρ between that proxy and the val AUC "
        f"after fine-tuning, within bands of similar FLOPs: {rho}."
    )
    return Drawn("How well screening foretold the fine-tuned result", figure, text)


def history_figure(history: list[tuple[int, float]]) -> go.Figure:
    """Each finished trial's val AUC, and the best so far."""
    numbers = [n for n, _ in history]
    values = [v for _, v in history]
    best = [max(values[: i + 1]) for i in range(len(values))]
    fig = go.Figure(
        [
            go.Scatter(x=numbers, y=values, mode="markers", name="val AUC of the trial"),
            go.Scatter(x=numbers, y=best, mode="lines", line={"shape": "hv"}, name="best so far"),
        ]
    )
    fig.update_layout(
        title="val AUC of each finished trial",
        xaxis={"title": "trial"},
        yaxis={"title": "val AUC"},
        height=HEIGHT,
        legend=LEGEND,
    )
    return fig


def hypervolume_drawn(history: HypervolumeHistory | None) -> Drawn:
    title = "Hypervolume history (relative to the teacher)"
    if history is None:
        return Drawn(title, None, "One objective (or no teacher scores): no hypervolume.")
    fig = go.Figure(
        go.Scatter(
            x=history.trials,
            y=history.values,
            mode="lines+markers",
            line={"shape": "hv"},
            name="the study's front so far",
        )
    )
    if history.baselines is not None:
        fig.add_hline(
            y=history.baselines,
            line={"dash": "dash", "color": STYLES["uniform"].colour},
            annotation_text=f"uniform baselines alone: {history.baselines:.3f}",
            annotation_position="bottom right",
        )
    fig.update_layout(
        title="Hypervolume of the front as trials finished (1.0: the teacher's scores at no "
        "FLOPs)",
        xaxis={"title": "trial"},
        yaxis={"title": "hypervolume ÷ the teacher's box"},
        height=HEIGHT,
        legend=LEGEND,
    )
    return Drawn(title, fig, f"Reference point: {history.reference}.")


def importance_drawn(result: MethodImportances) -> Drawn:
    title = f"Parameter importances for val AUC: {result.title} ({result.trials})"
    if not result.importances:
        return Drawn(title, None, f"No importances: {result.reason}.")
    names = list(result.importances)[::-1]
    fig = go.Figure(
        go.Bar(
            x=[result.importances[n] for n in names],
            y=names,
            orientation="h",
            marker={"color": next(iter(get_method(result.method).styles.values())).colour},
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"fANOVA importance for val AUC within {result.title}",
        xaxis={"title": "share of the variance of val AUC"},
        height=max(260, 120 + 26 * len(names)),
        margin={"l": 160, "r": 20, "t": 60, "b": 40},
    )
    return Drawn(title, fig)
