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
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, NamedTuple

from medslim.kinds import BINARY, ORDINAL
from medslim.search.inspection.classes import PositiveClass
from medslim.search.inspection.commands import export_command
from medslim.search.inspection.latency import Latency
from medslim.search.inspection.pareto import Front
from medslim.search.inspection.rescore import Rescored
from medslim.search.inspection.robustness import Robustness
from medslim.search.inspection.scoring import LEVEL, SPECIFICITY_TARGETS, TestScores
from medslim.search.inspection.verdict import (
    Judging,
    NonInferiority,
    Verdict,
    margin_advice,
    resolvable_margin,
    subgroup_verdict,
)

WIDTH = 100
"""`pareto`'s default table fits a terminal this wide."""
MIN_FLEXIBLE = 14
"""Characters of the verdict the narrow table keeps before leaving optional columns out."""
ECE_WORSE = 0.02
"""The narrow table shows ΔECE when a member's ECE is worse than the teacher's by more
than this (or than an ECE criterion allows)."""


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
    corrupted: list[str] | None = None
    """Where the member's AUC falls behind the teacher's by the clean AUC margin or more on
    corrupted images (`gaussian_noise@3`); None: robustness not scored."""
    corrupted_of: int = 0
    """How many corruption × severity sets were scored."""
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
    task: str | None = None
    judging: Judging | None = None
    robustness: Robustness | None = None
    ece_worse: float = ECE_WORSE
    deployed: bool = False
    """Whether the study measured its members as ONNX files (precision and size shown)."""

    @property
    def ece_flagged(self) -> bool:
        """Some member's ECE is worse than the teacher's by more than `ece_worse`."""
        return any(
            r.test is not None
            and r.test.delta_ece is not None
            and r.test.delta_ece > self.ece_worse
            for r in self.rows[1:]
        )


def front_table(
    front: Front,
    rescored: Rescored | None,
    rule: NonInferiority,
    positive: PositiveClass | None,
    *,
    storage: str,
    task: str | None = None,
    judging: Judging | None = None,
    robustness: Robustness | None = None,
) -> FrontTable:
    """The rows and the notes under them; without `rescored`, validation columns only."""
    teacher = front.teacher
    clean_bound = _clean_auc_bound(rule)
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
        robust = robustness.members.get(m.trial) if robustness else None
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
                verdict=rule.judge(scores, robust) if scores else None,
                flags=scores.flags if scores else [],
                export=export_command(storage, front.study, m.trial),
                note=note,
                corrupted=(
                    robustness.failures(m.trial, clean_bound)
                    if robustness and m.trial in robustness.members
                    else None
                ),
                corrupted_of=len(robust.get("results", [])) if robust else 0,
                precision=m.precision,
                size_bytes=m.extra.get("size_bytes"),
                size_ratio=m.extra.get("size_ratio"),
                trial_latency_ratio=m.extra.get("latency_ratio"),
            )
        )
    binary = rescored is not None and rescored.teacher.sensitivity is not None
    ece_bound = next((c.bound for c in rule.criteria.criteria if c.name == "ece"), ECE_WORSE)
    table = FrontTable(
        study=front.study,
        rows=rows,
        tested=rescored is not None,
        binary=binary,
        positive=positive if binary else None,
        rule=rule,
        notes=[],
        export_hint=export_command(storage, front.study, "N"),
        storage=storage,
        task=task,
        judging=judging,
        robustness=robustness,
        ece_worse=ece_bound,
        deployed=bool(front.measured),
    )
    notes = _notes(table, rescored) + _deployed_note(front) + _refined_note(front)
    return replace(table, notes=notes)


PICKED = 3
"""Members a reader would pick, drawn where all would crowd a figure (calibration)."""


def picked_rows(table: FrontTable) -> list[Row]:
    """The members a reader would pick: the non-inferior ones with the fewest FLOPs (up to
    `PICKED`), else the one with the best test AUC (none without test scores)."""
    tested = [row for row in table.rows[1:] if row.test is not None]
    good = [row for row in tested if row.verdict is not None and row.verdict.non_inferior]
    if good:
        return sorted(good, key=lambda row: row.flops)[:PICKED]
    return [max(tested, key=_test_auc)] if tested else []


