"""Make a study readable in optuna-dashboard, and serve it.

Everything the dashboard shows comes from the storage, so publishing means writing the
report's main figures, a summary note with the front table, and a note on every front
member into the study through optuna-dashboard's public calls; `serve` then only reads.
It serves with the study's artifact store, so each trial's model can be downloaded.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO
from wsgiref.simple_server import WSGIServer

import optuna
import optuna_dashboard
import plotly.graph_objects as go

from medslim.search.acceptance import fixed_criteria, test_first_read
from medslim.search.artifacts import MODEL_MIME, Artifacts
from medslim.search.inspection.classes import DEFAULT_POSITIVE, positive_class
from medslim.search.inspection.commands import export_command
from medslim.search.inspection.front_table import FrontTable, Row, front_table, render_markdown
from medslim.search.inspection.layer_profile import layer_profile
from medslim.search.inspection.pareto import compute_front
from medslim.search.inspection.report_data import (
    calibration_curves,
    calibration_subject,
    trade_offs,
)
from medslim.search.inspection.report_figures import (
    calibration_figure,
    profile_figure,
    sensitivity_figure,
    test_figure,
    trade_off_figure,
)
from medslim.search.inspection.rescore import cached_scores
from medslim.search.inspection.scoring import SPECIFICITY_TARGETS, RescoreSettings
from medslim.search.inspection.verdict import judging
from medslim.search.sensitivity import stored_curves
from medslim.search.stored import StudyRef
from medslim.search.study_format import DATASET_ATTR, stored_dataset, study_attrs

FIGURE_ORDER = (
    "auc-vs-flops",
    "acc-vs-flops",
    "test-auc",
    "calibration",
    "ratio-profile",
    "sensitivity",
)
"""Stable ids (publishing again replaces a figure), in the order the dashboard shows them."""
WRONG_MIME = "application/vnd.snesdev-page-table"
"""What Debian's MIME table calls `.pt` (a SNES page table); older studies stored it."""


def publish(ref: StudyRef, table: FrontTable) -> None:
    """Save the figures, the summary note and a note per front member into the study."""
    study = ref.study
    front = compute_front(study)
    figures: dict[str, go.Figure] = {}
    for trade_off in trade_offs(study, front, table):
        key = "auc-vs-flops" if trade_off.metric == "val_auc" else "acc-vs-flops"
        figures[key] = trade_off_figure(trade_off)
    if table.tested:
        figures["test-auc"] = test_figure(table.rows)
        figures["calibration"] = calibration_figure(
            calibration_curves(table), calibration_subject(study, table)
        )
    profile = layer_profile(ref, front)
    if profile.rows:
        figures["ratio-profile"] = profile_figure(profile)
    curves = stored_curves(study)
    if curves:
        figures["sensitivity"] = sensitivity_figure(curves)
    for graph_id, figure in figures.items():
        optuna_dashboard.save_plotly_graph_object(study, figure, graph_object_id=graph_id)
    _name_metrics(study, front.objectives)
    optuna_dashboard.save_note(study, summary_note(study, table))
    _member_notes(ref, table)


def publish_cached(ref: StudyRef) -> None:
    """Publish with the default verdict and whatever test scores are cached (what `run`
    and `sensitivity` leave for the dashboard; they never read the test split)."""
    front = compute_front(ref.study)
    attrs = study_attrs(ref.study)
    dataset = attrs.get(DATASET_ATTR, {})
    positive = positive_class(dataset)
    found = judging(fixed_criteria(attrs), test_first_read(attrs))
    targets = found.rule.criteria
    settings = RescoreSettings(
        positive=positive.index if positive else DEFAULT_POSITIVE,
        specificity_targets=(*SPECIFICITY_TARGETS, *targets.targets("spec")),
        sensitivity_targets=targets.targets("sens"),
    )
    cached = cached_scores(ref, front, settings) if front.members else None
    table = front_table(
        front,
        cached,
        found.rule,
        positive,
        storage=ref.url,
        task=dataset.get("task"),
        judging=found,
    )
    publish(ref, table)


def _name_metrics(study: optuna.Study, objectives: list[str]) -> None:
    """Objective names in the dashboard (studies made before medslim named them lack them)."""
    if study.metric_names is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(objectives)


