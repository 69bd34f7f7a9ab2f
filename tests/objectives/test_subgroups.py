"""Subgroups: CSV manifest columns become the test split's groups (in its order), bad
columns are refused in one line, and scores within each subgroup are paired."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medslim.errors import DataError
from medslim.objectives.data import load_dataset
from medslim.objectives.subgroups import subgroup_scores


def test_subgroup_columns_are_not_labels_and_follow_the_test_split(
    tmp_path: Path, images: Any
) -> None:
    path = images.manifest(tmp_path, with_split=True, groups=True)
    data = load_dataset(str(path), size=16, data_dir=tmp_path, subgroups=("sex", "site"))
    assert data.task == "binary-class" and data.n_outputs == 2  # sex/site are not labels
    # Rows 32..39 are the test split (in manifest order): sex F for i % 4 < 2, site A for
    # i % 3 == 0.
    assert data.test_groups["sex"].tolist() == ["F", "F", "M", "M", "F", "F", "M", "M"]
    assert data.test_groups["site"].tolist() == ["B", "A", "B", "B", "A", "B", "B", "A"]
    assert data.test.y.tolist() == [0, 1, 0, 1, 0, 1, 0, 1]


def _rewrite(path: Path, change: dict[str, str]) -> None:
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row.update(change)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.parametrize(
    ("subgroups", "message"),
    [
        (("ward",), "no column 'ward' for --subgroups"),
        (("split",), "`split` is the manifest's split column, not a subgroup"),
        (("path",), "`path` is the manifest's path column"),
        (("label", "sex", "site", "unit"), "leaves"),
        (("sex", "site", "unit"), "has one value (ICU) on the test split"),
        (("sex",), "columns that name subgroups (sex, site) go in --subgroups"),
    ],
)
def test_bad_subgroup_columns_are_refused_in_one_line(
    tmp_path: Path, images: Any, subgroups: tuple[str, ...], message: str
) -> None:
    path = images.manifest(tmp_path, with_split=True, groups=True)
    _rewrite(path, {"unit": "ICU"})
    with pytest.raises(DataError) as error:
        load_dataset(str(path), size=16, data_dir=tmp_path, subgroups=subgroups)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_subgroups_need_a_csv_manifest(tmp_path: Path, images: Any) -> None:
    root = images.class_folder(tmp_path / "x", per_class=8)
    with pytest.raises(DataError, match="come from the columns of a CSV manifest"):
        load_dataset(str(root), size=16, data_dir=tmp_path, subgroups=("sex",))


def test_scores_within_subgroups_are_paired_and_a_one_class_subgroup_says_so() -> None:
    rng = np.random.default_rng(0)
    n = 400
    y = (np.arange(n) % 2).astype(np.int64)
    group = np.where(np.arange(n) < 300, "A", "B")
    group[-20:] = "C"  # rows 380..399: alternate labels, but make C one class below
    y[-20:] = 1
    p = np.clip(0.5 + 0.35 * (2 * y - 1) + rng.normal(0, 0.25, n), 0.01, 0.99)
    teacher = np.stack([1 - p, p], 1)
    member = teacher.copy()
    worse = group == "B"
    noisy = np.clip(0.5 + rng.normal(0, 0.25, int(worse.sum())), 0.01, 0.99)  # coin flips
    member[worse] = np.stack([1 - noisy, noisy], 1)

    def scored() -> list[dict[str, Any]]:
        return subgroup_scores(
            y,
            {"site": group},
            (member, teacher),
            "binary-class",
            thresholds=(0.5, 0.5),
            resamples=300,
            seed=0,
        )

    entries = scored()
    by_value = {e["value"]: e for e in entries}
    assert [by_value[v]["n"] for v in "ABC"] == [300, 80, 20]
    assert by_value["A"]["delta_auc_ci"] == [0.0, 0.0]  # the same model within A
    assert by_value["A"]["auc"] == pytest.approx(by_value["A"]["teacher_auc"])
    assert by_value["B"]["delta_auc_ci"][1] < 0  # the member lost B
    assert "sensitivity_ci" in by_value["B"] and "delta_specificity" in by_value["B"]
    assert by_value["C"]["note"].startswith("one class only") and "auc" not in by_value["C"]
    assert by_value["C"]["n_positive"] == 20
    assert scored() == entries  # seeded
