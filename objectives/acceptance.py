"""Acceptance criteria fixed before the test split is read: `auc=-0.01,sensitivity@spec0.90=
-0.03,ece=+0.02` says how far each metric of a compressed model may fall behind the
teacher's (the paired difference, member − teacher, at 95%).

A regulator treats a compressed model as a change to a device, and asks for the criteria
that will judge it before the evidence is seen (a predetermined change control plan). So a
study stores the criteria it was made with; a verdict names them, and criteria given later
are shown as a post-hoc analysis. Torch-free: the CLI parses a criterion before anything
heavy loads.

A criterion passes when the whole 95% interval of the difference lies on the allowed side of
its bound: above it for metrics where higher is better (AUC, ACC, sensitivity, specificity,
kappa), below it where lower is better (ECE, the flip rate). The sign is always written,
so `auc=-0.01` (lose at most 0.01) cannot be mistaken for `auc=+0.01` (gain 0.01).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from medslim.errors import UsageError
from medslim.kinds import BINARY, MULTI_LABEL, ORDINAL

Direction = Literal["higher", "lower"]
SEVERITIES = (1, 2, 3, 4, 5)
"""Corruption severities of MedMNIST-C (0 is the clean image)."""


@dataclass(frozen=True)
class MetricRule:
    """What a criterion may name: its label, which way is better, and where it applies."""

    label: str
    better: Direction
    tasks: tuple[str, ...] | None = None
    """Tasks it is defined for (None: every task)."""
    points: tuple[str, ...] = ()
    """Operating-point prefixes it accepts after `@` (`spec` in `sensitivity@spec0.90`)."""
    corrupted: bool = False
    """Whether `@severityN` (every corruption at severity N) applies."""
    why: str = ""
    """Why it is not defined for the other tasks."""


METRICS: dict[str, MetricRule] = {
    "auc": MetricRule("AUC", "higher", corrupted=True),
    "acc": MetricRule("ACC", "higher", corrupted=True),
    "sensitivity": MetricRule(
        "sens", "higher", (BINARY,), ("spec",), why="it needs one positive class"
    ),
    "specificity": MetricRule(
        "spec", "higher", (BINARY,), ("sens",), why="it needs one positive class"
    ),
    "ece": MetricRule("ECE", "lower"),
    "kappa": MetricRule(
        "QWK", "higher", (ORDINAL,), why="quadratic-weighted kappa weighs ordered classes"
    ),
    "flips": MetricRule("flips", "lower"),
}
"""Every metric `--accept` knows, by the name a user writes."""
_POINT = re.compile(r"^(spec|sens)(0?\.\d+|1(\.0+)?)$")
_SEVERITY = re.compile(r"^severity([1-5])$")


@dataclass(frozen=True)
class Criterion:
    """One metric's bound: `metric[@point]=bound`."""

    metric: str
    bound: float
    """The worst allowed member − teacher difference (the flip rate itself for `flips`)."""
    point: str | None = None
    """`spec0.90`: sensitivity at the threshold giving specificity 0.90 on val;
    `severity3`: on every corruption at severity 3."""

    @property
    def rule(self) -> MetricRule:
        return METRICS[self.metric]

    @property
    def name(self) -> str:
        """`sensitivity@spec0.90`."""
        return self.metric if self.point is None else f"{self.metric}@{self.point}"

    @property
    def label(self) -> str:
        """`sens@spec0.90`, `AUC@severity3`: short, for tables."""
        return self.rule.label if self.point is None else f"{self.rule.label}@{self.point}"

    @property
    def severity(self) -> int | None:
        """The corruption severity of a robustness criterion (None for clean images)."""
        found = _SEVERITY.match(self.point or "")
        return int(found.group(1)) if found else None

    @property
    def target(self) -> tuple[str, float] | None:
        """The operating point as (`spec`/`sens`, target rate), if any."""
        found = _POINT.match(self.point or "")
        return (found.group(1), float(found.group(2))) if found else None

    def text(self) -> str:
        return f"{self.name}={self.bound:+g}"

    def describe(self) -> str:
        """`ΔAUC > −0.01` or `ΔECE < +0.02` (the whole 95% interval)."""
        sign = ">" if self.rule.better == "higher" else "<"
        what = "flip rate" if self.metric == "flips" else f"Δ{self.label}"
        return f"{what} {sign} {self.bound:+g}".replace("-", "−")

    def passes(self, interval: list[float]) -> bool:
        """The 95% interval lies on the allowed side of the bound."""
        if self.rule.better == "higher":
            return interval[0] > self.bound
        return interval[1] < self.bound


