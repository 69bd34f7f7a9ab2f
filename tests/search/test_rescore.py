"""Test re-scoring: bootstrap intervals, the paired difference, and the cache in the study."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import optuna
import pytest

from medslim.objectives.bootstrap import (
    Scored,
    batched_acc,
    batched_auc,
    metric_samples,
    paired_interval,
    percentile_interval,
    point_estimate,
    stratified_indices,
)
from medslim.objectives.metrics import acc_score, auc_score
from medslim.search.cli import main
from medslim.search.inspection.rescore import TEACHER_KEY, trial_key
from medslim.search.study_files import study_file_id
from medslim.search.study_teacher import TEACHER_FILE

TASKS = ("binary-class", "multi-class", "multi-label, binary-class")


def _synthetic(task: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and informative, tied (rounded) scores."""
    rng = np.random.default_rng(seed)
    if task == "multi-label, binary-class":
        y = rng.integers(0, 2, (n, 3))
        return y, np.clip(0.3 * y + rng.random((n, 3)) * 0.7, 0, 1).round(2)
    classes = 2 if task == "binary-class" else 4
    y = rng.integers(0, classes, (n, 1))
    logits = rng.normal(size=(n, classes)) + 1.5 * np.eye(classes)[y[:, 0]]
    scores = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, scores.round(2)


@pytest.mark.parametrize("task", TASKS)
def test_batched_metrics_equal_the_medmnist_metrics_on_every_resample(task: str) -> None:
    y, scores = _synthetic(task, 300, 0)
    indices = stratified_indices(y, 20, seed=1)
    aucs = metric_samples(batched_auc, y, scores, task, indices)
    accs = metric_samples(batched_acc, y, scores, task, indices)
    for row, auc, acc in zip(indices, aucs, accs, strict=True):
        assert auc == pytest.approx(auc_score(y[row], scores[row], task), abs=1e-12)
        assert acc == pytest.approx(acc_score(y[row], scores[row], task), abs=1e-12)


def test_stratified_resamples_keep_each_class_count_and_are_seeded() -> None:
    y, _ = _synthetic("multi-class", 200, 0)
    indices = stratified_indices(y, 50, seed=3)
    counts = np.bincount(y[:, 0])
    for row in indices:
        assert (np.bincount(y[row, 0], minlength=len(counts)) == counts).all()
    assert (indices == stratified_indices(y, 50, seed=3)).all()
    assert not (indices == stratified_indices(y, 50, seed=4)).all()


@pytest.mark.parametrize("task", TASKS)
def test_intervals_contain_the_estimate_and_shrink_with_more_samples(task: str) -> None:
    widths = []
    for n in (150, 2400):
        y, scores = _synthetic(task, n, 0)
        indices = stratified_indices(y, 1000, seed=0)
        for metric in (batched_auc, batched_acc):
            estimate = point_estimate(metric, y, scores, task)
            ci = percentile_interval(
                estimate, metric_samples(metric, y, scores, task, indices), 0.95
            )
            assert ci.low <= ci.estimate <= ci.high
            widths.append(ci.high - ci.low)
    small_auc, small_acc, large_auc, large_acc = widths
    assert large_auc < small_auc / 2 and large_acc < small_acc / 2  # ~1/sqrt(16) = 1/4


def test_paired_difference_of_a_model_with_itself_is_exactly_zero() -> None:
    y, scores = _synthetic("binary-class", 300, 0)
    indices = stratified_indices(y, 1000, seed=0)
    same = Scored(scores, batched_auc)
    delta = paired_interval(y, same, same, "binary-class", indices)
    assert tuple(delta) == (0.0, 0.0, 0.0)
    noisy = np.clip(scores + np.random.default_rng(1).normal(0, 0.2, scores.shape), 0, 1)
    worse = paired_interval(y, Scored(noisy, batched_auc), same, "binary-class", indices)
    assert worse.high < 0  # the paired interval sees a clearly worse model


