"""The non-inferiority verdict, its metrics and margins, and the resolvable margin."""

from __future__ import annotations

import numpy as np
import pytest

from medslim.errors import UsageError
from medslim.objectives.bootstrap import stratified_indices
from medslim.search.inspection.scoring import (
    Labels,
    Predictions,
    RescoreSettings,
    score_predictions,
)
from medslim.search.inspection.verdict import (
    NonInferiority,
    margin_advice,
    resolvable_margin,
)


def _labels_and_scores(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A binary task with a teacher of AUC ≈ 0.85."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.7).astype(np.int64)
    logit = 1.5 * (2 * y - 1) + rng.normal(0, 1.3, n)
    p = 1 / (1 + np.exp(-logit))
    return y, np.stack([1 - p, p], axis=1)


def _teacher_scores(n: int) -> object:
    y, scores = _labels_and_scores(n)
    val_y, val_scores = _labels_and_scores(n, seed=1)
    labels = Labels(val_y, y, "binary-class")
    predictions = Predictions(test=scores, val=val_scores)
    indices = stratified_indices(y, 1000, seed=0)
    return score_predictions(predictions, labels, indices, predictions, RescoreSettings())


def test_resolvable_margin_is_half_the_teachers_interval_and_shrinks_with_the_split() -> None:
    small, large = _teacher_scores(156), _teacher_scores(5000)
    low, high = small.test_auc_ci
    assert resolvable_margin(small, "auc") == pytest.approx((high - low) / 2)
    # BreastMNIST's 156 test images cannot resolve 0.01; 5000 images come close.
    assert resolvable_margin(small, "auc") > 0.03
    assert resolvable_margin(large, "auc") < resolvable_margin(small, "auc") / 4
    assert resolvable_margin(small, "sensitivity") > resolvable_margin(large, "sensitivity")
    advice = margin_advice(small, NonInferiority())
    assert len(advice) == 1 and "(156 cases)" in advice[0] and "--margin 0.0" in advice[0]
    assert "cannot tell" in advice[0] and "--cv" in advice[0]
    suggested = float(advice[0].split("--margin ")[1].split()[0])
    assert suggested >= resolvable_margin(small, "auc")
    assert margin_advice(small, NonInferiority.parse("auc", suggested)) == []


def test_the_verdict_needs_every_listed_metric() -> None:
    teacher = _teacher_scores(300)
    # The teacher against itself: every paired difference is exactly zero.
    assert teacher.delta_auc_ci == [0.0, 0.0] and teacher.delta_specificity_ci == [0.0, 0.0]
    rule = NonInferiority.parse("auc,acc,sensitivity,specificity", "0.01")
    assert rule.judge(teacher).text == "non-inferior"
    worse = _with(teacher, delta_specificity_ci=[-0.08, 0.01])
    verdict = rule.judge(worse)
    assert verdict.text == "not shown: spec" and not verdict.non_inferior
    assert (
        NonInferiority.parse("auc,specificity", "auc=0.01,specificity=0.1")
        .judge(worse)
        .non_inferior
    )
    assert NonInferiority().judge(worse).non_inferior  # AUC alone does not see it
    assert rule.judge(_with(teacher, one_class_test=True)).text == "1-class test"
    legacy = _with(teacher, delta_acc_ci=None)
    assert rule.judge(legacy).text == "not scored: ΔACC"


def _with(scores: object, **changes: object) -> object:
    from dataclasses import replace

    return replace(scores, **changes)  # type: ignore[type-var]


@pytest.mark.parametrize(
    "on, margin, message",
    [
        ("auc,f1", "0.01", "unknown metric"),
        ("auc", "lots", "not a number"),
        ("auc", "acc=0.02", "does not list"),
        ("auc", "1.5", "must be in [0, 1)"),
        ("", "0.01", "unknown metric"),
    ],
)
def test_bad_verdict_settings_are_usage_errors(on: str, margin: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace(")", r"\)")):
        NonInferiority.parse(on, margin)


def test_rates_need_a_binary_task() -> None:
    with pytest.raises(UsageError, match="needs a binary task"):
        NonInferiority.parse("auc,sensitivity").check_task("multi-class")
    NonInferiority.parse("auc,acc").check_task("multi-class")


def test_the_one_class_flag_agrees_with_the_sensitivity_and_specificity_shown() -> None:
    """A model whose scores all sit below 0.5 but rank well: one class at 0.5 (ACC), two
    classes at its own threshold, where sens/spec are measured; the flag says which."""
    y, scores = _labels_and_scores(300)
    low = np.stack([1 - scores[:, 1] * 0.4, scores[:, 1] * 0.4], axis=1)  # p < 0.4 always
    val_y, val_scores = _labels_and_scores(300, seed=1)
    val_low = np.stack([1 - val_scores[:, 1] * 0.4, val_scores[:, 1] * 0.4], axis=1)
    labels = Labels(val_y, y, "binary-class")
    indices = stratified_indices(y, 200, seed=0)
    teacher = Predictions(test=scores, val=val_scores)
    member = score_predictions(
        Predictions(test=low, val=val_low), labels, indices, teacher, RescoreSettings()
    )
    assert member.flags == ["ACC: 1-class at 0.5"]
    assert 0.0 < member.sensitivity < 1.0 and 0.0 < member.specificity < 1.0
    assert NonInferiority.parse("auc", "0.05").judge(member).text != "1-class test"
    flat = np.full_like(low, 0.5)  # no threshold separates anything
    degenerate = score_predictions(
        Predictions(test=flat, val=flat), labels, indices, teacher, RescoreSettings()
    )
    assert "1-class test" in degenerate.flags
    assert {degenerate.sensitivity, degenerate.specificity} == {0.0, 1.0}
    assert NonInferiority().judge(degenerate).text == "1-class test"


def test_a_post_hoc_judging_says_so_with_when_the_test_split_was_read() -> None:
    from medslim.objectives.acceptance import AcceptanceCriteria
    from medslim.search.inspection.verdict import judging

    fixed = (AcceptanceCriteria.parse("auc=-0.02,ece=+0.05"), "2025-01-01T00:00:00+00:00")
    read = "2025-01-02T00:00:00+00:00"
    same = judging(fixed, read)
    assert not same.post_hoc and same.rule.criteria.text() == "auc=-0.02,ece=+0.05"
    assert "fixed in advance" in same.notes()[0] and read in same.notes()[0]
    assert not judging(fixed, read, accept="ece=+0.05, auc=-0.02").post_hoc  # same criteria
    other = judging(fixed, read, accept="auc=-0.05")
    assert other.post_hoc and other.notes()[0].startswith("POST-HOC analysis")
    assert "auc=-0.02,ece=+0.05" in other.notes()[0] and read in other.notes()[0]
    assert judging(fixed, read, margin="0.05").post_hoc
    assert judging(None, read, accept="auc=-0.05").post_hoc  # nothing was fixed in advance
    assert judging(None, None).notes() == [] and not judging(None, read, margin="0.02").post_hoc


def test_an_ordinal_table_says_why_it_has_no_rates_and_shows_kappa_and_acc() -> None:
    from medslim.search.inspection.front_table import front_table, render_text
    from medslim.search.inspection.pareto import Front, FrontMember
    from medslim.search.inspection.rescore import Rescored

    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 400)
    logits = rng.normal(size=(400, 5)) + 2.5 * np.eye(5)[y]
    teacher_scores = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    member_scores = np.roll(teacher_scores, 1, axis=0) * 0.3 + teacher_scores * 0.7
    labels = Labels(y[:, None], y[:, None], "ordinal-regression")
    indices = stratified_indices(y[:, None], 200, seed=0)
    teacher = Predictions(test=teacher_scores, val=teacher_scores)
    settings = RescoreSettings()
    scored = {
        name: score_predictions(p, labels, indices, teacher, settings)
        for name, p in (
            ("teacher", teacher),
            ("member", Predictions(member_scores, member_scores)),
        )
    }
    member = scored["member"]
    assert member.kappa is not None and member.delta_kappa_ci is not None
    assert member.sensitivity is None and len(member.per_class or []) == 5
    front = Front(
        study="s",
        objectives=["val_auc", "val_acc", "flops"],
        teacher={"flops": 100, "params": 10, "val_auc": 0.9, "val_acc": 0.7},
        members=[FrontMember(1, 0.85, 0.6, 50, 0.5, 5, "prune", False, kind="pruned")],
        finished=1,
        failed=0,
    )
    table = front_table(
        front,
        Rescored(scored["teacher"], {1: member}, {}),
        NonInferiority.accept("auc=-0.05,kappa=-0.05"),
        None,
        storage="sqlite://",
        task="ordinal-regression",
    )
    text = render_text(table)
    header = text.splitlines()[0]
    assert "ΔQWK [95% CI]" in header and "test ACC" in header and "sens" not in header
    assert "ordinal task: no single positive class" in text and "quadratic-weighted" in text
    assert table.rows[1].verdict is not None
    assert {c["criterion"] for c in table.rows[1].verdict.checks} == {"auc=-0.05", "kappa=-0.05"}
