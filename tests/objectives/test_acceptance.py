"""Acceptance criteria: parsed into a canonical form, judged on the allowed side of the
bound, and refused in one line when they cannot apply."""

from __future__ import annotations

import pytest

from medslim.errors import UsageError
from medslim.objectives.acceptance import AcceptanceCriteria, Criterion


def test_criteria_parse_to_one_canonical_text() -> None:
    criteria = AcceptanceCriteria.parse(
        " AUC=-0.01, sensitivity@spec0.90=-0.03 ,ece=+0.02,auc@severity3=-0.05"
    )
    assert criteria.text() == (
        "auc=-0.01,sensitivity@spec0.90=-0.03,ece=+0.02,auc@severity3=-0.05"
    )
    assert AcceptanceCriteria.parse(criteria.text()) == criteria
    assert criteria.targets("spec") == (0.9,) and criteria.targets("sens") == ()
    assert criteria.severities == (3,)
    auc, sens, ece, robust = criteria.criteria
    assert sens.target == ("spec", 0.9) and robust.severity == 3 and auc.severity is None


def test_a_criterion_passes_when_the_whole_interval_is_on_the_allowed_side() -> None:
    auc = Criterion("auc", -0.01)
    assert auc.passes([-0.009, 0.02]) and not auc.passes([-0.011, 0.02])
    ece = Criterion("ece", 0.02)  # lower is better: the upper bound must stay below
    assert ece.passes([-0.1, 0.019]) and not ece.passes([0.0, 0.021])
    flips = Criterion("flips", 0.1)
    assert flips.passes([0.02, 0.08]) and not flips.passes([0.05, 0.12])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("auc", "is not METRIC=DIFFERENCE"),
        ("f1=-0.01", "unknown metric 'f1'"),
        ("auc=0.01", "write the sign of auc=0.01: auc=-0.01"),
        ("ece=0.02", "ece=+0.02"),
        ("auc=-lots", "is not a number"),
        ("auc=-0.01,auc=-0.02", "names auc twice"),
        ("auc@spec0.9=-0.01", "auc has no point 'spec0.9'"),
        ("sensitivity@severity3=-0.1", "sensitivity has no point"),
        ("sensitivity@spec1.5=-0.1", "has no point"),
        ("auc@severity7=-0.1", "auc has no point"),
        ("auc=-1.5", "within (-1, 1)"),
        ("", "names no criterion"),
    ],
)
def test_bad_criteria_are_one_line_usage_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError) as error:
        AcceptanceCriteria.parse(text)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("text", "task", "message"),
    [
        ("sensitivity=-0.05", "multi-class", "needs a binary-class task"),
        ("kappa=-0.05", "binary-class", "needs a ordinal-regression task"),
        ("specificity=-0.05", "multi-label, binary-class", "needs a binary"),
    ],
)
def test_criteria_the_task_has_no_metric_for_are_refused(
    text: str, task: str, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        AcceptanceCriteria.parse(text).check_task(task)
    AcceptanceCriteria.parse("auc=-0.01,acc=-0.02,ece=+0.02,flips=+0.1").check_task(task)


def test_an_operating_point_on_a_multi_label_task_is_refused() -> None:
    criteria = AcceptanceCriteria((Criterion("sensitivity", -0.1, "spec0.90"),))
    with pytest.raises(UsageError, match="multi-label task has one operating point per label"):
        criteria.check_task("multi-label, binary-class")
    AcceptanceCriteria.parse("kappa=-0.05").check_task("ordinal-regression")