def test_pareto_rescores_the_front_once_and_reads_the_cache_after(
    tiny_study_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = shutil.copytree(tiny_study_dir, tmp_path / "copy")
    url = f"sqlite:///{folder / 'm.db'}"
    assert main(["pareto", "--json", "--storage", url, "--resamples", "300"]) == 0
    first = json.loads(capsys.readouterr().out)
    teacher = first["teacher"]
    assert teacher["test_auc_ci"][0] <= teacher["test_auc"] <= teacher["test_auc_ci"][1]
    assert teacher["test_acc_ci"][0] <= teacher["test_acc"] <= teacher["test_acc_ci"][1]
    # The re-scored teacher matches the scores `prepare` stored when it trained it.
    study = optuna.load_study(study_name=first["study"], storage=url)
    assert teacher["test_auc"] == pytest.approx(study.user_attrs["teacher"]["test_auc"])
    assert first["test"]["positive_class"] == {  # the disease class, not label 1
        "index": 0,
        "name": "malignant",
        "negative": "benign",
        "why": "the disease class of breast-cancer",
    }
    assert first["test"]["non_inferior_on"] == ["auc"]
    for member in first["front"]:
        low, high = member["delta_auc_ci"]
        assert low <= member["delta_auc"] <= high
        assert member["non_inferior"] is (low > -0.01)
        assert member["verdict"] == ("non-inferior" if low > -0.01 else "not shown: AUC")
        assert member["test_auc"] - teacher["test_auc"] == pytest.approx(member["delta_auc"])
        assert member["test_acc"] - teacher["test_acc"] == pytest.approx(member["delta_acc"])
        assert 0.0 <= member["sensitivity"] <= 1.0 and 0.0 <= member["specificity"] <= 1.0
        for metric in ("acc", "sensitivity", "specificity"):
            low, high = member[f"delta_{metric}_ci"]
            assert low <= member[f"delta_{metric}"] <= high
        assert [p["specificity_target"] for p in member["operating_points"]] == [0.9, 0.95]
        assert 0.0 <= member["ece"] <= 1.0 and member["flags"] == []
        assert member["latency"]["ratio"] == pytest.approx(
            member["latency"]["median_ms"] / member["latency"]["teacher_ms"]
        )
        assert member["export_command"].endswith(
            f"--trial {member['trial']} --format onnx --out trial-{member['trial']}.onnx"
        )
        assert {"val_auc", "flops_ratio", "choices"} <= set(member)  # existing keys kept
    assert {TEACHER_KEY, *(trial_key(m["trial"]) for m in first["front"])} <= set(study.user_attrs)

    def refuse(*args: object) -> None:
        raise AssertionError("a cached test score was recomputed")

    monkeypatch.setattr("medslim.search.inspection.rescore.model_predictions", refuse)
    assert main(["pareto", "--json", "--storage", url, "--resamples", "300"]) == 0
    assert json.loads(capsys.readouterr().out) == first
    assert main(["pareto", "--storage", url, "--resamples", "300", "--margin", "0.5"]) == 0
    table = capsys.readouterr().out
    assert "front chosen on the validation split" in table
    assert "teacher" in table and "reference" in table
    assert all(len(line) <= 100 for line in table.splitlines())
    # The margin and the verdict's metrics are display choices, applied to cached intervals.
    shown = sum(m["delta_auc_ci"][0] > -0.5 for m in first["front"])
    rows = [line for line in table.splitlines() if re.match(r"\s*\d+ ", line)]
    assert [r.split()[0] for r in rows] == [str(m["trial"]) for m in first["front"]]
    assert sum(r.endswith(" non-inferior") for r in rows) == shown
    assert sum(r.endswith(" not shown: AUC") for r in rows) == len(rows) - shown
    on = ["--non-inferior-on", "auc,specificity", "--margin", "auc=0.5,specificity=0.2"]
    assert main(["pareto", "--json", "--storage", url, "--resamples", "300", *on]) == 0
    for member in json.loads(capsys.readouterr().out)["front"]:
        passes = member["delta_auc_ci"][0] > -0.5 and member["delta_specificity_ci"][0] > -0.2
        assert member["non_inferior"] is passes


def test_a_new_positive_class_or_resample_count_rescores_and_old_entries_still_read(
    tiny_study_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = shutil.copytree(tiny_study_dir, tmp_path / "copy")
    url = f"sqlite:///{folder / 'm.db'}"
    args = ["pareto", "--json", "--storage", url, "--resamples", "200"]
    assert main(args) == 0
    malignant = json.loads(capsys.readouterr().out)  # the disease class, by default
    assert main([*args, "--positive-class", "benign"]) == 0
    benign = json.loads(capsys.readouterr().out)
    assert benign["test"]["positive_class"]["name"] == "benign"
    for one, other in zip(benign["front"], malignant["front"], strict=True):
        # AUC and ACC do not depend on the positive class; the rates swap roles.
        assert one["test_auc"] == pytest.approx(other["test_auc"])
        assert one["test_acc"] == pytest.approx(other["test_acc"])
        assert other["positive"] == 0 and one["positive"] == 1
    study = optuna.load_study(study_name=benign["study"], storage=url)
    assert study.user_attrs[TEACHER_KEY]["positive"] == 1  # the cache follows the settings
    assert main(["pareto", "--storage", url, "--positive-class", "nodule"]) == 2
    assert "'malignant' (0), 'benign' (1)" in capsys.readouterr().err

    # Entries cached by an older medslim (no scoring version) are shown as they are when the
    # teacher can no longer be reopened, and re-scored when it can.
    for key, entry in study.user_attrs.items():
        if key.startswith("test."):
            old = {k: entry[k] for k in LEGACY_FIELDS}
            old["bootstrap"]["resamples"] = 200
            study.set_user_attr(key, old)
    teachers = folder / ".medslim" / "teachers"
    hidden = shutil.move(teachers, folder / "teachers-away")
    stored_teacher = folder / ".medslim" / "artifacts" / str(study_file_id(study, TEACHER_FILE))
    stored_away = shutil.move(stored_teacher, folder / "stored-teacher-away")  # nor the store's
    assert main(args) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [m["test_auc"] for m in shown["front"]] == pytest.approx(
        [m["test_auc"] for m in malignant["front"]]
    )
    assert all(m["delta_acc"] is None for m in shown["front"])
    assert any("older medslim" in note for note in shown["test"]["notes"])
    shutil.move(hidden, teachers)
    shutil.move(stored_away, stored_teacher)
    assert main(args) == 0
    rescored = json.loads(capsys.readouterr().out)["front"]
    assert [_without_latency(m) for m in rescored] == [
        _without_latency(m) for m in malignant["front"]
    ]


def _without_latency(member: dict[str, object]) -> dict[str, object]:
    """A member's JSON less its latency, measured again on every re-scoring."""
    return {k: v for k, v in member.items() if k != "latency"}


LEGACY_FIELDS = (
    "test_auc",
    "test_auc_ci",
    "test_acc",
    "test_acc_ci",
    "delta_auc",
    "delta_auc_ci",
    "sensitivity",
    "specificity",
    "threshold",
    "bootstrap",
)
"""What a cached test score held before medslim judged more than AUC."""