def _test_auc(row: Row) -> float:
    return row.test.test_auc if row.test is not None else float("-inf")


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


def _clean_auc_bound(rule: NonInferiority) -> float:
    """The bound a member's ΔAUC must stay above on clean images (−0.01 by default)."""
    bounds = [c.bound for c in rule.criteria.criteria if c.name == "auc"]
    return bounds[0] if bounds else -0.01


def _notes(table: FrontTable, rescored: Rescored | None) -> list[str]:
    rule, positive = table.rule, table.positive
    notes = ["front chosen on the validation split; FLOPs× = the member's FLOPs ÷ the teacher's"]
    if rescored is None:
        return notes
    notes[0] += " (val scores: --wide)"
    teacher = rescored.teacher
    resamples = teacher.bootstrap.get("resamples")
    size = f"{teacher.n_test} cases, " if teacher.n_test else ""  # images, volumes or rows
    notes.append(
        f"test split ({size}scored once after the search): {LEVEL:.0%} stratified bootstrap "
        f"intervals, {resamples} resamples; Δ = member − teacher on the same resamples"
    )
    notes.append(f"verdict: non-inferior when the {rule.describe()}")
    if table.judging is not None:
        notes += table.judging.notes()
    if positive is not None:
        notes.append(
            f"positive class {positive.describe()}: sens/spec are about finding "
            f"'{positive.name}' (threshold maximising Youden's J on val); {positive.advice()}"
        )
    notes += _task_notes(table)
    if table.ece_flagged:
        notes.append(
            f"ΔECE: the member's calibration error minus the teacher's (debiased, 10 bins), "
            f"shown because a member's is worse by more than {table.ece_worse:g}; its "
            "probabilities need recalibrating before they are read as risks"
        )
    notes.append(
        "flips: share of test cases the member decides differently from the teacher, each "
        "at its own operating point (--wide: with the 95% interval; the report shows them)"
    )
    if table.robustness is not None:
        notes += _robustness_notes(table)
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


def _task_notes(table: FrontTable) -> list[str]:
    """Why a task shows what it shows (multi-class and ordinal tasks have no sens/spec)."""
    if table.task in (None, BINARY):
        return []
    if table.task == ORDINAL:
        return [
            "ordinal task: no single positive class, so no sens/spec columns (per-class "
            "one-vs-rest rates in --json and the report); QWK = quadratic-weighted Cohen's "
            "kappa of the arg-max grade (disagreements weighted by squared grade distance), "
            "the metric this field reads; ΔQWK paired; test ACC = arg-max accuracy"
        ]
    if table.task == "multi-label, binary-class":
        return [
            "multi-label task: one decision per label at 0.5, so no single sens/spec or "
            "operating point; per-label rates in --json and the report"
        ]
    return [
        "multi-class task: no single positive class, so no sens/spec columns (per-class "
        "one-vs-rest rates in --json and the report); test ACC = arg-max accuracy"
    ]


def _robustness_notes(table: FrontTable) -> list[str]:
    robust = table.robustness
    assert robust is not None
    bound = _clean_auc_bound(table.rule)
    severities = sorted({int(r["severity"]) for r in robust.teacher.get("results", [])})
    notes = [
        f"robust: on {robust.source}, severities {','.join(map(str, severities))}: 'holds' when "
        f"the member's paired ΔAUC lower bound stays above {bound:+g} under every corruption "
        "and severity, else on how many it does not (the report has the table)"
    ]
    if robust.note:
        notes.append(f"corruption set: {robust.note}")
    for name, reason in robust.skipped.items():
        notes.append(f"corruption {name} skipped: {reason}")
    lost = [
        str(r.trial)
        for r in table.rows[1:]
        if r.verdict is not None and r.verdict.non_inferior and r.corrupted
    ]
    if lost:
        notes.append(
            f"non-inferior on clean test images but not on corrupted ones: trial(s) "
            f"{', '.join(lost)}"
        )
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


def _flips(row: Row) -> str:
    return "" if row.trial is None else _num(_test(row, "flip_rate"))


def _flips_ci(row: Row) -> str:
    return "" if row.trial is None else _scores("flip_rate")(row)