def summary_note(study: optuna.Study, table: FrontTable) -> str:
    """Markdown: dataset, the front table (with test scores once `pareto` or `report` has
    computed them), what the columns mean, and how to export a member."""
    front = compute_front(study)
    dataset = stored_dataset(study)
    lines = [
        f"# {study.study_name}",
        f"Dataset **{dataset.get('name', '?')}** ({dataset.get('task', '?')}); "
        f"{front.finished} finished trials; objectives "
        + ", ".join(
            f"{o} ({d.name.lower()})"
            for o, d in zip(front.objectives, study.directions, strict=True)
        )
        + ".",
        "",
        "## Models on the front",
        "",
        render_markdown(table),
    ]
    if not table.tested:
        lines += ["", "Test columns fill in after `medslim pareto` or `medslim report`."]
    lines += ["", f"Export one: `{table.export_hint}`"]
    return "\n".join(lines)


def member_note(row: Row, table: FrontTable) -> str:
    """What one front member is, how it does, and the command that exports it."""
    lines = [
        f"## Trial {row.trial}: {row.kind}, on the front",
        "",
        f"- {row.description}",
        f"- FLOPs {row.flops:,} ({row.flops_ratio:.1%} of the teacher's), params {row.params:,}",
        f"- val AUC {row.val_auc:.4f}, val ACC {row.val_acc:.4f}",
    ]
    test = row.test
    if test is not None:
        low, high = test.test_auc_ci
        lines.append(
            f"- test AUC {test.test_auc:.4f} [{low:.4f}, {high:.4f}],"
            f" ΔAUC {test.delta_auc:+.4f} [{test.delta_auc_ci[0]:+.4f}, "
            f"{test.delta_auc_ci[1]:+.4f}] (95% bootstrap, paired)"
        )
        if test.sensitivity is not None and table.positive is not None:
            lines.append(
                f"- sensitivity {test.sensitivity:.3f}, specificity {test.specificity:.3f} for "
                f"{table.positive.describe()}"
            )
        if row.latency is not None:
            lines.append(
                f"- batch-1 latency {row.latency.median_ms:.3g} ms, "
                f"{row.latency.ratio:.2f}× the teacher's"
            )
        if test.flip_rate is not None and test.flip_rate_ci is not None:
            low, high = test.flip_rate_ci
            lines.append(
                f"- flip rate against the teacher {test.flip_rate:.3f} [{low:.3f}, {high:.3f}]"
            )
        if test.ece is not None and test.delta_ece is not None and test.delta_ece_ci:
            lines.append(
                f"- ECE {test.ece:.3f}, ΔECE {test.delta_ece:+.3f} [{test.delta_ece_ci[0]:+.3f}, "
                f"{test.delta_ece_ci[1]:+.3f}]"
            )
        if row.verdict is not None:
            lines += _verdict_lines(row, table)
    elif row.note:
        lines.append(f"- test: {row.note}")
    if row.flags:
        lines.append(f"- ⚠ {', '.join(row.flags)}: predicts one class for a whole split")
    if row.trial is not None:
        export = export_command(table.storage, table.study, row.trial, lines=True)
        lines += ["", "```", export, "```"]
    return "\n".join(lines)


def _verdict_lines(row: Row, table: FrontTable) -> list[str]:
    """The verdict, each criterion with its interval, and whether they were fixed first."""
    assert row.verdict is not None
    lines = [f"- verdict: **{row.verdict.text}** ({table.rule.describe()})"]
    for check in row.verdict.checks:
        spans = ", ".join(
            f"{where + ' ' if where else ''}[{ci[0]:+.3f}, {ci[1]:+.3f}]"
            for where, ci in list(check["intervals"].items())[:6]
        )
        mark = "pass" if check["passed"] else "**fail**"
        lines.append(f"  - `{check['criterion']}`: {mark} {spans}")
    if table.judging is not None:
        lines += [f"  - {note}" for note in table.judging.notes()]
    if row.corrupted is not None:
        where = ", ".join(row.corrupted[:6]) + (" ..." if len(row.corrupted) > 6 else "")
        lines.append(
            "- corrupted images: holds"
            if not row.corrupted
            else f"- corrupted images: falls behind on {len(row.corrupted)} of "
            f"{row.corrupted_of} ({where})"
        )
    return lines


