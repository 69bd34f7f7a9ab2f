"""The verdict: does a member meet the acceptance criteria, and can the test split show it?

A member is *non-inferior* (meets the criteria) when, for every criterion, the paired 95%
interval of its difference to the teacher lies on the allowed side of the bound
(`objectives.acceptance`). The criteria come from the study (fixed by `run --accept`
before the test split was read), from `--accept` of this command (post hoc when they differ
from the fixed ones), or from the older `--non-inferior-on`/`--margin` flags; without any,
AUC may lose at most 0.01, as before. AUC alone can hide a loss that matters clinically (a
member may keep its AUC while its specificity or its calibration falls).

A test split can only resolve differences about as large as its own uncertainty: the
*resolvable margin* of a metric is the half-width of the teacher's own 95% interval on the
test split (or within a subgroup). A member as good as the teacher gets a paired interval
about that wide, so a smaller margin cannot be shown there whatever the member is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medslim.errors import UsageError
from medslim.kinds import BINARY
from medslim.objectives.acceptance import AcceptanceCriteria, Criterion
from medslim.search.inspection.scoring import TestScores

METRICS = ("auc", "acc", "sensitivity", "specificity")
"""What `--non-inferior-on` accepts (`--accept` knows more)."""
BINARY_ONLY = ("sensitivity", "specificity")
LABELS = {"auc": "AUC", "acc": "ACC", "sensitivity": "sens", "specificity": "spec"}
DEFAULT_MARGIN = 0.01
DEFAULT_CRITERIA = AcceptanceCriteria((Criterion("auc", -DEFAULT_MARGIN),))
OWN_INTERVALS = ("auc", "acc", "sensitivity", "specificity", "kappa")
"""Metrics whose resolvable margin the teacher's own interval gives."""


@dataclass(frozen=True)
class Verdict:
    text: str
    """`non-inferior`, `not shown: ACC, spec`, `1-class test`, `not scored: ...`."""
    non_inferior: bool
    failed: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    """Per criterion: its name, the interval it was judged on, whether it passed."""


@dataclass(frozen=True)
class NonInferiority:
    """The criteria a verdict checks (all must pass), and how they were given."""

    criteria: AcceptanceCriteria = DEFAULT_CRITERIA
    flag: str = "margin"
    """`margin` (`--non-inferior-on`/`--margin`) or `accept` (`--accept` or the study's)."""

    @classmethod
    def parse(cls, on: str = "auc", margin: str | float = DEFAULT_MARGIN) -> NonInferiority:
        """`on`: `auc,acc,...`; `margin`: one number for every metric, or `auc=0.01,acc=0.03`
        (metrics left out take 0.01)."""
        metrics = tuple(dict.fromkeys(m.strip().lower() for m in on.split(",") if m.strip()))
        unknown = [m for m in metrics if m not in METRICS]
        if unknown or not metrics:
            raise UsageError(
                f"--non-inferior-on: unknown metric(s) {', '.join(unknown) or '(none)'}; "
                f"use a comma-separated subset of {', '.join(METRICS)}"
            )
        margins: dict[str, float] = dict.fromkeys(metrics, DEFAULT_MARGIN)
        text = str(margin).strip()
        if "=" not in text:
            margins = dict.fromkeys(metrics, _margin_value(text, text))
        for part in text.split(",") if "=" in text else []:
            name, _, value = part.partition("=")
            name = name.strip().lower()
            if name not in metrics:
                raise UsageError(
                    f"--margin names {name!r}, which --non-inferior-on "
                    f"({','.join(metrics)}) does not list"
                )
            margins[name] = _margin_value(value, text)
        for metric, allowed in margins.items():
            if not 0.0 <= allowed < 1.0:
                raise UsageError(f"--margin for {metric} must be in [0, 1), got {allowed}")
        criteria = tuple(Criterion(m, -v) for m, v in margins.items())
        return cls(AcceptanceCriteria(criteria))

    @classmethod
    def accept(cls, text: str) -> NonInferiority:
        """From `--accept auc=-0.01,ece=+0.02` (or a study's stored criteria)."""
        return cls(AcceptanceCriteria.parse(text), "accept")

    @property
    def metrics(self) -> tuple[str, ...]:
        """The criteria by name (`auc`, `sensitivity@spec0.90`)."""
        return tuple(c.name for c in self.criteria.criteria)

    @property
    def margins(self) -> tuple[tuple[str, float], ...]:
        return tuple((c.name, -c.bound) for c in self.criteria.criteria)

    def margin(self, metric: str) -> float:
        """How much `metric` may lose (the bound with its sign turned)."""
        return dict(self.margins)[metric]

    def check_task(self, task: str | None) -> None:
        if self.flag == "accept":
            self.criteria.check_task(task)
            return
        binary_only = [m for m in self.metrics if m in BINARY_ONLY]
        if binary_only and task != BINARY:
            raise UsageError(
                f"--non-inferior-on {','.join(binary_only)} needs a binary task (one positive "
                f"class); this is {task}: use auc or acc, or --accept with kappa (ordinal)"
            )

    def describe(self) -> str:
        """`95% lower bound of ΔAUC > −0.01` or `the whole 95% interval of ΔAUC > −0.01,
        ΔECE < +0.02 (all)`."""
        if self.flag == "margin":
            parts = [f"Δ{LABELS[m]} > −{self.margin(m):g}" for m in self.metrics]
            if len(parts) == 1:
                return f"95% lower bound of {parts[0]}"
            return "95% lower bounds of " + ", ".join(parts) + " (all)"
        many = len(self.criteria.criteria) > 1
        return self.criteria.describe() + (" (all)" if many else "")

    def judge(self, scores: TestScores, robust: dict[str, Any] | None = None) -> Verdict:
        """The verdict of one member; `robust` is its robustness entry (for `@severityN`)."""
        if scores.one_class_test:
            return Verdict("1-class test", False)
        failed, unknown, checks = [], [], []
        for criterion in self.criteria.criteria:
            found = criterion_intervals(criterion, scores, robust)
            if not found:
                unknown.append(criterion.label)
                continue
            bad = [where for where, ci in found.items() if not criterion.passes(ci)]
            checks.append({"criterion": criterion.text(), "intervals": found, "passed": not bad})
            if bad:
                where = f" ({', '.join(bad)})" if bad != [""] else ""
                failed.append(criterion.label + where)
        if unknown:
            return Verdict(f"not scored: Δ{', Δ'.join(unknown)}", False, unknown, checks)
        if failed:
            return Verdict(f"not shown: {', '.join(failed)}", False, failed, checks)
        return Verdict("non-inferior", True, [], checks)


