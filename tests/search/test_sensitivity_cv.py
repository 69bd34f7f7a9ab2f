"""`--cv K`, `medslim sensitivity` and the sensitivity prior, end to end on breast-cancer."""

from __future__ import annotations

import statistics
from pathlib import Path

import optuna
import pytest

from medslim.search.cli import main
from medslim.search.records import trial_record

pytestmark = pytest.mark.e2e

FAST = ["--teacher-epochs", "20", "--epochs", "1", "--no-progress", "--baselines", "2"]


def _trials(storage: str) -> list[optuna.trial.FrozenTrial]:
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage).trials


def test_cv_scores_are_fold_means(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'cv.db'}"
    assert main(["run", "--storage", storage, "--cv", "3", "--trials", "3", *FAST]) == 0
    for trial in _trials(storage):
        folds = trial.user_attrs["cv_fold_auc"]
        assert len(folds) == 3
        assert trial.values[0] == pytest.approx(statistics.mean(folds))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--cv", "1"], "2 or more folds"),
        (["--cv", "3", "--method", "distill"], "pruning trials only"),
        (["--cv", "3", "--kd"], "pruning trials only"),
        (["--sensitivity-drop", "2"], "sensitivity-drop"),
    ],
)
def test_bad_cv_and_sensitivity_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["run", "--storage", f"sqlite:///{tmp_path / 'x.db'}", *FAST, *args]) == 2
    assert message in capsys.readouterr().err


def test_sensitivity_curves_are_kept_and_cap_the_ratios(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"sqlite:///{tmp_path / 's.db'}"
    flags = ["--storage", storage, "--sensitivity-drop", "0", "--allocations", "offsets"]
    flags += ["--trials", "4", *FAST]
    assert main(["sensitivity", *flags]) == 0
    out = capsys.readouterr().out
    assert "drop@0.25" in out and "ceiling" in out
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    curves = study.user_attrs["sensitivity"]
    assert [c["unit"] for c in curves] == study.user_attrs["units"]
    ceilings = {
        c["unit"]: max(
            [0.25, *(r for r, d in zip(c["ratios"], c["auc_drop"], strict=True) if d <= 0)]
        )
        for c in curves
    }
    assert main(["run", *flags]) == 0
    for trial in _trials(storage):
        for unit, ratio in trial_record(trial)["plan"]["ratios"].items():
            assert ratio <= ceilings[unit] + 1e-9
