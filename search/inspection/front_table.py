"""The one front table: `pareto`, the report and the dashboard note all show these rows.

Compute, then draw: `front_table` joins the front (validation), the test re-scoring and the
verdict into plain `Row`s, teacher first; `render_text` prints them within 100 columns
(`wide=True`: every column), `render_markdown` for the dashboard note, `render_html` for
the report, and `front_json` for `pareto --json`.
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

from medslim.search.inspection.classes import PositiveClass
from medslim.search.inspection.commands import export_command
from medslim.search.inspection.latency import Latency
from medslim.search.inspection.pareto import Front
from medslim.search.inspection.rescore import LEVEL, SPECIFICITY_TARGETS, Rescored, TestScores
from medslim.search.inspection.verdict import (
    NonInferiority,
    Verdict,
    margin_advice,
    resolvable_margin,
)

WIDTH = 100
"""`pareto`'s default table fits a terminal this wide."""


@dataclass(frozen=True)
class Row:
    """One model of the table: the teacher (`trial` None) or a front member."""

    trial: int | None
    kind: str
    description: str
    summary: str
    flops: int
    flops_ratio: float
    params: int
    val_auc: float
    val_acc: float
    trial_latency_ms: float | None
    test: TestScores | None = None
    verdict: Verdict | None = None
    flags: list[str] = field(default_factory=list)
    export: str | None = None
    note: str | None = None
    """Why a member has no test scores."""
    precision: str = "fp32"
    size_bytes: int | None = None
    """The ONNX file's size, where the study measured it."""
    size_ratio: float | None = None
    trial_latency_ratio: float | None = None
    """Latency ÷ the teacher's, measured beside it while the trial ran (onnxruntime)."""

    @property
    def latency(self) -> Latency | None:
        return self.test.latency_measured() if self.test is not None else None


@dataclass(frozen=True)
class FrontTable:
    study: str
    rows: list[Row]
    """The teacher first, then the front by FLOPs."""
    tested: bool
    binary: bool
    positive: PositiveClass | None
    rule: NonInferiority
    notes: list[str]
    """What the columns mean and what to beware of, one line each."""
    export_hint: str
    storage: str
    """Where the study lives (for the export commands)."""
    deployed: bool = False
    """Whether the study measured its members as ONNX files (precision and size shown)."""


def front_table(
    front: Front,
    rescored: Rescored | None,
    rule: NonInferiority,
    positive: PositiveClass | None,
    *,
    storage: str,
) -> FrontTable:
    """The rows and the notes under them; without `rescored`, validation columns only."""
    teacher = front.teacher
    rows = [
        Row(
            trial=None,
            kind="teacher",
            description="the reference the front was compressed from",
            summary="the reference",
            flops=int(teacher.get("flops", 0)),
            flops_ratio=1.0,
            params=int(teacher.get("params", 0)),
            val_auc=float(teacher.get("val_auc", float("nan"))),
            val_acc=float(teacher.get("val_acc", float("nan"))),
            trial_latency_ms=teacher.get("latency_ms"),
            test=rescored.teacher if rescored else None,
            size_bytes=front.measured.get("teacher_size_bytes"),
            size_ratio=1.0 if front.measured else None,
        )
    ]
    for m in front.members:
        scores = rescored.members.get(m.trial) if rescored else None
        note = rescored.missing.get(m.trial, "not scored") if rescored and not scores else None
        rows.append(
            Row(
                trial=m.trial,
                kind=m.kind,
                description=m.description,
                summary=m.summary,
                flops=m.flops,
                flops_ratio=m.flops_ratio,
                params=m.params,
                val_auc=m.val_auc,
                val_acc=m.val_acc,
                trial_latency_ms=m.extra.get("latency_ms"),
                test=scores,
                verdict=rule.judge(scores) if scores else None,
                flags=scores.flags if scores else [],
                export=export_command(storage, front.study, m.trial),
                note=note,
                precision=m.precision,
                size_bytes=m.extra.get("size_bytes"),
                size_ratio=m.extra.get("size_ratio"),
                trial_latency_ratio=m.extra.get("latency_ratio"),
            )
        )
    binary = rescored is not None and rescored.teacher.sensitivity is not None
    return FrontTable(
        study=front.study,
        rows=rows,
        tested=rescored is not None,
        binary=binary,
        positive=positive if binary else None,
        rule=rule,
        notes=(
            _notes(rescored, rule, positive if binary else None)
            + _deployed_note(front)
            + _refined_note(front)
        ),
        export_hint=export_command(storage, front.study, "N"),
        storage=storage,
        deployed=bool(front.measured),
    )