def criterion_intervals(
    criterion: Criterion, scores: TestScores, robust: dict[str, Any] | None = None
) -> dict[str, list[float]]:
    """The interval(s) a criterion is judged on: one (key `""`) on clean images, one per
    corruption (keyed by its name) for `@severityN`; empty when not scored."""
    severity = criterion.severity
    if severity is not None:
        rows = (robust or {}).get("results", [])
        return {
            r["corruption"]: r[f"delta_{criterion.metric}_ci"]
            for r in rows
            if r["severity"] == severity and r.get(f"delta_{criterion.metric}_ci")
        }
    if criterion.metric == "flips":
        ci = scores.flip_rate_ci
    elif criterion.point is not None:
        point = scores.point(criterion.point)
        ci = point.get(f"delta_{criterion.metric}_ci") if point else None
    else:
        ci = getattr(scores, f"delta_{criterion.metric}_ci", None)
    return {"": list(ci)} if ci is not None else {}


def _margin_value(value: str, text: str) -> float:
    try:
        return float(value)
    except ValueError as error:
        raise UsageError(
            f"--margin {text!r} is not a number or a list like auc=0.01,acc=0.03"
        ) from error


def delta_interval(scores: TestScores, metric: str) -> list[float] | None:
    ci: list[float] | None = getattr(scores, f"delta_{metric}_ci", None)
    return ci


def own_interval(scores: TestScores, metric: str) -> list[float] | None:
    ci: list[float] | None = getattr(scores, "test_" + metric + "_ci", None)
    if ci is None:
        ci = getattr(scores, f"{metric}_ci", None)
    return ci


def resolvable_margin(teacher: TestScores, metric: str) -> float | None:
    """Half the width of the teacher's own 95% interval of `metric` on the test split."""
    ci = own_interval(teacher, metric) if metric in OWN_INTERVALS else None
    return None if ci is None else (ci[1] - ci[0]) / 2


def margin_advice(
    teacher: TestScores, rule: NonInferiority, members: list[TestScores] | None = None
) -> list[str]:
    """One line per criterion whose margin is below what the test split resolves (with the
    half-widths this front's paired intervals actually have)."""
    lines = []
    size = f" ({teacher.n_test} cases)" if teacher.n_test else ""  # images, volumes or rows
    for criterion in rule.criteria.criteria:
        if criterion.point is not None or criterion.rule.better != "higher":
            continue
        metric, label = criterion.metric, criterion.label
        resolvable = resolvable_margin(teacher, metric)
        margin = -criterion.bound
        if resolvable is None or margin >= resolvable:
            continue
        widths = [
            (ci[1] - ci[0]) / 2
            for ci in (delta_interval(m, metric) for m in members or [])
            if ci is not None
        ]
        front = (
            f"; this front's paired Δ{label} intervals are ±{min(widths):.3f} to "
            f"±{max(widths):.3f}"
            if widths
            else ""
        )
        lines.append(
            f"the test split{size} resolves {label} differences of about "
            f"±{resolvable:.3f} (half the teacher's own 95% interval){front}; the margin "
            f"{margin:g} is smaller, so 'not shown' here means 'cannot tell', not 'worse'. "
            f"{_wider(rule, metric, _round_up(resolvable))}, or judge on more cases (a larger "
            "test split, or cross-validation: medslim run --cv K)"
        )
    return lines