@dataclass(frozen=True)
class AcceptanceCriteria:
    """Every criterion a verdict needs (all must pass)."""

    criteria: tuple[Criterion, ...]

    @classmethod
    def parse(cls, text: str) -> AcceptanceCriteria:
        """`auc=-0.01,sensitivity@spec0.90=-0.03,ece=+0.02`; a user error in one line."""
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            raise UsageError(f"--accept {text!r} names no criterion; e.g. --accept auc=-0.01")
        criteria = tuple(_criterion(part, text) for part in parts)
        names = [c.name for c in criteria]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise UsageError(f"--accept {text!r} names {', '.join(twice)} twice; keep one")
        return cls(criteria)

    def text(self) -> str:
        """The canonical spelling, as stored in a study (equal criteria, equal text)."""
        return ",".join(c.text() for c in self.criteria)

    def same_as(self, other: AcceptanceCriteria | None) -> bool:
        """The same criteria, in any order."""
        return other is not None and sorted(map(Criterion.text, self.criteria)) == sorted(
            map(Criterion.text, other.criteria)
        )

    def describe(self) -> str:
        return "whole 95% interval of " + ", ".join(c.describe() for c in self.criteria)

    @property
    def severities(self) -> tuple[int, ...]:
        """Corruption severities the criteria judge (empty: clean images only)."""
        return tuple(sorted({s for c in self.criteria if (s := c.severity) is not None}))

    def targets(self, kind: str) -> tuple[float, ...]:
        """Operating points the criteria name: `spec` (specificity targets) or `sens`."""
        return tuple(t[1] for c in self.criteria if (t := c.target) is not None and t[0] == kind)

    def check_task(self, task: str | None) -> None:
        """Refuse a criterion the task has no such metric or operating point for."""
        for criterion in self.criteria:
            rule = criterion.rule
            if criterion.target is not None and task == MULTI_LABEL:
                raise UsageError(
                    f"--accept {criterion.text()}: a multi-label task has one operating point "
                    "per label and none for the whole; judge auc, acc, ece or flips instead"
                )
            if rule.tasks is not None and task not in rule.tasks:
                raise UsageError(
                    f"--accept {criterion.text()}: {criterion.metric} needs a "
                    f"{' or '.join(rule.tasks)} task ({rule.why}); this data is {task}: use "
                    f"{', '.join(_fitting(task))}"
                )


def _fitting(task: str | None) -> list[str]:
    return [name for name, rule in METRICS.items() if rule.tasks is None or task in rule.tasks]


def _criterion(part: str, text: str) -> Criterion:
    name, equals, value = part.partition("=")
    name, value = name.strip().lower(), value.strip()
    if not equals or not name or not value:
        raise UsageError(
            f"--accept {text!r}: {part!r} is not METRIC=DIFFERENCE; e.g. "
            "auc=-0.01,sensitivity@spec0.90=-0.03,ece=+0.02"
        )
    metric, _, point = name.partition("@")
    rule = METRICS.get(metric)
    if rule is None:
        raise UsageError(f"--accept {text!r}: unknown metric {metric!r}; use {', '.join(METRICS)}")
    if point:
        _check_point(metric, rule, point, text)
    if value[0] not in "+-":
        raise UsageError(
            f"--accept {text!r}: write the sign of {name}={value}: "
            f"{name}={'-' if rule.better == 'higher' else '+'}{value} allows a loss of at "
            f"most {value}"
        )
    try:
        bound = float(value)
    except ValueError as error:
        raise UsageError(f"--accept {text!r}: {value!r} is not a number") from error
    if not -1.0 < bound < 1.0:
        raise UsageError(f"--accept {text!r}: {name}'s bound must be within (-1, 1)")
    return Criterion(metric, bound, point or None)


def _check_point(metric: str, rule: MetricRule, point: str, text: str) -> None:
    target = _POINT.match(point)
    if target and target.group(1) in rule.points:
        if not 0.0 < float(target.group(2)) < 1.0:
            raise UsageError(f"--accept {text!r}: the operating point {point} must be in (0, 1)")
        return
    if rule.corrupted and _SEVERITY.match(point):
        return
    offered = [f"{metric}@{p}0.90" for p in rule.points]
    if rule.corrupted:
        offered.append(f"{metric}@severity3 (every corruption at severity 3, of 1-5)")
    raise UsageError(
        f"--accept {text!r}: {metric} has no point {point!r}; "
        + (f"use {' or '.join(offered)}" if offered else f"write {metric} alone")
    )