def _member_notes(ref: StudyRef, table: FrontTable) -> None:
    """One note per front member, written only when it changed."""
    storage = ref.storage
    study_id = storage.get_study_id_from_name(ref.name)
    # A sampler with no side effects: a Trial handle here only addresses the note.
    study = optuna.load_study(
        study_name=ref.name, storage=storage, sampler=optuna.samplers.RandomSampler()
    )
    for row in table.rows[1:]:
        if row.trial is None:
            continue
        trial = optuna.Trial(
            study, storage.get_trial_id_from_study_id_trial_number(study_id, row.trial)
        )
        body = member_note(row, table)
        if optuna_dashboard.get_note(trial) != body:
            optuna_dashboard.save_note(trial, body)


# --- serving -----------------------------------------------------------------------------

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_STUDY_DETAIL = re.compile(r"^/api/studies/\d+/?$")


def display_fixes(app: WSGIApp) -> WSGIApp:
    """optuna-dashboard as medslim serves it: saved figures in `FIGURE_ORDER` (the dashboard
    lists them in set order, which changes from one server start to the next), model
    artifacts of older studies sent as binary data, not as their stored MIME type, and the
    artifact store read-only (a browser may neither upload nor delete the teacher, the
    logits or a trial's model: 403)."""

    def fixed(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if _writes_artifacts(environ.get("REQUEST_METHOD", "GET"), path, environ):
            return _forbidden(start_response)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            if path.startswith("/artifacts/"):
                headers = [
                    (k, MODEL_MIME if k.lower() == "content-type" and v == WRONG_MIME else v)
                    for k, v in headers
                ]
            captured.update(status=status, headers=headers)
            if not _STUDY_DETAIL.match(path):
                return start_response(status, headers, *exc)
            return lambda data: None

        body = app(environ, capture)
        if not _STUDY_DETAIL.match(path):
            return body
        content = b"".join(body)
        if hasattr(body, "close"):
            body.close()
        content = _ordered_figures(content)
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"], [*headers, ("Content-Length", str(len(content)))])
        return [content]

    return fixed


def _writes_artifacts(method: str, path: str, environ: dict[str, Any]) -> bool:
    """An upload or a deletion in the artifact store: any write to `/api/artifacts`, and a
    study deleted with its artifacts."""
    if method in ("GET", "HEAD", "OPTIONS"):
        return False
    if path.startswith("/api/artifacts"):
        return True
    query = environ.get("QUERY_STRING", "")
    return method == "DELETE" and path.startswith("/api/studies/") and "artifacts" in query


READ_ONLY = (
    "medslim serves the study's artifact store read-only: its teacher, logits and models "
    "stay as the study wrote them"
)


def _forbidden(start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = json.dumps({"reason": READ_ONLY}).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    start_response("403 Forbidden", headers)
    return [body]


class ReadOnlyStore:
    """The study's store for optuna-dashboard: reads pass, writes and deletions raise (the
    WSGI layer refuses them first; this keeps any other route from getting through)."""

    def __init__(self, store: Artifacts) -> None:
        self.store = store

    def open_reader(self, artifact_id: str) -> BinaryIO:
        return self.store.open_reader(artifact_id)

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        raise PermissionError(READ_ONLY)

    def remove(self, artifact_id: str) -> None:
        raise PermissionError(READ_ONLY)


def _ordered_figures(content: bytes) -> bytes:
    try:
        detail = json.loads(content)
    except ValueError:
        return content
    graphs = detail.get("plotly_graph_objects") if isinstance(detail, dict) else None
    if not graphs:
        return content
    rank = {graph_id: i for i, graph_id in enumerate(FIGURE_ORDER)}
    graphs.sort(key=lambda g: (rank.get(g.get("id"), len(rank)), str(g.get("id"))))
    return json.dumps(detail).encode()


def serve(ref: StudyRef, server: WSGIServer, *, ready: Callable[[], None] | None = None) -> None:
    """Serve the storage of `ref` with its artifact store (read-only) on `server`, bound
    already (`serving.bind`, before the heavy imports), until interrupted (blocks)."""
    store = ReadOnlyStore(ref.artifacts)
    server.set_app(display_fixes(optuna_dashboard.wsgi(ref.storage, artifact_store=store)))
    with server:
        if ready is not None:
            ready()
        server.serve_forever()