def _round_up(value: float) -> float:
    """The next 0.005 step at or above `value`, as a margin a user would type."""
    return float(f"{(int(value * 200 - 1e-9) + 1) / 200:.3f}")


def _wider(rule: NonInferiority, metric: str, value: float) -> str:
    if rule.flag == "accept":
        return f"A wider bound is post hoc: --accept {metric}=-{value:g}"
    if len(rule.metrics) == 1:
        return f"Use --margin {value:g} or more"
    return f"Use --margin {metric}={value:g} or more"


def subgroup_verdict(entry: dict[str, Any], rule: NonInferiority) -> str:
    """The verdict within one subgroup, on the criteria it has intervals for; a subgroup
    whose teacher interval is wider than a margin says so instead."""
    if "note" in entry:
        return entry["note"]
    failed, unresolved = [], []
    for criterion in rule.criteria.criteria:
        metric = criterion.metric
        ci = entry.get(f"delta_{metric}_ci") if criterion.point is None else None
        own = entry.get(f"teacher_{metric}_ci")
        if ci is None or own is None or criterion.severity is not None:
            continue
        half = (own[1] - own[0]) / 2
        if criterion.rule.better == "higher" and -criterion.bound < half:
            unresolved.append(f"{criterion.label} ±{-criterion.bound:g} (needs ±{half:.3f})")
        elif not criterion.passes(ci):
            failed.append(criterion.label)
    if unresolved:
        return f"too small to resolve {', '.join(unresolved)} (n={entry['n']})"
    return f"not shown: {', '.join(failed)}" if failed else "non-inferior"


@dataclass(frozen=True)
class Judging:
    """Which criteria judge the front, and whether they were fixed before the test split
    was read (a verdict under any others is a post-hoc analysis)."""

    rule: NonInferiority
    fixed: str | None = None
    """The criteria the study fixed when it was made (`run --accept`)."""
    fixed_at: str | None = None
    post_hoc: bool = False
    first_read: str | None = None
    """When the test split was first read for the front (None: not yet)."""

    def notes(self) -> list[str]:
        read = self.first_read or "now, by this command"
        if self.fixed is not None and not self.post_hoc:
            return [
                f"criteria fixed in advance: {self.fixed}, stored when the study was made "
                f"({self.fixed_at}); its test split was first read {read}"
            ]
        if not self.post_hoc:
            return []
        if self.fixed is not None:
            return [
                f"POST-HOC analysis: these criteria ({self.rule.criteria.text()}) differ from "
                f"those the study fixed in advance ({self.fixed}, {self.fixed_at}); the test "
                f"split was first read {read}"
            ]
        return [
            f"POST-HOC analysis: the study was made without --accept, so no criteria were "
            f"fixed before its test split was first read ({read})"
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "criteria": self.rule.criteria.text(),
            "fixed": self.fixed,
            "fixed_at": self.fixed_at,
            "post_hoc": self.post_hoc,
            "test_first_read": self.first_read,
        }


def judging(
    fixed: tuple[AcceptanceCriteria, str] | None,
    first_read: str | None,
    *,
    accept: str | None = None,
    on: str | None = None,
    margin: str | float | None = None,
) -> Judging:
    """The criteria a command judges by: its `--accept`, else its `--non-inferior-on` /
    `--margin`, else those the study fixed, else ΔAUC > −0.01."""
    fixed_text = fixed[0].text() if fixed else None
    fixed_at = fixed[1] if fixed else None
    stored = fixed[0] if fixed else None
    if accept is not None:
        rule = NonInferiority.accept(accept)
        post_hoc = not rule.criteria.same_as(stored)
    elif on is not None or margin is not None:
        rule = NonInferiority.parse(on or "auc", DEFAULT_MARGIN if margin is None else margin)
        post_hoc = stored is not None and not rule.criteria.same_as(stored)
    elif fixed is not None:
        rule, post_hoc = NonInferiority(fixed[0], "accept"), False
    else:
        rule, post_hoc = NonInferiority(), False
    return Judging(rule, fixed_text, fixed_at, post_hoc, first_read)