def _corrupted(row: Row) -> str:
    """`holds`, or on how many corrupted sets the member falls behind: `7/65`."""
    if row.trial is None or row.corrupted is None:
        return ""
    return "holds" if not row.corrupted else f"{len(row.corrupted)}/{row.corrupted_of}"


class Column(NamedTuple):
    header: str
    cell: Callable[[Row], str]
    modes: str
    """Where it shows: n (pareto's 100 columns), w (--wide; the report's details rows), m
    (dashboard note), h (the report's table head: trial, kind, FLOPs×, test AUC, verdict)."""
    needs: str = ""
    """`test`, `binary`, `nonbinary`, `ordinal`, `ece` (a member's ECE is worse than the
    teacher's), `robust` (robustness scored), `deploy` (a study that measured ONNX files),
    `plain` (one that did not) or `val` (only without test scores)."""
    align: str = ">"
    flexible: bool = False
    """Shortened with … when the narrow table would pass 100 columns."""
    drop: int = 0
    """Narrow table: left out (highest first) when the row would pass 100 columns and the
    verdict would be cut below 14 characters (--wide keeps it)."""


def _text(attr: str) -> Callable[[Row], str]:
    return lambda row: str(getattr(row, attr))


def _scores(metric: str) -> Callable[[Row], str]:
    """`test_auc` → its value with the interval."""
    return lambda row: _ci(_test(row, metric), _test(row, f"{metric}_ci"))


COLUMNS = [
    # what a reader compares first (the narrow table, and the first screen of the others)
    Column("trial", _trial, "nwmh"),
    Column("method", _text("kind"), "nwmh", align="<"),
    Column("FLOPs×", lambda r: f"{r.flops_ratio:.3f}", "nwmh"),
    Column("prec", _text("precision"), "nwm", needs="deploy", align="<"),
    Column("size×", lambda r: _num(r.size_ratio), "nwm", needs="deploy"),
    Column("params", lambda r: _count(r.params), "wm"),
    Column("params", lambda r: _count(r.params), "n", needs="plain"),
    Column("lat×", _latency_ratio, "nwm", needs="test", drop=1),
    Column("val AUC", lambda r: _num(r.val_auc), "wm"),
    Column("val AUC", lambda r: _num(r.val_auc), "nh", needs="val"),
    Column("val ACC", lambda r: _num(r.val_acc), "wm"),
    Column("val ACC", lambda r: _num(r.val_acc), "n", needs="val"),
    Column("test AUC", lambda r: _num(_test(r, "test_auc")), "n", needs="test"),
    Column("test AUC [95% CI]", _scores("test_auc"), "wmh", needs="test"),
    Column("ΔAUC [95% CI]", lambda r: _delta(r, "auc"), "nwm", needs="test"),
    Column("test ACC", lambda r: _num(_test(r, "test_acc")), "n", needs="nonbinary"),
    Column("ΔQWK [95% CI]", lambda r: _delta(r, "kappa"), "nwm", needs="ordinal"),
    Column("sens", lambda r: _num(_test(r, "sensitivity")), "nm", needs="binary"),
    Column("spec", lambda r: _num(_test(r, "specificity")), "nm", needs="binary"),
    Column(
        "ΔECE",
        lambda r: "" if r.trial is None else _num(_test(r, "delta_ece"), 2, True),
        "nm",
        needs="ece",
    ),
    Column("flips", _flips, "nm", needs="test", drop=2),
    Column("robust", _corrupted, "nwm", needs="robust"),
    Column("sens [95% CI]", _scores("sensitivity"), "w", needs="binary"),
    Column("spec [95% CI]", _scores("specificity"), "w", needs="binary"),
    Column("verdict", _verdict, "nwmh", needs="test", align="<", flexible=True),
    Column("flags", lambda r: ", ".join(r.flags), "w", needs="test", align="<"),
    Column("what", _text("description"), "wm", align="<"),
    Column("what", _text("summary"), "nh", needs="val", align="<", flexible=True),
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
    Column("QWK [95% CI]", _scores("kappa"), "w", needs="ordinal"),
    Column("ECE [95% CI]", _scores("ece"), "w", needs="test"),
    Column("ΔECE [95% CI]", lambda r: _delta(r, "ece"), "w", needs="test"),
    Column("flips [95% CI]", _flips_ci, "w", needs="test"),
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
        needs = {
            "nonbinary": table.tested and not table.binary,
            "ordinal": table.tested and table.task == ORDINAL,
            "ece": table.tested and table.ece_flagged,
            "robust": table.robustness is not None,
            "deploy": table.deployed,
            "plain": not table.deployed,
        }
        return needs.get(column.needs, True)

    return [c for c in COLUMNS if applies(c)]


# --- renderers ---------------------------------------------------------------------------


def render_text(table: FrontTable, *, wide: bool = False, width: int = WIDTH) -> str:
    """The table with its notes; narrow (fits `width`) unless `wide`."""
    shown = columns(table, "w" if wide else "n")

    def measure(shown: list[Column]) -> tuple[list[list[str]], list[int]]:
        cells = [[c.cell(row) for c in shown] for row in table.rows]
        sizes = [len(c.header) for c in shown]
        return cells, [max([s] + [len(line[i]) for line in cells]) for i, s in enumerate(sizes)]

    cells, widths = measure(shown)
    for column in sorted((c for c in shown if c.drop), key=lambda c: -c.drop):
        flexible = sum(
            max(0, w - MIN_FLEXIBLE) for w, c in zip(widths, shown, strict=True) if c.flexible
        )
        if wide or sum(widths) + len(widths) - 1 - width <= flexible:
            break
        shown = [c for c in shown if c is not column]
        cells, widths = measure(shown)
    if not wide:
        excess = sum(widths) + len(widths) - 1 - width
        for i, column in enumerate(shown):
            if excess > 0 and column.flexible:
                cut = min(excess, widths[i] - max(len(column.header), 8))
                cut = max(cut, 0)
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
    """A narrow `<table>` that fits an 800 px window (trial, kind, FLOPs×, test AUC with its
    interval, verdict), each row followed by a details row folding in the other columns;
    inside a scrolling box all the same (the page itself never scrolls sideways)."""
    head = columns(table, "h")
    shown = {c.header for c in head}
    rest = [c for c in columns(table, "w") if c.header not in shown]
    header = "".join(f"<th>{html.escape(c.header)}</th>" for c in head)
    body = []
    for row in table.rows:
        classes = [row.kind] + (["flagged"] if row.flags else [])
        cells = "".join(
            f"<td class='{'l' if c.align == '<' else 'r'}'>{html.escape(c.cell(row))}</td>"
            for c in head
        )
        body.append(f"<tr class='{' '.join(classes)}'>{cells}</tr>")
        body.append(_details_row(row, rest, len(head)))
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in table.notes)
    return (
        "<div class='table-box'><table class='front'>"
        f"<thead><tr>{header}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        f"<ul class='notes'>{notes}</ul>"
    )


