"""A study of FLOPs targets: trials land where they aimed, keep their screened candidates,
refuse what cannot be served, and a refined member is shown and exported as refined."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState

from medslim.search.cli import main
from medslim.search.config import ResolvedConfig, StudyConfig, follow_study
from medslim.search.records import trial_record
from medslim.search.refined import refined_record
from medslim.search.stored import open_study
from medslim.search.study_files import study_file_id
from medslim.search.study_teacher import TEACHER_FILE
from medslim.search.trial_models import ModelBundle, load_screening
from medslim.spaces.sparsity import TARGET_PARAM


def test_trials_land_on_their_target_and_keep_their_candidates(tiny_study_dir: Path) -> None:
    ref = open_study(f"sqlite:///{tiny_study_dir / 'm.db'}")
    units = ref.study.user_attrs["units"]
    searched = 0
    for trial in ref.study.get_trials(states=(TrialState.COMPLETE,)):
        record = trial_record(trial)
        screening = load_screening(ref, trial)
        if trial.user_attrs.get("baseline") == "uniform":
            assert record["allocation"] == "uniform" and screening is None
            assert set(record["plan"]["ratios"].values()) == {trial.user_attrs["baseline_ratio"]}
            continue
        searched += 1
        assert record["flops_ratio"] == pytest.approx(trial.params[TARGET_PARAM], rel=0.02)
        assert record["allocation"] == "screened"
        assert screening is not None and len(screening["proxy"]) == record["candidates"] >= 4
        chosen = screening["chosen"]
        assert screening["proxy"][chosen] == max(screening["proxy"]) == record["fidelity"]
        ratios = dict(zip(units, screening["ratios"][chosen], strict=True))
        assert ratios == pytest.approx(record["plan"]["ratios"], abs=1e-3)
    assert searched >= 1


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--candidates", "0"], "--candidates must be 1 or more"),
        (["--allocations", "uniform,nope"], "unknown allocation(s) nope"),
        (["--allocations", "offsets,free"], "cannot be mixed"),
        (["--allocations", "global", "--pruning", "unstructured"], "needs structured pruning"),
        (["--allocations", "free", "--sensitivity-drop", "0.01"], "--allocations sensitivity"),
        (["--refine", "-1"], "--refine must be 0 or more"),
    ],
)
def test_bad_allocation_flags_exit_2_and_write_nothing(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    code = main(["run", "--storage", url, "--teacher-epochs", "1", "--no-progress", *flags])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    if (tmp_path / "m.db").exists():  # checked after the teacher: the study was never made
        assert optuna.get_all_study_names(url) == []


def test_a_resumed_study_keeps_its_sampler_allocations_and_candidates() -> None:
    stored = StudyConfig(sampler="random", allocations=("uniform",), candidates=3).stored()
    defaults = StudyConfig()  # the flags left at their defaults
    resolved = ResolvedConfig(**RESOLVED, sampler="tpe", allocations=("screened",))
    kept = follow_study(defaults, resolved, stored)
    assert (kept.sampler, kept.allocations, kept.candidates) == ("random", ("uniform",), 3)
    older = {k: v for k, v in stored.items() if k not in ("allocations", "candidates")}
    kept = follow_study(defaults, resolved, older)
    assert (kept.allocations, kept.candidates) == (("offsets",), 1), "as they ran then"
    assert follow_study(defaults, resolved, None) == resolved, "a new study: the defaults"
    asked = StudyConfig(sampler="tpe")
    assert follow_study(asked, resolved, stored).sampler == "tpe", "a flag given wins"


RESOLVED: dict[str, Any] = {
    "model": "mlp",
    "kd": False,
    "epochs": 1,
    "teacher_epochs": 1,
    "student_epochs": 1,
    "trials": 1,
    "study": "s",
    "round_to": 1,
}


def test_refine_stores_a_second_model_that_pareto_and_export_use(
    tiny_study_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = shutil.copytree(tiny_study_dir, tmp_path / "copy")
    url = f"sqlite:///{folder / 'm.db'}"
    assert main(["pareto", "--json", "--storage", url]) == 0
    before = json.loads(capsys.readouterr().out)
    member = before["front"][-1]
    number = member["trial"]
    assert main(["refine", "--storage", url, "--trial", str(number), "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert f"refined trial {number} for 2 epochs" in out
    study = optuna.load_study(study_name=before["study"], storage=url)
    record = refined_record(study, number)
    assert record is not None and record["epochs"] == 2 and 1 <= record["best_epoch"] <= 2
    assert main(["pareto", "--json", "--storage", url]) == 0
    after = json.loads(capsys.readouterr().out)
    (shown,) = [m for m in after["front"] if m["trial"] == number]
    assert shown["refined_epochs"] == 2 and shown["val_auc"] == pytest.approx(record["val_auc"])
    assert "refined 2 ep" in shown["description"]
    refreshed = optuna.load_study(study_name=before["study"], storage=url).user_attrs
    assert f"test.refined.{number}" in refreshed and f"test.trial.{number}" in refreshed
    for flags, name in (([], "refined.pt"), (["--original"], "original.pt")):
        out_file = tmp_path / name
        export = ["export", "--storage", url, "--trial", str(number), "--out", str(out_file)]
        assert main([*export, *flags]) == 0
    refined = ModelBundle.load(tmp_path / "refined.pt").state_dict
    original = ModelBundle.load(tmp_path / "original.pt").state_dict
    assert any(not torch.equal(refined[k], original[k]) for k in refined)
    assert "refined for 2 epochs" in capsys.readouterr().out


def test_refine_refuses_what_it_cannot_refine(
    tiny_study_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = shutil.copytree(tiny_study_dir, tmp_path / "copy")
    url = f"sqlite:///{folder / 'm.db'}"
    assert main(["refine", "--storage", url, "--trial", "99"]) == 2
    assert "no finished trial 99" in capsys.readouterr().err
    assert main(["refine", "--storage", url, "--trial", "3", "--epochs", "0"]) == 2
    assert "--epochs must be 1 or more" in capsys.readouterr().err
    study = optuna.load_study(study_name=optuna.get_all_study_names(url)[0], storage=url)
    shutil.rmtree(folder / ".medslim" / "teachers")  # no teacher here, nor in the store
    (folder / ".medslim" / "artifacts" / str(study_file_id(study, TEACHER_FILE))).unlink()
    assert main(["refine", "--storage", url, "--trial", "3"]) == 2
    err = capsys.readouterr().err
    assert "teacher" in err and len(err.strip().splitlines()) == 1
    assert refined_record(study, 3) is None