def _deployed_note(front: Front) -> list[str]:
    if not front.measured:
        return []
    threads = _threads(int(front.measured.get("threads", 1)))
    return [
        "prec: what a member deploys as; an int8 member is its quantized ONNX file, scored "
        "on val (and test) in onnxruntime as that file, and exported as it; size× = its "
        "ONNX file ÷ the teacher's fp32 one; trial lat× = its batch-1 latency ÷ the "
        f"teacher's, measured beside it in onnxruntime on {threads}"
    ]


def _refined_note(front: Front) -> list[str]:
    refined = [f"{m.trial} ({m.refined} epochs)" for m in front.members if m.refined]
    if not refined:
        return []
    return [
        f"refined by `medslim refine`: trial {', '.join(refined)}; scores and exports are "
        "the refined models'"
    ]


def _notes(
    rescored: Rescored | None, rule: NonInferiority, positive: PositiveClass | None
) -> list[str]:
    notes = ["front chosen on the validation split; FLOPs× = the member's FLOPs ÷ the teacher's"]
    if rescored is None:
        return notes
    teacher = rescored.teacher
    resamples = teacher.bootstrap.get("resamples")
    size = f"{teacher.n_test} images, " if teacher.n_test else ""
    notes.append(
        f"test split ({size}scored once after the search): {LEVEL:.0%} stratified bootstrap "
        f"intervals, {resamples} resamples; Δ = member − teacher on the same resamples"
    )
    notes.append(f"verdict: non-inferior when the {rule.describe()}")
    if positive is not None:
        notes.append(
            f"positive class {positive.describe()}: sens/spec are about finding "
            f"'{positive.name}' (threshold maximising Youden's J on val); "
            f"--positive-class '{positive.negative}' to turn it round"
        )
    latency = teacher.latency_measured()
    if latency is not None:
        runtime = " in onnxruntime" if latency.runtime == "onnxruntime" else ""
        notes.append(
            f"lat× = batch-1 latency{runtime} on {_threads(latency.threads)} ÷ the teacher's, "
            "both measured in the same turns after warm-up (median; --wide: ms with the "
            "quartiles)"
        )
        if latency.noisy:
            notes.append(
                f"latency was measured on a busy machine (the teacher's quartiles span "
                f"{latency.low_ms:.3g}–{latency.high_ms:.3g} ms around {latency.median_ms:.3g}):"
                " lat× is only indicative"
            )
    flagged = {f for s in rescored.members.values() for f in s.flags}
    if flagged:
        notes.append(
            "1-class val (*) / 1-class test: the member predicts one class for every image of "
            "that split, so its ACC is the majority rate with a zero-width interval: not a "
            "precise estimate; a member with one class on test gets no verdict"
        )
    notes += margin_advice(teacher, rule, list(rescored.members.values()))
    if rescored.stale:
        notes.append(f"test scores cached by an older medslim, not re-scored: {rescored.stale}")
    return notes


def _threads(count: int) -> str:
    return "one CPU thread" if count == 1 else f"{count} CPU threads"


# --- cells -------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 3, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:{'+' if signed else ''}.{digits}f}"


def _ci(value: float | None, ci: list[float] | None, signed: bool = False) -> str:
    """`0.741 [0.690,0.802]`; signed differences without leading zeros in the interval:
    `-0.078 [-.119,-.038]`."""
    if value is None or ci is None:
        return "—"
    low, high = (_num(v, signed=signed) for v in ci)
    if signed:
        low, high = (v.replace("0.", ".", 1) for v in (low, high))
    return f"{_num(value, signed=signed)} [{low},{high}]"


