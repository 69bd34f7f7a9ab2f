"""Make a study readable in optuna-dashboard, and serve it.

Everything the dashboard shows comes from the storage, so publishing means writing the
report's main figures and a markdown summary note into the study through
optuna-dashboard's public calls; `serve` then only reads.
"""

from __future__ import annotations

import logging
from typing import Any

import optuna
import optuna_dashboard

from medslim.search.inspection.pareto import compute_front
from medslim.search.inspection.report import (
    ReportData,
    profile_figure,
    report_data,
    sensitivity_figure,
    trade_off_figure,
)
from medslim.search.inspection.rescore import TEACHER_KEY, trial_key
from medslim.search.sensitivity import stored_curves
from medslim.search.storage import open_storage

logger = logging.getLogger(__name__)

FIGURE_IDS = ("auc-vs-flops", "acc-vs-flops", "ratio-profile")
"""Stable ids, so publishing again replaces the figures instead of adding copies."""


def summary_note(study: optuna.Study, data: ReportData) -> str:
    """Markdown: dataset, teacher scores, and the front's best trade-offs."""
    front = compute_front(study)
    teacher = front.teacher
    dataset = study.user_attrs.get("dataset", {})
    lines = [
        f"# {study.study_name}",
        f"Dataset **{dataset.get('name', '?')}** ({dataset.get('task', '?')}); "
        f"{data.finished} finished trials; objectives {', '.join(data.objectives)}.",
        "",
        f"Teacher: val AUC {teacher.get('val_auc', float('nan')):.4f}, "
        f"val ACC {teacher.get('val_acc', float('nan')):.4f}, "
        f"test AUC {teacher.get('test_auc', float('nan')):.4f}, "
        f"test ACC {teacher.get('test_acc', float('nan')):.4f}, "
        f"FLOPs {int(teacher.get('flops', 0)):,}.",
        "",
        "Best trade-offs (Pareto front, chosen on the validation split):",
        "",
        "| trial | val AUC | val ACC | FLOPs × teacher | params | test AUC [95% CI] |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for m in front.members:
        lines.append(
            f"| {m.trial} | {m.val_auc:.4f} | {m.val_acc:.4f} | {m.flops_ratio:.3f} | "
            f"{m.params:,} | {_test_cell(study.user_attrs.get(trial_key(m.trial)))} |"
        )
    if TEACHER_KEY not in study.user_attrs:
        lines += ["", "Test columns fill in after `medslim pareto` re-scores the front."]
    return "\n".join(lines)


def _test_cell(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "—"
    low, high = entry["test_auc_ci"]
    return f"{entry['test_auc']:.4f} [{low:.4f}, {high:.4f}]"


def publish(study: optuna.Study) -> ReportData:
    """Save the main figures and the summary note into the study."""
    data = report_data(study)
    figures = [trade_off_figure(t) for t in data.trade_offs] + [profile_figure(data)]
    for graph_id, figure in zip(FIGURE_IDS, figures, strict=True):
        optuna_dashboard.save_plotly_graph_object(study, figure, graph_object_id=graph_id)
    curves = stored_curves(study)
    if curves:
        figure = sensitivity_figure(curves)
        optuna_dashboard.save_plotly_graph_object(study, figure, graph_object_id="sensitivity")
    optuna_dashboard.save_note(study, summary_note(study, data))
    return data


def serve(storage_url: str, host: str, port: int) -> None:
    """Serve the dashboard of an existing storage until interrupted (blocks)."""
    storage = open_storage(storage_url, create=False)
    logger.info("optuna-dashboard on http://%s:%d/ (Ctrl-C stops)", host, port)
    optuna_dashboard.run_server(storage, host=host, port=port)