def _details_row(row: Row, rest: list[Column], span: int) -> str:
    """The row's other columns as `name value` pairs, folded until opened."""
    items = []
    for column in rest:
        value = column.cell(row)
        if not value or value == "—":
            continue
        text = (
            f"<code>{html.escape(value)}</code>"
            if column.header == "export"
            else html.escape(value)
        )
        items.append(f"<span><b>{html.escape(column.header)}</b> {text}</span>")
    who = "teacher" if row.trial is None else f"trial {row.trial}"
    return (
        f"<tr class='details'><td colspan='{span}'><details><summary>{who}: "
        f"{html.escape(row.summary)}</summary><div class='cells'>{''.join(items)}</div>"
        "</details></td></tr>"
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
                verdict_checks=verdict.checks,
            )
            if row.test.subgroups:
                extra["subgroups"] = [
                    {**entry, "verdict": subgroup_verdict(entry, table.rule)}
                    for entry in row.test.subgroups
                ]
        if row.corrupted is not None and table.robustness is not None and row.trial is not None:
            extra["robustness"] = table.robustness.members[row.trial]["results"]
            extra["corrupted_failures"] = row.corrupted
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
            "task": table.task,
            "criteria": table.judging.as_json() if table.judging else None,
        }
    if table.robustness is not None:
        robust = table.robustness
        data["robustness"] = {
            "corruption_set": robust.corruption_set,
            "source": robust.source,
            "note": robust.note,
            "skipped": robust.skipped,
            "teacher": robust.teacher.get("results", []),
        }
    return data