def _count(n: int) -> str:
    """`307k`, `99.6k`, `1.2M`, `846`."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            value = n / size
            return f"{value:.3g}{unit}" if value < 100 else f"{value:.0f}{unit}"
    return str(n)


def _trial(row: Row) -> str:
    return "" if row.trial is None else str(row.trial)


def _size(count: int | None) -> str:
    """`1.23MB`, `340kB`, `912B`."""
    if count is None:
        return "—"
    for size, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if count >= size:
            return f"{count / size:.3g}{unit}"
    return f"{count}B"


def _verdict(row: Row) -> str:
    """The verdict; `*` marks a member that predicts one class on val (see flags)."""
    if row.trial is None:
        return "reference"
    if row.note is not None:
        return row.note
    if row.verdict is None:
        return ""
    return row.verdict.text + ("*" if "1-class val" in row.flags else "")


def _latency_ms(row: Row) -> str:
    latency = row.latency
    if latency is None:
        return "—"
    return f"{latency.median_ms:.3g} [{latency.low_ms:.3g}–{latency.high_ms:.3g}]"


def _latency_ratio(row: Row) -> str:
    latency = row.latency
    return "—" if latency is None else f"{latency.ratio:.2f}"


def _test(row: Row, attr: str) -> Any:
    return getattr(row.test, attr) if row.test is not None else None


def _delta(row: Row, metric: str) -> str:
    if row.trial is None:
        return ""
    return _ci(_test(row, f"delta_{metric}"), _test(row, f"delta_{metric}_ci"), signed=True)


def _operating(row: Row, target: float) -> str:
    points = _test(row, "operating_points") or []
    point = next((p for p in points if abs(p["specificity_target"] - target) < 1e-9), None)
    if point is None:
        return "—"
    return _ci(point["sensitivity"], point["sensitivity_ci"])


class Column(NamedTuple):
    header: str
    cell: Callable[[Row], str]
    modes: str
    """Where it shows: n (pareto's 100 columns), w (--wide, report), m (dashboard note)."""
    needs: str = ""
    """`test`, `binary`, `deploy` (a study that measured ONNX files), `plain` (one that did
    not) or `val` (only without test scores)."""
    align: str = ">"
    flexible: bool = False
    """Shortened with … when the narrow table would pass 100 columns."""


def _text(attr: str) -> Callable[[Row], str]:
    return lambda row: str(getattr(row, attr))


def _scores(metric: str) -> Callable[[Row], str]:
    """`test_auc` → its value with the interval."""
    return lambda row: _ci(_test(row, metric), _test(row, f"{metric}_ci"))


COLUMNS = [
    # what a reader compares first (the narrow table, and the first screen of the others)
    Column("trial", _trial, "nwm"),
    Column("method", _text("kind"), "nwm", align="<"),
    Column("FLOPs×", lambda r: f"{r.flops_ratio:.3f}", "nwm"),
    Column("prec", _text("precision"), "nwm", needs="deploy", align="<"),
    Column("size×", lambda r: _num(r.size_ratio), "nwm", needs="deploy"),
    Column("params", lambda r: _count(r.params), "wm"),
    Column("params", lambda r: _count(r.params), "n", needs="plain"),
    Column("lat×", _latency_ratio, "nwm", needs="test"),
    Column("val AUC", lambda r: _num(r.val_auc), "nwm"),
    Column("val ACC", lambda r: _num(r.val_acc), "wm"),
    Column("val ACC", lambda r: _num(r.val_acc), "n", needs="val"),
    Column("test AUC", lambda r: _num(_test(r, "test_auc")), "n", needs="test"),
    Column("test AUC [95% CI]", _scores("test_auc"), "wm", needs="test"),
    Column("ΔAUC [95% CI]", lambda r: _delta(r, "auc"), "nwm", needs="test"),
    Column("sens", lambda r: _num(_test(r, "sensitivity")), "nm", needs="binary"),
    Column("spec", lambda r: _num(_test(r, "specificity")), "nm", needs="binary"),
    Column("sens [95% CI]", _scores("sensitivity"), "w", needs="binary"),
    Column("spec [95% CI]", _scores("specificity"), "w", needs="binary"),
    Column("verdict", _verdict, "nwm", needs="test", align="<", flexible=True),
    Column("flags", lambda r: ", ".join(r.flags), "w", needs="test", align="<"),
    Column("what", _text("description"), "wm", align="<"),
    Column("what", _text("summary"), "n", needs="val", align="<", flexible=True),
    # the details (--wide and the report)
    Column("FLOPs", lambda r: _count(r.flops), "w"),
    Column("size", lambda r: _size(r.size_bytes), "w", needs="deploy"),
    Column("trial lat×", lambda r: _num(r.trial_latency_ratio, 2), "w", needs="deploy"),
    Column("ms [quartiles]", _latency_ms, "w", needs="test"),
    Column("trial ms", lambda r: _num(r.trial_latency_ms, 2), "w", needs="val"),
    Column("test ACC [95% CI]", _scores("test_acc"), "w", needs="test"),
    Column("ΔACC [95% CI]", lambda r: _delta(r, "acc"), "w", needs="test"),
    Column("Δsens [95% CI]", lambda r: _delta(r, "sensitivity"), "w", needs="binary"),
    Column("Δspec [95% CI]", lambda r: _delta(r, "specificity"), "w", needs="binary"),
    *(
        Column(f"sens@spec{t:.2f}", partial(_operating, target=t), "w", needs="binary")
        for t in SPECIFICITY_TARGETS
    ),
    Column("ECE [95% CI]", _scores("ece"), "w", needs="test"),
    Column("export", lambda r: r.export or "", "w", align="<"),
]


def columns(table: FrontTable, mode: str) -> list[Column]:
    def applies(column: Column) -> bool:
        if mode not in column.modes:
            return False
        if column.needs == "val":
            return not table.tested
        if column.needs == "test":
            return table.tested
        if column.needs == "binary":
            return table.binary
        if column.needs == "deploy":
            return table.deployed
        if column.needs == "plain":
            return not table.deployed
        return True

    return [c for c in COLUMNS if applies(c)]


# --- renderers ---------------------------------------------------------------------------


def render_text(table: FrontTable, *, wide: bool = False, width: int = WIDTH) -> str:
    """The table with its notes; narrow (fits `width`) unless `wide`."""
    shown = columns(table, "w" if wide else "n")
    cells = [[c.cell(row) for c in shown] for row in table.rows]
    widths = [max([len(c.header)] + [len(line[i]) for line in cells]) for i, c in enumerate(shown)]
    if not wide:
        excess = sum(widths) + len(widths) - 1 - width
        for i, column in enumerate(shown):
            if excess > 0 and column.flexible:
                cut = min(excess, widths[i] - max(len(column.header), 8))
                widths[i] -= cut
                excess -= cut

    def line(values: list[str]) -> str:
        parts = []
        for value, size, column in zip(values, widths, shown, strict=True):
            if len(value) > size:
                value = value[: size - 1] + "…"
            parts.append(f"{value:{column.align}{size}}")
        return " ".join(parts).rstrip()

    lines = [line([c.header for c in shown])]
    lines += [line(values) for values in cells]
    if len(table.rows) == 1:
        lines.append("(no finished trial yet)")
    notes = list(table.notes)
    if not wide:
        notes.append(f"export one: {table.export_hint}")
    lines.append("")
    for note in notes:
        lines += textwrap.wrap(note, width, initial_indent="· ", subsequent_indent="  ")
    return "\n".join(lines)


def render_markdown(table: FrontTable) -> str:
    shown = columns(table, "m")
    lines = [
        "| " + " | ".join(c.header for c in shown) + " |",
        "| " + " | ".join("---" if c.align == "<" else "---:" for c in shown) + " |",
    ]
    for row in table.rows:
        values = [c.cell(row).replace("|", "\\|") for c in shown]
        lines.append("| " + " | ".join(values) + " |")
    lines.append("")
    lines += [f"- {note}" for note in table.notes]
    return "\n".join(lines)


def render_html(table: FrontTable) -> str:
    """A `<table>` inside a scrolling box (the page itself never scrolls sideways)."""
    shown = columns(table, "w")
    head = "".join(f"<th>{html.escape(c.header)}</th>" for c in shown)
    body = []
    for row in table.rows:
        classes = [row.kind] + (["flagged"] if row.flags else [])
        cells = []
        for column in shown:
            text = html.escape(column.cell(row))
            if column.header == "what":  # one line; the whole text on hover
                cells.append(f"<td class='what' title='{text}'>{text}</td>")
            elif column.header == "export":
                cells.append(f"<td class='l'><code>{text}</code></td>" if text else "<td></td>")
            else:
                cells.append(f"<td class='{'l' if column.align == '<' else 'r'}'>{text}</td>")
        body.append(f"<tr class='{' '.join(classes)}'>{''.join(cells)}</tr>")
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in table.notes)
    return (
        "<div class='table-box'><table class='front'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        f"<ul class='notes'>{notes}</ul>"
    )


