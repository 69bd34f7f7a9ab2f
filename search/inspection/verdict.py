"""The non-inferiority verdict: on which metrics, at which margin, and whether the test
split is large enough to show it.

A member is *non-inferior* to the teacher when, for every metric the user lists, the lower
bound of the paired 95% interval of its difference to the teacher is above −margin. AUC
alone can hide a loss that matters clinically (a member may keep its AUC while its
specificity falls), so the verdict names its metrics and `--non-inferior-on` picks them.

A test split can only resolve differences about as large as its own uncertainty: the
*resolvable margin* of a metric is the half-width of the teacher's own 95% interval on the
test split. A member as good as the teacher gets a paired interval about that wide, so a
smaller margin cannot be shown on this split whatever the member is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from medslim.errors import UsageError
from medslim.kinds import BINARY
from medslim.search.inspection.rescore import TestScores

METRICS = ("auc", "acc", "sensitivity", "specificity")
BINARY_ONLY = ("sensitivity", "specificity")
LABELS = {"auc": "AUC", "acc": "ACC", "sensitivity": "sens", "specificity": "spec"}
DEFAULT_MARGIN = 0.01


@dataclass(frozen=True)
class Verdict:
    text: str
    """`non-inferior`, `not shown: ACC, spec`, `1-class test`, `not scored: ...`."""
    non_inferior: bool
    failed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class NonInferiority:
    """Which metrics the verdict checks and the margin of each."""

    metrics: tuple[str, ...] = ("auc",)
    margins: tuple[tuple[str, float], ...] = (("auc", DEFAULT_MARGIN),)

    def __post_init__(self) -> None:
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown or not self.metrics:
            raise UsageError(
                f"--non-inferior-on: unknown metric(s) {', '.join(unknown) or '(none)'}; "
                f"use a comma-separated subset of {', '.join(METRICS)}"
            )
        for metric, margin in self.margins:
            if not 0.0 <= margin < 1.0:
                raise UsageError(f"--margin for {metric} must be in [0, 1), got {margin}")

    @classmethod
    def parse(cls, on: str = "auc", margin: str | float = DEFAULT_MARGIN) -> NonInferiority:
        """`on`: `auc,acc,...`; `margin`: one number for every metric, or `auc=0.01,acc=0.03`
        (metrics left out take 0.01)."""
        metrics = tuple(dict.fromkeys(m.strip().lower() for m in on.split(",") if m.strip()))
        margins = dict.fromkeys(metrics, DEFAULT_MARGIN)
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
        return cls(metrics, tuple(margins.items()))

    def margin(self, metric: str) -> float:
        return dict(self.margins)[metric]

    def check_task(self, task: str | None) -> None:
        binary_only = [m for m in self.metrics if m in BINARY_ONLY]
        if binary_only and task != BINARY:
            raise UsageError(
                f"--non-inferior-on {','.join(binary_only)} needs a binary task; this is {task}"
            )

    def describe(self) -> str:
        """`ΔAUC lower bound > −0.01` or `the lower bounds of ΔAUC > −0.01, Δsens > −0.05`."""
        parts = [f"Δ{LABELS[m]} > −{self.margin(m):g}" for m in self.metrics]
        if len(parts) == 1:
            return f"95% lower bound of {parts[0]}"
        return "95% lower bounds of " + ", ".join(parts) + " (all)"

    def judge(self, scores: TestScores) -> Verdict:
        if scores.one_class_test:
            return Verdict("1-class test", False)
        failed, unknown = [], []
        for metric in self.metrics:
            ci = delta_interval(scores, metric)
            if ci is None:
                unknown.append(LABELS[metric])
            elif not ci[0] > -self.margin(metric):
                failed.append(LABELS[metric])
        if unknown:
            return Verdict(f"not scored: Δ{', Δ'.join(unknown)}", False, unknown)
        if failed:
            return Verdict(f"not shown: {', '.join(failed)}", False, failed)
        return Verdict("non-inferior", True)


def _margin_value(value: str, text: str) -> float:
    try:
        return float(value)
    except ValueError as error:
        raise UsageError(
            f"--margin {text!r} is not a number or a list like auc=0.01,acc=0.03"
        ) from error


def delta_interval(scores: TestScores, metric: str) -> list[float] | None:
    ci: list[float] | None = getattr(scores, f"delta_{metric}_ci")
    return ci


def own_interval(scores: TestScores, metric: str) -> list[float] | None:
    ci: list[float] | None = getattr(scores, "test_" + metric + "_ci", None)
    if ci is None and metric in BINARY_ONLY:
        ci = getattr(scores, f"{metric}_ci")
    return ci


def resolvable_margin(teacher: TestScores, metric: str) -> float | None:
    """Half the width of the teacher's own 95% interval of `metric` on the test split."""
    ci = own_interval(teacher, metric)
    return None if ci is None else (ci[1] - ci[0]) / 2


def margin_advice(
    teacher: TestScores, rule: NonInferiority, members: list[TestScores] | None = None
) -> list[str]:
    """One line per verdict metric whose margin is below what the test split resolves
    (with the half-widths this front's paired intervals actually have)."""
    lines = []
    size = f" ({teacher.n_test} images)" if teacher.n_test else ""
    for metric in rule.metrics:
        resolvable = resolvable_margin(teacher, metric)
        margin = rule.margin(metric)
        if resolvable is None or margin >= resolvable:
            continue
        widths = [
            (ci[1] - ci[0]) / 2
            for ci in (delta_interval(m, metric) for m in members or [])
            if ci is not None
        ]
        front = (
            f"; this front's paired Δ{LABELS[metric]} intervals are ±{min(widths):.3f} to "
            f"±{max(widths):.3f}"
            if widths
            else ""
        )
        lines.append(
            f"the test split{size} resolves {LABELS[metric]} differences of about "
            f"±{resolvable:.3f} (half the teacher's own 95% interval){front}; the margin "
            f"{margin:g} is smaller, so 'not shown' here means 'cannot tell', not 'worse'. "
            f"Use --margin {_margin_flag(rule, metric, _round_up(resolvable))} or more, or "
            "judge on more images (a larger test split, or cross-validation: medslim run "
            "--cv K)"
        )
    return lines


def _round_up(value: float) -> float:
    """The next 0.005 step at or above `value`, as a margin a user would type."""
    return float(f"{(int(value * 200 - 1e-9) + 1) / 200:.3f}")


def _margin_flag(rule: NonInferiority, metric: str, value: float) -> str:
    if len(rule.metrics) == 1:
        return f"{value:g}"
    return f"{metric}={value:g}"