def front_json(table: FrontTable, front_json: dict[str, Any]) -> dict[str, Any]:
    """`medslim pareto --json`: the front's keys, with each row's test scores, verdict,
    flags, latency and export command added."""
    data = dict(front_json)
    rows = {row.trial: row for row in table.rows}
    teacher = rows[None]
    if teacher.test is not None:
        scores = teacher.test.as_json()
        for key in [k for k in scores if k.startswith("delta_")]:
            scores.pop(key)
        data["teacher"] = {**front_json["teacher"], **scores}
    members = []
    for member in front_json["front"]:
        row = rows[member["trial"]]
        extra: dict[str, Any] = {"export_command": row.export}
        if row.test is not None:
            verdict = row.verdict or Verdict("", False)
            extra.update(row.test.as_json())
            extra.update(
                non_inferior=verdict.non_inferior,
                verdict=verdict.text,
                verdict_failed=verdict.failed,
            )
        elif table.tested:
            extra["test_missing"] = row.note
        members.append({**member, **extra})
    data["front"] = members
    if table.tested:
        teacher_scores = teacher.test
        data["test"] = {
            "split": "test",
            "confidence": LEVEL,
            "resamples": teacher_scores.bootstrap["resamples"] if teacher_scores else None,
            "size": teacher_scores.n_test if teacher_scores else None,
            "non_inferior_on": list(table.rule.metrics),
            "margins": dict(table.rule.margins),
            "margin": table.rule.margin(table.rule.metrics[0]),
            "positive_class": table.positive.as_json() if table.positive else None,
            "specificity_targets": list(SPECIFICITY_TARGETS),
            "resolvable_margin": (
                {m: resolvable_margin(teacher_scores, m) for m in table.rule.metrics}
                if teacher_scores
                else None
            ),
            "notes": table.notes,
        }
    return data
